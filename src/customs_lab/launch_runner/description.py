"""Evaluate a launch_xml file into the processes to start, with the semantics of ROS 2 launch.

The supported subset (docs/LAUNCH.md) and how each construct behaves, as in launch/launch_ros
of ROS 2 Jazzy:

- `<arg name default description>` declares a launch argument: a value already set (on the
  command line, or by an including file) wins, else the default; no value and no default is an
  error. `<let name value>` sets a launch configuration.
- `<include file>` with `<arg name value>` children sets those configurations and evaluates the
  file in the same scope (ROS 2 includes are not scoped: values leak to the includer).
- `<group scoped>` evaluates its children in a copy of the configurations (scoped="true", the
  default) so arguments and pushed namespaces end with the group.
- `<push_ros_namespace namespace>` (also `push-ros-namespace`) prefixes the namespace of the
  following nodes; an absolute namespace replaces it.
- `<node pkg exec name namespace output respawn respawn_delay on_exit args>` with `<param name
  value>`, `<param from>`, `<remap from to>` and `<env name value>` children.
- `if`/`unless` on every action: 'true'/'1' or 'false'/'0', case-insensitive.

Any other tag or attribute is refused with a LaunchError naming the tag, the file and the line.
"""

from dataclasses import dataclass, field
import os
import shlex

import yaml

from customs_lab.launch_runner import ament
from customs_lab.launch_runner.substitutions import Context, perform_at
from customs_lab.launch_runner.xml_source import Element, LaunchError, parse_file

CONDITIONS = frozenset({'if', 'unless'})
ACTION_ATTRIBUTES = {
    'arg': frozenset({'name', 'default', 'description'}),
    'let': frozenset({'name', 'value'}),
    'include': frozenset({'file'}),
    'group': frozenset({'scoped'}),
    'push_ros_namespace': frozenset({'namespace'}),
    'push-ros-namespace': frozenset({'namespace'}),
    'node': frozenset({
        'pkg', 'exec', 'name', 'namespace', 'output', 'respawn', 'respawn_delay', 'on_exit',
        'args',
    }),
}
NODE_CHILDREN = {
    'param': frozenset({'name', 'value', 'from'}),
    'remap': frozenset({'from', 'to'}),
    'env': frozenset({'name', 'value'}),
}
OUTPUTS = ('screen', 'log', 'both')
NAMESPACE_KEY = 'ros_namespace'  # where launch_ros keeps the pushed namespace
MAX_INCLUDE_DEPTH = 40


@dataclass
class ParameterFile:
    """A `<param from=.../>`: a YAML file passed to the node as --params-file."""

    path: str


@dataclass
class ProcessSpec:
    """One node to start, fully evaluated."""

    package: str
    executable: str
    path: str
    name: str | None
    namespace: str
    parameters: list = field(default_factory=list)  # dict (name: value) or ParameterFile
    remappings: list = field(default_factory=list)  # (from, to)
    env: dict = field(default_factory=dict)
    arguments: list = field(default_factory=list)
    output: str = 'log'
    respawn: bool = False
    respawn_delay: float = 0.0
    shutdown_on_exit: bool = False
    origin: str = ''

    @property
    def full_name(self) -> str:
        """Return the node's fully qualified name, e.g. /radiation/portal_lane_1/rpm_driver."""
        base = self.name if self.name is not None else self.executable
        return self.namespace.rstrip('/') + '/' + base

    @property
    def label(self) -> str:
        """Return the prefix for output lines: the full name without the leading slash."""
        return self.full_name.lstrip('/')

    def command(self, parameter_file_for) -> list:
        """Return the argv; parameter_file_for(dict) returns the path of a file it wrote."""
        ros_arguments = []
        if self.name is not None:
            ros_arguments += ['-r', f'__node:={self.name}']
        ros_arguments += ['-r', f'__ns:={self.namespace}']
        for parameters in self.parameters:
            if isinstance(parameters, ParameterFile):
                ros_arguments += ['--params-file', parameters.path]
            else:
                ros_arguments += ['--params-file', parameter_file_for(parameters)]
        for source, target in self.remappings:
            ros_arguments += ['-r', f'{source}:={target}']
        return [self.path, *self.arguments, '--ros-args', *ros_arguments]


@dataclass
class LaunchDescription:
    """The evaluated launch: processes in start order and the final configurations."""

    processes: list
    configurations: dict


def parameter_file_text(parameters: dict) -> str:
    """Return the YAML launch_ros writes for inline parameters (applies to every node)."""
    return yaml.safe_dump({'/**': {'ros__parameters': parameters}}, default_flow_style=False)


def typed_value(text: str):
    """Type a parameter value like launch_ros does: YAML scalars and lists, else a string."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list) and value and all(
        isinstance(item, (bool, int, float, str)) for item in value
    ):
        kinds = {bool if isinstance(v, bool) else type(v) for v in value}
        if kinds == {int, float}:
            return [float(v) for v in value]
        if len(kinds) == 1:
            return value
    return text


def prefix_namespace(base: str | None, namespace: str) -> str:
    """Combine a pushed namespace with a node's or pushed one (absolute wins); absolute result."""
    if namespace.startswith('/') or not base:
        combined = namespace
    elif not namespace:
        combined = base
    else:
        combined = base.rstrip('/') + '/' + namespace
    combined = '/' + combined.strip('/')
    return combined


def _check_namespace(element, namespace):
    for token in namespace.strip('/').split('/'):
        if token and not (token[0].isalpha() or token[0] == '_') or not all(
            c.isalnum() or c == '_' for c in token
        ):
            raise element.error(f"invalid ROS namespace '{namespace}'")


def _boolean(element, attribute, text) -> bool:
    lowered = text.strip().lower()
    if lowered in ('true', '1'):
        return True
    if lowered in ('false', '0'):
        return False
    raise element.error(f'{attribute}="{text}": expected true/false (or 1/0)')


class _Evaluator:
    def __init__(self, environ):
        self.environ = os.environ if environ is None else environ
        self.processes = []

    def context(self, configurations, element):
        return Context(configurations, element.file, self.environ)

    def attribute(self, element, name, configurations, default=None):
        if name not in element.attributes:
            return default
        return perform_at(element, name, self.context(configurations, element))

    def require(self, element, name, configurations):
        if name not in element.attributes:
            raise element.error(f"missing required attribute '{name}'")
        return self.attribute(element, name, configurations)

    def check_attributes(self, element, allowed):
        unknown = sorted(set(element.attributes) - allowed)
        if unknown:
            raise element.error(
                f"unsupported attribute(s) {', '.join(unknown)} "
                f"(supported: {', '.join(sorted(allowed)) or 'none'}; see docs/LAUNCH.md)"
            )

    def condition_holds(self, element, configurations) -> bool:
        if 'if' in element.attributes and 'unless' in element.attributes:
            raise element.error("give 'if' or 'unless', not both")
        if 'if' in element.attributes:
            return _boolean(element, 'if', self.attribute(element, 'if', configurations))
        if 'unless' in element.attributes:
            value = self.attribute(element, 'unless', configurations)
            return not _boolean(element, 'unless', value)
        return True

    def run_file(self, path, configurations, depth=0):
        if depth > MAX_INCLUDE_DEPTH:
            raise LaunchError(
                f'{path}: includes nested deeper than {MAX_INCLUDE_DEPTH} (a cycle?)'
            )
        root = parse_file(path)
        if root.attributes:
            self.check_attributes(root, frozenset())
        self.run_children(root.children, configurations, depth)

    def run_children(self, children, configurations, depth):
        for element in children:
            allowed = ACTION_ATTRIBUTES.get(element.tag)
            if allowed is None:
                raise element.error(
                    'not supported by customs-lab launch (supported: '
                    f"{', '.join(ACTION_ATTRIBUTES)}; see docs/LAUNCH.md)"
                )
            self.check_attributes(element, allowed | CONDITIONS)
            if not self.condition_holds(element, configurations):
                continue
            getattr(self, 'do_' + element.tag.replace('-', '_'))(element, configurations, depth)

    def no_children(self, element):
        if element.children:
            child = element.children[0]
            raise child.error(f'not allowed inside <{element.tag}>')

    def do_arg(self, element, configurations, _depth):
        self.no_children(element)
        name = self.require(element, 'name', configurations)
        if name in configurations:
            return
        if 'default' not in element.attributes:
            raise element.error(
                f"launch argument '{name}' has no default and was not given "
                f'(give {name}:=VALUE on the command line or in the <include>)'
            )
        configurations[name] = self.attribute(element, 'default', configurations)

    def do_let(self, element, configurations, _depth):
        self.no_children(element)
        name = self.require(element, 'name', configurations)
        configurations[name] = self.require(element, 'value', configurations)

    def do_push_ros_namespace(self, element, configurations, _depth):
        self.no_children(element)
        namespace = self.require(element, 'namespace', configurations)
        _check_namespace(element, namespace)
        configurations[NAMESPACE_KEY] = prefix_namespace(
            configurations.get(NAMESPACE_KEY), namespace
        )

    def do_group(self, element, configurations, depth):
        scoped = _boolean(
            element, 'scoped', self.attribute(element, 'scoped', configurations, 'true')
        )
        inner = dict(configurations) if scoped else configurations
        self.run_children(element.children, inner, depth)

    def do_include(self, element, configurations, depth):
        path = self.require(element, 'file', configurations)
        if not os.path.isabs(path):
            path = os.path.join(os.path.dirname(element.file), path)
        values = {}
        for child in element.children:
            if child.tag != 'arg':
                raise child.error('only <arg name value/> is allowed inside <include>')
            self.check_attributes(child, frozenset({'name', 'value'}))
            values[self.require(child, 'name', configurations)] = self.require(
                child, 'value', configurations
            )
        if not os.path.isfile(path):
            raise element.error(f'included file {path} does not exist')
        configurations.update(values)
        try:
            self.run_file(path, configurations, depth + 1)
        except LaunchError as error:
            raise LaunchError(f'{error}\n  included from {element.where()}') from None

    def do_node(self, element, configurations, _depth):
        package = self.require(element, 'pkg', configurations)
        executable_name = self.require(element, 'exec', configurations)
        name = self.attribute(element, 'name', configurations)
        if name is not None and (
            not name or not (name[0].isalpha() or name[0] == '_')
            or not all(c.isalnum() or c == '_' for c in name)
        ):
            raise element.error(f"invalid node name '{name}'")
        namespace = self.attribute(element, 'namespace', configurations, '')
        _check_namespace(element, namespace)
        output = self.attribute(element, 'output', configurations, 'log')
        if output not in OUTPUTS:
            raise element.error(f'output="{output}": expected one of {", ".join(OUTPUTS)}')
        respawn = _boolean(
            element, 'respawn', self.attribute(element, 'respawn', configurations, 'false')
        )
        delay_text = self.attribute(element, 'respawn_delay', configurations, '0.0')
        try:
            respawn_delay = float(delay_text)
        except ValueError:
            respawn_delay = -1.0
        if not respawn_delay >= 0.0:
            raise element.error(f'respawn_delay="{delay_text}": expected seconds >= 0')
        on_exit = self.attribute(element, 'on_exit', configurations)
        if on_exit not in (None, 'shutdown'):
            raise element.error(f'on_exit="{on_exit}": only "shutdown" is supported')
        try:
            path = ament.executable(package, executable_name, self.environ)
        except ament.PackageNotFoundError as error:
            raise element.error(str(error)) from None
        spec = ProcessSpec(
            package=package,
            executable=executable_name,
            path=path,
            name=name,
            namespace=prefix_namespace(configurations.get(NAMESPACE_KEY), namespace),
            arguments=shlex.split(self.attribute(element, 'args', configurations, '')),
            output=output,
            respawn=respawn,
            respawn_delay=respawn_delay,
            shutdown_on_exit=on_exit == 'shutdown',
            origin=element.where(),
        )
        for child in element.children:
            allowed = NODE_CHILDREN.get(child.tag)
            if allowed is None:
                raise child.error(
                    f"not supported inside <node> (supported: {', '.join(NODE_CHILDREN)})"
                )
            self.check_attributes(child, allowed)
            getattr(self, 'node_' + child.tag)(child, spec, configurations)
        self.processes.append(spec)

    def node_param(self, element, spec, configurations):
        self.no_children(element)
        if 'from' in element.attributes:
            if set(element.attributes) != {'from'}:
                raise element.error("give either 'from' or 'name' and 'value'")
            path = self.attribute(element, 'from', configurations)
            if not os.path.isfile(path):
                raise element.error(f'parameter file {path} does not exist')
            spec.parameters.append(ParameterFile(path))
            return
        name = self.require(element, 'name', configurations)
        value = typed_value(self.require(element, 'value', configurations))
        if spec.parameters and isinstance(spec.parameters[-1], dict):
            spec.parameters[-1][name] = value
        else:
            spec.parameters.append({name: value})

    def node_remap(self, element, spec, configurations):
        self.no_children(element)
        source = self.require(element, 'from', configurations)
        spec.remappings.append((source, self.require(element, 'to', configurations)))

    def node_env(self, element, spec, configurations):
        self.no_children(element)
        spec.env[self.require(element, 'name', configurations)] = self.require(
            element, 'value', configurations
        )


def load(path, arguments=None, environ=None) -> LaunchDescription:
    """Evaluate a launch file with command-line arguments {name: value}."""
    configurations = dict(arguments or {})
    evaluator = _Evaluator(environ)
    evaluator.run_file(os.path.abspath(path), configurations)
    return LaunchDescription(evaluator.processes, configurations)


@dataclass
class DeclaredArgument:
    """A launch argument of a file, as `--show-args` lists it."""

    name: str
    default: str | None
    description: str
    where: str


def declared_arguments(path) -> list:
    """Return the <arg> declarations of a file (not of its includes), without evaluating them."""
    found = []

    def walk(element: Element):
        for child in element.children:
            if child.tag == 'arg' and 'name' in child.attributes:
                found.append(DeclaredArgument(
                    child.attributes['name'],
                    child.attributes.get('default'),
                    child.attributes.get('description', ''),
                    child.where(),
                ))
            elif child.tag == 'group':
                walk(child)

    walk(parse_file(path))
    return found
