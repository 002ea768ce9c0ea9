"""Where Customs Lab keeps its run-time data, and where its installed files are.

Run-time data: database, reports, device links, logs. Installed: config, maps, launch files.
"""

import os
import pathlib

from ament_index_python.packages import PackageNotFoundError, get_package_share_directory


def share_dir() -> pathlib.Path:
    """Return the package's share directory (or the source tree when not installed)."""
    try:
        return pathlib.Path(get_package_share_directory('customs_lab'))
    except PackageNotFoundError:
        return pathlib.Path(__file__).resolve().parents[3]


def data_dir(explicit: str = '') -> pathlib.Path:
    """Return the data directory, creating it if needed.

    In order: `explicit` (a node parameter), $CUSTOMS_LAB_DATA_DIR, $XDG_DATA_HOME/customs_lab,
    ~/.local/share/customs_lab.
    """
    if explicit:
        path = pathlib.Path(explicit)
    elif os.environ.get('CUSTOMS_LAB_DATA_DIR'):
        path = pathlib.Path(os.environ['CUSTOMS_LAB_DATA_DIR'])
    else:
        xdg = os.environ.get('XDG_DATA_HOME') or os.path.join(
            os.path.expanduser('~'), '.local', 'share'
        )
        path = pathlib.Path(xdg) / 'customs_lab'
    path = path.expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def serial_device(port: str, data_directory: str = '') -> str:
    """Return a serial device's path: absolute as given, or a name under <data_dir>/dev.

    The simulators link their devices' pseudo-terminals under <data_dir>/dev/<name>.
    """
    if port.startswith('/'):
        return port
    return str(data_dir(data_directory) / 'dev' / port)
