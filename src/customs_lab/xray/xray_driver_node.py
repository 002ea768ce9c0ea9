"""X-ray scanner driver: a lifecycle node reading the scanner's line stream (TCP or Unix socket).

Connects to the scanner (parameter `address`: host:port for a real scanner's Ethernet port, or
a Unix socket path; a bare name is a socket under <data_dir>/dev/, where the simulator puts
its device), decodes the stream (xray/protocol.py, docs/protocols/xray_stream.md), assembles one
scan per parcel keyed by the waybill the belt's barcode reader read (xray/assembly.py), keeps
each scan's raw data as NEMA DICOS files under `raw_dir` (xray/dicos.py) and publishes, in the
device's namespace:

- `scan` (customs_interfaces/XrayScan): the raw scan (three mono16 images), its dark and air
  references and the DICOS file's URI: what the X-ray inspection node processes;
- `image_calibrated/low`, `image_calibrated/high` (sensor_msgs/Image, 32FC1: transmission
  (raw - dark) / (air - dark)) and `image_calibrated/back` (32FC1, dark-subtracted ADU), for
  viewing;
- /diagnostics: the link (state, frames, bytes skipped, CRC and length errors, lost lines), the
  scans (held, truncated, with missing lines, unread waybills, raw files written or not) and the
  calibration drift (xray/calibration.py's DriftMonitor on the air lines around every parcel).
  When the drift monitor asks for it and the belt is empty, the driver orders a new air (or
  dark) calibration (`recalibrate_on_drift`), at most once per `recalibration_holdoff` s.

Socket I/O runs on its own thread, never on the executor. A link that fails (scanner off, cable
pulled) is reopened every `reconnect_period` s; corrupt frames are dropped and counted, good
ones around them kept; lines lost meanwhile are filled and counted in the scan (no parcel is
dropped). A raw file that cannot be written (disk full, no permission) is an ERROR on
/diagnostics and the scan is still published, its raw_data_uri empty.

Lifecycle: configure (parameters, publishers), activate (connect, read), deactivate (stop
reading, publish what was held), cleanup. With autostart (default) the node configures and
activates itself, as a lifecycle manager would.
"""

import pathlib
import time

import numpy as np
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.qos import QoSProfile
from sensor_msgs.msg import Image

from customs_interfaces.msg import XrayScan as XrayScanMsg
from customs_lab.common.data_dir import data_dir
from customs_lab.common.lifecycle_driver import ThreadedDriver, autostart
from customs_lab.common.node_support import Diagnostics, declare, run_node
from customs_lab.xray import dicos, protocol
from customs_lab.xray.assembly import ScanAssembler
from customs_lab.xray.calibration import DriftMonitor, DriftThresholds
from customs_lab.xray.scan import XrayScan
from customs_lab.xray.scan_messages import image_msg, scan_to_msg
from customs_lab.xray.scanner_model import CHANNELS

ERROR_HOLD = 5.0  # wall s a corrupt frame or lost line keeps the link's status at WARN
HEALTH_PERIOD = 0.5  # wall s between drift verdicts and health reports (a verdict costs ~5 ms)


def resolve_address(address: str, data_directory: str = '') -> str:
    """Return the scanner's address: host:port or a path as given, else a name under dev/.

    A bare name is a Unix socket under <data_dir>/dev (where the simulator puts its devices).
    """
    if address.startswith(('/', 'unix:', 'tcp:')) or ':' in address:
        return address  # a path, or host:port
    return str(data_dir(data_directory) / 'dev' / address)


class DeviceClock:
    """Map the device's millisecond ticks to ROS time: the least latency seen (as rpm_driver)."""

    def __init__(self):
        self.offset = None  # s, ROS time - device time
        self.resets = 0

    def observe(self, device_seconds: float, now: float):
        """Note a frame's device time and the ROS time it arrived."""
        if self.offset is not None and now - device_seconds < self.offset - 3600.0:
            self.resets += 1  # the device clock jumped forward by hours: start again
            self.offset = None
        if self.offset is None or now - device_seconds < self.offset:
            self.offset = now - device_seconds

    def __call__(self, device_seconds: float) -> float:
        """Return the ROS time (s) of a device time."""
        return device_seconds + (self.offset or 0.0)


class XrayDriver(ThreadedDriver):
    """Read an X-ray scanner's stream, assemble scans, keep them and publish them."""

    thread_name = 'xray_link'

    def __init__(self, **kwargs):
        super().__init__('xray_driver', **kwargs)
        declare(self, 'address', 'parcel_xray_1.sock',
                'Scanner address: host:port (TCP), an absolute Unix socket path, or a socket '
                'name under <data_dir>/dev/')
        declare(self, 'sensor_id', 'xray/parcel_xray_1',
                'Hardware id on /diagnostics and in messages')
        declare(self, 'frame_id', 'parcel_xray_1', 'Frame of the scanner (x along the belt)')
        declare(self, 'data_dir', '', 'Data directory (empty: $CUSTOMS_LAB_DATA_DIR or XDG)')
        declare(self, 'raw_dir', '', 'Where raw scans are kept as DICOS (empty: <data_dir>/xray)')
        declare(self, 'reconnect_period', 1.0, 'Wall s between attempts to reconnect',
                minimum=0.05, maximum=60.0)
        declare(self, 'silence_timeout', 3.0, 'Wall s without a frame before the device is '
                'silent (the scanner sends STATUS every second)', minimum=0.1, maximum=60.0)
        declare(self, 'margin_lines', 25, 'Lines of belt kept either side of a parcel',
                minimum=0, maximum=1000)
        declare(self, 'max_lines', 2500, 'Longest parcel (lines) before it is cut into parts',
                minimum=10, maximum=100000)
        declare(self, 'recalibrate_on_drift', True,
                'Order an air or dark calibration when the drift monitor asks for one')
        declare(self, 'recalibration_holdoff', 60.0,
                'Wall s between two calibrations the driver orders', minimum=1.0,
                maximum=86400.0)
        declare(self, 'drift_gain_warn', 0.02, 'Relative gain change that asks for a new air '
                'calibration (WARN)', minimum=1e-4, maximum=0.5)
        declare(self, 'drift_gain_error', 0.10, 'Relative gain change that is an ERROR',
                minimum=1e-4, maximum=1.0)
        declare(self, 'drift_offset_warn_adu', 10.0, 'Dark offset change, ADU, that asks for '
                'a new dark calibration (WARN)', minimum=0.1, maximum=10000.0)
        declare(self, 'drift_offset_error_adu', 50.0, 'Dark offset change, ADU, that is an '
                'ERROR', minimum=0.1, maximum=10000.0)
        declare(self, 'autostart', True, 'Configure and activate at start-up')
        self._scan_pub = None
        self._image_pubs = {}
        self.diagnostics = None

    # lifecycle -----------------------------------------------------------------------------
    def on_configure(self, state) -> TransitionCallbackReturn:
        """Read parameters, create the publishers, the assembler and the drift monitor."""
        get = self.get_parameter
        try:
            self.thresholds = DriftThresholds(
                gain_warn=get('drift_gain_warn').value, gain_error=get('drift_gain_error').value,
                offset_warn_adu=get('drift_offset_warn_adu').value,
                offset_error_adu=get('drift_offset_error_adu').value)
        except ValueError as error:
            self.get_logger().error(f'bad drift thresholds: {error}')
            return TransitionCallbackReturn.FAILURE
        self.address = resolve_address(get('address').value, get('data_dir').value)
        self.sensor_id = get('sensor_id').value
        self.frame_id = get('frame_id').value
        raw = get('raw_dir').value
        self.raw_dir = pathlib.Path(raw) if raw else data_dir(get('data_dir').value) / 'xray'
        self.reconnect_period = get('reconnect_period').value
        self.silence_timeout = get('silence_timeout').value
        self.recalibrate = get('recalibrate_on_drift').value
        self.recalibration_holdoff = get('recalibration_holdoff').value
        self._scan_pub = self.create_lifecycle_publisher(XrayScanMsg, 'scan', QoSProfile(depth=5))
        self._image_pubs = {
            name: self.create_lifecycle_publisher(Image, f'image_calibrated/{name}',
                                                  QoSProfile(depth=2))
            for name in CHANNELS}
        if self.diagnostics is None:
            self.diagnostics = Diagnostics(self)
        self._reset()
        self._report_link('configured', Diagnostics.OK)
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        """Stop reading; publish the scans that were held."""
        self._stop_thread()
        self._publish_scans(self.assembler.flush())
        self._report_link('inactive', Diagnostics.WARN)
        return super().on_deactivate(state)

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        """Release the publishers."""
        self._stop_thread()
        for publisher in [self._scan_pub, *self._image_pubs.values()]:
            if publisher is not None:
                self.destroy_lifecycle_publisher(publisher)
        self._scan_pub, self._image_pubs = None, {}
        return TransitionCallbackReturn.SUCCESS

    # the link (reader thread) --------------------------------------------------------------
    def _reset(self):
        self.clock = DeviceClock()
        self.drift = DriftMonitor(self.thresholds)
        self.assembler = ScanAssembler(
            self.sensor_id, margin_lines=self.get_parameter('margin_lines').value,
            max_lines=self.get_parameter('max_lines').value, drift=self.drift, clock=self.clock)
        self.decoder = protocol.StreamDecoder()
        self.stats = {'connects': 0, 'bytes': 0, 'scans': 0, 'raw_files': 0,
                      'raw_write_errors': 0, 'commands': 0, 'calibrations_ordered': 0}
        self._link_state = 'closed'
        self._last_frame = None
        self._problem_at = None
        self._problems_seen = 0
        self._raw_error = ''
        self._calibration_ordered = None
        self._health_at = None  # wall s of the last drift verdict and health report
        self.ordered_for = None  # the drift report of the last calibration ordered
        self._command_seq = 0
        self._ticks = None  # (wire ticks, unwrapped ms) for the device clock

    def _read_loop(self):
        link = None
        while not self._stop.is_set():
            if link is None:
                link = self._connect()
                if link is None:
                    self._stop.wait(self.reconnect_period)
                    continue
            try:
                data = link.recv(1 << 16)
                if not data:
                    raise ConnectionResetError('the scanner closed the connection')
            except TimeoutError:
                data = b''
            except OSError as error:
                self._link_state = f'lost: {error}'
                self._report_link(f'link lost ({error}); reconnecting', Diagnostics.ERROR)
                link.close()
                link = None
                continue
            now = time.monotonic()
            if data:
                self.stats['bytes'] += len(data)
                self._last_frame = now
                frames = self.decoder.feed(data)
                ros_now = self.get_clock().now().nanoseconds * 1e-9
                scans = []
                for frame in frames:
                    self._observe_clock(frame, ros_now)
                    scans += self.assembler.feed(frame)
                self._publish_scans(scans)
            if self._health_at is None or now - self._health_at >= HEALTH_PERIOD:
                self._health_at = now
                report = self.drift.report()
                self._maybe_recalibrate(link, report)
                self._report_health(now, report)
        if link is not None:
            link.close()

    def _connect(self):
        try:
            link = protocol.connect(self.address, timeout=2.0)
            link.settimeout(0.1)
        except (OSError, ValueError) as error:
            self._link_state = f'cannot connect: {error}'
            self._report_link(f'cannot connect to {self.address}: {error} (retrying)',
                              Diagnostics.ERROR)
            return None
        self.decoder.reset()
        self._ticks = None
        self.stats['connects'] += 1
        self._link_state = 'connected'
        self._last_frame = time.monotonic()
        self.get_logger().info(f'connected to the scanner at {self.address}')
        self._send(link, protocol.CommandCode.STATUS)
        return link

    def _send(self, link, command, argument: int = 0) -> bool:
        self._command_seq = (self._command_seq + 1) % 2**32
        frame = protocol.Command(self._command_seq, int(time.monotonic() * 1000) % 2**32,
                                 int(command), int(argument))
        try:
            link.sendall(protocol.encode(frame))
        except OSError as error:
            self._report_link(f'cannot send {protocol.CommandCode(command).name}: {error}',
                              Diagnostics.ERROR)
            return False
        self.stats['commands'] += 1
        return True

    def _observe_clock(self, frame, ros_now: float):
        ticks = getattr(frame, 'ticks_ms', None)
        if ticks is None or isinstance(frame, protocol.Command):
            return
        if self._ticks is None:
            self._ticks = (ticks, ticks)
        wire, absolute = self._ticks
        delta = (ticks - wire) % 2**32
        absolute += delta - 2**32 if delta >= 2**31 else delta
        self._ticks = (ticks, absolute)
        self.clock.observe(absolute / 1000.0, ros_now)

    def _maybe_recalibrate(self, link, report):
        """Order the calibration the drift monitor's report asks for, with the belt empty."""
        if (not self.recalibrate or self.assembler.open_parcel is not None
                or not self.assembler.references.complete):  # the scanner calibrates at start
            return
        if not (report.needs_air_calibration or report.needs_dark_calibration):
            return
        now = time.monotonic()
        if (self._calibration_ordered is not None
                and now - self._calibration_ordered < self.recalibration_holdoff):
            return
        self._calibration_ordered, self.ordered_for = now, report
        command = (protocol.CommandCode.CALIBRATE_DARK if report.needs_dark_calibration
                   else protocol.CommandCode.CALIBRATE_AIR)
        self.get_logger().warning(f'calibration drift ({report.message}): ordering '
                                  f'{command.name}')
        if self._send(link, command):
            self.stats['calibrations_ordered'] += 1

    # scans -------------------------------------------------------------------------------
    def _publish_scans(self, scans):
        for scan in scans:
            uri = self._keep(scan)
            self.stats['scans'] += 1
            if self._scan_pub is None:
                continue
            msg = scan_to_msg(scan, self.sensor_id, self.frame_id, uri)
            self._scan_pub.publish(msg)
            calibrated = scan.calibrated()
            for name, publisher in self._image_pubs.items():
                publisher.publish(image_msg(calibrated[name].astype(np.float32),
                                            msg.header.stamp, self.frame_id))
            waybill = scan.waybill or '(unread)'
            self.get_logger().info(f'scan of {waybill}: {scan.lines} lines'
                                   + (f', kept at {uri}' if uri else ', raw file NOT kept'))

    def _keep(self, scan: XrayScan) -> str:
        """Write the scan's DICOS files; return their URI ('' if they could not be written)."""
        target = self.raw_dir / dicos.scan_relpath(scan)
        try:
            dicos.write_scan(scan, target)
        except (OSError, ValueError) as error:
            self.stats['raw_write_errors'] += 1
            self._raw_error = f'{scan.waybill or "(unread)"}: {error}'
            self.get_logger().error(f'raw scan not kept: {self._raw_error}')
            return ''
        self.stats['raw_files'] += 1
        return target.resolve().as_uri()

    # diagnostics -------------------------------------------------------------------------
    def _report_link(self, message: str, level):
        if self.diagnostics is None:
            return
        with self._lock:
            self.diagnostics.update(f'xray_driver: {self.sensor_id}', self.sensor_id, level,
                                    message, {'address': self.address,
                                              'link': self._link_state})

    def _report_health(self, now: float, report):
        decoder, assembler = self.decoder.stats, self.assembler.stats
        problems = (self.decoder.error_count + assembler['missing_lines']
                    + assembler['frames_lost'])
        if problems > self._problems_seen:
            self._problems_seen, self._problem_at = problems, now
        silent = self._last_frame is None or now - self._last_frame > self.silence_timeout
        status = self.assembler.status
        if silent:
            level, message = Diagnostics.ERROR, 'scanner silent'
        elif self._problem_at is not None and now - self._problem_at < ERROR_HOLD:
            level = Diagnostics.WARN
            message = f'stream errors: {self.decoder.last_error or self.assembler.last_problem}'
        elif status is not None and not status.interlock_ok:
            level, message = Diagnostics.ERROR, 'interlock open: X-rays off'
        else:
            level, message = Diagnostics.OK, 'receiving'
        values = {'address': self.address, 'link': self._link_state, **self.stats,
                  **{f'decoder_{k}': v for k, v in decoder.items()},
                  **{f'scans_{k}': v for k, v in assembler.items()}}
        if status is not None:
            values.update(model=status.model, serial=status.serial, kvp=status.kvp,
                          tube_current_ma=status.tube_current_ma, xray_on=status.xray_on,
                          acquiring=status.acquiring, temperature=status.temperature,
                          lines_dropped_by_device=status.lines_dropped)
        raw_level = Diagnostics.ERROR if self._raw_error else Diagnostics.OK
        with self._lock:
            self.diagnostics.update(f'xray_driver: {self.sensor_id}', self.sensor_id, level,
                                    message, values)
            self.diagnostics.update(f'xray_driver: {self.sensor_id}/calibration',
                                    self.sensor_id, report.level, report.message,
                                    report.values)
            self.diagnostics.update(
                f'xray_driver: {self.sensor_id}/raw_data', self.sensor_id, raw_level,
                f'last write failed: {self._raw_error}' if self._raw_error
                else f'kept under {self.raw_dir}',
                {'raw_files': self.stats['raw_files'],
                 'raw_write_errors': self.stats['raw_write_errors']})


def main(args=None):
    """Run the X-ray scanner driver."""
    return run_node(XrayDriver, args, after_create=autostart)


if __name__ == '__main__':
    raise SystemExit(main())
