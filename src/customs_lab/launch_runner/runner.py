"""Start, watch, respawn and stop the processes of a launch, like ROS 2 launch does.

- Each node is its own process (own session, so a terminal's Ctrl-C reaches the runner only and
  is forwarded exactly once), with `--ros-args` for name, namespace, parameters and remappings.
- Output: every line is prefixed with `[node]`. output="screen" prints stdout and stderr,
  "log" writes both to the node's log files and prints stderr (where ROS loggers write),
  "both" does both (the ROS 2 launch semantics).
- Logs: `<ROS_LOG_DIR or ~/.ros/log>/<time>-<host>-<pid>/`: launch.log, per-node stdout/stderr
  logs and the parameter files; nodes get ROS_LOG_DIR pointing there.
- Ending: when every process has exited, or a node with on_exit="shutdown" exits, or on
  SIGINT/SIGTERM, the runner sends SIGINT to every running process, then SIGTERM after
  `sigterm_timeout` seconds and SIGKILL after another `sigkill_timeout` seconds (a second Ctrl-C
  escalates at once).
- Exit status: the exit code of the on_exit="shutdown" node that ended the launch (non-zero when
  it failed; 128+N when signal N killed it), 130 when interrupted, 0 otherwise.
"""

from dataclasses import dataclass, field
import datetime
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from customs_lab.launch_runner.description import ProcessSpec, parameter_file_text


def default_log_root(environ=None) -> str:
    """Return where ROS writes logs: $ROS_LOG_DIR, else $ROS_HOME/log, else ~/.ros/log."""
    environ = os.environ if environ is None else environ
    if environ.get('ROS_LOG_DIR'):
        return os.path.expanduser(environ['ROS_LOG_DIR'])
    home = environ.get('ROS_HOME') or os.path.join(os.path.expanduser('~'), '.ros')
    return os.path.join(os.path.expanduser(home), 'log')


def _safe(label: str) -> str:
    return label.replace('/', '__') or 'node'


@dataclass
class _Managed:
    spec: ProcessSpec
    command: list
    label: str
    popen: subprocess.Popen | None = None
    starts: int = 0
    respawn_at: float | None = None
    threads: list = field(default_factory=list)
    finished: bool = False


class Runner:
    """Run the processes of a launch description until it ends; run() returns the exit status."""

    def __init__(self, processes, *, log_root=None, sigterm_timeout=5.0, sigkill_timeout=5.0,
                 stdout=None, stderr=None, environ=None, poll_interval=0.05):
        self.environ = dict(os.environ if environ is None else environ)
        stamp = datetime.datetime.now().strftime('%Y-%m-%d-%H-%M-%S-%f')
        root = log_root or default_log_root(self.environ)
        self.log_dir = os.path.join(root, f'{stamp}-{socket.gethostname()}-{os.getpid()}')
        os.makedirs(os.path.join(self.log_dir, 'params'), exist_ok=True)
        self.sigterm_timeout = sigterm_timeout
        self.sigkill_timeout = sigkill_timeout
        self.poll_interval = poll_interval
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.lock = threading.Lock()
        self.launch_log = open(os.path.join(self.log_dir, 'launch.log'), 'a', encoding='utf-8')
        self.interrupts = 0
        self.stop_reason = None
        self.exit_code = 0
        self.managed = []
        labels = [spec.label for spec in processes]
        for index, spec in enumerate(processes):
            label = spec.label if labels.count(spec.label) == 1 else f'{spec.label}-{index + 1}'
            counter = iter(range(1, 1000))
            command = spec.command(lambda params, label=label, counter=counter:
                                   self._write_parameters(label, next(counter), params))
            self.managed.append(_Managed(spec, command, label))

    # -- output -------------------------------------------------------------------------

    def say(self, level: str, source: str, message: str):
        """Print a runner message the way ROS 2 launch does, and keep it in launch.log."""
        line = f'[{level}] [{source}]: {message}'
        stream = self.stderr if level in ('ERROR', 'WARNING') else self.stdout
        with self.lock:
            print(line, file=stream, flush=True)
            print(f'{time.time():.6f} {line}', file=self.launch_log, flush=True)

    def _write_parameters(self, label, index, parameters) -> str:
        path = os.path.join(self.log_dir, 'params', f'{_safe(label)}-{index}.yaml')
        with open(path, 'w', encoding='utf-8') as handle:
            handle.write(parameter_file_text(parameters))
        return path

    def _pump(self, managed, pipe, stream_name):
        spec = managed.spec
        to_screen = spec.output in ('screen', 'both') or stream_name == 'stderr'
        to_log = spec.output in ('log', 'both')
        screen = self.stdout if stream_name == 'stdout' else self.stderr
        log_path = os.path.join(self.log_dir, f'{_safe(managed.label)}-{stream_name}.log')
        with open(log_path, 'ab') if to_log else open(os.devnull, 'wb') as log:
            for raw in iter(pipe.readline, b''):
                if to_log:
                    log.write(raw)
                    log.flush()
                if to_screen:
                    text = raw.decode('utf-8', errors='replace').rstrip('\n')
                    with self.lock:
                        print(f'[{managed.label}] {text}', file=screen, flush=True)
        pipe.close()

    # -- processes ----------------------------------------------------------------------

    def _start(self, managed):
        env = dict(self.environ)
        env.update(managed.spec.env)
        env['ROS_LOG_DIR'] = self.log_dir
        env.setdefault('PYTHONUNBUFFERED', '1')
        try:
            managed.popen = subprocess.Popen(
                managed.command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL, env=env, start_new_session=True,
            )
        except OSError as error:
            managed.popen = None
            managed.finished = True
            self.say('ERROR', managed.label, f'cannot start {managed.command[0]}: {error}')
            if managed.spec.shutdown_on_exit:
                self._request_stop(f'required node {managed.label} could not start', 1)
            return
        managed.starts += 1
        managed.respawn_at = None
        managed.finished = False
        managed.threads = [
            threading.Thread(target=self._pump, args=(managed, pipe, name), daemon=True)
            for pipe, name in ((managed.popen.stdout, 'stdout'), (managed.popen.stderr, 'stderr'))
        ]
        for thread in managed.threads:
            thread.start()
        verb = 'started' if managed.starts == 1 else f'respawned (start {managed.starts})'
        self.say('INFO', managed.label, f'process {verb} with pid [{managed.popen.pid}]')

    def _request_stop(self, reason, exit_code):
        if self.stop_reason is None:
            self.stop_reason = reason
            self.exit_code = exit_code

    def _reap(self, managed, now):
        code = managed.popen.poll()
        if code is None:
            return
        for thread in managed.threads:
            thread.join(timeout=1.0)
        pid = managed.popen.pid
        if code == 0:
            self.say('INFO', managed.label, f'process has finished cleanly [pid {pid}]')
        else:
            self.say('ERROR', managed.label,
                     f'process has died [pid {pid}, exit code {code}, '
                     f"cmd '{' '.join(managed.command)}']")
        managed.popen = None
        managed.finished = True
        if self.stop_reason is not None:
            return
        if managed.spec.shutdown_on_exit:
            status = code if code >= 0 else 128 - code
            self._request_stop(f'required node {managed.label} exited with {code}', status)
        elif managed.spec.respawn:
            managed.respawn_at = now + managed.spec.respawn_delay
            managed.finished = False
            self.say('INFO', managed.label,
                     f'respawning in {managed.spec.respawn_delay:g} s (respawn="true")')

    def _signal_all(self, sig):
        for managed in self.managed:
            if managed.popen is not None and managed.popen.poll() is None:
                try:
                    os.killpg(managed.popen.pid, sig)
                except ProcessLookupError:
                    pass

    def _running(self):
        return [m for m in self.managed if m.popen is not None and m.popen.poll() is None]

    def _on_signal(self, signum, _frame):
        self.interrupts += 1
        if self.interrupts == 1:
            name = 'ctrl-c (SIGINT)' if signum == signal.SIGINT else signal.Signals(signum).name
            self._request_stop(f'user interrupted with {name}', 130 if signum == signal.SIGINT
                               else 128 + signum)

    def _shutdown(self):
        for managed in self.managed:
            managed.respawn_at = None
        running = self._running()
        if not running:
            return
        self.say('INFO', 'launch', f'shutting down: {self.stop_reason}; sending SIGINT to '
                 f'{len(running)} process(es)')
        self._signal_all(signal.SIGINT)
        interrupts = self.interrupts
        for sig, timeout in ((signal.SIGTERM, self.sigterm_timeout),
                             (signal.SIGKILL, self.sigkill_timeout)):
            deadline = time.monotonic() + timeout
            while self._running() and time.monotonic() < deadline:
                if self.interrupts > interrupts:  # another Ctrl-C: escalate now
                    interrupts = self.interrupts
                    break
                time.sleep(self.poll_interval)
            still = self._running()
            if not still:
                break
            names = ', '.join(m.label for m in still)
            self.say('ERROR', 'launch',
                     f'sending {sig.name} to {names}: still running after {timeout:g} s')
            self._signal_all(sig)
        for managed in self.managed:
            if managed.popen is not None:
                try:
                    managed.popen.wait(timeout=self.sigkill_timeout)
                except subprocess.TimeoutExpired:
                    self.say('ERROR', managed.label, 'did not exit even after SIGKILL')
                    continue
                self._reap(managed, time.monotonic())

    def run(self) -> int:
        """Start everything, watch until the launch ends, stop everything; return the status."""
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            self.say('INFO', 'launch', f'All log files can be found below {self.log_dir}')
            for managed in self.managed:
                if self.stop_reason is None:
                    self._start(managed)
            while self.stop_reason is None:
                now = time.monotonic()
                for managed in self.managed:
                    if managed.popen is not None:
                        self._reap(managed, now)
                    elif managed.respawn_at is not None and now >= managed.respawn_at:
                        if self.stop_reason is None:
                            self._start(managed)
                if all(m.finished for m in self.managed):
                    self._request_stop('all processes have exited', 0)
                    break
                time.sleep(self.poll_interval)
            self._shutdown()
            self.say('INFO', 'launch', f'launch ended ({self.stop_reason}), exit status '
                     f'{self.exit_code}')
            return self.exit_code
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.launch_log.close()
