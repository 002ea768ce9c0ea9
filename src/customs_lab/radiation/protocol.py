r"""Serial protocol of the Customs Lab radiation portal monitor (RPM), version 3.

Documented in docs/protocols/rpm_serial.md. ASCII lines, NMEA-like, each protected by a CRC:

    $<TYPE>,<field>,...,<field>*<CRC>\r\n

CRC is CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final xor) of the bytes
between '$' and '*', written as 4 upper-case hex digits. Device to host:

    $RPMC,seq,ticks_ms,live_ms,occupied,c1,c2,...,cn[,N:n1:...:nm]
                                                        counts of one frame, one per gamma channel;
                                                        each ci is a gross count, or (version 2)
                                                        gross:w1:w2:...:wk with its counts in the
                                                        k energy windows of the status line;
                                                        (v3) N: and the counts of the m neutron
                                                        modules of the status line, same live time
    $RPMO,seq,ticks_ms,occupied,subject_id[,speed]     occupancy edge; subject_id as the lane
                                                        reader (OCR / barcode) read it, or empty;
                                                        speed (v2): m/s from the lane's sensors
    $RPMS,seq,ticks_ms,model,serial,hv_volts,temp_c,id1;id2;...;idn[,e0;e1;...;ek[,nid1;...;nidm]]
                                                        status, once a second and on request;
                                                        (v2) the energy windows' edges, keV
                                                        (empty if none); (v3) the neutron modules'
                                                        ids in count order
    $RPMG,seq,ticks_ms,detector,live_ms,real_ms,occupied,Z32,data
                                                        (v2) a spectrometer's pulse-height
                                                        spectrum over one spectrum period: data
                                                        is base64 of the zlib-compressed
                                                        little-endian uint32 counts per channel
    $RPMD,seq,ticks_ms,detector,hv_volts,temp_c,gain,channels,max_kev
                                                        (v2) a spectrometer's status with the
                                                        status line: its gain setting (1 =
                                                        factory calibration; channel i spans
                                                        [i, i + 1) * max_kev / channels keV
                                                        at that gain) and crystal temperature
Host to device:

    $RPMQ,STATUS                                        ask for a status line now
    $RPMX,GAIN,detector,gain                            (v2) set a spectrometer's gain (its
                                                        photomultiplier's high voltage), for
                                                        gain stabilisation

seq counts every line the device sends (mod 2**32); ticks_ms is the device clock (mod 2**32).
A version-1 host ignores the v2 line types (as unknown) and cannot read v2 count fields; a
version-2 host cannot read a v3 counts line with neutron counts (its device has neutron
modules), and v2 lines (no neutron field, status without module ids) read as before.
"""

import base64
import binascii
from dataclasses import dataclass
import itertools
import math
import struct
import zlib

from customs_lab.common import ascii_lines
from customs_lab.common.ascii_lines import (  # noqa: F401 (the protocol's names, as before)
    MAX_LINE,
    ProtocolError,
    crc16_ccitt,
    u32,
    unwrap,
    wrap,
)

MAX_CHANNELS = 16384  # of a spectrum


@dataclass(frozen=True)
class CountsFrame:
    """Counts of one counting interval, one value per gamma channel."""

    seq: int
    ticks_ms: int
    live_time: float  # s
    occupied: bool
    counts: tuple[int, ...]
    windows: tuple[tuple[int, ...], ...] = ()  # per channel, its counts per energy window
    neutrons: tuple[int, ...] | None = None  # (v3) per neutron module; None: not reported


@dataclass(frozen=True)
class OccupancyFrame:
    """The lane's occupancy sensor changed state; subject_id is what the lane reader read."""

    seq: int
    ticks_ms: int
    occupied: bool
    subject_id: str
    speed: float = math.nan  # m/s as the lane measured it; NaN if the device does not say


@dataclass(frozen=True)
class SpectrumFrame:
    """A spectrometer's counts per channel over one spectrum period."""

    seq: int
    ticks_ms: int
    detector_id: str
    live_time: float  # s
    real_time: float  # s
    occupied: bool
    counts: tuple[int, ...]


@dataclass(frozen=True)
class DetectorStatusFrame:
    """A spectrometer's health and energy calibration."""

    seq: int
    ticks_ms: int
    detector_id: str
    hv_volts: float
    temperature: float  # degrees Celsius
    gain: float  # the gain setting, 1 = factory calibration
    channels: int
    max_kev: float  # upper edge of the last channel at gain 1


@dataclass(frozen=True)
class SetGain:
    """Host command: set a spectrometer's gain."""

    detector_id: str
    gain: float


@dataclass(frozen=True)
class StatusFrame:
    """Device health and identity."""

    seq: int
    ticks_ms: int
    model: str
    serial: str
    hv_volts: float
    temperature: float  # degrees Celsius
    panel_ids: tuple[str, ...]
    window_edges_kev: tuple[float, ...] = ()
    neutron_module_ids: tuple[str, ...] = ()  # (v3) in the order of the counts' neutron field


@dataclass(frozen=True)
class StatusRequest:
    """Host request for an immediate status line."""


Frame = (
    CountsFrame
    | OccupancyFrame
    | StatusFrame
    | StatusRequest
    | SpectrumFrame
    | DetectorStatusFrame
    | SetGain
)


def _check_id(text: str, what: str):
    if not text or any(c in text for c in ',;:$*\r\n'):
        raise ValueError(f'{what} must be non-empty without , ; : $ * or line ends: {text!r}')


def encode_counts(counts) -> str:
    """Return the Z32 encoding of a spectrum (base64 of zlib of little-endian uint32)."""
    raw = struct.pack(f'<{len(counts)}I', *counts)
    return base64.b64encode(zlib.compress(raw, 6)).decode('ascii')


def decode_counts(text: str) -> tuple[int, ...]:
    """Return the counts of a Z32 field; raise ValueError if it is not valid."""
    try:
        packed = base64.b64decode(text.encode('ascii'), validate=True)
        inflater = zlib.decompressobj()
        raw = inflater.decompress(packed, 4 * MAX_CHANNELS + 1)
    except (binascii.Error, zlib.error) as error:
        raise ValueError(f'bad Z32 data: {error}') from None
    if not inflater.eof or len(raw) > 4 * MAX_CHANNELS or len(raw) % 4 or not raw:
        raise ValueError(f'Z32 data must hold 1..{MAX_CHANNELS} uint32 values')
    return struct.unpack(f'<{len(raw) // 4}I', raw)


def encode(frame: Frame) -> bytes:
    """Encode one frame as a terminated line."""
    if isinstance(frame, CountsFrame):
        channels = [str(int(c)) for c in frame.counts]
        if frame.windows:
            if len(frame.windows) != len(frame.counts):
                raise ValueError('window counts are needed for every channel')
            channels = [
                ':'.join([c] + [str(int(w)) for w in windows])
                for c, windows in zip(channels, frame.windows, strict=True)
            ]
        fields = [
            'RPMC',
            frame.seq,
            frame.ticks_ms,
            round(frame.live_time * 1000.0),
            int(frame.occupied),
            *channels,
        ]
        if frame.neutrons is not None:
            if not frame.neutrons:
                raise ValueError('a neutron field needs at least one module count')
            fields.append(':'.join(['N', *(str(int(n)) for n in frame.neutrons)]))
    elif isinstance(frame, OccupancyFrame):
        if ',' in frame.subject_id:
            raise ValueError('subject id may not contain a comma')
        fields = ['RPMO', frame.seq, frame.ticks_ms, int(frame.occupied), frame.subject_id]
        if math.isfinite(frame.speed):
            fields.append(f'{frame.speed:.3f}')
    elif isinstance(frame, SpectrumFrame):
        _check_id(frame.detector_id, 'detector id')
        fields = [
            'RPMG',
            frame.seq,
            frame.ticks_ms,
            frame.detector_id,
            round(frame.live_time * 1000.0),
            round(frame.real_time * 1000.0),
            int(frame.occupied),
            'Z32',
            encode_counts(frame.counts),
        ]
    elif isinstance(frame, DetectorStatusFrame):
        _check_id(frame.detector_id, 'detector id')
        fields = [
            'RPMD',
            frame.seq,
            frame.ticks_ms,
            frame.detector_id,
            f'{frame.hv_volts:.1f}',
            f'{frame.temperature:.2f}',
            f'{frame.gain:.5f}',
            frame.channels,
            f'{frame.max_kev:.1f}',
        ]
    elif isinstance(frame, SetGain):
        _check_id(frame.detector_id, 'detector id')
        fields = ['RPMX', 'GAIN', frame.detector_id, f'{frame.gain:.5f}']
    elif isinstance(frame, StatusFrame):
        if any(',' in p or ';' in p for p in frame.panel_ids):
            raise ValueError('panel ids may not contain , or ;')
        for module_id in frame.neutron_module_ids:
            _check_id(module_id, 'neutron module id')
        fields = [
            'RPMS',
            frame.seq,
            frame.ticks_ms,
            frame.model,
            frame.serial,
            f'{frame.hv_volts:.1f}',
            f'{frame.temperature:.1f}',
            ';'.join(frame.panel_ids),
        ]
        if frame.window_edges_kev or frame.neutron_module_ids:
            fields.append(';'.join(f'{e:g}' for e in frame.window_edges_kev))
        if frame.neutron_module_ids:
            fields.append(';'.join(frame.neutron_module_ids))
    elif isinstance(frame, StatusRequest):
        fields = ['RPMQ', 'STATUS']
    else:
        raise TypeError(f'not a protocol frame: {frame!r}')
    return wrap(','.join(str(f) for f in fields))


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f'{text!r} is not a finite number')
    return value


def _channel(text: str) -> tuple[int, tuple[int, ...]]:
    gross, *windows = text.split(':')
    return u32(gross), tuple(u32(w) for w in windows)


def _parse_counts(fields) -> CountsFrame:
    neutrons = None
    if fields[-1].startswith('N'):  # (v3) the neutron modules' counts, last
        tag, *values = fields[-1].split(':')
        if tag != 'N' or not values:
            raise ValueError(f'bad neutron field {fields[-1]!r}: expected N:n1:...:nm')
        neutrons = tuple(u32(v) for v in values)
        fields = fields[:-1]
    if len(fields) < 6:
        raise ValueError('a counts frame needs at least one channel')
    channels = [_channel(f) for f in fields[5:]]
    widths = {len(w) for _, w in channels}
    if len(widths) != 1:
        raise ValueError('every channel needs the same number of window counts')
    windows = tuple(w for _, w in channels) if widths != {0} else ()
    if any(sum(w) > c for c, w in channels):
        raise ValueError('window counts exceed the gross count')
    occupied = {'0': False, '1': True}[fields[4]]
    return CountsFrame(
        u32(fields[1]),
        u32(fields[2]),
        u32(fields[3]) / 1000.0,
        occupied,
        tuple(c for c, _ in channels),
        windows,
        neutrons,
    )


def _parse_spectrum(fields) -> SpectrumFrame:
    if fields[7] != 'Z32':
        raise ValueError(f'unknown spectrum encoding {fields[7]!r}')
    _check_id(fields[3], 'detector id')
    return SpectrumFrame(
        u32(fields[1]),
        u32(fields[2]),
        fields[3],
        u32(fields[4]) / 1000.0,
        u32(fields[5]) / 1000.0,
        {'0': False, '1': True}[fields[6]],
        decode_counts(fields[8]),
    )


def _parse_detector_status(fields) -> DetectorStatusFrame:
    _check_id(fields[3], 'detector id')
    channels = u32(fields[7])
    if not 1 <= channels <= MAX_CHANNELS:
        raise ValueError(f'{channels} channels')
    gain, max_kev = _finite(fields[6]), _finite(fields[8])
    if gain <= 0 or max_kev <= 0:
        raise ValueError('gain and max_kev must be > 0')
    return DetectorStatusFrame(
        u32(fields[1]),
        u32(fields[2]),
        fields[3],
        _finite(fields[4]),
        _finite(fields[5]),
        gain,
        channels,
        max_kev,
    )


def _parse_status(fields) -> StatusFrame:
    panels = tuple(p for p in fields[7].split(';') if p)
    edges_field = fields[8] if len(fields) > 8 else ''
    edges = tuple(_finite(e) for e in edges_field.split(';')) if edges_field else ()
    modules = tuple(fields[9].split(';')) if len(fields) == 10 else ()
    for module_id in modules:
        _check_id(module_id, 'neutron module id')
    if len(set(modules)) != len(modules):
        raise ValueError(f'neutron module ids repeat: {modules}')
    if edges and (len(edges) < 2 or any(b <= a for a, b in itertools.pairwise(edges))):
        raise ValueError(f'window edges must increase: {edges}')
    return StatusFrame(
        u32(fields[1]),
        u32(fields[2]),
        fields[3],
        fields[4],
        _finite(fields[5]),
        _finite(fields[6]),
        panels,
        edges,
        modules,
    )


def parse_line(line: bytes) -> Frame:
    """Parse one line (with or without its terminator). Raise ProtocolError if it is not valid."""
    body = unwrap(line)
    try:
        fields = body.decode('ascii').split(',')
        kind = fields[0]
        if kind == 'RPMC':
            return _parse_counts(fields)
        if kind == 'RPMO' and len(fields) in (5, 6):
            speed = _finite(fields[5]) if len(fields) == 6 else math.nan
            if speed < 0:
                raise ValueError(f'negative speed {speed}')
            return OccupancyFrame(
                u32(fields[1]),
                u32(fields[2]),
                {'0': False, '1': True}[fields[3]],
                fields[4],
                speed,
            )
        if kind == 'RPMS' and len(fields) in (8, 9, 10):
            return _parse_status(fields)
        if kind == 'RPMG' and len(fields) == 9:
            return _parse_spectrum(fields)
        if kind == 'RPMD' and len(fields) == 9:
            return _parse_detector_status(fields)
        if kind == 'RPMQ' and fields[1:] == ['STATUS']:
            return StatusRequest()
        if kind == 'RPMX' and len(fields) == 4 and fields[1] == 'GAIN':
            _check_id(fields[2], 'detector id')
            gain = _finite(fields[3])
            if not 0.5 <= gain <= 2.0:
                raise ValueError(f'gain {gain} outside 0.5-2')
            return SetGain(fields[2], gain)
        raise ValueError(f'unknown frame type or field count: {kind} ({len(fields)} fields)')
    except (ValueError, KeyError, IndexError, UnicodeDecodeError) as error:
        raise ProtocolError('content', f'{error} in {body[:60]!r}') from None


class LineDecoder(ascii_lines.LineDecoder):
    """Split the portal's byte stream into frames (common/ascii_lines.py: errors counted)."""

    def __init__(self):
        super().__init__(parse_line)
