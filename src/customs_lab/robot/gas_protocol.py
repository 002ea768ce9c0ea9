r"""Serial protocol of the robot's gas sensor head, version 1.

Documented in docs/protocols/robot_gas.md. ASCII lines framed as the other devices' (common/
ascii_lines.py: $<TYPE>,<fields>*<CRC-16/CCITT-FALSE>\r\n). Device to host:

    $GASM,seq,ticks_ms,ph3_ppm,ch3br_ppm,co2_ppm,o2_pct,flags
                                         one measurement a second: phosphine (electrochemical
                                         cell), methyl bromide (photoionisation, 10.6 eV lamp),
                                         carbon dioxide (NDIR), oxygen (% by volume); flags
                                         (bits): 1 warming up (readings not valid yet), 2 a
                                         sensor fault, 4 calibration due
    $GASI,seq,ticks_ms,model,serial,firmware,t90_ph3_s,t90_ch3br_s,t90_co2_s,t90_o2_s
                                         identity and each sensor's response time (90 %)
Host to device:

    $GASQ,IDENT                          ask for the identity line
"""

from dataclasses import dataclass
import math

from customs_lab.common import ascii_lines
from customs_lab.common.ascii_lines import ProtocolError, parse_fields, u32, wrap  # noqa: F401

FLAG_BITS = {'warming_up': 1, 'sensor_fault': 2, 'calibration_due': 4}
RANGES = {'ph3_ppm': 20.0, 'ch3br_ppm': 1000.0, 'co2_ppm': 50000.0, 'o2_pct': 30.0}  # full scale


@dataclass(frozen=True)
class MeasurementFrame:
    """One measurement of the four gases."""

    seq: int
    ticks_ms: int
    ph3_ppm: float
    ch3br_ppm: float
    co2_ppm: float
    o2_pct: float
    flags: int

    def flags_set(self) -> list[str]:
        """Return the names of the flags set."""
        return [name for name, bit in FLAG_BITS.items() if self.flags & bit]

    @property
    def valid(self) -> bool:
        """Return whether the readings can be used (not warming up, no fault)."""
        return not self.flags & (FLAG_BITS['warming_up'] | FLAG_BITS['sensor_fault'])


@dataclass(frozen=True)
class IdentFrame:
    """The head's identity and its sensors' response times (s)."""

    seq: int
    ticks_ms: int
    model: str
    serial: str
    firmware: str
    t90: tuple  # ph3, ch3br, co2, o2


@dataclass(frozen=True)
class Query:
    """Ask for the identity line."""


Frame = MeasurementFrame | IdentFrame | Query


def _reading(text: str, name: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and 0.0 <= value <= RANGES[name]):
        raise ValueError(f'{name} {text!r} outside [0, {RANGES[name]:g}]')
    return value


def encode(frame: Frame) -> bytes:
    """Encode one frame as a terminated line (ValueError if a field cannot be sent)."""
    if isinstance(frame, MeasurementFrame):
        for name in RANGES:
            value = getattr(frame, name)
            if not (math.isfinite(value) and 0.0 <= value <= RANGES[name]):
                raise ValueError(f'{name} {value!r} outside the sensor range')
        fields = ['GASM', frame.seq % 2**32, frame.ticks_ms % 2**32, f'{frame.ph3_ppm:.2f}',
                  f'{frame.ch3br_ppm:.1f}', f'{frame.co2_ppm:.0f}', f'{frame.o2_pct:.1f}',
                  int(frame.flags)]
    elif isinstance(frame, IdentFrame):
        for text in (frame.model, frame.serial, frame.firmware):
            if ',' in text:
                raise ValueError(f'no commas in identity fields: {text!r}')
        fields = ['GASI', frame.seq % 2**32, frame.ticks_ms % 2**32, frame.model, frame.serial,
                  frame.firmware, *(f'{t:g}' for t in frame.t90)]
    elif isinstance(frame, Query):
        fields = ['GASQ', 'IDENT']
    else:
        raise TypeError(f'not a gas sensor frame: {frame!r}')
    return wrap(','.join(str(f) for f in fields))


def parse_line(line: bytes) -> Frame:
    """Parse one line (with or without its terminator); ProtocolError if it is not valid."""
    return parse_fields(line, _parse)


def _parse(fields) -> Frame:
    kind, count = fields[0], len(fields)
    if kind == 'GASM' and count == 8:
        flags = int(fields[7])
        if not 0 <= flags <= 7:
            raise ValueError(f'flags {flags} outside 0-7')
        return MeasurementFrame(u32(fields[1]), u32(fields[2]),
                                *(_reading(v, n) for v, n in zip(fields[3:7], RANGES,
                                                                 strict=True)), flags)
    if kind == 'GASI' and count == 10:
        t90 = tuple(float(v) for v in fields[6:10])
        if not all(math.isfinite(t) and 0 < t < 3600 for t in t90):
            raise ValueError(f'response times {t90} not in (0, 3600) s')
        return IdentFrame(u32(fields[1]), u32(fields[2]), fields[3], fields[4], fields[5],
                          t90)
    if kind == 'GASQ' and fields[1:] == ['IDENT']:
        return Query()
    raise ValueError(f'unknown frame type or field count: {kind} ({count} fields)')


class LineDecoder(ascii_lines.LineDecoder):
    """Split the head's byte stream into frames (errors counted, good lines kept)."""

    def __init__(self):
        super().__init__(parse_line)
