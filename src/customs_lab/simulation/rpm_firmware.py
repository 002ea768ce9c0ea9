"""The firmware of a simulated radiation portal monitor, speaking its serial protocol on a pty.

The simulator owns a pseudo-terminal pair per device and links its slave side at a stable path
(e.g. <data_dir>/dev/portal_lane_1, like socat's `link=`). The driver opens that path with
pyserial exactly as it would open /dev/ttyUSB0: it cannot tell the device is simulated.
"""

import errno
import os
import pathlib
import tty

from customs_lab.radiation import protocol


class RpmFirmware:
    """Write a device's lines to its pty; answer status requests; count what could not be sent."""

    def __init__(self, link_path, model: str, serial: str, panel_ids):
        self.link_path = pathlib.Path(link_path)
        self.model = model
        self.serial = serial
        self.panel_ids = tuple(panel_ids)
        self.hv_volts = 1100.0
        self.temperature = 24.0
        self._seq = 0
        self._decoder = protocol.LineDecoder()
        self.dropped_lines = 0
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line discipline: a plain byte pipe
        os.set_blocking(self._master, False)
        self.link_path.parent.mkdir(parents=True, exist_ok=True)
        if self.link_path.is_symlink() or self.link_path.exists():
            self.link_path.unlink()
        self.link_path.symlink_to(os.ttyname(self._slave))

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq = (self._seq + 1) % 2**32
        return seq

    def _send(self, frame):
        line = protocol.encode(frame)
        try:
            written = os.write(self._master, line)
            if written != len(line):
                self.dropped_lines += 1
        except BlockingIOError:
            self.dropped_lines += 1  # the host does not read: the device's buffer is full
        except OSError as error:
            if error.errno != errno.EIO:
                raise
            self.dropped_lines += 1

    def send_counts(self, ticks_ms: int, live_time: float, occupied: bool, counts):
        """Send one counts line."""
        self._send(
            protocol.CountsFrame(
                self._next_seq(),
                ticks_ms % 2**32,
                live_time,
                occupied,
                tuple(int(c) for c in counts),
            )
        )

    def send_occupancy(self, ticks_ms: int, occupied: bool, subject_id: str):
        """Send an occupancy edge with the lane reader's read."""
        self._send(
            protocol.OccupancyFrame(self._next_seq(), ticks_ms % 2**32, occupied, subject_id)
        )

    def send_status(self, ticks_ms: int):
        """Send a status line."""
        self._send(
            protocol.StatusFrame(
                self._next_seq(),
                ticks_ms % 2**32,
                self.model,
                self.serial,
                self.hv_volts,
                self.temperature,
                self.panel_ids,
            )
        )

    def poll_host(self, ticks_ms: int):
        """Read what the host sent and answer it (a status request gets a status line)."""
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, OSError):
            return
        for frame in self._decoder.feed(data):
            if isinstance(frame, protocol.StatusRequest):
                self.send_status(ticks_ms)

    def close(self):
        """Remove the link and close the pty."""
        try:
            if self.link_path.is_symlink():
                self.link_path.unlink()
        finally:
            os.close(self._master)
            os.close(self._slave)
