"""A throw-away ament prefix with a fake package, for the launch runner tests.

The package `demo_pkg` has an ament index marker, executables in lib/demo_pkg/ and share files,
laid out exactly as colcon installs a real package, so the runner finds them the ROS way.
"""

import os
import pathlib
import sys
import textwrap

# A stand-in node (no rclpy): prints what it was given, then behaves as its own arguments (the
# part before --ros-args) say: --exit-after S, --code N, --ignore INT,TERM, --record FILE.
FAKE_NODE = textwrap.dedent("""\
    import json, os, signal, sys, time
    argv = sys.argv[1:]
    own = argv[:argv.index('--ros-args')] if '--ros-args' in argv else argv
    options = dict(zip(own[::2], own[1::2]))
    record = options.get('--record')

    def note(text):
        if record:
            with open(record, 'a') as handle:
                handle.write(text + '\\n')

    def on_signal(signum, frame):
        note('got ' + signal.Signals(signum).name)
        if signal.Signals(signum).name[3:] not in options.get('--ignore', '').split(','):
            sys.exit(0)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    note('started')
    print('argv ' + json.dumps(argv))
    print('env DEMO=' + os.environ.get('DEMO', ''))
    print('to stderr', file=sys.stderr)
    deadline = time.monotonic() + float(options.get('--exit-after', '3600'))
    while time.monotonic() < deadline:
        time.sleep(0.02)
    note('exiting')
    sys.exit(int(options.get('--code', '0')))
""")


def make_prefix(root: pathlib.Path, launch_files=None, share_files=None, executables=None):
    """Create <root>/install with demo_pkg; return the prefix path."""
    prefix = root / 'install'
    index = prefix / 'share' / 'ament_index' / 'resource_index' / 'packages'
    index.mkdir(parents=True)
    (index / 'demo_pkg').write_text('')
    share = prefix / 'share' / 'demo_pkg'
    (share / 'launch').mkdir(parents=True)
    lib = prefix / 'lib' / 'demo_pkg'
    lib.mkdir(parents=True)
    for name, body in (executables or {'node': FAKE_NODE}).items():
        path = lib / name
        path.write_text(f'#!{sys.executable}\n' + body)
        path.chmod(0o755)
    for name, text in (launch_files or {}).items():
        (share / 'launch' / name).write_text(textwrap.dedent(text))
    for name, text in (share_files or {}).items():
        (share / name).parent.mkdir(parents=True, exist_ok=True)
        (share / name).write_text(textwrap.dedent(text))
    return prefix


def environ_with(prefix, **extra):
    """Return os.environ with AMENT_PREFIX_PATH set to the fake prefix only."""
    env = dict(os.environ, AMENT_PREFIX_PATH=str(prefix))
    env.update(extra)
    return env
