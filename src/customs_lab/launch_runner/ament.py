"""Find packages the way ROS 2 does: the ament resource index along AMENT_PREFIX_PATH.

A package belongs to the first prefix (in AMENT_PREFIX_PATH order, so overlays win) holding
`share/ament_index/resource_index/packages/<pkg>`; its share directory is `<prefix>/share/<pkg>`
and its executables are in `<prefix>/lib/<pkg>/` (what `ros2 run` and launch_ros use).
"""

import os


class PackageNotFoundError(LookupError):
    """A package is not in any prefix of AMENT_PREFIX_PATH."""


def prefixes(environ=None) -> list:
    """Return the prefixes of AMENT_PREFIX_PATH, in order."""
    environ = os.environ if environ is None else environ
    return [p for p in environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]


def package_prefix(package: str, environ=None) -> str:
    """Return the install prefix of a package."""
    for prefix in prefixes(environ):
        marker = os.path.join(prefix, 'share', 'ament_index', 'resource_index', 'packages')
        if os.path.isfile(os.path.join(marker, package)):
            return prefix
    raise PackageNotFoundError(
        f"package '{package}' not found in AMENT_PREFIX_PATH "
        "(source tools/env.sh, or the workspace's install/setup.bash)"
    )


def share_directory(package: str, environ=None) -> str:
    """Return `<prefix>/share/<package>`."""
    return os.path.join(package_prefix(package, environ), 'share', package)


def executable(package: str, name: str, environ=None) -> str:
    """Return the path of an executable `<prefix>/lib/<package>/<name>`."""
    directory = os.path.join(package_prefix(package, environ), 'lib', package)
    path = os.path.join(directory, name)
    if os.path.isfile(path) and os.access(path, os.X_OK):
        return path
    try:
        available = sorted(
            entry for entry in os.listdir(directory)
            if os.access(os.path.join(directory, entry), os.X_OK)
        )
    except OSError:
        available = []
    raise PackageNotFoundError(
        f"no executable '{name}' in package '{package}' ({directory}); "
        f"available: {', '.join(available) or 'none'}"
    )
