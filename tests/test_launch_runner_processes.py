"""The launch runner with real processes: output, shutdown, escalation, respawn, Ctrl-C, exit code.

The nodes are stand-ins (launch_support.FAKE_NODE, no rclpy) that record the signals they get,
plus one real rclpy node to prove the generated --ros-args are understood by rclpy itself.
Timeouts here only bound how long a broken runner can hang the test; nothing is timed.
"""

import io
import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

from launch_support import environ_with, make_prefix
import pytest

from customs_lab.launch_runner.description import load
from customs_lab.launch_runner.runner import Runner

ROOT = pathlib.Path(__file__).resolve().parents[1]


def node(name, args='', extra='', attributes=''):
    return (f'<node pkg="demo_pkg" exec="node" name="{name}" args="{args}" {attributes}>'
            f'{extra}</node>')


def launch(tmp_path, body, sigterm=5.0, sigkill=5.0):
    """Evaluate and run a launch file; return (exit status, screen output, runner)."""
    prefix = make_prefix(tmp_path)
    path = tmp_path / 'test.launch.xml'
    path.write_text(f'<launch>\n{body}\n</launch>\n')
    env = environ_with(prefix)
    description = load(path, None, env)
    out, err = io.StringIO(), io.StringIO()
    runner = Runner(description.processes, log_root=str(tmp_path / 'log'), environ=env,
                    sigterm_timeout=sigterm, sigkill_timeout=sigkill, stdout=out, stderr=err)
    code = runner.run()
    return code, out.getvalue() + err.getvalue(), runner


def record(tmp_path, name):
    return str(tmp_path / f'{name}.events')


def events(tmp_path, name):
    path = pathlib.Path(record(tmp_path, name))
    return path.read_text().split('\n')[:-1] if path.exists() else []


def test_output_is_prefixed_and_routed_like_ros_and_the_required_node_ends_the_launch(tmp_path):
    body = '\n'.join([
        node('talker', f'--record {record(tmp_path, "talker")}',
             '<env name="DEMO" value="hello"/><param name="rate" value="2.5"/>',
             'namespace="lane" output="screen"'),
        node('quiet', f'--record {record(tmp_path, "quiet")}', '', 'output="log"'),
        node('boss', '--exit-after 1.0', '', 'on_exit="shutdown"'),
    ])
    code, screen, runner = launch(tmp_path, body)
    assert code == 0, screen
    assert '[lane/talker] env DEMO=hello' in screen
    assert '[lane/talker] to stderr' in screen
    argv_line = next(line for line in screen.splitlines() if line.startswith('[lane/talker] argv'))
    argv = json.loads(argv_line.split(' ', 2)[2])
    assert argv[argv.index('--ros-args'):][:5] == [
        '--ros-args', '-r', '__node:=talker', '-r', '__ns:=/lane']
    params_file = argv[argv.index('--params-file') + 1]
    assert pathlib.Path(params_file).read_text() == '/**:\n  ros__parameters:\n    rate: 2.5\n'
    # output="log": stdout only in the log file, stderr on the screen and in the log
    assert '[quiet] argv' not in screen and '[quiet] to stderr' in screen
    log_dir = pathlib.Path(runner.log_dir)
    assert 'argv' in (log_dir / 'quiet-stdout.log').read_text()
    assert 'to stderr' in (log_dir / 'quiet-stderr.log').read_text()
    assert 'required node boss exited with 0' in (log_dir / 'launch.log').read_text()
    # the others were asked to stop with SIGINT, once, and stopped
    for name in ('talker', 'quiet'):
        assert events(tmp_path, name) == ['started', 'got SIGINT'], name
    assert 'SIGTERM' not in screen and 'SIGKILL' not in screen


def test_a_failing_required_node_gives_its_exit_code(tmp_path):
    body = node('other', '') + node('boss', '--exit-after 0.5 --code 3', '', 'on_exit="shutdown"')
    code, screen, _ = launch(tmp_path, body)
    assert code == 3
    assert 'process has died' in screen and 'exit code 3' in screen


def test_stubborn_processes_get_sigterm_then_sigkill(tmp_path):
    body = '\n'.join([
        node('deaf', f'--ignore INT --record {record(tmp_path, "deaf")}'),
        node('deafer', f'--ignore INT,TERM --record {record(tmp_path, "deafer")}'),
        node('boss', '--exit-after 1.0', '', 'on_exit="shutdown"'),
    ])
    code, screen, _ = launch(tmp_path, body, sigterm=0.5, sigkill=0.5)
    assert code == 0
    assert events(tmp_path, 'deaf') == ['started', 'got SIGINT', 'got SIGTERM']
    assert events(tmp_path, 'deafer') == ['started', 'got SIGINT', 'got SIGTERM']  # then killed
    assert 'sending SIGTERM to deaf, deafer' in screen
    assert 'sending SIGKILL to deafer' in screen
    assert 'exit code -9' in screen


def test_respawn_restarts_a_dying_node_until_the_launch_ends(tmp_path):
    body = '\n'.join([
        node('flaky', f'--exit-after 0.1 --code 1 --record {record(tmp_path, "flaky")}', '',
             'respawn="true" respawn_delay="0.2"'),
        node('once', f'--exit-after 0.1 --code 1 --record {record(tmp_path, "once")}'),
        node('boss', '--exit-after 2.5', '', 'on_exit="shutdown"'),
    ])
    code, screen, runner = launch(tmp_path, body)
    assert code == 0
    flaky_starts = events(tmp_path, 'flaky').count('started')
    assert flaky_starts >= 3, screen
    assert events(tmp_path, 'once').count('started') == 1
    assert 'respawned (start 2)' in screen
    assert runner.managed[0].starts == flaky_starts


def test_the_launch_ends_when_every_process_has_exited(tmp_path):
    body = node('a', '--exit-after 0.2') + node('b', '--exit-after 0.4 --code 2')
    code, screen, _ = launch(tmp_path, body)
    assert code == 0  # no required node: like ros2 launch, a dead node alone does not fail it
    assert 'all processes have exited' in screen


def test_ctrl_c_is_forwarded_once_and_gives_status_130(tmp_path):
    prefix = make_prefix(tmp_path)
    path = tmp_path / 'test.launch.xml'
    path.write_text('<launch>\n' + node('a', f'--record {record(tmp_path, "a")}')
                    + node('b', f'--record {record(tmp_path, "b")}') + '\n</launch>\n')
    env = environ_with(prefix, PYTHONPATH=str(ROOT / 'src'), ROS_LOG_DIR=str(tmp_path / 'log'))
    process = subprocess.Popen(
        [sys.executable, '-m', 'customs_lab.cli', 'launch', str(path)], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (
            events(tmp_path, 'a') and events(tmp_path, 'b')):
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 130, output
    assert 'user interrupted with ctrl-c (SIGINT)' in output
    assert events(tmp_path, 'a') == ['started', 'got SIGINT']
    assert events(tmp_path, 'b') == ['started', 'got SIGINT']


def test_cli_errors_show_args_and_print(tmp_path):
    prefix = make_prefix(tmp_path)
    good = tmp_path / 'good.launch.xml'
    good.write_text('<launch>\n  <arg name="rate" default="1.0" description="Hz"/>\n'
                    + node('a', '', '<param name="x" value="$(var rate)"/>') + '\n</launch>\n')
    bad = tmp_path / 'bad.launch.xml'
    bad.write_text('<launch>\n  <executable cmd="ls"/>\n</launch>\n')
    env = environ_with(prefix, PYTHONPATH=str(ROOT / 'src'))

    def cli(*args):
        return subprocess.run([sys.executable, '-m', 'customs_lab.cli', 'launch', *args],
                              env=env, capture_output=True, text=True, timeout=60)

    result = cli(str(bad))
    assert result.returncode == 2
    assert f'{bad}:2: <executable>: not supported by customs-lab launch' in result.stderr
    shown = cli(str(good), '--show-args')
    assert shown.returncode == 0 and "'rate'" in shown.stdout
    assert "(default: '1.0')" in shown.stdout
    printed = cli('demo_pkg', 'missing.launch.xml')
    assert printed.returncode == 2 and "no launch file 'missing.launch.xml'" in printed.stderr
    printed = cli(str(good), 'rate:=4', '--print')
    assert printed.returncode == 0 and 'param x = 4' in printed.stdout


def test_run_starts_one_executable_of_a_package_as_ros2_run_does(tmp_path):
    prefix = make_prefix(tmp_path)
    env = environ_with(prefix, PYTHONPATH=str(ROOT / 'src'))

    def cli(*args):
        return subprocess.run([sys.executable, '-m', 'customs_lab.cli', 'run', *args],
                              env=env, capture_output=True, text=True, timeout=60)

    result = cli('demo_pkg', 'node', '--exit-after', '0', '--code', '3', '--ros-args', '-r',
                 'cmd_vel:=/robot/teleop/cmd_vel')
    assert result.returncode == 3  # the node's own exit status: the CLI became the node
    assert json.loads(result.stdout.split('argv ', 1)[1].splitlines()[0]) == [
        '--exit-after', '0', '--code', '3', '--ros-args', '-r', 'cmd_vel:=/robot/teleop/cmd_vel']
    missing = cli('demo_pkg', 'teleop')
    assert missing.returncode == 2 and "no executable 'teleop'" in missing.stderr
    assert 'available: node' in missing.stderr
    assert cli('demo_pkg').returncode == 2 and cli('-h').returncode == 0


RCLPY_NODE = textwrap.dedent("""\
    import sys
    import rclpy
    rclpy.init(args=sys.argv)
    node = rclpy.create_node('default_name')
    node.declare_parameter('rate', 0.0)
    node.declare_parameter('label', '')
    print('name', node.get_fully_qualified_name())
    print('rate', node.get_parameter('rate').value)
    print('label', node.get_parameter('label').value)
    print('topic', node.resolve_topic_name('counts'))
    node.destroy_node()
    rclpy.shutdown()
""")


@pytest.mark.ros
def test_rclpy_understands_the_generated_ros_arguments(tmp_path):
    prefix = make_prefix(tmp_path, executables={'node': RCLPY_NODE}, share_files={
        'config/p.yaml': '/**:\n  ros__parameters:\n    rate: 1.5\n    label: from-file\n'})
    path = tmp_path / 'test.launch.xml'
    path.write_text(textwrap.dedent("""\
        <launch>
          <group>
            <push_ros_namespace namespace="radiation"/>
            <node pkg="demo_pkg" exec="node" name="real" namespace="lane_1" output="screen"
                  on_exit="shutdown">
              <param from="$(find-pkg-share demo_pkg)/config/p.yaml"/>
              <param name="rate" value="20.0"/>
              <remap from="counts" to="/shared/counts"/>
            </node>
          </group>
        </launch>"""))
    env = environ_with(prefix)
    env['AMENT_PREFIX_PATH'] += os.pathsep + os.environ.get('AMENT_PREFIX_PATH', '')
    out = io.StringIO()
    runner = Runner(load(path, None, env).processes, log_root=str(tmp_path / 'log'),
                    environ=env, stdout=out, stderr=out)
    assert runner.run() == 0, out.getvalue()
    screen = out.getvalue()
    assert '[radiation/lane_1/real] name /radiation/lane_1/real' in screen
    assert '[radiation/lane_1/real] rate 20.0' in screen  # the inline value overrides the file
    assert '[radiation/lane_1/real] label from-file' in screen
    assert '[radiation/lane_1/real] topic /shared/counts' in screen
