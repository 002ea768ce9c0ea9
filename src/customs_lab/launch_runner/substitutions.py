"""Substitutions in launch_xml attribute values: `$(name arg ...)`, nested, evaluated in context.

Supported (as in ROS 2 launch / launch_ros):

- `$(var NAME)`: a launch configuration (an `<arg>` or `<let>`); unknown names are an error;
- `$(env NAME [DEFAULT])`: an environment variable; unset without a default is an error;
- `$(optenv NAME [DEFAULT])`: an environment variable, '' (or DEFAULT) when unset;
- `$(find-pkg-share PKG)`, `$(find-pkg-prefix PKG)`: via AMENT_PREFIX_PATH;
- `$(dirname)`, `$(filename)`: the directory and path of the current launch file.

Arguments are separated by spaces and may be quoted ('...' or "...") or be substitutions
themselves. Anything else (`$(eval ...)`, `$(command ...)`) is refused with the file and line.
"""

from dataclasses import dataclass
import os

from customs_lab.launch_runner import ament


@dataclass(frozen=True)
class Substitution:
    """One `$(name args...)`; each argument is itself a list of parts (str or Substitution)."""

    name: str
    arguments: tuple


SUPPORTED = ('var', 'env', 'optenv', 'find-pkg-share', 'find-pkg-prefix', 'dirname', 'filename')


def parse(text: str) -> list:
    """Split an attribute value into literal strings and Substitutions.

    Raises ValueError with the reason when the text is malformed.
    """
    parts, position = _parse_template(text, 0, top_level=True)
    assert position == len(text)
    return parts


def _parse_template(text, position, top_level):
    parts = []
    literal = []
    while position < len(text):
        if text.startswith('$(', position):
            if literal:
                parts.append(''.join(literal))
                literal = []
            substitution, position = _parse_substitution(text, position + 2)
            parts.append(substitution)
        elif not top_level and (text[position].isspace() or text[position] == ')'):
            break
        elif not top_level and text[position] in '\'"':
            quote = text[position]
            end = text.find(quote, position + 1)
            if end < 0:
                raise ValueError(f'unterminated quote in {text!r}')
            inner, _ = _parse_template(text[position + 1:end], 0, top_level=True)
            if literal:
                parts.append(''.join(literal))
                literal = []
            parts.extend(inner)
            position = end + 1
        else:
            literal.append(text[position])
            position += 1
    if literal:
        parts.append(''.join(literal))
    return parts, position


def _parse_substitution(text, position):
    start = position
    while position < len(text) and not text[position].isspace() and text[position] != ')':
        position += 1
    name = text[start:position]
    if not name:
        raise ValueError(f'empty substitution in {text!r}')
    arguments = []
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            raise ValueError(f'unterminated $({name} ...) in {text!r}')
        if text[position] == ')':
            return Substitution(name, tuple(arguments)), position + 1
        argument, position = _parse_template(text, position, top_level=False)
        arguments.append(tuple(argument))


class Context:
    """What substitutions read: launch configurations, the environment and the current file."""

    def __init__(self, configurations: dict, current_file, environ=None):
        self.configurations = configurations
        self.current_file = os.path.abspath(current_file)
        self.environ = os.environ if environ is None else environ


def evaluate(parts, context: Context) -> str:
    """Evaluate parsed parts to a string."""
    return ''.join(
        part if isinstance(part, str) else _evaluate_one(part, context) for part in parts
    )


def perform(text: str, context: Context) -> str:
    """Parse and evaluate an attribute value; raises ValueError or LookupError with the reason."""
    return evaluate(parse(text), context)


def _evaluate_one(substitution: Substitution, context: Context) -> str:
    name = substitution.name
    arguments = [evaluate(argument, context) for argument in substitution.arguments]

    def need(low, high):
        if not low <= len(arguments) <= high:
            count = str(low) if low == high else f'{low} to {high}'
            raise ValueError(f'$({name}) takes {count} argument(s), got {len(arguments)}')

    if name == 'var':
        need(1, 1)
        if arguments[0] not in context.configurations:
            raise LookupError(f"launch configuration '{arguments[0]}' does not exist")
        return context.configurations[arguments[0]]
    if name in ('env', 'optenv'):
        need(1, 2)
        value = context.environ.get(arguments[0])
        if value is not None:
            return value
        if len(arguments) == 2:
            return arguments[1]
        if name == 'optenv':
            return ''
        raise LookupError(f"environment variable '{arguments[0]}' does not exist")
    if name == 'find-pkg-share':
        need(1, 1)
        return ament.share_directory(arguments[0], context.environ)
    if name == 'find-pkg-prefix':
        need(1, 1)
        return ament.package_prefix(arguments[0], context.environ)
    if name == 'dirname':
        need(0, 0)
        return os.path.dirname(context.current_file)
    if name == 'filename':
        need(0, 0)
        return context.current_file
    raise ValueError(
        f'unsupported substitution $({name} ...) (supported: {", ".join(SUPPORTED)})'
    )


def perform_at(element, attribute: str, context: Context) -> str:
    """Evaluate one attribute of an element, turning every failure into a located LaunchError."""
    try:
        return perform(element.attributes[attribute], context)
    except (ValueError, LookupError) as error:
        raise element.error(f'{attribute}="{element.attributes[attribute]}": {error}') from None
