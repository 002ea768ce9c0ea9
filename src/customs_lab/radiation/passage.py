"""Cut a portal's frame stream into passages: frames while the lane is occupied, one per subject.

Frames while the lane is occupied are collected; when occupancy ends, the passage is complete.
Frames of the empty lane teach the background estimator, with two guards that keep a source out
of the background (as portal monitors do):

- a hold-off: for `holdoff` s after a passage ends nothing is learned (the subject that just
  left is still close to the detectors);
- a gate: once the background is learned, an empty-lane frame whose gross count exceeds the
  expected background by more than `gate_sigma` Poisson standard deviations is not learned; it
  is counted in `elevated_frames` (a source near an empty lane is worth a diagnostic).

Core module: no ROS.
"""

from dataclasses import dataclass
import math

import numpy as np


@dataclass(frozen=True)
class Passage:
    """The frames of one subject's passage through a portal."""

    subject_id: str  # as the lane reader read it ('' if nothing was read)
    counts: np.ndarray  # (frames, channels)
    live_times: np.ndarray  # (frames,) s
    start_time: float  # s, stamp of the first frame
    end_time: float  # s, stamp of the last frame
    first_seq: int
    last_seq: int
    stamps: np.ndarray | None = None  # (frames,) s, each frame's end
    speed: float = math.nan  # m/s, as the lane measured it (NaN: not measured)

    def frame_times(self) -> tuple[np.ndarray, float]:
        """Return (each frame's end, the end of the passage: the next frame's end), s.

        The device counts frame after frame: a passage's frames are one period apart (the
        median spacing of their stamps), from the first one's stamp. A jump of the stamps in
        the middle of a passage (a host's clock-offset correction, a late burst) moves none.
        """
        stamps = np.asarray(self.stamps, dtype=float)
        period = float(np.median(np.diff(stamps))) if len(stamps) > 1 else float(
            np.median(self.live_times))
        times = stamps[0] + period * np.arange(len(stamps))
        return times, float(times[-1] + period)


class PassageTracker:
    """Feed frames in order; get a Passage back when the lane empties."""

    def __init__(self, background_estimator, max_frames: int = 6000, holdoff: float = 5.0,
                 gate_sigma: float = 5.0):
        if not (math.isfinite(holdoff) and holdoff >= 0):
            raise ValueError(f'holdoff must be >= 0 s, got {holdoff!r}')
        if not gate_sigma > 0:
            raise ValueError(f'gate_sigma must be positive, got {gate_sigma!r}')
        self.background = background_estimator
        self.max_frames = max_frames
        self.holdoff = float(holdoff)
        self.gate_sigma = float(gate_sigma)
        self._holdoff_until = -math.inf
        self.elevated_frames = 0  # empty-lane frames kept out of the background by the gate
        self.holdoff_frames = 0  # empty-lane frames skipped in the hold-off
        self._frames, self._live, self._seqs, self._stamps = [], [], [], []
        self._speed = math.nan
        self._subject_id = ''
        self._start = 0.0
        self.rejected_frames = 0
        self.last_rejection = ''

    @property
    def in_passage(self) -> bool:
        """Return True while frames of an occupied lane are being collected."""
        return bool(self._frames)

    def set_subject(self, subject_id: str):
        """Record what the lane reader read for the subject now entering."""
        self._subject_id = subject_id

    def feed(self, stamp: float, seq: int, counts, live_time: float, occupied: bool,
             speed: float = math.nan):
        """Add one frame (speed: the lane's measurement, m/s). Return a completed Passage or None.

        A frame with a non-finite or non-positive live time, or negative / non-finite counts, is
        rejected (counted in rejected_frames, reason in last_rejection) and changes nothing.
        """
        counts = np.asarray(counts, dtype=float)
        if (
            not math.isfinite(live_time)
            or live_time <= 0
            or not np.all(np.isfinite(counts))
            or np.any(counts < 0)
        ):
            self.rejected_frames += 1
            self.last_rejection = f'frame {seq}: live time {live_time}, counts {counts.tolist()}'
            return None
        if occupied:
            if not self._frames:
                self._start = stamp
            self._frames.append(counts)
            self._live.append(live_time)
            self._seqs.append(seq)
            self._stamps.append(stamp)
            if math.isfinite(speed) and speed > 0:
                self._speed = float(speed)
            if len(self._frames) >= self.max_frames:  # a subject parked in the lane: cut here
                return self._complete(stamp)
            return None
        passage = None
        if self._frames:
            passage = self._complete(stamp)
            self._holdoff_until = stamp + self.holdoff
        if stamp < self._holdoff_until:
            self.holdoff_frames += 1
        elif self._elevated(counts, live_time):
            self.elevated_frames += 1
        else:
            self.background.update(counts, live_time)
        return passage

    def _elevated(self, counts: np.ndarray, live_time: float) -> bool:
        if not self.background.ready:
            return False
        expected = float(np.sum(self.background.rate())) * live_time
        return float(np.sum(counts)) > expected + self.gate_sigma * math.sqrt(max(expected, 1.0))

    def _complete(self, stamp: float) -> Passage:
        passage = Passage(
            self._subject_id,
            np.array(self._frames),
            np.array(self._live),
            self._start,
            stamp,
            self._seqs[0],
            self._seqs[-1],
            np.array(self._stamps),
            self._speed,
        )
        self._frames, self._live, self._seqs, self._stamps = [], [], [], []
        self._speed = math.nan
        self._subject_id = ''  # the next passage is named by its own read, or by none
        return passage
