"""Small pieces every Customs Lab node shares: QoS profiles, parameters, diagnostics, main().

This is the only module of `common` that imports rclpy; core modules never import it.
"""

import math
import uuid

from builtin_interfaces.msg import Time as TimeMsg
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from unique_identifier_msgs.msg import UUID as UuidMsg  # noqa: N811

from customs_interfaces.msg import Evidence, SubjectRef
from customs_lab.common.subjects import Subject, SubjectKind

# Latched state (maps, robot_description, scenario status, ground truth): late joiners get it.
LATCHED = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
# Every item matters and late joiners must get all of them (ground truth for the evaluator).
LATCHED_ALL = QoSProfile(
    depth=1,
    history=HistoryPolicy.KEEP_ALL,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)


# Decisions: reliable, and kept for late joiners (a restarted bridge gets them again; its writes
# are idempotent by decision id).
DECISIONS_QOS = QoSProfile(
    depth=1000, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)

# Inspection results: every one matters to fusion's feedback; late joiners get the recent ones.
INSPECTION_RESULTS_QOS = DECISIONS_QOS


def reliable(depth: int) -> QoSProfile:
    """Return a reliable, volatile profile for commands, evidence and decisions."""
    return QoSProfile(
        depth=depth, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE
    )


# Shared topics (absolute names: one bus per site)
EVIDENCE_TOPIC = '/evidence'
# sources located by the portals, their markers and the last one's dose-rate field (RViz)
LOCATED_TOPIC = '/radiation/located_sources'
MARKERS_TOPIC = '/radiation/located_source_markers'
DOSE_TOPIC = '/radiation/dose_rate'
OFFICER_DOSE_TOPIC = '/radiation/officer_dose'
IDENTIFICATIONS_TOPIC = '/radiation/identifications'
OFFICER_MARKERS_TOPIC = '/radiation/officer_markers'
DECISIONS_TOPIC = '/decisions'
DECLARATIONS_TOPIC = '/clearance/declarations'
INSPECTION_RESULTS_TOPIC = '/clearance/inspection_results'
SCENARIO_STATUS_TOPIC = '/simulation/status'
GROUND_TRUTH_TOPIC = (
    '/simulation/ground_truth'  # evaluator only (tests/test_ground_truth_isolation.py)
)


def declare(node, name, default, description, *, minimum=None, maximum=None, read_only=False):
    """Declare a parameter with a descriptor (unit in the text, range); return its value."""
    descriptor = ParameterDescriptor(description=description, read_only=read_only)
    if minimum is not None or maximum is not None:
        if isinstance(default, bool):
            raise TypeError('bool parameters have no range')
        if isinstance(default, int):
            descriptor.integer_range = [
                IntegerRange(
                    from_value=int(minimum if minimum is not None else -(2**63)),
                    to_value=int(maximum if maximum is not None else 2**63 - 1),
                    step=0,
                )
            ]
        else:
            descriptor.floating_point_range = [
                FloatingPointRange(
                    from_value=float(minimum if minimum is not None else -math.inf),
                    to_value=float(maximum if maximum is not None else math.inf),
                    step=0.0,
                )
            ]
    if not isinstance(default, float):
        return node.declare_parameter(name, default, descriptor).value
    # A double parameter also takes an integer (`rate:=20` on a launch line is typed as an
    # integer by launch, and rclpy would refuse it): declare it dynamically typed, convert, check.
    descriptor.dynamic_typing = True
    value = node.declare_parameter(name, default, descriptor).value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"parameter '{name}' must be a number, got {value!r}")
    value = float(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"parameter '{name}' = {value:g} is outside [{minimum}, {maximum}]")
    if not isinstance(node.get_parameter(name).value, float):
        node.set_parameters([Parameter(name, Parameter.Type.DOUBLE, value)])
    return value


def uuid_to_msg(value: uuid.UUID) -> UuidMsg:
    """Convert a uuid.UUID to unique_identifier_msgs/UUID."""
    return UuidMsg(uuid=list(value.bytes))


def msg_to_uuid(msg: UuidMsg) -> uuid.UUID:
    """Convert unique_identifier_msgs/UUID to uuid.UUID."""
    return uuid.UUID(bytes=bytes(bytearray(msg.uuid)))


def portal_evidence(node, kind: str, sensor_id: str, evidence_id: uuid.UUID, verdict,
                    correlation_group: str, raw_data_uri: str, header,
                    subject: SubjectRef | None) -> Evidence:
    """Return the Evidence of a portal passage, posed at the portal plane (the lane's centre).

    verdict: anything with log_likelihood_ratio, log_likelihood_ratio_std and explanation;
    header: the stamp of the frame that ended the passage and the device's frame; subject:
    what the lane reader read, or None (an empty, invalid id).
    """
    evidence = Evidence(
        header=header,
        evidence_id=uuid_to_msg(evidence_id),
        subject=subject if subject is not None else SubjectRef(id='', id_valid=False),
        sensor_id=sensor_id,
        source_node=node.get_fully_qualified_name(),
        kind=kind,
        log_likelihood_ratio=verdict.log_likelihood_ratio,
        log_likelihood_ratio_std=verdict.log_likelihood_ratio_std,
        correlation_group=correlation_group,
        explanation=verdict.explanation,
        raw_data_uri=raw_data_uri,
        pose_valid=True,
    )
    evidence.pose.pose.orientation.w = 1.0
    return evidence


def subject_to_msg(subject: Subject, id_valid: bool | None = None) -> SubjectRef:
    """Convert a core Subject to SubjectRef; id_valid is computed when not given."""
    if id_valid is None:
        id_valid = subject.validate()[0]
    return SubjectRef(kind=int(subject.kind), id=subject.id, zone=subject.zone, id_valid=id_valid)


def msg_to_subject(msg: SubjectRef) -> Subject:
    """Convert SubjectRef to a core Subject (an unknown kind becomes UNKNOWN)."""
    try:
        kind = SubjectKind(msg.kind)
    except ValueError:
        kind = SubjectKind.UNKNOWN
    return Subject(kind, msg.id, msg.zone)


def seconds_to_time_msg(seconds: float) -> TimeMsg:
    """Convert seconds (float) to builtin_interfaces/Time."""
    nanoseconds = int(round(seconds * 1e9))
    return TimeMsg(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


def time_msg_to_seconds(msg: TimeMsg) -> float:
    """Convert builtin_interfaces/Time to seconds (float)."""
    return msg.sec + msg.nanosec * 1e-9


class Diagnostics:
    """Publish one DiagnosticStatus per device or function on /diagnostics, about once a second.

    A light stand-in for diagnostic_updater (not available as a wheel): call `update()` whenever a
    status changes; the timer republishes the latest statuses, and marks STALE those not updated
    within `stale_after` seconds (None: a status never goes stale, for static facts).
    """

    OK = DiagnosticStatus.OK
    WARN = DiagnosticStatus.WARN
    ERROR = DiagnosticStatus.ERROR
    STALE = DiagnosticStatus.STALE

    def __init__(self, node, period: float = 1.0, stale_after: float | None = 5.0):
        self._node = node
        self._statuses = {}
        self._stale_after = stale_after
        self._publisher = node.create_publisher(DiagnosticArray, '/diagnostics', 10)
        # The wall clock, so that diagnostics keep flowing even when /clock stops.
        self._clock = rclpy.clock.Clock(clock_type=rclpy.clock.ClockType.STEADY_TIME)
        self._timer = node.create_timer(period, self.publish, clock=self._clock)

    def update(self, name: str, hardware_id: str, level, message: str, values: dict | None = None):
        """Set the status `name` (e.g. 'rpm_driver: portal_lane_1') of `hardware_id`."""
        status = DiagnosticStatus(
            level=level if isinstance(level, bytes) else bytes([level]),
            name=name,
            message=message,
            hardware_id=hardware_id,
            values=[KeyValue(key=str(k), value=str(v)) for k, v in (values or {}).items()],
        )
        self._statuses[name] = (status, self._clock.now())

    def publish(self):
        """Publish every status now (STALE for those not updated recently)."""
        if not self._statuses:
            return
        now = self._clock.now()
        array = DiagnosticArray()
        array.header.stamp = self._node.get_clock().now().to_msg()
        for status, updated in list(self._statuses.values()):
            if (
                self._stale_after is not None
                and (now - updated).nanoseconds * 1e-9 > self._stale_after
            ):
                status = DiagnosticStatus(
                    level=self.STALE,
                    name=status.name,
                    message='no update: ' + status.message,
                    hardware_id=status.hardware_id,
                    values=status.values,
                )
            array.status.append(status)
        self._publisher.publish(array)


def run_node(node_factory, args=None, *, after_create=None):
    """Run a node the Jazzy way: init, construct, spin; shut down cleanly on Ctrl-C or externally.

    node_factory() builds the node after rclpy.init. after_create(node), if given, runs before
    spinning (e.g. autostart of a lifecycle node). Returns the process exit code.
    """
    rclpy.init(args=args)
    node = None
    try:
        node = node_factory()
        if after_create is not None:
            after_create(node)
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            exit_code = getattr(node, 'exit_code', 0)
            node.destroy_node()
        else:
            exit_code = 1
        rclpy.try_shutdown()
    return exit_code
