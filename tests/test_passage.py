"""Cutting a portal's frames into passages."""

import math

import numpy as np
import pytest

from customs_lab.radiation.alarm import BackgroundEstimator
from customs_lab.radiation.passage import PassageTracker


class RecordingEstimator:
    """Remembers what the tracker taught it (the real estimator: test_radiation_alarm)."""

    ready = False  # so the tracker's gate never applies

    def __init__(self):
        self.frames = []

    def update(self, counts, live_time):
        self.frames.append((tuple(counts), live_time))


def test_passages_are_cut_on_occupancy_and_background_learns_only_empty_frames():
    estimator = RecordingEstimator()
    tracker = PassageTracker(estimator, holdoff=0.0)
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


def test_a_passage_without_a_read_is_not_named_after_the_one_before():
    tracker = PassageTracker(RecordingEstimator(), holdoff=0.0)
    names = []
    for seq, (occupied, read) in enumerate([(1, 'MSCU1234565'), (1, ''), (0, ''), (1, ''),
                                            (1, ''), (0, '')]):
        if occupied and read:
            tracker.set_subject(read)
        passage = tracker.feed(seq * 0.1, seq, [5, 5], 0.1, bool(occupied))
        if passage is not None:
            names.append(passage.subject_id)
    assert names == ['MSCU1234565', '']  # the lane reader read nothing the second time


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


def test_the_holdoff_keeps_the_departing_subject_out_of_the_background():
    estimator = RecordingEstimator()
    tracker = PassageTracker(estimator, holdoff=1.0)
    tracker.feed(0.0, 0, [5], 0.1, True)
    stamps = [0.1 * i for i in range(1, 15)]
    for seq, stamp in enumerate(stamps, start=1):
        tracker.feed(stamp, seq, [seq], 0.1, False)
    # the passage ends at t=0.1: frames before t=1.1 are skipped (10 of them), later ones learned
    assert tracker.holdoff_frames == 10
    assert [f[0][0] for f in estimator.frames] == [11, 12, 13, 14]


def test_the_gate_keeps_a_source_beside_the_empty_lane_out_of_the_background():
    rng = np.random.default_rng(7)
    estimator = BackgroundEstimator(2, time_constant=30.0, min_live_time=5.0)
    tracker = PassageTracker(estimator, holdoff=0.0, gate_sigma=5.0)
    background = np.array([300.0, 200.0])  # cps
    for seq in range(200):  # 20 s of background: learned, and the gate lets it through
        tracker.feed(seq * 0.1, seq, rng.poisson(background * 0.1), 0.1, False)
    assert estimator.ready and tracker.elevated_frames == 0
    for seq in range(200, 300):  # a source parked beside the empty lane: 4x background
        tracker.feed(seq * 0.1, seq, rng.poisson(4 * background * 0.1), 0.1, False)
    assert tracker.elevated_frames == 100
    assert np.allclose(estimator.rate(), background, rtol=0.1)
    # Without the gate the estimate would have followed the source
    ungated = BackgroundEstimator(2, time_constant=30.0, min_live_time=5.0)
    ungated.update(rng.poisson(background * 0.1, size=(200, 2)), 0.1)
    ungated.update(rng.poisson(4 * background * 0.1, size=(100, 2)), 0.1)
    assert np.sum(ungated.rate()) > 1.5 * np.sum(background)


def test_frame_times_are_one_period_apart_whatever_the_stamps_do():
    from customs_lab.radiation.passage import Passage

    stamps = np.array([10.1, 10.2, 10.3, 10.35, 10.45, 10.55])  # the host's offset moved
    passage = Passage('X', np.ones((6, 2)), np.full(6, 0.1), 10.1, 10.65, 0, 5, stamps, 2.2)
    times, end = passage.frame_times()
    assert times == pytest.approx([10.1, 10.2, 10.3, 10.4, 10.5, 10.6])
    assert end == pytest.approx(10.7)
