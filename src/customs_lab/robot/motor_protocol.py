r"""Serial protocol of the inspection robot's track motor controller, version 1.

Documented in docs/protocols/robot_motor.md. ASCII lines framed as the other devices' (common/
ascii_lines.py: $<TYPE>,<fields>*<CRC-16/CCITT-FALSE>\r\n). Device to host:

    $TRKE,seq,ticks_ms,left,right                  encoder counts of the left and right drive
                                                   sprockets, cumulative, mod 2**32; 50 a second
    $TRKS,seq,ticks_ms,battery_v,soc,bumpers,estop,flags,temp_c
                                                   status, 10 a second: battery voltage and state
                                                   of charge (0-1), bumper contacts (bits: 1
                                                   front, 2 rear, 4 left, 8 right), e-stop (0
                                                   released, 1 button pressed, 2 latched: button
                                                   up, not yet reset), flags (bits: 1 watchdog
                                                   stop, 2 motor fault, 4 current limit), motor
                                                   temperature degrees C
    $TRKI,seq,ticks_ms,model,serial,firmware,ticks_per_rev,watchdog_ms,max_speed_mmps
                                                   identity: at connection and on request
    $TRKA,seq,ticks_ms,command,result,text         answer to a host command: OK or REFUSED,
                                                   with the reason
Host to device:

    $TRKV,left_mmps,right_mmps                     track speed set-points, mm/s (integers, |v| <=
                                                   max_speed_mmps); each one feeds the watchdog:
                                                   with none for watchdog_ms the controller
                                                   ramps to a stop and sets flag 1
    $TRKR,ESTOP                                    reset a latched e-stop (refused while the
                                                   button is pressed)
    $TRKQ,IDENT | $TRKQ,STATUS                     ask for an identity or status line now

The controller limits acceleration itself; the e-stop button cuts the motor power in hardware
(the controller only reports it) and stays latched until the host resets it with the button up.
"""

from dataclasses import dataclass
import math

from customs_lab.common import ascii_lines
from customs_lab.common.ascii_lines import ProtocolError, parse_fields, u32, wrap  # noqa: F401

BUMPER_BITS = {'front': 1, 'rear': 2, 'left': 4, 'right': 8}
ESTOP_STATES = ('released', 'pressed', 'latched')
FLAG_BITS = {'watchdog': 1, 'motor_fault': 2, 'current_limit': 4}
MAX_SPEED_MMPS = 5000  # the protocol's range; a controller's own limit is in its identity


@dataclass(frozen=True)
class EncoderFrame:
    """Cumulative encoder counts of both sprockets (mod 2**32)."""

    seq: int
    ticks_ms: int
    left: int
    right: int


@dataclass(frozen=True)
class StatusFrame:
    """Battery, bumpers, e-stop and fault flags."""

    seq: int
    ticks_ms: int
    battery_v: float
    soc: float  # state of charge, 0-1
    bumpers: int  # BUMPER_BITS
    estop: int  # index into ESTOP_STATES
    flags: int  # FLAG_BITS
    temp_c: float

    def bumpers_pressed(self) -> list[str]:
        """Return the names of the bumpers in contact."""
        return [name for name, bit in BUMPER_BITS.items() if self.bumpers & bit]

    def flags_set(self) -> list[str]:
        """Return the names of the flags set."""
        return [name for name, bit in FLAG_BITS.items() if self.flags & bit]


@dataclass(frozen=True)
class IdentFrame:
    """The controller's identity and limits."""

    seq: int
    ticks_ms: int
    model: str
    serial: str
    firmware: str
    ticks_per_rev: int
    watchdog_ms: int
    max_speed_mmps: int


@dataclass(frozen=True)
class AckFrame:
    """The controller's answer to a command."""

    seq: int
    ticks_ms: int
    command: str
    ok: bool
    text: str = ''


@dataclass(frozen=True)
class SpeedCommand:
    """Track speed set-points, mm/s."""

    left_mmps: int
    right_mmps: int


@dataclass(frozen=True)
class ResetEstop:
    """Reset a latched e-stop."""


@dataclass(frozen=True)
class Query:
    """Ask for an identity ('IDENT') or status ('STATUS') line."""

    what: str


Frame = EncoderFrame | StatusFrame | IdentFrame | AckFrame | SpeedCommand | ResetEstop | Query


def _number(text: str, low: float, high: float, what: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and low <= value <= high):
        raise ValueError(f'{what} {text!r} outside [{low}, {high}]')
    return value


def _integer(text: str, low: int, high: int, what: str) -> int:
    value = int(text)
    if not low <= value <= high:
        raise ValueError(f'{what} {value} outside [{low}, {high}]')
    return value


def _text(value: str, what: str) -> str:
    if ',' in value or any(c in value for c in '$*\r\n'):
        raise ValueError(f'{what} must not contain , $ * or line ends: {value!r}')
    return value


def encode(frame: Frame) -> bytes:
    """Encode one frame as a terminated line (ValueError if a field cannot be sent)."""
    if isinstance(frame, EncoderFrame):
        fields = ['TRKE', frame.seq % 2**32, frame.ticks_ms % 2**32, frame.left % 2**32,
                  frame.right % 2**32]
    elif isinstance(frame, StatusFrame):
        fields = ['TRKS', frame.seq % 2**32, frame.ticks_ms % 2**32, f'{frame.battery_v:.2f}',
                  f'{frame.soc:.3f}', int(frame.bumpers), int(frame.estop), int(frame.flags),
                  f'{frame.temp_c:.1f}']
    elif isinstance(frame, IdentFrame):
        fields = ['TRKI', frame.seq % 2**32, frame.ticks_ms % 2**32,
                  _text(frame.model, 'model'), _text(frame.serial, 'serial'),
                  _text(frame.firmware, 'firmware'), int(frame.ticks_per_rev),
                  int(frame.watchdog_ms), int(frame.max_speed_mmps)]
    elif isinstance(frame, AckFrame):
        fields = ['TRKA', frame.seq % 2**32, frame.ticks_ms % 2**32,
                  _text(frame.command, 'command'), 'OK' if frame.ok else 'REFUSED',
                  _text(frame.text, 'text')]
    elif isinstance(frame, SpeedCommand):
        for value in (frame.left_mmps, frame.right_mmps):
            if isinstance(value, bool) or not isinstance(value, int) or abs(value) > \
                    MAX_SPEED_MMPS:
                raise ValueError(f'speed set-points are integers within +-{MAX_SPEED_MMPS} '
                                 f'mm/s, got {value!r}')
        fields = ['TRKV', frame.left_mmps, frame.right_mmps]
    elif isinstance(frame, ResetEstop):
        fields = ['TRKR', 'ESTOP']
    elif isinstance(frame, Query):
        if frame.what not in ('IDENT', 'STATUS'):
            raise ValueError(f'a query asks for IDENT or STATUS, not {frame.what!r}')
        fields = ['TRKQ', frame.what]
    else:
        raise TypeError(f'not a motor controller frame: {frame!r}')
    return wrap(','.join(str(f) for f in fields))


def parse_line(line: bytes) -> Frame:
    """Parse one line (with or without its terminator); ProtocolError if it is not valid."""
    return parse_fields(line, _parse)


def _parse(fields) -> Frame:
    kind, count = fields[0], len(fields)
    if kind == 'TRKE' and count == 5:
        return EncoderFrame(*(u32(f) for f in fields[1:]))
    if kind == 'TRKS' and count == 9:
        return StatusFrame(
            u32(fields[1]), u32(fields[2]), _number(fields[3], 0.0, 100.0, 'battery_v'),
            _number(fields[4], 0.0, 1.0, 'soc'), _integer(fields[5], 0, 15, 'bumpers'),
            _integer(fields[6], 0, len(ESTOP_STATES) - 1, 'estop'),
            _integer(fields[7], 0, 7, 'flags'), _number(fields[8], -50.0, 200.0, 'temp_c'))
    if kind == 'TRKI' and count == 9:
        return IdentFrame(
            u32(fields[1]), u32(fields[2]), fields[3], fields[4], fields[5],
            _integer(fields[6], 1, 2**24, 'ticks_per_rev'),
            _integer(fields[7], 10, 10000, 'watchdog_ms'),
            _integer(fields[8], 1, MAX_SPEED_MMPS, 'max_speed_mmps'))
    if kind == 'TRKA' and count == 6:
        result = {'OK': True, 'REFUSED': False}[fields[4]]
        return AckFrame(u32(fields[1]), u32(fields[2]), fields[3], result, fields[5])
    if kind == 'TRKV' and count == 3:
        return SpeedCommand(
            *(_integer(f, -MAX_SPEED_MMPS, MAX_SPEED_MMPS, 'speed') for f in fields[1:]))
    if kind == 'TRKR' and fields[1:] == ['ESTOP']:
        return ResetEstop()
    if kind == 'TRKQ' and count == 2 and fields[1] in ('IDENT', 'STATUS'):
        return Query(fields[1])
    raise ValueError(f'unknown frame type or field count: {kind} ({count} fields)')


class LineDecoder(ascii_lines.LineDecoder):
    """Split the controller's byte stream into frames (errors counted, good lines kept)."""

    def __init__(self):
        super().__init__(parse_line)


def counts_delta(previous: int, current: int) -> int:
    """Return the signed change of a mod-2**32 counter (the shorter way round)."""
    delta = (int(current) - int(previous)) % 2**32
    return delta - 2**32 if delta >= 2**31 else delta
