"""A threaded driver whose context goes down under it (Ctrl-C) ends its thread without a trace."""

import threading
import time

import pytest

pytestmark = pytest.mark.ros


def test_a_publish_racing_the_shutdown_is_not_reported_as_a_fault():
    import rclpy
    from std_msgs.msg import UInt32

    from customs_lab.common.lifecycle_driver import ThreadedDriver

    class Chatty(ThreadedDriver):
        def __init__(self, **kwargs):
            super().__init__('chatty', **kwargs)
            self.sent = 0

        def on_configure(self, state):
            self.publisher = self.create_lifecycle_publisher(UInt32, 'count', 10)
            return super().on_configure(state)

        def _read_loop(self):
            while not self._stop.is_set():  # as a driver does: publish what the device sends
                self.publisher.publish(UInt32(data=self.sent))
                self.sent += 1

    errors = []
    previous = threading.excepthook
    threading.excepthook = errors.append
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = Chatty(context=context)
        node.trigger_configure()
        node.trigger_activate()
        deadline = time.monotonic() + 5.0
        while node.sent < 100 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert node.sent >= 100
        context.shutdown()  # what rclpy's SIGINT handler does, before the node is destroyed
        node._thread.join(timeout=5.0)  # noqa: SLF001
        assert not node._thread.is_alive()  # noqa: SLF001
        node.destroy_node()
    finally:
        threading.excepthook = previous
        rclpy.try_shutdown(context=context)
    assert errors == []
