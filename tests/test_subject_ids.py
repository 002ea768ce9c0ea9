"""ISO 6346 container numbers, UPU S10 postal identifiers and subject validation."""

import pytest

from customs_lab.common import iso6346, upu_s10
from customs_lab.common.subjects import Subject, SubjectKind, validate_id


@pytest.mark.parametrize('number', ['CSQU3054383', 'MSCU6639870', 'OOLU1548378'])
def test_known_container_numbers_have_correct_check_digit(number):
    # CSQU3054383 is the example of ISO 6346 itself; the others are painted on real containers.
    assert iso6346.is_valid(number)


def test_check_digit_values():
    assert iso6346.check_digit('CSQU305438') == 3
    # a remainder of 10 is written as 0
    numbers = [f'ABCU{n:06d}' for n in range(2000)]
    raw = []
    for number in numbers:
        total = sum(
            (iso6346._LETTER_VALUES[c] if c.isalpha() else int(c)) * 2**i
            for i, c in enumerate(number)
        )
        raw.append(total % 11)
    assert 10 in raw
    for number, remainder in zip(numbers, raw, strict=True):
        assert iso6346.check_digit(number) == remainder % 10


def test_corrupted_numbers_are_rejected_with_a_reason():
    valid, reason = iso6346.validate('CSQU3054384')
    assert not valid and 'should be 3' in reason
    for bad in ['CSQ3054383', 'CSQX3054383', 'CSQU305438', '', 'csqu 305438 3x']:
        assert not iso6346.is_valid(bad)
    assert iso6346.is_valid('csqu 305438-3')  # as painted on doors, normalised


def test_every_single_digit_error_is_caught():
    number = 'CSQU3054383'
    for position in range(4, 11):
        for digit in '0123456789':
            if digit != number[position]:
                corrupted = number[:position] + digit + number[position + 1 :]
                assert not iso6346.is_valid(corrupted), corrupted


def test_make_number_round_trips():
    number = iso6346.make_number('MSC', 123456)
    assert number.startswith('MSCU123456') and iso6346.is_valid(number)
    with pytest.raises(ValueError):
        iso6346.make_number('MSC', 10**6)


def test_upu_s10():
    assert upu_s10.check_digit('12345678') == 5
    assert upu_s10.validate('RR123456785KR') == (True, '')
    valid, reason = upu_s10.validate('RR123456784KR')
    assert not valid and 'should be 5' in reason
    identifier = upu_s10.make_identifier('EE', 1, 'CN')
    assert identifier == 'EE00000001' + str(upu_s10.check_digit('00000001')) + 'CN'
    assert upu_s10.validate(identifier)[0]


def test_subject_validation_and_keys():
    assert validate_id(SubjectKind.CONTAINER, 'CSQU3054383')[0]
    assert not validate_id(SubjectKind.CONTAINER, 'CSQU3054384')[0]
    assert validate_id(SubjectKind.PARCEL, 'RR123456785KR')[0]
    assert not validate_id(SubjectKind.PARCEL, 'RR123456784KR')[0]
    assert validate_id(SubjectKind.PARCEL, '1Z999AA10123456784')[0]  # express waybill
    assert not validate_id(SubjectKind.PASSENGER, 'trk-1')[0]  # needs a zone
    assert validate_id(SubjectKind.PASSENGER, 'trk-1', 'hall_a')[0]
    assert Subject(SubjectKind.PASSENGER, 'trk-1', 'hall_a').key == 'passenger:hall_a/trk-1'
    assert Subject(SubjectKind.CONTAINER, 'CSQU3054383').key == 'container:CSQU3054383'
