#!/usr/bin/env python3
"""Rewrite the ROS 2 wheel builder's Python paths in the venv's CMake files.

The ros-jazzy-* wheels are built in a manylinux container whose CPython lives under
/opt/python/cp311-cp311. Their exported CMake targets (share/*/cmake/*.cmake) still name that
interpreter's include directory and site-packages, and CMake refuses to configure a package that
depends on them ("non-existent path"). This script points those paths at this interpreter.
It is idempotent: a second run finds nothing to change.
"""

import pathlib
import sys
import sysconfig

BUILDER_INCLUDE = '/opt/python/cp311-cp311/include/python3.11'
BUILDER_SITE = '/opt/python/cp311-cp311/lib/python3.11/site-packages'


def main() -> int:
    """Rewrite every CMake file under <prefix>/share that names the builder's paths."""
    prefix = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else sys.prefix)
    paths = sysconfig.get_paths()
    replacements = {BUILDER_INCLUDE: paths['include'], BUILDER_SITE: paths['purelib']}
    changed = 0
    for cmake_file in sorted(prefix.glob('share/*/cmake/*.cmake')):
        text = cmake_file.read_text()
        new_text = text
        for old, new in replacements.items():
            new_text = new_text.replace(old, new)
        if new_text != text:
            cmake_file.write_text(new_text)
            changed += 1
    print(f'fix_wheel_cmake_paths: {changed} CMake file(s) rewritten under {prefix}/share')
    return 0


if __name__ == '__main__':
    sys.exit(main())
