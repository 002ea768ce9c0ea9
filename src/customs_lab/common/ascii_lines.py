r"""NMEA-like ASCII line framing with a CRC, shared by the devices' serial protocols.

Core module (no ROS). A frame is one line:

    $<TYPE>,<field>,...,<field>*<CRC>\r\n

CRC is CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no reflection, no final
XOR) of the bytes between '$' and '*', as 4 upper-case hexadecimal digits (check value of
b'123456789': 0x29B1). The characters '$ * CR LF' never occur inside a frame. A protocol
(radiation/protocol.py, robot/motor_protocol.py, ...) gives the field layouts; this module
wraps and unwraps lines and splits a byte stream into them, counting what was wrong and losing
no good line around a bad one.
"""

MAX_LINE = 16384  # bytes; a longer line without a terminator is discarded as garbage


def crc16_ccitt(data: bytes) -> int:
    """Return the CRC-16/CCITT-FALSE of `data` (check value of b'123456789' is 0x29B1)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def u32(text: str) -> int:
    """Return a field as an unsigned 32-bit integer (ValueError otherwise)."""
    value = int(text)
    if not 0 <= value < 2**32:
        raise ValueError(f'{value} out of the 32-bit range')
    return value


class ProtocolError(ValueError):
    """A line that is not a valid frame; `kind` is 'crc', 'framing' or 'content'."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def wrap(body: str) -> bytes:
    """Return the terminated line of a frame body (ValueError on a reserved character)."""
    if any(c in body for c in '$*\r\n'):
        raise ValueError(f'reserved character in frame body: {body!r}')
    raw = body.encode('ascii')
    return b'$' + raw + b'*' + f'{crc16_ccitt(raw):04X}'.encode('ascii') + b'\r\n'


def unwrap(line: bytes) -> bytes:
    """Return the body of a line (with or without its terminator): ProtocolError if broken."""
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
    return body


def parse_fields(line: bytes, parse):
    """Unwrap a line and return parse(its comma-separated fields); a bad field is ProtocolError.

    parse(fields) raises ValueError, KeyError or IndexError on content it cannot accept.
    """
    body = unwrap(line)
    try:
        return parse(body.decode('ascii').split(','))
    except (ValueError, KeyError, IndexError, UnicodeDecodeError) as error:
        raise ProtocolError('content', f'{error} in {body[:60]!r}') from None


class LineDecoder:
    """Split a byte stream into frames with `parse_line`; count and remember what was wrong."""

    def __init__(self, parse_line):
        """parse_line(line bytes) -> frame, raising ProtocolError for a bad line."""
        self._parse = parse_line
        self._buffer = bytearray()
        self.errors = {'crc': 0, 'framing': 0, 'content': 0, 'overflow': 0}
        self.last_error = ''

    def feed(self, data: bytes) -> list:
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
                frames.append(self._parse(line))
            except ProtocolError as error:
                self._record(error.kind, str(error))

    def _record(self, kind: str, message: str):
        self.errors[kind] += 1
        self.last_error = message

    @property
    def error_count(self) -> int:
        """Return the number of bad lines and garbage runs seen so far."""
        return sum(self.errors.values())
