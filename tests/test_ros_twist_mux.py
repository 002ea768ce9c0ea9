"""The multiplexer node over DDS: teleop overrides the survey, the e-stop lock blocks both.

Configured as twist_mux is (topics.<name>.topic/timeout/priority, locks.<name>...).
"""

import pytest

pytestmark = pytest.mark.ros


def test_teleop_overrides_autonomy_and_the_estop_lock_blocks_everything(harness):
    from geometry_msgs.msg import Twist
    from rclpy.parameter import Parameter
    from std_msgs.msg import Bool

    from customs_lab.robot.twist_mux_node import TwistMuxNode

    overrides = [Parameter('topics.survey.topic', value='survey/cmd_vel'),
                 Parameter('topics.survey.timeout', value=0.5),
                 Parameter('topics.survey.priority', value=10),
                 Parameter('topics.keyboard.topic', value='teleop/cmd_vel'),
                 Parameter('topics.keyboard.timeout', value=0.5),
                 Parameter('topics.keyboard.priority', value=100),
                 Parameter('locks.e_stop.topic', value='e_stop'),
                 Parameter('locks.e_stop.timeout', value=0.0),
                 Parameter('locks.e_stop.priority', value=255)]
    mux = harness.add(TwistMuxNode(context=harness.context, namespace='/robot',
                                   parameter_overrides=overrides))
    assert [s.name for s in mux.mux.inputs] == ['keyboard', 'survey']
    listener = harness.node('listener')
    out = []
    listener.create_subscription(Twist, '/robot/cmd_vel_out', out.append, 50)
    survey = listener.create_publisher(Twist, '/robot/survey/cmd_vel', 10)
    teleop = listener.create_publisher(Twist, '/robot/teleop/cmd_vel', 10)
    estop = listener.create_publisher(Bool, '/robot/e_stop', 10)
    assert harness.spin_until(lambda: survey.get_subscription_count() == 1
                              and teleop.get_subscription_count() == 1
                              and estop.get_subscription_count() == 1, 5)

    def twist(v):
        msg = Twist()
        msg.linear.x = v
        return msg

    survey.publish(twist(0.3))
    assert harness.spin_until(lambda: [m.linear.x for m in out] == [0.3], 5)
    teleop.publish(twist(-0.2))  # the officer takes over at once
    assert harness.spin_until(lambda: out[-1].linear.x == -0.2, 5)
    survey.publish(twist(0.3))
    harness.spin_for(0.2)
    assert out[-1].linear.x == -0.2 and mux.passed['survey'] == 1  # the survey is masked
    harness.spin_for(0.6)  # teleop silent for > 0.5 s: the survey's next command passes
    survey.publish(twist(0.3))
    assert harness.spin_until(lambda: out[-1].linear.x == 0.3, 5)
    estop.publish(Bool(data=True))
    harness.spin_for(0.2)
    count = len(out)
    teleop.publish(twist(0.5))
    survey.publish(twist(0.3))
    harness.spin_for(0.3)
    assert len(out) == count  # nothing passes the e-stop lock
    assert mux.mux.status(mux._now())['lock e_stop'].startswith('locked')  # noqa: SLF001
    estop.publish(Bool(data=False))
    harness.spin_for(0.2)
    teleop.publish(twist(0.5))
    assert harness.spin_until(lambda: out[-1].linear.x == 0.5, 5)


def test_a_bad_configuration_stops_the_node_with_the_reason(harness):
    from rclpy.parameter import Parameter

    from customs_lab.robot.twist_mux_node import TwistMuxNode

    with pytest.raises(ValueError, match='priority'):
        TwistMuxNode(context=harness.context, parameter_overrides=[
            Parameter('topics.a.topic', value='a'), Parameter('topics.a.timeout', value=0.5),
            Parameter('topics.a.priority', value=0)])
    with pytest.raises(ValueError, match='unknown keys'):
        TwistMuxNode(context=harness.context, parameter_overrides=[
            Parameter('topics.a.topic', value='a'), Parameter('topics.a.timeout', value=0.5),
            Parameter('topics.a.priority', value=5), Parameter('topics.a.prio', value=5)])


def test_the_shipped_configuration_loads_into_both_robot_nodes(harness):
    import pathlib

    from rclpy.parameter import Parameter
    import yaml

    from customs_lab.robot.robot_driver_node import RobotDriver
    from customs_lab.robot.twist_mux_node import TwistMuxNode

    config = yaml.safe_load((pathlib.Path(__file__).resolve().parents[1] / 'config'
                             / 'robot.yaml').read_text())

    def flat(values, prefix=''):
        for key, value in values.items():
            if isinstance(value, dict):
                yield from flat(value, f'{prefix}{key}.')
            else:
                yield Parameter(f'{prefix}{key}', value=value)

    mux = TwistMuxNode(context=harness.context, parameter_overrides=list(
        flat(config['/**/twist_mux']['ros__parameters'])))
    assert [s.name for s in mux.mux.inputs] == ['keyboard', 'survey']
    assert mux.mux.locks[0].priority == 255
    mux.destroy_node()
    given = config['/**/robot_driver']['ros__parameters']
    driver = RobotDriver(context=harness.context, parameter_overrides=list(flat(given)))
    for name, value in given.items():  # every key is a parameter the driver declares
        assert driver.get_parameter(name).value == value, name
    driver.destroy_node()
