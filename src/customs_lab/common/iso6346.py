"""ISO 6346 container numbers: owner code, equipment category, serial number and check digit.

A container number is 4 letters (3-letter owner code + category U/J/Z/R), 6 serial digits and a
check digit, e.g. ``CSQU3054383``. The check digit is computed from the first ten characters:
letters take the values 10..38 skipping multiples of 11, each character's value is weighted by
2**position, the sum is taken modulo 11, and a remainder of 10 is written as 0.
"""

import re

_PATTERN = re.compile(r'^([A-Z]{3})([UJZR])(\d{6})(\d)$')
CATEGORIES = {
    'U': 'freight container',
    'J': 'detachable freight equipment',
    'Z': 'trailer or chassis',
    'R': 'reefer',
}


def _letter_values():
    values, value = {}, 10
    for letter in 'ABCDEFGHIJKLMNOPQRSTUVWXYZ':
        if value % 11 == 0:
            value += 1
        values[letter] = value
        value += 1
    return values


_LETTER_VALUES = _letter_values()


def normalize(number: str) -> str:
    """Return the number in upper case without spaces, dashes and slashes (as on doors)."""
    return re.sub(r'[\s\-/]', '', number).upper()


def check_digit(first_ten: str) -> int:
    """Return the ISO 6346 check digit of the owner code, category and serial (10 characters)."""
    first_ten = normalize(first_ten)
    if not re.fullmatch(r'[A-Z]{4}\d{6}', first_ten):
        raise ValueError(f'not an ISO 6346 owner code + category + serial: {first_ten!r}')
    total = 0
    for position, char in enumerate(first_ten):
        value = _LETTER_VALUES[char] if char.isalpha() else int(char)
        total += value * (2**position)
    return total % 11 % 10


def validate(number: str) -> tuple[bool, str]:
    """Check a container number. Return (valid, reason); reason is empty when valid."""
    text = normalize(number)
    match = _PATTERN.match(text)
    if not match:
        return False, f'{number!r} is not 3 letters + U/J/Z/R + 6 digits + check digit'
    expected = check_digit(text[:10])
    if int(match.group(4)) != expected:
        return False, f'{text}: check digit {match.group(4)} should be {expected}'
    return True, ''


def is_valid(number: str) -> bool:
    """Return True if `number` is a well-formed ISO 6346 number with a correct check digit."""
    return validate(number)[0]


def make_number(owner: str, serial: int, category: str = 'U') -> str:
    """Build a valid container number from a 3-letter owner code and a serial (0..999999)."""
    if not 0 <= serial <= 999_999:
        raise ValueError(f'serial out of range: {serial}')
    first_ten = f'{owner.upper()}{category.upper()}{serial:06d}'
    return first_ten + str(check_digit(first_ten))
