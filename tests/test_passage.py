"""Cutting a portal's frames into passages."""

import math

import numpy as np

from customs_lab.radiation.passage import PassageTracker


class RecordingEstimator:
    """Remembers what the tracker taught it (the real estimator: test_radiation_alarm)."""

    def __init__(self):
        self.frames = []

    def update(self, counts, live_time):
        self.frames.append((tuple(counts), live_time))


def test_passages_are_cut_on_occupancy_and_background_learns_only_empty_frames():
    estimator = RecordingEstimator()
    tracker = PassageTracker(estimator)
    occupancy = [0, 0, 1, 1, 1, 0, 0, 1, 1, 0]
    passages = []
    for seq, occupied in enumerate(occupancy):
        if occupied and not tracker.in_passage:
            tracker.set_subject(f'S{seq}')
        result = tracker.feed(seq * 0.1, seq, [seq, 10 * seq], 0.1, bool(occupied))
        if result is not None:
            passages.append(result)
    assert [p.subject_id for p in passages] == ['S2', 'S7']
    assert passages[0].counts.tolist() == [[2, 20], [3, 30], [4, 40]]
    assert (passages[0].first_seq, passages[0].last_seq) == (2, 4)
    assert np.allclose(passages[1].live_times, [0.1, 0.1])
    assert [f[0][0] for f in estimator.frames] == [0, 1, 5, 6, 9]


def test_bad_frames_are_rejected_and_reported():
    tracker = PassageTracker(RecordingEstimator())
    assert tracker.feed(0.0, 1, [1, 2], math.nan, False) is None
    assert tracker.feed(0.0, 2, [1, -2], 0.1, False) is None
    assert tracker.feed(0.0, 3, [1, 2], 0.0, True) is None
    assert tracker.rejected_frames == 3 and 'frame 3' in tracker.last_rejection
    assert not tracker.in_passage


def test_a_parked_subject_is_cut_at_max_frames():
    tracker = PassageTracker(RecordingEstimator(), max_frames=5)
    results = [tracker.feed(i * 0.1, i, [1], 0.1, True) for i in range(12)]
    assert [len(r.counts) for r in results if r is not None] == [5, 5]
