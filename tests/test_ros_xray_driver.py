"""The X-ray driver node on a real socket: scans, raw files, corruption, a pulled cable, drift.

One scan per parcel with the raw lines bit for bit and the DICOS file behind its URI; corrupt
bytes dropped and counted; a cable pulled and back; a drifting tube that makes the driver order
a new air calibration.
"""

import pathlib
import shutil
import tempfile
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
import numpy as np
import pytest
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from customs_interfaces.msg import XrayScan

pytestmark = pytest.mark.ros


def statuses(messages, name_part):
    return [s for m in messages for s in m.status if name_part in s.name]


@pytest.fixture
def short_dir():
    path = tempfile.mkdtemp(prefix='xr')  # a Unix socket path must stay below 108 bytes
    yield pathlib.Path(path)
    shutil.rmtree(path, ignore_errors=True)


def parcel(detector, lines, seed):
    """Return a parcel's raw (low, high, back) lines as the synthetic detector reads them."""
    rng = np.random.default_rng(seed)
    low = np.ones((lines, detector.model.pixels))
    low[:, 40:300] = rng.uniform(0.05, 0.8, size=(lines, 260))
    return detector.transmission(low, np.sqrt(low), 2000.0 * (low < 1))


class Belt:
    """The simulator's side: advance the firmware's clock in real time while the test spins."""

    def __init__(self, firmware):
        self.firmware = firmware
        self.start = time.monotonic()

    def __call__(self):
        self.firmware.advance(time.monotonic() - self.start)
        return False


def test_driver_publishes_scans_keeps_raw_files_and_survives_a_pulled_cable(harness,
                                                                              short_dir):
    from customs_lab.simulation.xray_firmware import XrayFirmware
    from customs_lab.xray import dicos
    from customs_lab.xray.scan_messages import msg_to_scan
    from customs_lab.xray.xray_driver_node import XrayDriver

    address = str(short_dir / 'dev' / 'xray_t.sock')
    firmware = XrayFirmware(address, serial='SIM-T', gated=True, gap_lines=30,
                            dark_interval=0.0)
    belt = Belt(firmware)
    raw_dir = short_dir / 'raw'
    driver = harness.add(XrayDriver(context=harness.context, parameter_overrides=[
        Parameter('address', value='xray_t.sock'), Parameter('data_dir', value=str(short_dir)),
        Parameter('raw_dir', value=str(raw_dir)), Parameter('sensor_id', value='xray/t'),
        Parameter('reconnect_period', value=0.1), Parameter('recalibration_holdoff', value=1.0),
        Parameter('margin_lines', value=25)]))
    driver.trigger_configure()
    driver.trigger_activate()
    listener = harness.node('listener')
    scans, images, diagnostics = [], [], []
    listener.create_subscription(XrayScan, 'scan', scans.append, 10)
    listener.create_subscription(Image, 'image_calibrated/low', images.append, 10)
    listener.create_subscription(DiagnosticArray, '/diagnostics', diagnostics.append, 100)
    assert harness.spin_until(lambda: belt() or driver.stats['connects'] == 1, 5.0)
    assert harness.spin_until(lambda: belt() or driver.assembler.references.complete, 5.0)

    detector = firmware.detector
    rendered = [parcel(detector, 120, 1), parcel(detector, 90, 2)]
    firmware.queue_parcel(*rendered[0], 'RR123456785KR')
    firmware.queue_parcel(*rendered[1], '')  # the barcode reader read nothing
    assert harness.spin_until(lambda: belt() or len(scans) == 2, 10.0)
    first, unread = scans
    assert first.subject.id == 'RR123456785KR' and first.subject.id_valid
    assert unread.subject.id == '' and not unread.subject.id_valid
    assert (first.low.height, first.low.width, first.low.encoding) == (120 + 50, 352, 'mono16')
    assert first.sensor_id == 'xray/t' and first.serial == 'SIM-T' and first.kvp == 160.0
    # the message carries the raw lines bit for bit, and the file behind its URI is the same
    scan = msg_to_scan(first)
    assert np.array_equal(scan.low[25:-25], rendered[0][0])
    assert first.raw_data_uri.startswith('file://')
    kept = dicos.read_scan(pathlib.Path(first.raw_data_uri[len('file://'):]))
    assert kept.waybill == 'RR123456785KR'
    assert all(np.array_equal(kept.raw(c), scan.raw(c)) for c in ('low', 'high', 'back'))
    assert np.array_equal(kept.dark, scan.dark) and np.allclose(kept.air, scan.air)
    assert len(list(raw_dir.rglob('*.dcs'))) == 6
    assert harness.spin_until(lambda: belt() or len(images) == 2, 5.0)
    assert images[0].encoding == '32FC1' and images[0].height == 170

    # corrupt bytes on the link: dropped and counted, the next parcel still arrives whole
    firmware._conn.sendall(b'\xeb\x90XR\x01\x02garbage' + b'\x00' * 40)
    firmware.queue_parcel(*parcel(detector, 60, 3), 'RR000000000KR')
    assert harness.spin_until(lambda: belt() or len(scans) == 3, 10.0)
    assert driver.decoder.error_count >= 1 and scans[2].missing_lines == 0
    assert harness.spin_until(
        lambda: belt() or any(s.level == DiagnosticStatus.WARN
                              for s in statuses(diagnostics[-3:], 'xray_driver: xray/t')), 5.0)

    # the cable is pulled (the device goes away): the driver says so and reconnects
    firmware.close()
    assert harness.spin_until(
        lambda: any(s.level == DiagnosticStatus.ERROR
                    for s in statuses(diagnostics[-3:], 'xray_driver: xray/t')), 10.0)
    firmware = XrayFirmware(address, serial='SIM-T', gated=True, gap_lines=30,
                            dark_interval=0.0)
    belt = Belt(firmware)
    assert harness.spin_until(lambda: belt() or driver.stats['connects'] >= 2, 10.0)
    harness.spin_until(belt, 1.0)  # its calibration at start-up (128 lines)

    # the tube drifts 5 % up: the calibration diagnostic warns and the driver orders air
    ordered = driver.stats['calibrations_ordered']
    air = driver.assembler.references.air
    firmware.detector.gain_drift = 1.05
    for i in range(3):
        firmware.queue_parcel(*parcel(firmware.detector, 60, 10 + i), 'RR000000000KR')
    assert harness.spin_until(
        lambda: belt() or driver.stats['calibrations_ordered'] > ordered, 15.0), (
            driver.drift.report(), len(scans), driver.assembler.open_parcel)
    assert driver.ordered_for.needs_air_calibration and driver.ordered_for.level == 1
    assert 'gain' in driver.ordered_for.message, driver.ordered_for.message
    assert harness.spin_until(lambda: belt() or driver.assembler.references.air is not air,
                              10.0)
    count = len(scans)
    for i in range(2):
        firmware.queue_parcel(*parcel(firmware.detector, 60, 20 + i), 'RR000000000KR')
    assert harness.spin_until(lambda: belt() or len(scans) >= count + 2, 15.0)
    assert harness.spin_until(
        lambda: belt() or statuses(diagnostics[-2:], 'xray/t/calibration')[-1].level
        == DiagnosticStatus.OK, 5.0), statuses(diagnostics[-2:], 'xray/t/calibration')
    firmware.close()
