"""Subjects of inspection (containers, parcels, passengers) as plain data, with id validation.

The values of SubjectKind are those of customs_interfaces/msg/SubjectRef (KIND_*).
"""

from dataclasses import dataclass
import enum
import re

from customs_lab.common import iso6346, upu_s10


class SubjectKind(enum.IntEnum):
    """What a subject is; the values match SubjectRef.KIND_*."""

    UNKNOWN = 0
    CONTAINER = 1
    PARCEL = 2
    PASSENGER = 3


_EXPRESS_WAYBILL = re.compile(r'^[A-Z0-9]{8,20}$')
_TRACK_ID = re.compile(r'^[A-Za-z0-9_\-.]{1,64}$')


def validate_id(kind: SubjectKind, subject_id: str, zone: str = '') -> tuple[bool, str]:
    """Validate a subject id for its kind. Return (valid, reason); reason is empty when valid.

    Containers need an ISO 6346 number with a correct check digit. Parcels need a UPU S10 postal
    identifier with a correct check digit, or an express waybill of 8-20 letters/digits (carriers'
    own check schemes vary). Passengers need an anonymous track id and the zone it belongs to.
    """
    kind = SubjectKind(kind)
    if kind == SubjectKind.CONTAINER:
        return iso6346.validate(subject_id)
    if kind == SubjectKind.PARCEL:
        text = subject_id.replace(' ', '').upper()
        if re.fullmatch(r'[A-Z]{2}\d{9}[A-Z]{2}', text):
            return upu_s10.validate(text)
        if _EXPRESS_WAYBILL.match(text):
            return True, ''
        return False, f'{subject_id!r} is neither a UPU S10 identifier nor an express waybill'
    if kind == SubjectKind.PASSENGER:
        if not zone:
            return False, 'a passenger track id needs the zone it belongs to'
        if not _TRACK_ID.match(subject_id):
            return False, f'{subject_id!r} is not an anonymous track id'
        return True, ''
    return False, 'unknown subject kind'


@dataclass(frozen=True)
class Subject:
    """A subject of inspection: kind, id as read, and the zone where the id is meaningful."""

    kind: SubjectKind
    id: str
    zone: str = ''

    @property
    def key(self) -> str:
        """Return a text key unique across kinds and zones (e.g. 'container:CSQU3054383')."""
        name = SubjectKind(self.kind).name.lower()
        return f'{name}:{self.zone}/{self.id}' if self.zone else f'{name}:{self.id}'

    def validate(self) -> tuple[bool, str]:
        """Validate the id for the subject's kind (see validate_id)."""
        return validate_id(self.kind, self.id, self.zone)
