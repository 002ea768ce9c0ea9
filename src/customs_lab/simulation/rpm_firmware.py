"""The firmware of a simulated radiation portal monitor, speaking its serial protocol on a pty.

The simulator owns a pseudo-terminal per device, its slave linked at a stable path (e.g.
<data_dir>/dev/portal_lane_1; simulation/pty_link.py). The driver opens that path with pyserial
exactly as it would open /dev/ttyUSB0: it cannot tell the device is simulated.

Its spectrometers drift as real ones do: the crystal's light yield and the photomultiplier's
gain follow the temperature (each SpectrometerSpec's gain_temperature_coefficient, about
-0.3 %/degree C for NaI(Tl) + PMT, from a calibration at CALIBRATION_C), the enclosure follows
a daily cycle of the outside air (DAILY_MEAN_C +- DAILY_SWING_C), and the host can set each
spectrometer's gain ($RPMX,GAIN: its high voltage, with a PMT's gain ~ V^7 for 10 dynodes).

Its He-3 neutron modules (protocol v3) are `neutron_module_ids`, or else those the lane's frames
carry (the simulated hardware is the lane: a frame's module set that differs from the device's
becomes the device's, announced at once by a status line). Their counts go in each counts line;
a device without modules speaks protocol v2.
"""

import math
import pathlib

from customs_lab.radiation import protocol
from customs_lab.simulation.pty_link import PtyLink

CALIBRATION_C = 20.0
DAILY_MEAN_C, DAILY_SWING_C = 20.0, 8.0
PANEL_HV, SPECTROMETER_HV = 1100.0, 850.0  # V at gain setting 1
PMT_GAIN_EXPONENT = 7.0


class RpmFirmware:
    """Write a device's lines to its pty; answer status requests; count what could not be sent."""

    def __init__(
        self,
        link_path,
        model: str,
        serial: str,
        panel_ids,
        window_edges_kev=(),
        spectrometers=(),
        spectrum_period: float = 1.0,
        neutron_module_ids=(),
    ):
        self.link_path = pathlib.Path(link_path)
        self.model = model
        self.serial = serial
        self.panel_ids = tuple(panel_ids)
        self.window_edges_kev = tuple(window_edges_kev)
        self.neutron_module_ids = tuple(neutron_module_ids)
        self.spectrometers = {s.id: s for s in spectrometers}
        self.spectrum_period = float(spectrum_period)
        self.gain_settings = {s.id: 1.0 for s in spectrometers}
        self.temperature_offset = 0.0  # deg C added to the daily cycle (tests warm the device)
        self.temperature = DAILY_MEAN_C
        self._spectra = {s.id: None for s in spectrometers}
        self._spectrum_live = 0.0
        self._spectrum_occupied = False
        self._seq = 0
        self._decoder = protocol.LineDecoder()
        self._link = PtyLink(self.link_path)

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq = (self._seq + 1) % 2**32
        return seq

    @property
    def dropped_lines(self) -> int:
        """Return the lines that did not fit (the host does not read: the buffer is full)."""
        return self._link.dropped

    def _send(self, frame):
        self._link.write(protocol.encode(frame))

    def write_raw(self, data: bytes):
        """Write bytes to the line as they are (tests: corrupt frames, garbage)."""
        self._link.write(data)

    def update_temperature(self, t: float) -> float:
        """Set and return the enclosure temperature at sim time t (s)."""
        cycle = DAILY_SWING_C * math.sin(2.0 * math.pi * t / 86400.0)
        self.temperature = DAILY_MEAN_C + cycle + self.temperature_offset
        return self.temperature

    def recording_gains(self) -> dict:
        """Return the true gain of each spectrometer now: its setting times the thermal drift."""
        return {
            name: self.gain_settings[name]
            * (1.0 + spec.gain_temperature_coefficient * (self.temperature - CALIBRATION_C))
            for name, spec in self.spectrometers.items()
        }

    def send_frame(self, ticks_ms: int, frame):
        """Send a lane frame: its occupancy edges, counts, and spectra once a period is full."""
        neutrons = None
        if frame.neutron_counts:
            if tuple(frame.neutron_counts) != self.neutron_module_ids:
                self.neutron_module_ids = tuple(frame.neutron_counts)
                self.send_status(ticks_ms)
            neutrons = [frame.neutron_counts[m] for m in self.neutron_module_ids]
        for event in frame.events:
            self.send_occupancy(ticks_ms, event.occupied, event.subject_id, event.speed)
        windows = () if frame.windows is None else tuple(tuple(w) for w in frame.windows)
        self.send_counts(ticks_ms, frame.live_time, frame.occupied, frame.counts, windows,
                         neutrons)
        if not self.spectrometers or not frame.spectra:
            return
        for name, counts in frame.spectra.items():
            held = self._spectra[name]
            self._spectra[name] = counts.copy() if held is None else held + counts
        self._spectrum_live += frame.live_time
        self._spectrum_occupied |= frame.occupied
        if self._spectrum_live >= self.spectrum_period - 1e-9:
            for name, counts in self._spectra.items():
                self._send(
                    protocol.SpectrumFrame(
                        self._next_seq(),
                        ticks_ms % 2**32,
                        name,
                        self._spectrum_live,
                        self._spectrum_live,
                        self._spectrum_occupied,
                        tuple(int(c) for c in counts),
                    )
                )
                self._spectra[name] = None
            self._spectrum_live, self._spectrum_occupied = 0.0, False

    def send_counts(self, ticks_ms: int, live_time: float, occupied: bool, counts, windows=(),
                    neutrons=None):
        """Send one counts line (with each channel's energy-window counts if given).

        neutrons: counts per neutron module, in the order of `neutron_module_ids` (None: none).
        """
        self._send(
            protocol.CountsFrame(
                self._next_seq(),
                ticks_ms % 2**32,
                live_time,
                occupied,
                tuple(int(c) for c in counts),
                windows,
                None if neutrons is None else tuple(int(n) for n in neutrons),
            )
        )

    def send_occupancy(
        self, ticks_ms: int, occupied: bool, subject_id: str, speed: float = math.nan
    ):
        """Send an occupancy edge with the lane reader's read and the measured speed."""
        self._send(
            protocol.OccupancyFrame(
                self._next_seq(), ticks_ms % 2**32, occupied, subject_id, speed
            )
        )

    def send_status(self, ticks_ms: int):
        """Send a status line."""
        self._send(
            protocol.StatusFrame(
                self._next_seq(),
                ticks_ms % 2**32,
                self.model,
                self.serial,
                PANEL_HV,
                self.temperature,
                self.panel_ids,
                self.window_edges_kev,
                self.neutron_module_ids,
            )
        )
        for name in self.spectrometers:
            self.send_detector_status(ticks_ms, name)

    def send_detector_status(self, ticks_ms: int, name: str):
        """Send a spectrometer's status line."""
        spec, setting = self.spectrometers[name], self.gain_settings[name]
        self._send(
            protocol.DetectorStatusFrame(
                self._next_seq(),
                ticks_ms % 2**32,
                name,
                SPECTROMETER_HV * setting ** (1.0 / PMT_GAIN_EXPONENT),
                self.temperature,
                setting,
                spec.channels,
                spec.max_kev,
            )
        )

    def poll_host(self, ticks_ms: int):
        """Read what the host sent and answer it (a status request gets a status line)."""
        for frame in self._decoder.feed(self._link.read()):
            if isinstance(frame, protocol.StatusRequest):
                self.send_status(ticks_ms)
            elif isinstance(frame, protocol.SetGain) and frame.detector_id in self.gain_settings:
                self.gain_settings[frame.detector_id] = frame.gain
                self.send_detector_status(ticks_ms, frame.detector_id)

    def close(self):
        """Remove the link and close the pty."""
        self._link.close()
