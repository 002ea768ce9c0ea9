"""The launch runner's evaluation of launch_xml: every supported construct, and clear refusals.

No process is started here (test_launch_runner_processes.py runs them). Files live in a fake
ament prefix (launch_support), so find-pkg-share and executables resolve the ROS way.
"""

import os
import textwrap

from launch_support import environ_with, make_prefix
import pytest
import yaml

from customs_lab.launch_runner import ament
from customs_lab.launch_runner.description import (
    ParameterFile,
    declared_arguments,
    load,
    parameter_file_text,
    typed_value,
)
from customs_lab.launch_runner.substitutions import Context, Substitution, parse, perform
from customs_lab.launch_runner.xml_source import LaunchError


@pytest.fixture
def prefix(tmp_path):
    params = '/**:\n  ros__parameters:\n    a: 1\n'
    return make_prefix(tmp_path, share_files={'config/params.yaml': params})


def write(tmp_path, text, name='test.launch.xml'):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def run(tmp_path, prefix, text, arguments=None, **env):
    return load(write(tmp_path, text), arguments, environ_with(prefix, **env))


def only(description):
    assert len(description.processes) == 1
    return description.processes[0]


# -- substitutions ------------------------------------------------------------------------------

def test_substitution_parsing_handles_nesting_quotes_and_literals():
    assert parse('plain') == ['plain']
    assert parse('a$(var x)b') == ['a', Substitution('var', (('x',),)), 'b']
    nested = parse('$(env HOME $(var fallback)/x)')
    fallback = Substitution('var', (('fallback',),))
    assert nested == [Substitution('env', (('HOME',), (fallback, '/x')))]
    assert parse("$(env X 'two words')") == [Substitution('env', (('X',), ('two words',)))]
    for bad in ('$(', '$(var x', "$(env X 'open)", '$()'):
        with pytest.raises(ValueError):
            parse(bad)


def test_substitutions_evaluate_like_ros(tmp_path, prefix):
    context = Context({'x': '1', 'fallback': '/fb'}, tmp_path / 'f.launch.xml',
                      environ_with(prefix, SET='yes'))
    assert perform('v$(var x)', context) == 'v1'
    assert perform('$(env SET)', context) == 'yes'
    assert perform('$(env UNSET_X default)', context) == 'default'
    assert perform('$(env UNSET_X $(var fallback)/d)', context) == '/fb/d'
    assert perform('[$(optenv UNSET_X)]', context) == '[]'
    assert perform('$(find-pkg-share demo_pkg)', context) == str(prefix / 'share' / 'demo_pkg')
    assert perform('$(find-pkg-prefix demo_pkg)', context) == str(prefix)
    assert perform('$(dirname)', context) == str(tmp_path)
    with pytest.raises(LookupError, match="launch configuration 'nope'"):
        perform('$(var nope)', context)
    with pytest.raises(LookupError, match="environment variable 'UNSET_X'"):
        perform('$(env UNSET_X)', context)
    with pytest.raises(ament.PackageNotFoundError, match="package 'nope_pkg' not found"):
        perform('$(find-pkg-share nope_pkg)', context)
    with pytest.raises(ValueError, match=r'unsupported substitution \$\(eval'):
        perform('$(eval 1+1)', context)
    with pytest.raises(ValueError, match='takes 1 argument'):
        perform('$(var a b)', context)


def test_parameter_values_are_typed_like_launch_ros():
    assert typed_value('20') == 20 and isinstance(typed_value('20'), int)
    assert typed_value('10.0') == 10.0
    assert typed_value('true') is True and typed_value('False') is False
    assert typed_value('smoke') == 'smoke'
    assert typed_value('sqlite:///~/x/clearance.db') == 'sqlite:///~/x/clearance.db'
    assert typed_value('[1, 2.5]') == [1.0, 2.5]
    assert typed_value('[a, b]') == ['a', 'b']
    assert typed_value('') == ''
    assert typed_value('{a: 1}') == '{a: 1}'  # maps are not parameter values: kept as text


# -- arguments, let, conditions ------------------------------------------------------------------

NODE = '<node pkg="demo_pkg" exec="node" name="n">{}</node>'


def param_values(spec):
    values = {}
    for parameters in spec.parameters:
        if isinstance(parameters, dict):
            values.update(parameters)
    return values


def test_arguments_defaults_overrides_and_let(tmp_path, prefix):
    text = f"""
        <launch>
          <arg name="speed" default="2.5" description="m/s"/>
          <arg name="label" default="lane-$(var speed)"/>
          <let name="derived" value="$(var label)/x"/>
          {NODE.format('<param name="speed" value="$(var speed)"/>'
                       '<param name="label" value="$(var label)"/>'
                       '<param name="derived" value="$(var derived)"/>')}
        </launch>"""
    assert param_values(only(run(tmp_path, prefix, text))) == {
        'speed': 2.5, 'label': 'lane-2.5', 'derived': 'lane-2.5/x'}
    overridden = param_values(only(run(tmp_path, prefix, text, {'speed': '7'})))
    assert overridden == {'speed': 7, 'label': 'lane-7', 'derived': 'lane-7/x'}


def test_a_required_argument_must_be_given(tmp_path, prefix):
    text = '<launch>\n  <arg name="port"/>\n</launch>'
    message = r"test.launch.xml:2: <arg>: launch argument 'port' has no default"
    with pytest.raises(LaunchError, match=message):
        run(tmp_path, prefix, text)
    given = run(tmp_path, prefix, text, {'port': '/dev/ttyUSB0'})
    assert given.configurations['port'] == '/dev/ttyUSB0'


@pytest.mark.parametrize('condition, started', [
    ('if="true"', True), ('if="1"', True), ('if="False"', False), ('if="0"', False),
    ('unless="true"', False), ('unless="false"', True), ('if="$(var on)"', True),
    ('unless="$(var on)"', False),
])
def test_if_and_unless(tmp_path, prefix, condition, started):
    text = f"""
        <launch>
          <arg name="on" default="true"/>
          <node pkg="demo_pkg" exec="node" name="n" {condition}/>
        </launch>"""
    assert len(run(tmp_path, prefix, text).processes) == int(started)


def test_a_condition_must_be_boolean(tmp_path, prefix):
    text = '<launch>\n  <group if="maybe"/>\n</launch>'
    with pytest.raises(LaunchError, match=r':2: <group>: if="maybe": expected true/false'):
        run(tmp_path, prefix, text)


# -- groups, namespaces, includes ----------------------------------------------------------------

def test_groups_scope_arguments_and_namespaces(tmp_path, prefix):
    text = """
        <launch>
          <arg name="x" default="outer"/>
          <group>
            <push_ros_namespace namespace="radiation"/>
            <group>
              <push-ros-namespace namespace="lane_1"/>
              <let name="x" value="inner"/>
              <node pkg="demo_pkg" exec="node" name="a"><param name="x" value="$(var x)"/></node>
              <node pkg="demo_pkg" exec="node" name="b" namespace="sub"/>
              <node pkg="demo_pkg" exec="node" name="c" namespace="/abs"/>
            </group>
            <node pkg="demo_pkg" exec="node" name="d"><param name="x" value="$(var x)"/></node>
          </group>
          <group scoped="false">
            <let name="x" value="leaked"/>
          </group>
          <node pkg="demo_pkg" exec="node" name="e"><param name="x" value="$(var x)"/></node>
        </launch>"""
    processes = run(tmp_path, prefix, text).processes
    assert [p.full_name for p in processes] == [
        '/radiation/lane_1/a', '/radiation/lane_1/sub/b', '/abs/c', '/radiation/d', '/e']
    assert [param_values(p).get('x') for p in processes] == [
        'inner', None, None, 'outer', 'leaked']


def test_include_passes_arguments_and_is_not_scoped_as_in_ros(tmp_path, prefix):
    inner = prefix / 'share' / 'demo_pkg' / 'launch' / 'inner.launch.xml'
    inner.write_text(textwrap.dedent("""
        <launch>
          <arg name="rate" default="1.0"/>
          <arg name="who" default="nobody"/>
          <node pkg="demo_pkg" exec="node" name="inner">
            <param name="rate" value="$(var rate)"/>
            <param name="who" value="$(var who)"/>
            <param name="here" value="$(dirname)"/>
          </node>
        </launch>""").lstrip())
    text = """
        <launch>
          <include file="$(find-pkg-share demo_pkg)/launch/inner.launch.xml">
            <arg name="rate" value="5.0"/>
          </include>
          <node pkg="demo_pkg" exec="node" name="after">
            <param name="rate" value="$(var rate)"/>
          </node>
        </launch>"""
    inner_spec, after = run(tmp_path, prefix, text, {'who': 'cli'}).processes
    assert param_values(inner_spec) == {'rate': 5.0, 'who': 'cli', 'here': str(inner.parent)}
    assert param_values(after) == {'rate': 5.0}  # ROS 2 includes leak their arguments
    assert inner_spec.origin == f'{inner}:4'


def test_include_relative_to_the_including_file_and_errors_name_both_files(tmp_path, prefix):
    write(tmp_path, '<launch>\n\n  <bogus/>\n</launch>', name='broken.launch.xml')
    text = '<launch>\n  <include file="broken.launch.xml"/>\n</launch>'
    with pytest.raises(LaunchError) as error:
        run(tmp_path, prefix, text)
    message = str(error.value)
    assert 'broken.launch.xml:3: <bogus>: not supported by customs-lab launch' in message
    assert 'included from' in message and 'test.launch.xml:2' in message


def test_include_cycles_are_stopped(tmp_path, prefix):
    write(tmp_path, '<launch><include file="loop.launch.xml"/></launch>', name='loop.launch.xml')
    with pytest.raises(LaunchError, match='nested deeper'):
        load(tmp_path / 'loop.launch.xml', None, environ_with(prefix))


# -- nodes ---------------------------------------------------------------------------------------

def test_a_node_becomes_a_ros_command_line(tmp_path, prefix):
    text = """
        <launch>
          <node pkg="demo_pkg" exec="node" name="driver" namespace="radiation/lane_1"
                output="screen" respawn="true" respawn_delay="2.5" on_exit="shutdown"
                args="--verbose 'two words'">
            <param from="$(find-pkg-share demo_pkg)/config/params.yaml"/>
            <param name="port" value="/dev/ttyUSB0"/>
            <param name="baud" value="115200"/>
            <remap from="counts" to="/radiation/counts"/>
            <env name="DEMO" value="42"/>
          </node>
        </launch>"""
    spec = only(run(tmp_path, prefix, text))
    assert spec.full_name == '/radiation/lane_1/driver' and spec.label == 'radiation/lane_1/driver'
    assert (spec.output, spec.respawn, spec.respawn_delay, spec.shutdown_on_exit) == (
        'screen', True, 2.5, True)
    assert spec.env == {'DEMO': '42'}
    config = str(prefix / 'share' / 'demo_pkg' / 'config' / 'params.yaml')
    assert spec.parameters == [ParameterFile(config), {'port': '/dev/ttyUSB0', 'baud': 115200}]
    written = []
    command = spec.command(lambda params: written.append(params) or '/tmp/p.yaml')
    assert command == [
        str(prefix / 'lib' / 'demo_pkg' / 'node'), '--verbose', 'two words', '--ros-args',
        '-r', '__node:=driver', '-r', '__ns:=/radiation/lane_1',
        '--params-file', config, '--params-file', '/tmp/p.yaml',
        '-r', 'counts:=/radiation/counts']
    assert yaml.safe_load(parameter_file_text(written[0])) == {
        '/**': {'ros__parameters': {'port': '/dev/ttyUSB0', 'baud': 115200}}}


def test_defaults_of_a_node(tmp_path, prefix):
    spec = only(run(tmp_path, prefix, '<launch><node pkg="demo_pkg" exec="node"/></launch>'))
    assert (spec.name, spec.namespace, spec.output, spec.respawn, spec.shutdown_on_exit) == (
        None, '/', 'log', False, False)
    assert spec.full_name == '/node'
    assert '__node:=' not in ' '.join(spec.command(lambda p: 'x'))


NODE_PKG = '<node pkg="demo_pkg" exec="node"'


@pytest.mark.parametrize('node, message', [
    ('<node pkg="demo_pkg" exec="nothere"/>', "no executable 'nothere' in package 'demo_pkg'"),
    ('<node pkg="no_pkg" exec="node"/>', "package 'no_pkg' not found"),
    (NODE_PKG + ' output="loud"/>', 'output="loud": expected one of'),
    (NODE_PKG + ' respawn="yes"/>', 'respawn="yes": expected true/false'),
    (NODE_PKG + ' respawn_delay="-1"/>', 'respawn_delay="-1"'),
    (NODE_PKG + ' on_exit="restart"/>', 'only "shutdown"'),
    (NODE_PKG + ' name="bad-name"/>', "invalid node name 'bad-name'"),
    (NODE_PKG + ' namespace="9lives"/>', 'invalid ROS namespace'),
    ('<node exec="node"/>', "missing required attribute 'pkg'"),
    (NODE_PKG + ' launch-prefix="gdb"/>', 'unsupported attribute(s) launch-prefix'),
    (NODE_PKG + '><param name="a"/></node>', "missing required attribute 'value'"),
    (NODE_PKG + '><param from="/no/such.yaml"/></node>', 'file /no/such.yaml does not exist'),
    (NODE_PKG + '><param from="/x" name="y"/></node>', "either 'from' or 'name'"),
    (NODE_PKG + '><remap from="a"/></node>', "missing required attribute 'to'"),
    (NODE_PKG + '><composable_node/></node>', 'not supported inside <node>'),
])
def test_bad_nodes_are_refused_with_file_and_line(tmp_path, prefix, node, message):
    with pytest.raises(LaunchError) as error:
        run(tmp_path, prefix, f'<launch>\n\n  {node}\n</launch>')
    assert message in str(error.value)
    assert 'test.launch.xml:3' in str(error.value)


@pytest.mark.parametrize('element, tag', [
    ('<executable cmd="ls"/>', 'executable'),
    ('<set_env name="A" value="1"/>', 'set_env'),
    ('<node_container pkg="rclcpp_components" exec="component_container" name="c" namespace="/"/>',
     'node_container'),
    ('<timer period="1.0"/>', 'timer'),
])
def test_unsupported_tags_are_refused_by_name_file_and_line(tmp_path, prefix, element, tag):
    with pytest.raises(LaunchError) as error:
        run(tmp_path, prefix, f'<launch>\n  <arg name="a" default="1"/>\n  {element}\n</launch>')
    assert str(error.value).startswith(f'{tmp_path / "test.launch.xml"}:3: <{tag}>: not supported')


def test_malformed_xml_and_wrong_root(tmp_path, prefix):
    with pytest.raises(LaunchError, match=r'test.launch.xml:3: not well-formed XML'):
        run(tmp_path, prefix, '<launch>\n  <arg name="a"\n</launch>')
    with pytest.raises(LaunchError, match='root element of a launch file must be <launch>'):
        run(tmp_path, prefix, '<robot/>')
    with pytest.raises(LaunchError, match='cannot read launch file'):
        load(tmp_path / 'missing.launch.xml', None, environ_with(prefix))


def test_declared_arguments_for_show_args(tmp_path):
    path = write(tmp_path, """
        <launch>
          <arg name="a" default="$(env X 1)" description="first"/>
          <group><arg name="b"/></group>
        </launch>""")
    arguments = declared_arguments(path)
    assert [(a.name, a.default, a.description) for a in arguments] == [
        ('a', '$(env X 1)', 'first'), ('b', None, '')]


@pytest.mark.ros
def test_the_site_launch_file_evaluates_to_the_whole_site():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    description = load(os.path.join(root, 'launch', 'site.launch.xml'),
                       {'scenario': 'smoke', 'rate': '20', 'data_dir': '/tmp/site'})
    names = [p.full_name for p in description.processes]
    assert names == [
        '/simulation/site_simulator', '/simulation/evaluator',
        '/radiation/portal_lane_1/rpm_driver', '/radiation/portal_lane_1/rpm_alarm',
        '/radiation/portal_lane_1/isotope_id',
        '/radiation/parcel_line_1/rpm_driver', '/radiation/parcel_line_1/rpm_alarm',
        '/radiation/parcel_line_1/isotope_id', '/radiation/dose_monitor',
        '/xray/parcel_xray_1/xray_driver', '/xray/parcel_xray_1/xray_inspection',
        '/fusion/risk_fusion', '/clearance/clearance_bridge', '/site_map']
    required = [p.full_name for p in description.processes if p.shutdown_on_exit]
    assert required == ['/simulation/evaluator']
    bridge = description.processes[12]
    assert param_values(bridge)['database_url'] == 'sqlite:////tmp/site/clearance.db'
    assert param_values(description.processes[0])['rate'] == 20
