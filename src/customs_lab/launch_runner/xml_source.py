"""Read a launch XML file into elements that remember their file and line."""

from dataclasses import dataclass, field
from pathlib import Path
from xml.parsers import expat


class LaunchError(Exception):
    """A launch file cannot be run: the message names the file, the line and the reason."""


@dataclass
class Element:
    """One XML element: tag, attributes, children, and where it was written."""

    tag: str
    attributes: dict
    file: Path
    line: int
    children: list = field(default_factory=list)

    def where(self) -> str:
        """Return 'file:line' for messages."""
        return f'{self.file}:{self.line}'

    def error(self, message: str) -> LaunchError:
        """Return a LaunchError located at this element."""
        return LaunchError(f'{self.where()}: <{self.tag}>: {message}')


def parse_file(path) -> Element:
    """Parse a launch file and return its root element (which must be <launch>)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise LaunchError(f'cannot read launch file {path}: {error.strerror}') from error
    parser = expat.ParserCreate()
    stack = []
    roots = []

    def start(tag, attributes):
        element = Element(tag, dict(attributes), path, parser.CurrentLineNumber)
        if stack:
            stack[-1].children.append(element)
        else:
            roots.append(element)
        stack.append(element)

    def end(_tag):
        stack.pop()

    def text(data):
        if data.strip() and stack:
            raise LaunchError(
                f'{path}:{parser.CurrentLineNumber}: <{stack[-1].tag}>: unexpected text '
                f'{data.strip()[:40]!r} (launch_xml takes values in attributes)'
            )

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    try:
        parser.Parse(data, True)
    except expat.ExpatError as error:
        raise LaunchError(
            f'{path}:{error.lineno}: not well-formed XML: {expat.errors.messages[error.code]}'
        ) from error
    root = roots[0]
    if root.tag != 'launch':
        raise root.error('the root element of a launch file must be <launch>')
    return root
