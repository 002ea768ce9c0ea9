"""A simulated serial device's end of a pseudo-terminal, linked at a stable path.

The simulator owns a pseudo-terminal pair per serial device and links its slave side at a path
(e.g. <data_dir>/dev/portal_lane_1, like socat's `link=`). The driver opens that path with
pyserial exactly as it would open /dev/ttyUSB0: it cannot tell the device is simulated. The
device writes its lines to the master side without blocking (a host that does not read fills
the buffer: lines are dropped and counted, as a device's UART would drop them) and reads what
the host sent.
"""

import errno
import os
import pathlib
import tty


class PtyLink:
    """The device's side of a pty whose slave is linked at `link_path`."""

    def __init__(self, link_path):
        """Open the pty (raw: no echo, no line discipline) and link its slave."""
        self.link_path = pathlib.Path(link_path)
        self.dropped = 0  # writes that did not fit
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.link_path.parent.mkdir(parents=True, exist_ok=True)
        if self.link_path.is_symlink() or self.link_path.exists():
            self.link_path.unlink()
        self.link_path.symlink_to(os.ttyname(self._slave))

    def write(self, data: bytes) -> bool:
        """Write bytes; return False (and count a drop) if they did not all fit."""
        try:
            written = os.write(self._master, data)
        except BlockingIOError:
            written = 0
        except OSError as error:
            if error.errno != errno.EIO:
                raise
            written = 0
        if written != len(data):
            self.dropped += 1
            return False
        return True

    def read(self) -> bytes:
        """Return what the host has sent (b'' if nothing)."""
        try:
            return os.read(self._master, 4096)
        except (BlockingIOError, OSError):
            return b''

    def close(self):
        """Remove the link and close the pty."""
        try:
            if self.link_path.is_symlink():
                self.link_path.unlink()
        finally:
            os.close(self._master)
            os.close(self._slave)
