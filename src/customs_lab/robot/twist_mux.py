"""Velocity command multiplexer with twist_mux's semantics: prioritised inputs, timeouts, locks.

Core module (no ROS). The rules are ros-teleop/twist_mux's (src/twist_mux.cpp and
include/twist_mux/topic_handle.hpp), so that a site that knows twist_mux configures this one the
same way (config/robot.yaml, `topics` and `locks`):

- An input (a velocity topic: keyboard teleop, the autonomous survey) has a priority (1-255, the
  higher the stronger) and a timeout: it has *expired* when its last message is older than the
  timeout, or when none has come yet.
- A lock (a Bool topic: the e-stop, a pause) has a priority and a timeout. It is *engaged* while
  its last message says true; with a timeout > 0 it is a heartbeat lock, engaged also before its
  first message and whenever its messages stop for longer than the timeout (the publisher died).
  With timeout 0 it is engaged only by a true.
- The lock priority is the highest priority of the engaged locks (0 if none). An input is *masked*
  when it has expired or its priority is strictly below the lock priority (a lock of priority 100
  does not block an input of priority 100).
- A message on an input is passed on only if its input is the highest-priority input that is not
  masked (the first configured wins a tie). Nothing is sent on a timeout or a lock: the output
  simply stops, and the next message of the next input that wins goes through. The robot's own
  dead-man timeout (the motor controller's watchdog) stops it when commands stop.

Two deliberate differences, both refusals of a configuration twist_mux accepts but cannot use:
priority 0 (twist_mux never lets it win) and an input timeout of 0 (such an input, once
configured, would mask every input below it forever, even before it has sent anything).
"""

from dataclasses import dataclass
import math

MAX_PRIORITY = 255


@dataclass(frozen=True)
class Source:
    """One configured input or lock: name, topic, timeout (s), priority (1-255)."""

    name: str
    topic: str
    timeout: float
    priority: int

    def check(self, what: str, zero_timeout: bool):
        """Raise ValueError naming the problem if the entry cannot be used."""
        if not self.name or not self.topic:
            raise ValueError(f'{what} needs a name and a topic: {self!r}')
        if isinstance(self.priority, bool) or not isinstance(self.priority, int) or not (
                1 <= self.priority <= MAX_PRIORITY):
            raise ValueError(f'{what} {self.name!r}: priority must be an integer 1-255, got '
                             f'{self.priority!r}')
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, (int, float)) or not (
                math.isfinite(self.timeout) and self.timeout >= 0):
            raise ValueError(f'{what} {self.name!r}: timeout must be a number of seconds >= 0, '
                             f'got {self.timeout!r}')
        if self.timeout == 0 and not zero_timeout:
            raise ValueError(f'{what} {self.name!r}: timeout 0 would let it mask the inputs '
                             'below it forever: give it a timeout > 0')


class TwistMux:
    """Arbitrate velocity commands between inputs, under locks (module docstring)."""

    def __init__(self, inputs, locks=()):
        """Keep the inputs and locks in their configured order (ValueError if unusable)."""
        self.inputs = tuple(inputs)
        self.locks = tuple(locks)
        if not self.inputs:
            raise ValueError('the multiplexer needs at least one input')
        names = [s.name for s in self.inputs] + [s.name for s in self.locks]
        if len(set(names)) != len(names):
            raise ValueError(f'input and lock names must be unique: {names}')
        for source in self.inputs:
            source.check('input', zero_timeout=False)
        for source in self.locks:
            source.check('lock', zero_timeout=True)
        self._stamp = {s.name: -math.inf for s in self.inputs + self.locks}
        self._engaged = {s.name: False for s in self.locks}  # the last Bool of each lock
        self._by_name = {s.name: s for s in self.inputs + self.locks}

    def _expired(self, source: Source, now: float) -> bool:
        return source.timeout > 0 and now - self._stamp[source.name] > source.timeout

    def lock_engaged(self, name: str, now: float) -> bool:
        """Return whether the lock `name` is engaged at `now`."""
        lock = self._by_name[name]
        return self._expired(lock, now) or self._engaged[name]

    def lock_priority(self, now: float) -> int:
        """Return the highest priority of the engaged locks (0 if none)."""
        return max((lock.priority for lock in self.locks
                    if self.lock_engaged(lock.name, now)), default=0)

    def masked(self, name: str, now: float) -> bool:
        """Return whether the input `name` is masked at `now` (expired or below a lock)."""
        source = self._by_name[name]
        return self._expired(source, now) or source.priority < self.lock_priority(now)

    def winner(self, now: float) -> str | None:
        """Return the input whose messages pass at `now` (None: none may)."""
        best, priority = None, 0
        for source in self.inputs:
            if source.priority > priority and not self.masked(source.name, now):
                best, priority = source.name, source.priority
        return best

    def on_velocity(self, name: str, now: float) -> bool:
        """Record a message on input `name` at `now`; return True if it is to be passed on."""
        if name not in self._by_name or name in self._engaged:
            raise ValueError(f'no input named {name!r}')
        self._stamp[name] = float(now)
        return self.winner(now) == name

    def on_lock(self, name: str, engaged: bool, now: float):
        """Record a message on lock `name` at `now`."""
        if name not in self._engaged:
            raise ValueError(f'no lock named {name!r}')
        self._stamp[name] = float(now)
        self._engaged[name] = bool(engaged)

    def status(self, now: float) -> dict:
        """Return twist_mux's diagnostic values: each input masked or not, each lock, priority."""
        values = {}
        for source in self.inputs:
            state = 'masked' if self.masked(source.name, now) else 'unmasked'
            values[f'velocity {source.name}'] = (
                f'{state} (listening to {source.topic} @ {source.timeout:g}s with priority '
                f'#{source.priority})')
        for source in self.locks:
            state = 'locked' if self.lock_engaged(source.name, now) else 'free'
            values[f'lock {source.name}'] = (
                f'{state} (listening to {source.topic} @ {source.timeout:g}s with priority '
                f'#{source.priority})')
        values['current priority'] = self.lock_priority(now)
        return values
