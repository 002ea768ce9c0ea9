"""The `customs-lab` command.

    customs-lab launch FILE [name:=value ...]   run a launch file (docs/LAUNCH.md)
    customs-lab run PKG EXECUTABLE [args ...]   run one node, as `ros2 run` does (e.g. the
                                                officer's keyboard teleop in a terminal)
    customs-lab db status|migrate|verify-audit  the clearance database (customs-lab db -h)
    customs-lab risk fit|show                   the declaration risk model (customs-lab risk -h)

`launch` runs a ROS 2 XML launch file with the project's runner, for machines where ROS 2 comes
from PyPI wheels without the launch package. FILE is a path, or `PKG FILE` to take the file from
the package's share/PKG/launch directory, as `ros2 launch` does.
"""

import argparse
import os
import sys

from customs_lab.launch_runner import ament
from customs_lab.launch_runner.description import declared_arguments, load
from customs_lab.launch_runner.runner import Runner
from customs_lab.launch_runner.xml_source import LaunchError

USAGE_ERROR = 2
RUN_USAGE = ('usage: customs-lab run PKG EXECUTABLE [args ...]   (e.g. customs-lab run '
             'customs_lab teleop_keyboard --ros-args -r cmd_vel:=/robot/teleop/cmd_vel)')


def _split_arguments(values):
    files, arguments = [], {}
    for value in values:
        if ':=' in value:
            name, _, text = value.partition(':=')
            if not name:
                raise LaunchError(f"bad launch argument '{value}': expected name:=value")
            arguments[name] = text
        else:
            if arguments:
                raise LaunchError(f"'{value}': launch arguments (name:=value) must come last")
            files.append(value)
    return files, arguments


def _resolve_file(files):
    if len(files) == 1:
        return files[0]
    if len(files) == 2:
        package, name = files
        try:
            share = ament.share_directory(package)
        except ament.PackageNotFoundError as error:
            raise LaunchError(str(error)) from None
        for candidate in (os.path.join(share, 'launch', name), os.path.join(share, name)):
            if os.path.isfile(candidate):
                return candidate
        raise LaunchError(f"no launch file '{name}' in {share}/launch")
    raise LaunchError('give a launch file (path, or package and file name)')


def _show_arguments(path):
    arguments = declared_arguments(path)
    if not arguments:
        print('No arguments.')
        return
    print("Arguments (pass arguments as '<name>:=<value>'):")
    for argument in arguments:
        print(f"\n    '{argument.name}':")
        print(f'        {argument.description or "no description given"}')
        if argument.default is not None:
            print(f"        (default: '{argument.default}')")
        else:
            print('        (required)')


def _print_description(description):
    for spec in description.processes:
        flags = [f'output={spec.output}']
        if spec.respawn:
            flags.append(f'respawn (delay {spec.respawn_delay:g} s)')
        if spec.shutdown_on_exit:
            flags.append('on_exit=shutdown')
        print(f'{spec.full_name}  [{spec.package}/{spec.executable}]  {" ".join(flags)}')
        print(f'    from {spec.origin}')
        for parameters in spec.parameters:
            if isinstance(parameters, dict):
                for name, value in parameters.items():
                    print(f'    param {name} = {value!r}')
            else:
                print(f'    params-file {parameters.path}')
        for source, target in spec.remappings:
            print(f'    remap {source} -> {target}')
        for name, value in spec.env.items():
            print(f'    env {name}={value}')


def launch(argv) -> int:
    """Run `customs-lab launch ...`; return the exit status."""
    parser = argparse.ArgumentParser(
        prog='customs-lab launch',
        description='Run a ROS 2 XML launch file (the subset in docs/LAUNCH.md).',
    )
    parser.add_argument('items', nargs='+', metavar='FILE | PKG FILE | name:=value',
                        help='launch file (path, or package and file name), then arguments')
    parser.add_argument('-s', '--show-args', action='store_true',
                        help='list the launch arguments of the file and exit')
    parser.add_argument('-p', '--print', action='store_true', dest='print_description',
                        help='print the processes the launch would start and exit')
    parser.add_argument('--sigterm-timeout', type=float, default=5.0, metavar='SECONDS',
                        help='after SIGINT, wait this long before SIGTERM (default 5)')
    parser.add_argument('--sigkill-timeout', type=float, default=5.0, metavar='SECONDS',
                        help='after SIGTERM, wait this long before SIGKILL (default 5)')
    options = parser.parse_intermixed_args(argv)
    try:
        files, arguments = _split_arguments(options.items)
        path = _resolve_file(files)
        if options.show_args:
            _show_arguments(path)
            return 0
        description = load(path, arguments)
    except LaunchError as error:
        print(f'customs-lab launch: error: {error}', file=sys.stderr)
        return USAGE_ERROR
    if options.print_description:
        _print_description(description)
        return 0
    if not description.processes:
        print('customs-lab launch: the launch file starts no process', file=sys.stderr)
        return 0
    runner = Runner(
        description.processes,
        sigterm_timeout=options.sigterm_timeout,
        sigkill_timeout=options.sigkill_timeout,
    )
    return runner.run()


def run(argv) -> int:
    """Run `customs-lab run PKG EXECUTABLE [args]`: replace this process with the node."""
    if argv[:1] in (['-h'], ['--help']):
        print(RUN_USAGE)
        return 0
    if len(argv) < 2:
        print(RUN_USAGE, file=sys.stderr)
        return USAGE_ERROR
    package, name, rest = argv[0], argv[1], argv[2:]
    try:
        path = ament.executable(package, name)
    except ament.PackageNotFoundError as error:
        print(f'customs-lab run: error: {error}', file=sys.stderr)
        return USAGE_ERROR
    os.execv(path, [path, *rest])
    return 0  # not reached


def main(argv=None) -> int:
    """Entry point of `customs-lab`."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ('-h', '--help'):
        print(__doc__.strip())
        print('\nusage: customs-lab launch|run|db|risk ...   (customs-lab COMMAND -h)')
        return 0 if argv else USAGE_ERROR
    command, rest = argv[0], argv[1:]
    if command == 'launch':
        return launch(rest)
    if command == 'run':
        return run(rest)
    if command == 'db':
        from customs_lab.clearance.cli import main as database_main  # SQLAlchemy only when used

        return database_main(rest)
    if command == 'risk':
        from customs_lab.fusion.cli import main as risk_main

        return risk_main(rest)
    print(f"customs-lab: unknown command '{command}' (commands: launch, run, db, risk)",
          file=sys.stderr)
    return USAGE_ERROR


if __name__ == '__main__':
    sys.exit(main())
