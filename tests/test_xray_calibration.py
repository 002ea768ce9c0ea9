"""Dark / air references built robustly from stream lines, and the drift monitor's verdicts."""

import math

import numpy as np
import pytest

from customs_lab.xray import calibration
from customs_lab.xray.calibration import (
    DriftMonitor,
    DriftThresholds,
    Reference,
    References,
)

PIXELS = 352


class Detector:
    """Lines of a detector with known per-pixel offsets and gains (the ground truth)."""

    def __init__(self, seed=0, pixels=PIXELS):
        self.rng = np.random.default_rng(seed)
        self.pixels = pixels
        self.offset = 1000.0 + 40.0 * self.rng.standard_normal((3, pixels))
        self.gain = 1.0 + 0.05 * self.rng.standard_normal((3, pixels))
        self.level = np.array([50000.0, 50000.0, 1000.0])[:, None]  # back: belt scatter only

    def lines(self, signal, count, gain=1.0, offset=0.0):
        """Return (3, count, pixels) uint16 lines of `signal` ((3, pixels) ADU at gain 1)."""
        mean = self.offset + offset + self.gain * gain * signal
        noise = np.sqrt(0.5 * np.maximum(self.gain * signal, 0) + 9.0)
        raw = mean[:, None, :] + noise[:, None, :] * self.rng.standard_normal(
            (3, count, self.pixels))
        return np.clip(np.rint(raw), 0, 65535).astype(np.uint16)

    def dark(self, count, offset=0.0):
        return self.lines(np.zeros((3, self.pixels)), count, offset=offset)

    def air(self, count, gain=1.0, offset=0.0):
        return self.lines(np.broadcast_to(self.level, (3, self.pixels)), count, gain, offset)

    @property
    def true_air(self):
        return self.offset + self.gain * self.level

    def references(self, lines=256):
        dark = calibration.dark_reference(self.dark(lines), time=1.0)
        return References(dark, calibration.air_reference(self.air(lines), dark, time=2.0))


# -- references --------------------------------------------------------------------------------


def test_dark_reference_recovers_each_pixels_offset_and_ignores_a_glitch():
    detector = Detector(1)
    lines = detector.dark(64)
    lines[:, 10, :] += 600  # a readout glitch (or a stray X-ray flash) in one line
    reference = calibration.dark_reference(lines, time=12.5)
    assert reference.kind == 'dark' and reference.time == 12.5 and reference.source == 'host'
    assert reference.lines == 63 and reference.rejected_lines == 1
    assert np.max(np.abs(reference.values - detector.offset)) < 2.5  # 3 ADU noise, 63 lines
    plain = lines.astype(float).mean(axis=1)
    assert np.min(plain - detector.offset) > 5  # without rejection the glitch would show


def test_air_reference_rejects_lines_with_an_object():
    detector = Detector(2)
    dark = calibration.dark_reference(detector.dark(64))
    lines = detector.air(200)
    # a hand, a parcel's corner: 40 of the 200 lines see 30 pixels at 40 % transmission
    hit = np.zeros(200, dtype=bool)
    hit[50:90] = True
    span = (detector.gain * detector.level)[:, None, 100:130]
    lines[:, hit, 100:130] = np.rint(lines[:, hit, 100:130] - 0.6 * span).astype(np.uint16)
    reference = calibration.air_reference(lines, dark, time=3.0)
    assert reference.lines == 160 and reference.rejected_lines == 40
    relative = (reference.values - detector.true_air) / (detector.true_air - detector.offset)
    assert np.max(np.abs(relative[:2])) < 0.003
    plain = lines.astype(float).mean(axis=1)
    assert np.min(detector.true_air[:2, 100:130] - plain[:2, 100:130]) > 0.05 * 50000


def test_references_refuse_what_cannot_be_used():
    detector = Detector(3)
    with pytest.raises(ValueError, match='only 4'):
        calibration.dark_reference(detector.dark(4))
    lines = detector.air(20)
    lines[:, 6:, :50] //= 3  # an object in 14 of 20 lines: 6 left, 8 needed
    with pytest.raises(ValueError, match='only 6 of 20 air lines'):
        calibration.air_reference(lines, detector.offset)
    with pytest.raises(ValueError):
        calibration.dark_reference(np.zeros((2, 10, 5)))
    with pytest.raises(ValueError):
        calibration.air_reference(detector.air(20), np.zeros((3, 7)))
    with pytest.raises(ValueError, match='not finite'):
        Reference('air', np.full((3, 4), np.nan))
    with pytest.raises(ValueError):
        Reference('grey', np.zeros((3, 4)))


def test_references_keep_dark_and_air_of_one_size():
    dark = Reference('dark', np.zeros((3, 8)))
    air = Reference('air', np.full((3, 8), 100.0))
    refs = References().replaced(dark)
    assert not refs.complete and refs.pixels == 8
    refs = refs.replaced(air)
    assert refs.complete and refs.arrays()[1][0, 0] == 100.0
    wider = refs.replaced(Reference('dark', np.zeros((3, 16))))  # the detector was replaced
    assert wider.air is None and not wider.complete and wider.pixels == 16
    with pytest.raises(ValueError):
        wider.arrays()


def test_a_reference_from_the_firmware():
    from customs_lab.xray import protocol

    frame = protocol.CalibrationFrame(1, 2, 'air', 64, np.full((3, 8), 51000.0))
    reference = calibration.reference_from_frame(frame, time=4.0)
    assert reference.source == 'firmware' and reference.lines == 64 and reference.time == 4.0


# -- drift -------------------------------------------------------------------------------------


def monitor_for(detector, thresholds=None):
    monitor = DriftMonitor(thresholds)
    monitor.set_references(detector.references())
    return monitor


@pytest.mark.parametrize('seed', range(4))
def test_noise_alone_is_ok(seed):
    detector = Detector(seed)
    monitor = monitor_for(detector)
    for _ in range(10):  # the margins of ten parcels
        monitor.add_air(detector.air(50))
    monitor.add_dark(detector.dark(16))
    report = monitor.report()
    assert report.level == calibration.OK, report.message
    assert not report.needs_air_calibration and not report.needs_dark_calibration
    assert abs(report.values['low_gain_change']) < 0.002
    assert abs(report.values['high_offset_change_adu']) < 2.0
    assert report.values['low_dead_fraction'] == 0.0 and report.values['air_lines'] == 500


def test_a_five_percent_gain_drift_asks_for_an_air_calibration():
    detector = Detector(5)
    monitor = monitor_for(detector)
    for _ in range(4):
        monitor.add_air(detector.air(50, gain=1.05))  # the tube's output rose 5 %
    report = monitor.report()
    assert report.level == calibration.WARN and report.level_name == 'WARN'
    assert report.needs_air_calibration and not report.needs_dark_calibration
    for name in ('low', 'high'):
        assert report.values[f'{name}_gain_change'] == pytest.approx(0.05, abs=0.002)
    assert 'low: gain +5.0 %' in report.message
    monitor.add_air(detector.air(600, gain=1.12))  # and more: beyond the error limit
    assert monitor.report().level == calibration.ERROR


def test_a_new_air_calibration_clears_the_drift():
    detector = Detector(6)
    monitor = monitor_for(detector)
    monitor.add_air(detector.air(100, gain=1.05))
    assert monitor.report().needs_air_calibration
    refs = monitor.references.replaced(
        calibration.air_reference(detector.air(128, gain=1.05), monitor.references.dark))
    monitor.set_references(refs)
    assert monitor.report().level == calibration.STALE  # the old lines were forgotten
    monitor.add_air(detector.air(100, gain=1.05))
    assert monitor.report().level == calibration.OK


def test_a_dark_offset_shift_asks_for_a_dark_calibration():
    detector = Detector(7)
    monitor = monitor_for(detector)
    monitor.add_air(detector.air(100, offset=30.0))
    monitor.add_dark(detector.dark(32, offset=30.0))  # the electronics warmed up: +30 ADU
    report = monitor.report()
    assert report.level == calibration.WARN, report.message
    assert report.needs_dark_calibration and not report.needs_air_calibration
    assert report.values['low_offset_change_adu'] == pytest.approx(30.0, abs=1.0)
    assert 'dark offset +30' in report.message
    monitor.add_dark(detector.dark(600, offset=-80.0))
    assert monitor.report().level == calibration.ERROR


def test_dead_and_hot_pixels_are_counted():
    detector = Detector(8)
    monitor = monitor_for(detector)
    air = detector.air(100)
    air[:2, :, 40:50] = detector.offset[:2, None, 40:50].astype(np.uint16)  # 10 dead pixels
    monitor.add_air(air)
    report = monitor.report()
    assert report.values['low_dead_fraction'] == pytest.approx(10 / PIXELS)
    assert report.level == calibration.WARN and 'dead or hot pixels' in report.message
    assert abs(report.values['low_gain_change']) < 0.002  # the rest still reads true
    dark = detector.dark(32)
    dark[:, :, :30] += 500  # 30 hot pixels: 8.5 %
    monitor.add_dark(dark)
    assert monitor.report().level == calibration.ERROR


def test_the_backscatter_channel_without_an_air_level_is_not_judged_on_gain():
    detector = Detector(9)
    detector.level = np.array([50000.0, 50000.0, 50.0])[:, None]  # air scatters almost nothing
    monitor = monitor_for(detector)
    monitor.add_air(detector.air(100))
    report = monitor.report()
    assert math.isnan(report.values['back_gain_change'])
    assert report.level == calibration.OK, report.message


def test_garbage_never_raises_and_becomes_the_diagnostic():
    monitor = DriftMonitor()
    report = monitor.report()  # no references at all
    assert report.level == calibration.WARN and 'no dark or air reference' in report.message
    assert report.needs_air_calibration and report.needs_dark_calibration
    detector = Detector(10)
    monitor.set_references(detector.references())
    assert monitor.report().level == calibration.STALE
    nan_lines = detector.air(20).astype(float)
    nan_lines[0, 3, 7] = np.nan
    for garbage in (nan_lines, np.zeros((3, 20, 17)), 'air', None, [[1, 2], [3]],
                    np.zeros((5, 5)), np.zeros((3, 0, PIXELS))):
        monitor.add_air(garbage)
    report = monitor.report()
    assert report.level == calibration.WARN and 'air lines rejected' in report.message
    assert report.values['rejected_inputs'] == 6 and report.values['air_lines'] == 0
    monitor.add_air(detector.air(50))  # good lines clear the complaint
    assert monitor.report().level == calibration.OK
    monitor.set_references(None)
    assert monitor.report().level == calibration.WARN


def test_the_window_keeps_only_recent_lines():
    detector = Detector(11)
    monitor = monitor_for(detector, DriftThresholds(window_lines=100))
    monitor.add_air(detector.air(300, gain=1.2))  # an old drift...
    for _ in range(5):
        monitor.add_air(detector.air(30))  # ...that recent lines no longer show
    report = monitor.report()
    assert report.values['air_lines'] == 100 and report.level == calibration.OK


@pytest.mark.parametrize('kwargs', [
    {'gain_warn': 0.2, 'gain_error': 0.1},
    {'gain_warn': 0.0},
    {'offset_warn_adu': float('nan')},
    {'offset_warn_adu': 60.0},
    {'bad_pixel_error': 1.5},
    {'dead_ratio': 1.0},
    {'hot_offset_adu': -1.0},
    {'min_lines': 0},
    {'min_lines': 2.5},
    {'window_lines': 4},
    {'min_span_adu': True},
])
def test_thresholds_are_validated(kwargs):
    with pytest.raises(ValueError):
        DriftThresholds(**kwargs)
