"""Velocity command multiplexer node, configured and behaving as twist_mux.

Parameters as twist_mux's YAML (config/robot.yaml): `topics.<name>.topic`, `.timeout` (s),
`.priority` (1-255) for each velocity input (geometry_msgs/Twist), and `locks.<name>.topic`,
`.timeout`, `.priority` for each lock (std_msgs/Bool). The rules are robot/twist_mux.py's:
the highest-priority input that has not timed out and is not below an engaged lock is passed
to `cmd_vel_out` (remapped to the robot driver's `cmd_vel` in the launch file); nothing is sent
on a timeout or a lock, so the driver's dead-man stops the robot. Inputs of equal priority:
the first by name wins. /diagnostics carries
twist_mux's values (each input masked or not, each lock locked or free, the lock priority).
"""

from geometry_msgs.msg import Twist
from rclpy.node import Node
from std_msgs.msg import Bool

from customs_lab.common.node_support import Diagnostics, reliable, run_node
from customs_lab.robot.twist_mux import Source, TwistMux


def sources(node: Node, prefix: str) -> list[Source]:
    """Return the Sources configured under `prefix` (twist_mux's `topics` or `locks`)."""
    entries = {}
    for name, parameter in node.get_parameters_by_prefix(prefix).items():
        entry, _, field = name.partition('.')
        entries.setdefault(entry, {})[field] = parameter.value
    out = []
    for entry, fields in sorted(entries.items(), key=lambda e: -int(e[1].get('priority', 0))):
        unknown = set(fields) - {'topic', 'timeout', 'priority'}
        if unknown:
            raise ValueError(f'{prefix}.{entry}: unknown keys {sorted(unknown)}')
        out.append(Source(entry, str(fields.get('topic', '')),
                          float(fields.get('timeout', -1.0)), fields.get('priority', 0)))
    return out


class TwistMuxNode(Node):
    """Subscribe to the inputs and locks; publish the winner's commands on cmd_vel_out."""

    def __init__(self, **kwargs):
        super().__init__('twist_mux', allow_undeclared_parameters=True,
                         automatically_declare_parameters_from_overrides=True, **kwargs)
        self.mux = TwistMux(sources(self, 'topics'), sources(self, 'locks'))
        self.out = self.create_publisher(Twist, 'cmd_vel_out', reliable(1))
        for source in self.mux.inputs:
            self.create_subscription(
                Twist, source.topic, lambda msg, n=source.name: self.on_velocity(n, msg),
                reliable(10))
        for source in self.mux.locks:
            self.create_subscription(
                Bool, source.topic, lambda msg, n=source.name: self.on_lock(n, msg),
                reliable(10))
        self.passed = {s.name: 0 for s in self.mux.inputs}
        self.diagnostics = Diagnostics(self)
        self.create_timer(1.0, self._report)
        self.get_logger().info('inputs ' + ', '.join(
            f'{s.name} ({s.topic}, priority {s.priority})' for s in self.mux.inputs)
            + '; locks ' + (', '.join(f'{s.name} ({s.topic}, priority {s.priority})'
                                      for s in self.mux.locks) or 'none'))

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def on_velocity(self, name: str, msg: Twist):
        """Pass the message on if its input wins now."""
        if self.mux.on_velocity(name, self._now()):
            self.passed[name] += 1
            self.out.publish(msg)

    def on_lock(self, name: str, msg: Bool):
        """Record a lock's state."""
        self.mux.on_lock(name, msg.data, self._now())

    def _report(self):
        now = self._now()
        values = self.mux.status(now)
        values.update({f'passed {name}': count for name, count in self.passed.items()})
        priority = self.mux.lock_priority(now)
        level = Diagnostics.WARN if priority else Diagnostics.OK
        message = (f'locked at priority {priority}' if priority else 'ok') + (
            f'; passing {self.mux.winner(now)}' if self.mux.winner(now) else '; no input live')
        self.diagnostics.update(f'twist_mux: {self.get_namespace()}', 'twist_mux', level,
                                message, values)


def main(args=None):
    """Run the multiplexer."""
    return run_node(TwistMuxNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
