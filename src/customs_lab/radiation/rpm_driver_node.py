"""Radiation portal monitor driver: a lifecycle node reading the RPM serial protocol (pyserial).

Publishes each counts frame as customs_interfaces/RadiationCounts on `counts` (in the device's
namespace), with its energy-window counts, its neutron modules' counts (protocol v3), the lane's
occupancy, the subject id the lane reader read and the speed the lane measured; each
spectrometer's spectrum as customs_interfaces/GammaSpectrum on `spectrum`; and on /diagnostics
one status for the device (link state, frames, CRC and framing errors, lost frames (sequence
gaps), high voltage and temperature), one per spectrometer (spectra received, count rate, gain
setting, high voltage, crystal temperature) and one per neutron module (counts, rate; WARN when
it has counted nothing for `neutron_fault_live_time` s of live time: cosmic rays alone give a
module a few counts a second, so silence is a high-voltage or tube fault). Serial I/O runs on
its own thread, never on the executor. A cable that is unplugged (port gone, read error) is
reopened every `reconnect_period` seconds; corrupt lines (a bad neutron field too) are counted
and dropped whole, good ones around them are kept. Neutron counts that the last status line
does not name (no status yet, or another module count) are left out of the message and counted
(`neutron_mismatches`), as energy windows are.

Lifecycle: configure (parameters, publisher), activate (open the port, start reading),
deactivate (stop reading, close the port), cleanup. With autostart (default) the node configures
and activates itself, as a lifecycle manager would.
"""

import math
import time

from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.qos import QoSProfile
from rclpy.time import Time
import serial

from customs_interfaces.msg import GammaSpectrum, RadiationCounts
from customs_lab.common.data_dir import serial_device
from customs_lab.common.lifecycle_driver import ThreadedDriver, autostart, open_serial
from customs_lab.common.node_support import Diagnostics, declare, run_node, subject_to_msg
from customs_lab.common.subjects import Subject, SubjectKind
from customs_lab.radiation import protocol

ERROR_HOLD = 5.0  # s a bad line or lost frame keeps the device's status at WARN
SPECTRUM_SILENCE = 5.0  # wall s without a spectrum before a known spectrometer is reported silent


class RpmDriver(ThreadedDriver):
    """Read an RPM over a serial port and publish its frames."""

    thread_name = 'rpm_serial'

    def __init__(self, **kwargs):
        super().__init__('rpm_driver', **kwargs)
        declare(
            self,
            'port',
            'portal_lane_1',
            'Serial device: an absolute path (/dev/ttyUSB0) or a name under <data_dir>/dev/',
        )
        declare(self, 'baudrate', 115200, 'Serial speed, bit/s', minimum=1200, maximum=4_000_000)
        declare(
            self, 'sensor_id', 'rpm/portal_lane_1', 'Hardware id on /diagnostics and in messages'
        )
        declare(self, 'frame_id', 'portal_lane_1', 'Frame of the device (its lane along +x)')
        declare(
            self,
            'subject_kind',
            'container',
            'What passes the lane: container (ISO 6346 ids) or parcel (waybills)',
        )
        declare(
            self,
            'reconnect_period',
            1.0,
            'Wall s between attempts to reopen a lost port',
            minimum=0.05,
            maximum=60.0,
        )
        declare(
            self,
            'silence_timeout',
            2.0,
            'Wall s without a line before the device is silent',
            minimum=0.1,
            maximum=60.0,
        )
        declare(
            self,
            'neutron_fault_live_time',
            60.0,
            'Live s without a single count before a neutron module is reported faulty (WARN)',
            minimum=1.0,
            maximum=86400.0,
        )
        declare(self, 'data_dir', '', 'Data directory for relative ports (empty: default)')
        declare(self, 'autostart', True, 'Configure and activate at start-up')
        self._publisher = None
        self.diagnostics = None

    # lifecycle -----------------------------------------------------------------------------
    def on_configure(self, state) -> TransitionCallbackReturn:
        """Read parameters and create the publisher and diagnostics."""
        get = self.get_parameter
        kind = get('subject_kind').value
        if kind not in ('container', 'parcel'):
            self.get_logger().error(f'subject_kind must be container or parcel, not {kind!r}')
            return TransitionCallbackReturn.FAILURE
        self.subject_kind = SubjectKind.CONTAINER if kind == 'container' else SubjectKind.PARCEL
        self.port = serial_device(get('port').value, get('data_dir').value)
        self.baudrate = get('baudrate').value
        self.sensor_id = get('sensor_id').value
        self.frame_id = get('frame_id').value
        self.reconnect_period = get('reconnect_period').value
        self.silence_timeout = get('silence_timeout').value
        self.neutron_fault_live_time = get('neutron_fault_live_time').value
        self._publisher = self.create_lifecycle_publisher(
            RadiationCounts, 'counts', QoSProfile(depth=100)
        )
        self._spectrum_publisher = self.create_lifecycle_publisher(
            GammaSpectrum, 'spectrum', QoSProfile(depth=20)
        )
        if self.diagnostics is None:
            self.diagnostics = Diagnostics(self)
        self._reset_stats()
        self._report('configured', Diagnostics.OK)
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        """Stop reading and close the port."""
        self._stop_thread()
        self._report('inactive', Diagnostics.WARN)
        return super().on_deactivate(state)

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        """Release the publisher."""
        self._stop_thread()
        if self._publisher is not None:
            self.destroy_lifecycle_publisher(self._publisher)
            self.destroy_lifecycle_publisher(self._spectrum_publisher)
            self._publisher = self._spectrum_publisher = None
        return TransitionCallbackReturn.SUCCESS

    # serial I/O (reader thread) ------------------------------------------------------------
    def _reset_stats(self):
        self.stats = {
            'frames': 0,
            'lost_frames': 0,
            'reconnects': 0,
            'status_lines': 0,
            'spectra': 0,
            'window_mismatches': 0,
            'neutron_mismatches': 0,
        }
        self.decoder = protocol.LineDecoder()
        self.panel_ids = ()
        self.window_edges = ()
        self.neutron_ids = ()
        # neutron module id -> [counts, live s, live s since its last count] since configured
        self.neutron_modules = {}
        self.device_status = None
        self.detectors = {}  # detector id -> (last DetectorStatusFrame, spectra, last wall s)
        self._expected_seq = None
        self._clock_offset, self._last_ticks, self._tick_wraps = None, None, 0
        self._subject_id = ''
        self._speed = math.nan
        self._last_line = None
        self._link_state = 'closed'
        self._problems_seen = 0
        self._problem_at = None

    def _read_loop(self):
        link = None
        while not self._stop.is_set():
            if link is None:
                link = self._open()
                if link is None:
                    self._stop.wait(self.reconnect_period)
                    continue
            try:
                data = link.read(4096)
            except (serial.SerialException, OSError) as error:
                self._link_state = f'read failed: {error}'
                self._report(f'link lost ({error}); reconnecting', Diagnostics.ERROR)
                link.close()
                link = None
                continue
            now = time.monotonic()
            if data:
                for frame in self.decoder.feed(data):
                    self._handle(frame)
                self._last_line = now
            silent = self._last_line is None or now - self._last_line > self.silence_timeout
            self._report_health(silent)
        if link is not None:
            link.close()

    def _open(self):
        link, problem = open_serial(self.port, self.baudrate,
                                    protocol.encode(protocol.StatusRequest()))
        if link is None:
            self._link_state = problem
            self._report(f'{problem} (retrying)', Diagnostics.ERROR)
            return None
        self.stats['reconnects'] += 1
        self._link_state = 'open'
        self._expected_seq = None
        self._clock_offset, self._last_ticks, self._tick_wraps = None, None, 0
        self._last_line = time.monotonic()
        self.get_logger().info(f'opened {self.port} at {self.baudrate} bit/s')
        return link

    def _handle(self, frame):
        if isinstance(frame, protocol.StatusRequest | protocol.SetGain):
            return  # host-to-device lines echoed back: not the device's
        if self._expected_seq is not None and frame.seq != self._expected_seq:
            self.stats['lost_frames'] += (frame.seq - self._expected_seq) % 2**32
        self._expected_seq = (frame.seq + 1) % 2**32
        if isinstance(frame, protocol.StatusFrame):
            self.stats['status_lines'] += 1
            self.device_status = frame
            self.panel_ids = frame.panel_ids
            self.window_edges = frame.window_edges_kev
            self.neutron_ids = frame.neutron_module_ids
        elif isinstance(frame, protocol.OccupancyFrame):
            self._subject_id = frame.subject_id if frame.occupied else ''
            self._speed = frame.speed if frame.occupied else math.nan
        elif isinstance(frame, protocol.CountsFrame):
            self.stats['frames'] += 1
            self._publish_counts(frame)
        elif isinstance(frame, protocol.DetectorStatusFrame):
            _, spectra, seen = self.detectors.get(frame.detector_id, (None, 0, None))
            self.detectors[frame.detector_id] = (frame, spectra, seen)
        elif isinstance(frame, protocol.SpectrumFrame):
            self.stats['spectra'] += 1
            status, spectra, _ = self.detectors.get(frame.detector_id, (None, 0, None))
            self.detectors[frame.detector_id] = (status, spectra + 1, time.monotonic())
            self._publish_spectrum(frame, status)

    def _stamp(self, ticks_ms: int):
        """Return the ROS time of a device tick: its clock, offset by the least latency seen.

        Lines arrive in bursts (a read returns several), so the time of arrival is no frame's
        time; the device's own clock is. Its offset to ROS time is the smallest (arrival -
        device time) seen since the link opened (a minimum-latency filter, as drivers of
        time-stamping devices do); a device clock that jumps back (a reset) starts it again.
        """
        if self._last_ticks is not None and ticks_ms < self._last_ticks:
            if self._last_ticks - ticks_ms > 2**31:
                self._tick_wraps += 1  # the 32-bit millisecond counter wrapped
            else:
                self._clock_offset = None  # the device restarted its clock
        self._last_ticks = ticks_ms
        device = (ticks_ms + self._tick_wraps * 2**32) / 1000.0
        now = self.get_clock().now().nanoseconds / 1e9
        if self._clock_offset is None or now - device < self._clock_offset:
            self._clock_offset = now - device
        return Time(nanoseconds=int(round((device + self._clock_offset) * 1e9))).to_msg()

    def _publish_counts(self, frame: protocol.CountsFrame):
        msg = RadiationCounts(
            sensor_id=self.sensor_id,
            sequence=frame.seq,
            live_time=frame.live_time,
            gamma_counts=list(frame.counts),
            occupied=frame.occupied,
        )
        msg.header.stamp = self._stamp(frame.ticks_ms)
        msg.header.frame_id = self.frame_id
        ids = (
            self.panel_ids
            if len(self.panel_ids) == len(frame.counts)
            else tuple(f'ch{i}' for i in range(len(frame.counts)))
        )
        msg.gamma_panel_ids = list(ids)
        if frame.windows:
            if len(self.window_edges) == len(frame.windows[0]) + 1:
                msg.window_edges_kev = list(self.window_edges)
                msg.gamma_window_counts = [w for channel in frame.windows for w in channel]
            else:  # no status line yet, or one that disagrees: the windows cannot be named
                self.stats['window_mismatches'] += 1
        if frame.neutrons is not None:
            if len(self.neutron_ids) == len(frame.neutrons):
                msg.neutron_module_ids = list(self.neutron_ids)
                msg.neutron_counts = list(frame.neutrons)
                self._count_neutrons(frame)
            else:  # the modules cannot be named
                self.stats['neutron_mismatches'] += 1
        msg.subject_speed = math.nan
        if frame.occupied and self._subject_id:
            msg.subject = subject_to_msg(Subject(self.subject_kind, self._subject_id))
            msg.subject_speed = float(self._speed)
        if self._publisher is not None:
            self._publisher.publish(msg)

    def _count_neutrons(self, frame: protocol.CountsFrame):
        with self._lock:  # the diagnostics timer reads them
            for module_id, count in zip(self.neutron_ids, frame.neutrons, strict=True):
                module = self.neutron_modules.setdefault(module_id, [0, 0.0, 0.0])
                module[0] += count
                module[1] += frame.live_time
                module[2] = 0.0 if count else module[2] + frame.live_time

    def _publish_spectrum(self, frame: protocol.SpectrumFrame, status):
        msg = GammaSpectrum(
            sensor_id=self.sensor_id,
            detector_id=frame.detector_id,
            sequence=frame.seq,
            live_time=frame.live_time,
            real_time=frame.real_time,
            counts=list(frame.counts),
            occupied=frame.occupied,
            gain=math.nan if status is None else status.gain,
            temperature=math.nan if status is None else status.temperature,
        )
        if status is not None and status.channels == len(frame.counts):
            msg.energy_calibration = [0.0, status.max_kev / status.channels]
        msg.header.stamp = self._stamp(frame.ticks_ms)
        msg.header.frame_id = self.frame_id
        if frame.occupied and self._subject_id:
            msg.subject = subject_to_msg(Subject(self.subject_kind, self._subject_id))
        if self._spectrum_publisher is not None:
            self._spectrum_publisher.publish(msg)

    # diagnostics ---------------------------------------------------------------------------
    def _report_health(self, silent: bool):
        # bad lines and lost frames make the status WARN for ERROR_HOLD seconds after the last one
        problems = self.decoder.error_count + self.stats['lost_frames']
        now = time.monotonic()
        if problems != self._problems_seen:
            self._problems_seen, self._problem_at = problems, now
        if silent:
            level, message = Diagnostics.ERROR, 'device silent'
        elif self._problem_at is not None and now - self._problem_at < ERROR_HOLD:
            level = Diagnostics.WARN
            message = (
                f'{self.decoder.error_count} bad lines, {self.stats["lost_frames"]} lost frames '
                f'so far (last: {self.decoder.last_error})'
            )
        else:
            level, message = Diagnostics.OK, 'receiving'
        self._report(message, level)
        for detector_id in list(self.detectors):
            self._report_detector(detector_id, now, silent)
        for module_id in self.neutron_ids:
            self._report_neutron_module(module_id, silent)

    def _report_neutron_module(self, module_id: str, device_silent: bool):
        with self._lock:  # the reader thread updates the counters
            counts, live, quiet = tuple(self.neutron_modules.get(module_id, (0, 0.0, 0.0)))
        values = {'counts': counts, 'live_time': round(live, 1),
                  'rate_cps': round(counts / live, 3) if live > 0 else 'n/a',
                  'live_time_since_last_count': round(quiet, 1)}
        if device_silent:
            level, message = Diagnostics.ERROR, 'device silent'
        elif live <= 0:
            level, message = Diagnostics.WARN, 'no counts received yet'
        elif quiet >= self.neutron_fault_live_time:
            level = Diagnostics.WARN
            message = (f'no neutron counted for {quiet:.0f} s of live time (the cosmic-ray '
                       'background keeps a working module counting): high voltage or tube fault?')
        else:
            level, message = Diagnostics.OK, 'counting'
        sensor_id = self.get_parameter('sensor_id').value
        with self._lock:
            self.diagnostics.update(f'rpm_driver: {sensor_id}/{module_id}',
                                    f'{sensor_id}/{module_id}', level, message, values)

    def _report_detector(self, detector_id: str, now: float, device_silent: bool):
        status, spectra, seen = self.detectors[detector_id]
        values = {'spectra': spectra}
        if status is not None:
            values.update(
                {
                    'hv_volts': status.hv_volts,
                    'temperature': status.temperature,
                    'gain_setting': status.gain,
                    'channels': status.channels,
                    'max_kev': status.max_kev,
                }
            )
        if device_silent or seen is None or now - seen > SPECTRUM_SILENCE:
            level, message = Diagnostics.ERROR, 'no spectra'
        elif status is None:
            level, message = Diagnostics.WARN, 'spectra without a detector status (calibration)'
        else:
            level, message = Diagnostics.OK, 'receiving spectra'
        sensor_id = self.get_parameter('sensor_id').value
        with self._lock:
            self.diagnostics.update(
                f'rpm_driver: {sensor_id}/{detector_id}',
                f'{sensor_id}/{detector_id}',
                level,
                message,
                values,
            )

    def _report(self, message: str, level):
        if self.diagnostics is None:
            return
        values = {'port': getattr(self, 'port', ''), 'link': getattr(self, '_link_state', '')}
        if hasattr(self, 'stats'):
            values.update(self.stats)
            values.update({f'{k}_errors': v for k, v in self.decoder.errors.items()})
        status = getattr(self, 'device_status', None)
        if status is not None:
            values.update(
                {
                    'model': status.model,
                    'serial': status.serial,
                    'hv_volts': status.hv_volts,
                    'temperature': status.temperature,
                }
            )
        with self._lock:
            self.diagnostics.update(
                f'rpm_driver: {self.get_parameter("sensor_id").value}',
                self.get_parameter('sensor_id').value,
                level,
                message,
                values,
            )


def main(args=None):
    """Run the RPM driver."""
    return run_node(RpmDriver, args, after_create=autostart)


if __name__ == '__main__':
    raise SystemExit(main())
