r"""The X-ray scanner's raw-data stream protocol, version 1: binary frames over a byte stream.

Documented in docs/protocols/xray_stream.md. A line scanner reads 250 lines/s of 352 pixels in
three 16-bit channels (about 0.5 MB/s), too much for a serial line: the stream runs over TCP for
a real scanner and over a Unix-domain socket for the simulator; nothing here cares which.

Every frame, all integers little-endian:

    magic EB 90 58 52 | version u8 | type u8 | flags u8 | seq u32 | ticks_ms u32 | length u32
    | payload (length bytes) | crc u32

crc is zlib.crc32 (CRC-32/ISO-HDLC) of the header (magic included) and the payload. seq counts
every frame the device sends (mod 2**32; the host numbers its commands on its own); ticks_ms
is the device clock in ms (mod 2**32). Device to host: STATUS (JSON object), LINES (a block of
consecutive detector lines), PARCEL_BEGIN / PARCEL_END (the light curtain's edges, the waybill
the belt's barcode reader read), CALIBRATION (the firmware's own dark or air reference), FAULT.
Host to device: COMMAND (START, STOP, CALIBRATE_DARK, CALIBRATE_AIR, STATUS).

`StreamDecoder` takes arbitrary chunks of the stream and returns whole frames; it skips
garbage, drops corrupt frames, resynchronises on the magic and counts what it dropped. A frame's
length is bounded (per type, and by `max_payload` overall), so that a corrupt length field never
makes it buffer more than one maximum frame.
"""

from dataclasses import dataclass, field
import enum
import json
import math
import re
import socket
import struct
import zlib

import numpy as np

from customs_lab.xray.scanner_model import CHANNELS

MAGIC = b'\xeb\x90XR'  # EB 90: the classic PCM telemetry frame sync word; then 'XR'
VERSION = 1
MAX_VERSION = 15  # versions stay below 16: a larger version byte marks a false magic
HEADER = struct.Struct('<4sBBBIII')  # magic, version, type, flags, seq, ticks_ms, length
HEADER_SIZE = HEADER.size  # 19
CRC_SIZE = 4
MAX_PAYLOAD = 4 * 2**20  # bytes; the decoder's default bound for any frame's payload
MAX_PIXELS = 4096
MAX_LINES_PER_FRAME = 65535
MAX_STATUS = 65536  # bytes of STATUS JSON
MAX_WAYBILL = 255  # bytes of UTF-8
MAX_TEXT = 1024  # bytes of UTF-8 in a FAULT

FLAG_REPLY = 0x01  # header flag: the frame answers a host command

LINE_XRAY_ON = 0x01  # line flag: the tube was on during the line
LINE_CALIBRATION = 0x02  # the line belongs to a calibration run the host asked for
LINE_OCCUPIED = 0x04  # the light curtain saw an object in the beam plane during the line

_LINES_HEAD = struct.Struct('<IHH')  # first_line, lines, pixels
_PARCEL = struct.Struct('<II')  # parcel, line
_CALIBRATION_HEAD = struct.Struct('<BBHI')  # kind, reserved, pixels, lines_used
_FAULT_HEAD = struct.Struct('<HB')  # code, severity
_COMMAND = struct.Struct('<B3xI')  # command, 3 reserved bytes, argument


class FrameType(enum.IntEnum):
    """The frame types of version 1 (device to host below 0x80, host to device above)."""

    STATUS = 0x01
    LINES = 0x02
    PARCEL_BEGIN = 0x03
    PARCEL_END = 0x04
    CALIBRATION = 0x05
    FAULT = 0x06
    COMMAND = 0x81


class CommandCode(enum.IntEnum):
    """What a COMMAND frame asks the device to do."""

    START = 1  # start acquisition: X-rays on, lines streamed
    STOP = 2  # stop acquisition: X-rays off, no lines
    CALIBRATE_DARK = 3  # argument: lines to average (0: the device's default)
    CALIBRATE_AIR = 4  # argument: lines to average (0: the device's default); belt must be empty
    STATUS = 5  # send a STATUS frame now


class FaultCode(enum.IntEnum):
    """Fault codes of version 1 (a device may send others; hosts show them as numbers)."""

    INTERLOCK_OPEN = 1  # a tunnel curtain, cover or emergency stop: X-rays are off
    TUBE = 2  # the tube or its generator (arc, kV or mA out of range)
    OVERTEMPERATURE = 3
    DETECTOR = 4  # a detector board does not answer
    LINES_DROPPED = 5  # lines were produced that the device could not send (no host, full FIFO)
    COMMAND_REJECTED = 6  # a valid command that cannot be done now (e.g. air calibration while
    # a parcel is in the tunnel); the text says why
    BAD_COMMAND = 7  # an unknown command code


SEVERITY_CLEARED, SEVERITY_WARNING, SEVERITY_ERROR = 0, 1, 2
CALIBRATION_KINDS = ('dark', 'air')  # wire codes 0 and 1


class ProtocolError(ValueError):
    """Bytes that are not a valid frame; `kind` names the decoder's counter it belongs to."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def _check_u32(value, what: str) -> int:
    if isinstance(value, bool) or int(value) != value or not 0 <= value < 2**32:
        raise ValueError(f'{what} must be an integer in [0, 2**32), got {value!r}')
    return int(value)


def _utf8(text: str, limit: int, what: str) -> bytes:
    raw = str(text).encode('utf-8')
    if len(raw) > limit:
        raise ValueError(f'{what} is {len(raw)} bytes of UTF-8, at most {limit}')
    return raw


# -- frames ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusFrame:
    """The device's identity and state (a JSON object on the wire; SI units unless named)."""

    seq: int
    ticks_ms: int
    model: str
    serial: str
    firmware: str
    pixels: int  # detector pixels per line
    pixel_pitch: float  # m across the belt, at the belt surface
    line_rate: float  # Hz
    belt_speed: float  # m/s
    kvp: float  # kV, tube voltage set point
    tube_current_ma: float  # mA
    xray_on: bool = False
    interlock_ok: bool = True  # every interlock closed: X-rays may be switched on
    acquiring: bool = False  # started: lines are being read and streamed
    temperature: float | None = None  # degrees C of the detector electronics; None: not said
    lines_dropped: int = 0  # lines produced since power-on that the device could not send
    extra: dict = field(default_factory=dict)  # keys this version does not know, kept
    flags: int = 0


_STATUS_TYPES = {
    'model': str, 'serial': str, 'firmware': str, 'pixels': int, 'pixel_pitch': float,
    'line_rate': float, 'belt_speed': float, 'kvp': float, 'tube_current_ma': float,
    'xray_on': bool, 'interlock_ok': bool, 'acquiring': bool, 'temperature': float,
    'lines_dropped': int,
}
_STATUS_OPTIONAL = ('xray_on', 'interlock_ok', 'acquiring', 'temperature', 'lines_dropped')


@dataclass(frozen=True, eq=False)
class LinesFrame:
    """A block of consecutive detector lines: raw ADU of the three channels, flags per line."""

    seq: int
    ticks_ms: int  # device time of the block's first line
    first_line: int  # the device's line number of the first line (mod 2**32)
    data: np.ndarray  # (3, lines, pixels) uint16: low, high, back (CHANNELS order)
    line_flags: np.ndarray  # (lines,) uint8: LINE_XRAY_ON | LINE_CALIBRATION | LINE_OCCUPIED
    flags: int = 0

    def __post_init__(self):
        """Check the arrays (ValueError) and store them as uint16 / uint8."""
        data = np.asarray(self.data)
        if data.ndim != 3 or data.shape[0] != len(CHANNELS):
            raise ValueError(f'LINES data must be (3, lines, pixels), got {data.shape}')
        lines, pixels = data.shape[1:]
        if not 1 <= lines <= MAX_LINES_PER_FRAME or not 1 <= pixels <= MAX_PIXELS:
            raise ValueError(f'LINES: 1-{MAX_LINES_PER_FRAME} lines of 1-{MAX_PIXELS} pixels, '
                             f'got {lines} x {pixels}')
        object.__setattr__(self, 'data', _as_uint(data, np.uint16, 'LINES data'))
        line_flags = np.asarray(self.line_flags)
        if line_flags.shape != (lines,):
            raise ValueError(f'line_flags must be ({lines},), got {line_flags.shape}')
        object.__setattr__(self, 'line_flags', _as_uint(line_flags, np.uint8, 'line flags'))

    @classmethod
    def from_channels(cls, seq, ticks_ms, first_line, low, high, back, line_flags, flags=0):
        """Build a frame from three (lines, pixels) arrays."""
        return cls(seq, ticks_ms, first_line, np.stack([low, high, back]), line_flags, flags)

    @property
    def lines(self) -> int:
        """Return the number of lines in the block."""
        return int(self.data.shape[1])

    @property
    def pixels(self) -> int:
        """Return the number of pixels per line."""
        return int(self.data.shape[2])

    @property
    def low(self) -> np.ndarray:
        """Return the low-energy (front layer) channel, (lines, pixels)."""
        return self.data[0]

    @property
    def high(self) -> np.ndarray:
        """Return the high-energy (rear layer) channel, (lines, pixels)."""
        return self.data[1]

    @property
    def back(self) -> np.ndarray:
        """Return the backscatter channel, (lines, pixels)."""
        return self.data[2]

    def __eq__(self, other):
        """Compare header fields and array contents."""
        if not isinstance(other, LinesFrame):
            return NotImplemented
        return ((self.seq, self.ticks_ms, self.first_line, self.flags)
                == (other.seq, other.ticks_ms, other.first_line, other.flags)
                and np.array_equal(self.data, other.data)
                and np.array_equal(self.line_flags, other.line_flags))


def _as_uint(array: np.ndarray, dtype, what: str) -> np.ndarray:
    if array.dtype == dtype:
        return array
    info = np.iinfo(dtype)
    if array.dtype.kind not in 'iub' or (array.size and (array.min() < 0
                                                         or array.max() > info.max)):
        raise ValueError(f'{what} must be integers in [0, {info.max}], got {array.dtype}')
    return array.astype(dtype)


@dataclass(frozen=True)
class ParcelBegin:
    """The light curtain saw a parcel's leading edge; its line is when the edge is in the beam."""

    seq: int
    ticks_ms: int
    parcel: int  # the device's count of parcels (mod 2**32), the same in the PARCEL_END
    line: int  # line number of the first line with the parcel in the beam plane
    waybill: str  # as the belt's barcode reader read it, '' if unread
    flags: int = 0


@dataclass(frozen=True)
class ParcelEnd:
    """The light curtain saw a parcel's trailing edge."""

    seq: int
    ticks_ms: int
    parcel: int
    line: int  # line number of the last line with the parcel in the beam plane
    flags: int = 0


@dataclass(frozen=True, eq=False)
class CalibrationFrame:
    """The firmware's own reference: each channel's mean per pixel over `lines_used` lines."""

    seq: int
    ticks_ms: int  # device time at the end of the calibration run
    kind: str  # 'dark' (X-rays off) or 'air' (X-rays on, belt empty)
    lines_used: int
    values: np.ndarray  # (3, pixels) float32 ADU
    flags: int = 0

    def __post_init__(self):
        """Check the kind and shape (ValueError); store the values as float32."""
        if self.kind not in CALIBRATION_KINDS:
            raise ValueError(f'calibration kind must be one of {CALIBRATION_KINDS}, '
                             f'got {self.kind!r}')
        values = np.asarray(self.values, dtype=np.float32)
        if values.ndim != 2 or values.shape[0] != 3 or not 1 <= values.shape[1] <= MAX_PIXELS:
            raise ValueError(f'calibration values must be (3, 1-{MAX_PIXELS}), '
                             f'got {values.shape}')
        object.__setattr__(self, 'values', values)

    @property
    def pixels(self) -> int:
        """Return the number of pixels."""
        return int(self.values.shape[1])

    def __eq__(self, other):
        """Compare fields and values."""
        if not isinstance(other, CalibrationFrame):
            return NotImplemented
        return ((self.seq, self.ticks_ms, self.kind, self.lines_used, self.flags)
                == (other.seq, other.ticks_ms, other.kind, other.lines_used, other.flags)
                and np.array_equal(self.values, other.values, equal_nan=True))


@dataclass(frozen=True)
class FaultFrame:
    """A device fault (or its clearing: severity 0)."""

    seq: int
    ticks_ms: int
    code: int  # FaultCode, or a device-specific number
    severity: int  # SEVERITY_CLEARED, SEVERITY_WARNING or SEVERITY_ERROR
    text: str
    flags: int = 0


@dataclass(frozen=True)
class Command:
    """Host to device: a command (the host numbers its own frames in seq)."""

    seq: int
    ticks_ms: int  # the host's clock, ms (informative)
    command: int  # CommandCode (an unknown number is decoded; the device answers BAD_COMMAND)
    argument: int = 0
    flags: int = 0


Frame = (StatusFrame | LinesFrame | ParcelBegin | ParcelEnd | CalibrationFrame | FaultFrame
         | Command)


# -- encoding ----------------------------------------------------------------------------------


def pack_frame(frame_type: int, seq: int, ticks_ms: int, payload: bytes, flags: int = 0,
               version: int = VERSION) -> bytes:
    """Return a whole frame around a payload (any type and version: tests and future types)."""
    if not 0 <= flags <= 255 or not 0 <= frame_type <= 255 or not 0 <= version <= 255:
        raise ValueError('version, type and flags are single bytes')
    header = HEADER.pack(MAGIC, version, frame_type, flags, _check_u32(seq, 'seq'),
                         _check_u32(ticks_ms, 'ticks_ms'), len(payload))
    crc = zlib.crc32(payload, zlib.crc32(header))
    return header + payload + struct.pack('<I', crc)


def _status_payload(frame: StatusFrame) -> bytes:
    body = {}
    for name, kind in _STATUS_TYPES.items():
        value = getattr(frame, name)
        if value is None:
            continue
        if kind is float:
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f'STATUS {name} must be finite, got {value}')
        body[name] = kind(value)
    clash = set(frame.extra) & set(_STATUS_TYPES)
    if clash:
        raise ValueError(f'STATUS extra keys clash with the defined ones: {sorted(clash)}')
    body.update(frame.extra)
    _check_status(body)
    raw = json.dumps(body, separators=(',', ':'), ensure_ascii=False, allow_nan=False)
    raw = raw.encode('utf-8')
    if len(raw) > MAX_STATUS:
        raise ValueError(f'STATUS is {len(raw)} bytes, at most {MAX_STATUS}')
    return raw


def _check_status(body: dict):
    for name, kind in _STATUS_TYPES.items():
        if name not in body:
            if name in _STATUS_OPTIONAL:
                continue
            raise ValueError(f'STATUS lacks {name!r}')
        value = body[name]
        if kind is float:
            ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
                  and math.isfinite(value))
        elif kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, kind)
        if not ok:
            raise ValueError(f'STATUS {name} must be {kind.__name__}, got {value!r}')
    if not 1 <= body['pixels'] <= MAX_PIXELS:
        raise ValueError(f'STATUS pixels must be in [1, {MAX_PIXELS}], got {body["pixels"]}')
    for name in ('pixel_pitch', 'line_rate'):
        if body[name] <= 0:
            raise ValueError(f'STATUS {name} must be > 0, got {body[name]}')
    if body['belt_speed'] < 0 or body['kvp'] < 0 or body['tube_current_ma'] < 0:
        raise ValueError('STATUS belt_speed, kvp and tube_current_ma must be >= 0')
    if body.get('lines_dropped', 0) < 0:
        raise ValueError('STATUS lines_dropped must be >= 0')


def _lines_payload(frame: LinesFrame) -> bytes:
    head = _LINES_HEAD.pack(_check_u32(frame.first_line, 'first_line'), frame.lines,
                            frame.pixels)
    return head + frame.data.astype('<u2', copy=False).tobytes() + frame.line_flags.tobytes()


def _calibration_payload(frame: CalibrationFrame) -> bytes:
    if not np.all(np.isfinite(frame.values)):
        raise ValueError('calibration values must be finite')
    head = _CALIBRATION_HEAD.pack(CALIBRATION_KINDS.index(frame.kind), 0, frame.pixels,
                                  _check_u32(frame.lines_used, 'lines_used'))
    return head + frame.values.astype('<f4', copy=False).tobytes()


def payload_of(frame: Frame) -> tuple[int, bytes]:
    """Return (frame type, payload bytes) of a frame (ValueError if it cannot be sent)."""
    if isinstance(frame, StatusFrame):
        return FrameType.STATUS, _status_payload(frame)
    if isinstance(frame, LinesFrame):
        return FrameType.LINES, _lines_payload(frame)
    if isinstance(frame, ParcelBegin):
        waybill = _utf8(frame.waybill, MAX_WAYBILL, 'waybill')
        return FrameType.PARCEL_BEGIN, _PARCEL.pack(
            _check_u32(frame.parcel, 'parcel'), _check_u32(frame.line, 'line')) + waybill
    if isinstance(frame, ParcelEnd):
        return FrameType.PARCEL_END, _PARCEL.pack(_check_u32(frame.parcel, 'parcel'),
                                                  _check_u32(frame.line, 'line'))
    if isinstance(frame, CalibrationFrame):
        return FrameType.CALIBRATION, _calibration_payload(frame)
    if isinstance(frame, FaultFrame):
        if not 0 <= frame.code <= 0xFFFF or frame.severity not in (0, 1, 2):
            raise ValueError(f'FAULT code must be a u16 and severity 0-2: {frame!r}')
        return FrameType.FAULT, (_FAULT_HEAD.pack(frame.code, frame.severity)
                                 + _utf8(frame.text, MAX_TEXT, 'fault text'))
    if isinstance(frame, Command):
        if not 0 <= frame.command <= 255:
            raise ValueError(f'command code must be a byte, got {frame.command}')
        return FrameType.COMMAND, _COMMAND.pack(frame.command,
                                                _check_u32(frame.argument, 'argument'))
    raise TypeError(f'not a protocol frame: {frame!r}')


def encode(frame: Frame) -> bytes:
    """Encode one frame (header, payload, CRC)."""
    frame_type, payload = payload_of(frame)
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f'payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}: send fewer '
                         f'lines per frame')
    return pack_frame(frame_type, frame.seq, frame.ticks_ms, payload, frame.flags)


# -- decoding ----------------------------------------------------------------------------------

# (smallest, largest) payload of each v1 type; LINES' largest is the decoder's max_payload
_LENGTHS = {
    FrameType.STATUS: (2, MAX_STATUS),
    FrameType.LINES: (_LINES_HEAD.size + 7, None),
    FrameType.PARCEL_BEGIN: (_PARCEL.size, _PARCEL.size + MAX_WAYBILL),
    FrameType.PARCEL_END: (_PARCEL.size, _PARCEL.size),
    FrameType.CALIBRATION: (_CALIBRATION_HEAD.size + 12,
                            _CALIBRATION_HEAD.size + 12 * MAX_PIXELS),
    FrameType.FAULT: (_FAULT_HEAD.size, _FAULT_HEAD.size + MAX_TEXT),
    FrameType.COMMAND: (_COMMAND.size, _COMMAND.size),
}


def _reject_constant(name):
    raise ValueError(f'{name} is not a JSON number')


def _decode_status(seq, ticks, flags, payload) -> StatusFrame:
    body = json.loads(payload.decode('utf-8'), parse_constant=_reject_constant)
    if not isinstance(body, dict):
        raise ValueError('STATUS must be a JSON object')
    _check_status(body)
    known = {name: body[name] for name in _STATUS_TYPES if name in body}
    for name, kind in _STATUS_TYPES.items():
        if name in known and kind is float:
            known[name] = float(known[name])
    extra = {k: v for k, v in body.items() if k not in _STATUS_TYPES}
    return StatusFrame(seq, ticks, extra=extra, flags=flags, **known)


def _decode_lines(seq, ticks, flags, payload) -> LinesFrame:
    first, lines, pixels = _LINES_HEAD.unpack_from(payload)
    _check_lines_length(len(payload), lines, pixels)
    count = 3 * lines * pixels
    data = np.frombuffer(payload, dtype='<u2', count=count, offset=_LINES_HEAD.size)
    data = data.reshape(3, lines, pixels).astype(np.uint16)  # native order, aligned, writable
    line_flags = np.frombuffer(payload, dtype=np.uint8, count=lines,
                               offset=_LINES_HEAD.size + 2 * count).copy()
    return LinesFrame(seq, ticks, first, data, line_flags, flags)


def _check_lines_length(length: int, lines: int, pixels: int):
    if not 1 <= lines or not 1 <= pixels <= MAX_PIXELS:
        raise ProtocolError('bad_length', f'LINES of {lines} lines x {pixels} pixels')
    expected = _LINES_HEAD.size + lines * (6 * pixels + 1)
    if length != expected:
        raise ProtocolError('bad_length', f'LINES of {lines} x {pixels} needs {expected} bytes, '
                            f'length says {length}')


def _decode_calibration(seq, ticks, flags, payload) -> CalibrationFrame:
    kind, _, pixels, lines_used = _CALIBRATION_HEAD.unpack_from(payload)
    if kind >= len(CALIBRATION_KINDS):
        raise ValueError(f'unknown calibration kind {kind}')
    if len(payload) != _CALIBRATION_HEAD.size + 12 * pixels or pixels < 1:
        raise ValueError(f'CALIBRATION of {pixels} pixels with {len(payload)} bytes')
    values = np.frombuffer(payload, dtype='<f4', count=3 * pixels,
                           offset=_CALIBRATION_HEAD.size).reshape(3, pixels)
    if not np.all(np.isfinite(values)):
        raise ValueError('CALIBRATION values are not finite')
    return CalibrationFrame(seq, ticks, CALIBRATION_KINDS[kind], lines_used,
                            values.astype(np.float32), flags)


def _decode_payload(frame_type, seq, ticks, flags, payload) -> Frame:
    if frame_type == FrameType.STATUS:
        return _decode_status(seq, ticks, flags, payload)
    if frame_type == FrameType.LINES:
        return _decode_lines(seq, ticks, flags, payload)
    if frame_type == FrameType.PARCEL_BEGIN:
        parcel, line = _PARCEL.unpack_from(payload)
        return ParcelBegin(seq, ticks, parcel, line, payload[_PARCEL.size:].decode('utf-8'),
                           flags)
    if frame_type == FrameType.PARCEL_END:
        return ParcelEnd(seq, ticks, *_PARCEL.unpack(payload), flags)
    if frame_type == FrameType.CALIBRATION:
        return _decode_calibration(seq, ticks, flags, payload)
    if frame_type == FrameType.FAULT:
        code, severity = _FAULT_HEAD.unpack_from(payload)
        if severity > SEVERITY_ERROR:
            raise ValueError(f'FAULT severity {severity}')
        text = payload[_FAULT_HEAD.size:].decode('utf-8')
        return FaultFrame(seq, ticks, code, severity, text, flags)
    command, argument = _COMMAND.unpack(payload)
    try:
        command = CommandCode(command)
    except ValueError:
        pass  # an unknown command reaches the device, which answers BAD_COMMAND
    return Command(seq, ticks, command, argument, flags)


def _header_problem(version: int, frame_type: int, length: int,
                    max_payload: int) -> tuple[str, str]:
    """Return (counter, why) if a header is impossible, else ('', '')."""
    if not 1 <= version <= MAX_VERSION:
        return 'bad_header', f'version byte {version}: not a frame header'
    if length > max_payload:
        return 'bad_length', f'payload length {length} exceeds the maximum {max_payload}'
    if version == VERSION and frame_type in _LENGTHS:
        low, high = _LENGTHS[frame_type]
        if length < low or (high is not None and length > high):
            return 'bad_length', (f'{FrameType(frame_type).name} payload of {length} bytes '
                                  f'(v1 allows {low}-{high or max_payload})')
    return '', ''


def decode_frame(data: bytes, max_payload: int = MAX_PAYLOAD) -> Frame:
    """Decode exactly one whole frame; raise ProtocolError (with the counter's kind) if invalid."""
    data = bytes(data)
    if len(data) < HEADER_SIZE + CRC_SIZE or data[:4] != MAGIC:
        raise ProtocolError('bad_header', f'not a frame: {data[:24].hex(" ")}')
    _, version, frame_type, flags, seq, ticks, length = HEADER.unpack_from(data)
    kind, problem = _header_problem(version, frame_type, length, max_payload)
    if problem:
        raise ProtocolError(kind, problem)
    if len(data) != HEADER_SIZE + length + CRC_SIZE:
        raise ProtocolError('bad_length', f'{len(data)} bytes, the header says '
                            f'{HEADER_SIZE + length + CRC_SIZE}')
    (crc,) = struct.unpack_from('<I', data, HEADER_SIZE + length)
    if crc != zlib.crc32(memoryview(data)[: HEADER_SIZE + length]):
        raise ProtocolError('bad_crc', f'CRC mismatch on a type 0x{frame_type:02x} frame, '
                            f'seq {seq}')
    if version != VERSION:
        raise ProtocolError('unsupported_version', f'version {version} frame (this host reads '
                            f'version {VERSION}), seq {seq}')
    if frame_type not in _LENGTHS:
        raise ProtocolError('unknown_type', f'unknown frame type 0x{frame_type:02x}, seq {seq}')
    payload = data[HEADER_SIZE: HEADER_SIZE + length]
    try:
        return _decode_payload(FrameType(frame_type), seq, ticks, flags, payload)
    except ProtocolError:
        raise
    except (ValueError, TypeError, KeyError, struct.error, UnicodeDecodeError) as error:
        raise ProtocolError('bad_payload', f'{FrameType(frame_type).name} seq {seq}: '
                            f'{error}') from None


class StreamDecoder:
    """Split a byte stream into frames; skip garbage, drop corrupt frames, count what it dropped.

    `stats`: frames decoded; skipped_bytes (garbage, and the bytes of frames with a bad CRC or
    an impossible header, passed over while resynchronising); bad_header (a magic followed by a
    version byte of 0 or above MAX_VERSION: a false magic), bad_length (an impossible length
    field), bad_crc; unknown_type, unsupported_version and bad_payload (whole frames with a
    good CRC that this version cannot read, skipped whole).
    """

    COUNTERS = ('frames', 'skipped_bytes', 'bad_header', 'bad_length', 'bad_crc',
                'unknown_type', 'unsupported_version', 'bad_payload')

    def __init__(self, max_payload: int = MAX_PAYLOAD):
        if not 64 <= max_payload <= 2**31:
            raise ValueError(f'max_payload must be in [64, 2**31], got {max_payload}')
        self.max_payload = int(max_payload)
        self._buffer = bytearray()
        self.stats = dict.fromkeys(self.COUNTERS, 0)
        self.last_error = ''
        self._resyncing = False
        self._scan_from = 0  # where the search for a frame inside an incomplete one goes on

    @property
    def buffered(self) -> int:
        """Return the bytes held for an incomplete frame."""
        return len(self._buffer)

    @property
    def error_count(self) -> int:
        """Return the number of frames and false headers dropped (all but skipped bytes)."""
        return sum(self.stats[k] for k in self.COUNTERS[2:])

    def reset(self):
        """Forget a partial frame (a new connection starts at a frame boundary)."""
        self._buffer.clear()
        self._scan_from = 0

    def _drop(self, kind: str, message: str):
        self.stats[kind] += 1
        self.last_error = message

    def feed(self, data: bytes) -> list[Frame]:
        """Add bytes; return the frames they completed, in order."""
        buffer = self._buffer
        buffer += data
        frames, position = [], 0
        while True:
            start = buffer.find(MAGIC, position)
            if start < 0:
                # keep a tail that may be the start of a magic split across chunks
                keep = next((k for k in (3, 2, 1) if buffer.endswith(MAGIC[:k])), 0)
                keep = min(keep, len(buffer) - position)
                self.stats['skipped_bytes'] += len(buffer) - position - keep
                position = len(buffer) - keep
                break
            if start > position:
                self.stats['skipped_bytes'] += start - position
                if not self._resyncing:  # else last_error says why the decoder resynchronises
                    self.last_error = f'{start - position} bytes of garbage before a frame'
                self._resyncing = False
            position = start
            available = len(buffer) - position
            if available < HEADER_SIZE:
                break
            _, version, frame_type, _, _, _, length = HEADER.unpack_from(buffer, position)
            kind, problem = _header_problem(version, frame_type, length, self.max_payload)
            if not problem and version == VERSION and frame_type == FrameType.LINES and (
                    available >= HEADER_SIZE + _LINES_HEAD.size):
                _, lines, pixels = _LINES_HEAD.unpack_from(buffer, position + HEADER_SIZE)
                try:
                    _check_lines_length(length, lines, pixels)
                except ProtocolError as error:
                    kind, problem = error.kind, str(error)
            if problem:  # a corrupt header or a false magic: look for the next magic
                self._drop(kind, problem)
                self._resyncing = True
                self.stats['skipped_bytes'] += 1
                position += 1
                continue
            total = HEADER_SIZE + length + CRC_SIZE
            if available < total:
                inner = self._whole_frame_inside(buffer, position)
                if inner is None:
                    break  # wait for the rest
                # a whole, sound frame starts inside this one: this one was cut short
                self._drop('bad_length', f'a frame cut short after {inner - position} of '
                           f'{total} bytes (a whole frame follows it)')
                self.stats['skipped_bytes'] += inner - position
                position = inner
                continue
            self._scan_from = 0
            try:
                frames.append(decode_frame(buffer[position: position + total], self.max_payload))
                self.stats['frames'] += 1
                position += total
            except ProtocolError as error:
                self._drop(error.kind, str(error))
                if error.kind == 'bad_crc':  # the length may be the corrupt part: resync
                    self.stats['skipped_bytes'] += 1
                    self._resyncing = True
                    position += 1
                else:  # a sound frame this host cannot read: skip it whole
                    position += total
        del buffer[:position]
        self._scan_from = max(0, self._scan_from - position)
        return frames

    def _whole_frame_inside(self, buffer: bytearray, position: int) -> int | None:
        """Return where a whole frame with a good CRC starts after `position`, else None.

        Looked for while waiting for the rest of a long frame, so that a frame cut short (a
        device's FIFO overrun) holds up the frames after it no longer than they take to arrive.
        Only bytes not searched before are searched again.
        """
        start = max(position + 1, self._scan_from)
        while True:
            candidate = buffer.find(MAGIC, start)
            if candidate < 0:
                self._scan_from = max(start, len(buffer) - 3)
                return None
            if len(buffer) - candidate < HEADER_SIZE:
                self._scan_from = candidate
                return None
            _, version, frame_type, _, _, _, length = HEADER.unpack_from(buffer, candidate)
            if not _header_problem(version, frame_type, length, self.max_payload)[1]:
                end = candidate + HEADER_SIZE + length + CRC_SIZE
                if end > len(buffer):
                    self._scan_from = candidate  # decide when it is whole
                    return None
                (crc,) = struct.unpack_from('<I', buffer, end - CRC_SIZE)
                if crc == zlib.crc32(buffer[candidate: end - CRC_SIZE]):
                    return candidate
            start = candidate + 1


# -- transport ---------------------------------------------------------------------------------

_TCP = re.compile(r'^(?:tcp:(?://)?)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$')


def parse_address(address: str) -> tuple[int, object]:
    """Return (socket family, address) for 'host:port' (TCP) or a path ('unix:' optional).

    'scanner.local:5600', 'tcp:10.0.0.7:5600' and '[::1]:5600' are TCP; '/run/x/xray.sock',
    'unix:xray.sock' and anything else without a ':port' are Unix-domain socket paths.
    """
    text = str(address).strip()
    if not text:
        raise ValueError('empty scanner address')
    if text.startswith('unix:'):
        return socket.AF_UNIX, text[len('unix:'):]
    match = _TCP.match(text)
    if match and '/' not in text:
        host, port = match.group(1), int(match.group(2))
        if not 0 <= port < 65536:  # 0: any free port (a listening socket)
            raise ValueError(f'bad TCP port in {address!r}')
        if host.startswith('['):
            return socket.AF_INET6, (host[1:-1], port)
        return socket.AF_INET, (host, port)
    return socket.AF_UNIX, text


def connect(address: str, timeout: float = 2.0) -> socket.socket:
    """Open a stream connection to a scanner (TCP or Unix socket); OSError if it fails."""
    family, target = parse_address(address)
    if family == socket.AF_UNIX:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(target)
        except OSError:
            sock.close()
            raise
    else:
        sock = socket.create_connection(target, timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock
