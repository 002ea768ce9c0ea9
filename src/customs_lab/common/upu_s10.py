"""UPU S10 identifiers of postal items (e.g. ``RR123456785KR``).

Two letters of service indicator, an 8-digit serial, a check digit and a 2-letter country code.

The check digit of the 8-digit serial uses the weights 8 6 4 2 3 5 9 7; the check digit is
11 - (sum mod 11), with 10 written as 0 and 11 as 5.
"""

import re

_PATTERN = re.compile(r'^([A-Z]{2})(\d{8})(\d)([A-Z]{2})$')
_WEIGHTS = (8, 6, 4, 2, 3, 5, 9, 7)


def check_digit(serial: str) -> int:
    """Return the S10 check digit of an 8-digit serial number."""
    if not re.fullmatch(r'\d{8}', serial):
        raise ValueError(f'an S10 serial has 8 digits: {serial!r}')
    remainder = sum(int(d) * w for d, w in zip(serial, _WEIGHTS, strict=True)) % 11
    digit = 11 - remainder
    return {10: 0, 11: 5}.get(digit, digit)


def validate(identifier: str) -> tuple[bool, str]:
    """Check an S10 identifier. Return (valid, reason); reason is empty when valid."""
    text = identifier.replace(' ', '').upper()
    match = _PATTERN.match(text)
    if not match:
        return (
            False,
            f'{identifier!r} is not 2 letters + 8 digits + check digit + 2-letter country',
        )
    expected = check_digit(match.group(2))
    if int(match.group(3)) != expected:
        return False, f'{text}: check digit {match.group(3)} should be {expected}'
    return True, ''


def make_identifier(service: str, serial: int, country: str) -> str:
    """Build a valid S10 identifier from a service indicator, serial and country code."""
    digits = f'{serial:08d}'
    return f'{service.upper()}{digits}{check_digit(digits)}{country.upper()}'
