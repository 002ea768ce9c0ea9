"""Helpers for tests that run real ROS 2 nodes in-process over DDS (isolated domain: conftest)."""

import time

import rclpy
from rclpy.executors import SingleThreadedExecutor


class RosHarness:
    """An rclpy context with an executor; spin until a condition holds or a timeout passes."""

    def __init__(self):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.nodes = []

    def add(self, node):
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def node(self, name, **kwargs):
        return self.add(rclpy.create_node(name, context=self.context, **kwargs))

    def spin_until(self, condition, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            self.executor.spin_once(timeout_sec=0.05)
        return condition()

    def call(self, client, request, timeout=10.0):
        """Call a service and spin until its reply; return the reply."""
        assert client.wait_for_service(timeout_sec=timeout)
        future = client.call_async(request)
        assert self.spin_until(future.done, timeout)
        return future.result()

    def spin_for(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.05)

    def close(self):
        for node in self.nodes:
            self.executor.remove_node(node)
            node.destroy_node()
        self.executor.shutdown()
        rclpy.try_shutdown(context=self.context)


def active_clearance_bridge(harness, database_url, data_dir):
    """Add a configured and active clearance bridge writing to `database_url`."""
    from rclpy.parameter import Parameter

    from customs_lab.clearance.clearance_bridge_node import ClearanceBridge

    bridge = harness.add(
        ClearanceBridge(
            context=harness.context,
            parameter_overrides=[
                Parameter('database_url', value=database_url),
                Parameter('data_dir', value=str(data_dir)),
            ],
        )
    )
    bridge.trigger_configure()
    bridge.trigger_activate()
    return bridge
