"""A device driver as a lifecycle node whose device I/O runs on its own thread.

The drivers (radiation portal, X-ray scanner) read a device link that blocks; the read loop runs
on a thread started on activate and stopped (and joined) on deactivate, cleanup, shutdown and
destroy, never on the executor. Subclasses implement `_read_loop` (returning when `self._stop`
is set) and their lifecycle callbacks (calling `_stop_thread` where they must). With the
`autostart` parameter (declared by the subclass) `autostart` configures and activates the node
as a lifecycle manager would.
"""

import pathlib
import threading

from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
import serial


class ThreadedDriver(LifecycleNode):
    """A lifecycle node that reads its device on a thread of its own."""

    thread_name = 'device_link'

    def __init__(self, node_name: str, **kwargs):
        super().__init__(node_name, **kwargs)
        self._thread = None
        self._stop = threading.Event()
        self._lock = threading.Lock()  # the reader thread and the executor share diagnostics

    def _read_loop(self):
        raise NotImplementedError

    def _run(self):
        """Run the read loop; an error after the context went down (Ctrl-C) is the shutdown.

        rclpy's signal handler shuts the context down before the node is destroyed and the
        thread joined: a publish in between raises. That is no fault of the device's.
        """
        try:
            self._read_loop()
        except Exception:  # noqa: BLE001 - re-raised unless the process is shutting down
            if self.context.ok() and not self._stop.is_set():
                raise

    def on_activate(self, state) -> TransitionCallbackReturn:
        """Start the reader thread (it opens the link and keeps it open)."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        return super().on_activate(state)

    def on_shutdown(self, state) -> TransitionCallbackReturn:
        """Stop reading."""
        self._stop_thread()
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self):
        """Stop reading before the publishers go (the reader thread publishes)."""
        self._stop_thread()
        super().destroy_node()

    def _stop_thread(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None


def open_serial(port: str, baudrate: int, greeting: bytes = b'', timeout: float = 0.1):
    """Open a serial device and send `greeting`; return (link or None, what went wrong).

    A missing device (a USB adapter unplugged, a simulator not started) and a port that fails
    to open are reported, not raised: the drivers retry.
    """
    if not pathlib.Path(port).exists():
        return None, f'{port} does not exist'
    try:
        link = serial.Serial(port, baudrate, timeout=timeout)
        link.reset_input_buffer()
        if greeting:
            link.write(greeting)
    except (serial.SerialException, OSError) as error:
        return None, f'cannot open {port}: {error}'
    return link, ''


def autostart(node: ThreadedDriver):
    """Configure and activate `node` if its `autostart` parameter is set (run_node's hook)."""
    if node.get_parameter('autostart').value:
        node.trigger_configure()
        node.trigger_activate()
