r"""Serial protocol of the Customs Lab radiation portal monitor (RPM), version 1.

Documented in docs/protocols/rpm_serial.md. ASCII lines, NMEA-like, each protected by a CRC:

    $<TYPE>,<field>,...,<field>*<CRC>\r\n

CRC is CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final xor) of the bytes
between '$' and '*', written as 4 upper-case hex digits. Device to host:

    $RPMC,seq,ticks_ms,live_ms,occupied,c1,c2,...,cn   counts of one frame, one per gamma channel
    $RPMO,seq,ticks_ms,occupied,subject_id             occupancy edge; subject_id as the lane
                                                        reader (OCR / barcode) read it, or empty
    $RPMS,seq,ticks_ms,model,serial,hv_volts,temp_c,id1;id2;...;idn
                                                        status, once a second and on request
Host to device:

    $RPMQ,STATUS                                        ask for a status line now

seq counts every line the device sends (mod 2**32); ticks_ms is the device clock (mod 2**32).
"""

from dataclasses import dataclass

MAX_LINE = 512  # bytes; a longer line without a terminator is discarded as garbage


def crc16_ccitt(data: bytes) -> int:
    """Return the CRC-16/CCITT-FALSE of `data` (check value of b'123456789' is 0x29B1)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


@dataclass(frozen=True)
class CountsFrame:
    """Counts of one counting interval, one value per gamma channel."""

    seq: int
    ticks_ms: int
    live_time: float  # s
    occupied: bool
    counts: tuple[int, ...]


@dataclass(frozen=True)
class OccupancyFrame:
    """The lane's occupancy sensor changed state; subject_id is what the lane reader read."""

    seq: int
    ticks_ms: int
    occupied: bool
    subject_id: str


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


@dataclass(frozen=True)
class StatusRequest:
    """Host request for an immediate status line."""


Frame = CountsFrame | OccupancyFrame | StatusFrame | StatusRequest


def _wrap(body: str) -> bytes:
    if any(c in body for c in '$*\r\n'):
        raise ValueError(f'reserved character in frame body: {body!r}')
    raw = body.encode('ascii')
    return b'$' + raw + b'*' + f'{crc16_ccitt(raw):04X}'.encode('ascii') + b'\r\n'


def encode(frame: Frame) -> bytes:
    """Encode one frame as a terminated line."""
    if isinstance(frame, CountsFrame):
        fields = [
            'RPMC',
            frame.seq,
            frame.ticks_ms,
            round(frame.live_time * 1000.0),
            int(frame.occupied),
            *frame.counts,
        ]
    elif isinstance(frame, OccupancyFrame):
        if ',' in frame.subject_id:
            raise ValueError('subject id may not contain a comma')
        fields = ['RPMO', frame.seq, frame.ticks_ms, int(frame.occupied), frame.subject_id]
    elif isinstance(frame, StatusFrame):
        if any(',' in p or ';' in p for p in frame.panel_ids):
            raise ValueError('panel ids may not contain , or ;')
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
    elif isinstance(frame, StatusRequest):
        fields = ['RPMQ', 'STATUS']
    else:
        raise TypeError(f'not a protocol frame: {frame!r}')
    return _wrap(','.join(str(f) for f in fields))


class ProtocolError(ValueError):
    """A line that is not a valid frame; `kind` is 'crc', 'framing' or 'content'."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def _u32(text: str) -> int:
    value = int(text)
    if not 0 <= value < 2**32:
        raise ValueError(f'{value} out of the 32-bit range')
    return value


def parse_line(line: bytes) -> Frame:
    """Parse one line (with or without its terminator). Raise ProtocolError if it is not valid."""
    line = line.strip(b'\r\n')
    if not line.startswith(b'$') or len(line) < 7 or line[-5:-4] != b'*':
        raise ProtocolError('framing', f'not a $...*CRC line: {line[:60]!r}')
    body, crc_text = line[1:-5], line[-4:]
    try:
        crc = int(crc_text, 16)
    except ValueError:
        raise ProtocolError('framing', f'CRC is not hex: {crc_text!r}') from None
    if crc != crc16_ccitt(body):
        raise ProtocolError('crc', f'CRC mismatch on {body[:40]!r}')
    try:
        fields = body.decode('ascii').split(',')
        kind = fields[0]
        if kind == 'RPMC':
            if len(fields) < 6:
                raise ValueError('a counts frame needs at least one channel')
            counts = tuple(_u32(f) for f in fields[5:])
            occupied = {'0': False, '1': True}[fields[4]]
            return CountsFrame(
                _u32(fields[1]), _u32(fields[2]), _u32(fields[3]) / 1000.0, occupied, counts
            )
        if kind == 'RPMO' and len(fields) == 5:
            return OccupancyFrame(
                _u32(fields[1]), _u32(fields[2]), {'0': False, '1': True}[fields[3]], fields[4]
            )
        if kind == 'RPMS' and len(fields) == 8:
            panels = tuple(p for p in fields[7].split(';') if p)
            return StatusFrame(
                _u32(fields[1]),
                _u32(fields[2]),
                fields[3],
                fields[4],
                float(fields[5]),
                float(fields[6]),
                panels,
            )
        if kind == 'RPMQ' and fields[1:] == ['STATUS']:
            return StatusRequest()
        raise ValueError(f'unknown frame type or field count: {kind} ({len(fields)} fields)')
    except (ValueError, KeyError, IndexError, UnicodeDecodeError) as error:
        raise ProtocolError('content', f'{error} in {body[:60]!r}') from None


class LineDecoder:
    """Split a byte stream into frames; count and remember what was wrong, lose no good frame."""

    def __init__(self):
        self._buffer = bytearray()
        self.errors = {'crc': 0, 'framing': 0, 'content': 0, 'overflow': 0}
        self.last_error = ''

    def feed(self, data: bytes) -> list[Frame]:
        """Add bytes; return the frames completed by them, in order."""
        self._buffer.extend(data)
        frames = []
        while True:
            end = self._buffer.find(b'\n')
            if end < 0:
                if len(self._buffer) > MAX_LINE:
                    self._record('overflow', f'{len(self._buffer)} bytes without a line end')
                    # keep a possible frame start, drop the garbage before it
                    start = self._buffer.rfind(b'$')
                    del self._buffer[: start if start > 0 else len(self._buffer)]
                return frames
            line = bytes(self._buffer[: end + 1])
            del self._buffer[: end + 1]
            start = line.rfind(b'$')  # resynchronise: garbage before the last '$' is dropped
            if start > 0:
                self._record('framing', f'{start} garbage bytes before a frame')
                line = line[start:]
            if not line.strip():
                continue
            try:
                frames.append(parse_line(line))
            except ProtocolError as error:
                self._record(error.kind, str(error))

    def _record(self, kind: str, message: str):
        self.errors[kind] += 1
        self.last_error = message

    @property
    def error_count(self) -> int:
        """Return the number of bad lines and garbage runs seen so far."""
        return sum(self.errors.values())
