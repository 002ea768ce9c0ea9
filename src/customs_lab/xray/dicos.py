"""A parcel's raw X-ray scan as NEMA DICOS files (NEMA IIC 1), written and read with pydicom.

The site keeps its own raw data in an open, documented format: DICOS, the DICOM-based standard for
security screening. docs/xray_raw_data.md is the description for analysts and other vendors; this
docstring is the implementer's summary.

Layout: one DICOS *scan* per parcel, holding three *series* of one image each, one per channel
(`low`, `high`, `back`), written to one directory as `low.dcs`, `high.dcs`, `back.dcs`.
Each image is a "DICOS Digital X-Ray Image Storage - For Processing" object: uint16 raw ADU, bit
for bit, uncompressed (Explicit VR Little Endian), rows = lines (belt travel), columns = detector
pixels. Why not one multi-frame file: the DICOS DX IOD, like DICOM DX, holds a single 2D image
(the Stratovan DICOS Toolkit's DX class is "a DX IOD that contains a single Digital X-Ray image"
and disables 3-D data), and DICOS describes multi-energy data as one series per energy
(Series Energy (6100,0030)); a multi-frame DX would not be readable as DICOS by other software.

Each object also carries everything needed to rebuild the `XrayScan` exactly, in a private block
of group 0x4011 reserved by the private creator 'CUSTOMS_LAB 1.0' (element xx = the block):
  (4011,xx01) LO  format version, '1'
  (4011,xx02) LO  channel: 'low', 'high' or 'back'
  (4011,xx03) OD  this channel's dark reference, float64 per detector pixel, ADU
  (4011,xx04) OD  this channel's air reference, float64 per detector pixel, ADU
  (4011,xx05) UT  the scan record: JSON (ASCII, sorted keys) of every XrayScan field that is not
                  an array (RECORD_FIELDS), floats exact (shortest repr), `extra` as given
The standard attributes (OOI ID, KVP, Pixel Spacing, ...) repeat these values for other readers,
rounded to their VRs (16-character decimal strings, 64-character names); `read_scan` rebuilds the
scan from the private block and the pixel data only.

Verified identifiers (no DICOS text is freely available; NEMA sells IIC 1):
- SOP Class UIDs 1.2.840.10008.5.1.4.1.1.501.2.2 (For Processing) and .501.2.1 (For
  Presentation): pydicom 3.0.2's UID dictionary (pydicom._uid_dict, pydicom.uid constants), the
  UID tables of DCMTK, fo-dicom and dicom-rs, and the Stratovan DICOS Toolkit's ModuleDX.h.
- DICOS attributes in group 4010 (OOI Type, Scan Type, Acquisition Status, DICOS Version,
  Low/High Energy Detectors, ...): pydicom's data dictionary (DICOM PS3.6 lists them).
- Module contents and enumerated values (OOI ID = (0010,0020), OOI ID Type TEXT/RFID/BARCODE/MRP,
  OOI Type CARGO/BAGGAGE/..., Scan Type OPERATIONAL, Acquisition Status SUCCESSFUL, Image Type
  value 2 'LOW ENERGY'/'HIGH ENERGY'/'INTENSITY', X-Ray Tube Current in uA (0018,8151), DICOS
  Version 'V03', Series Energy (6100,0030), Series Energy Description (6100,0031), Number of
  Energies (6100,0032)): the Stratovan DICOS Toolkit's module headers, which cite "SPECREF V03"
  table numbers; not checked against the standard's text. Group 6100 is not in the DICOM
  dictionary; those three elements are written with explicit VRs.
- Not verified: Modality. We write 'DX' (DICOM's term; the Toolkit's DX series says "internally
  set to DX") but the Toolkit's modality enumeration also lists 'XRAY' for its DX class.
Deviations: Calibration Date/Time (0018,1200/1201) is not written (the scan does not say when
its references were taken); Machine Location/Address are empty unless given; the X-Ray Equipment
module (grating interferometry attributes in group 4300) and the Itinerary module are absent.
"""

from dataclasses import dataclass
import datetime
import hashlib
import json
import math
import operator
import os
from pathlib import Path
import re
import tempfile
import unicodedata

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    DICOSDigitalXRayImageStorageForPresentation,
    DICOSDigitalXRayImageStorageForProcessing,
    ExplicitVRLittleEndian,
    generate_uid,
)
from pydicom.valuerep import DSfloat

from customs_lab import __version__
from customs_lab.xray.scan import XrayScan
from customs_lab.xray.scanner_model import CHANNELS

SOP_CLASS_FOR_PROCESSING = DICOSDigitalXRayImageStorageForProcessing  # ...501.2.2, raw
SOP_CLASS_FOR_PRESENTATION = DICOSDigitalXRayImageStorageForPresentation  # ...501.2.1
MODALITY = 'DX'
DICOS_VERSION = 'V03'
MANUFACTURER = 'Customs Lab'
FILE_SUFFIX = '.dcs'  # the DICOS Toolkit's file extension
PRIVATE_GROUP = 0x4011
PRIVATE_CREATOR = 'CUSTOMS_LAB 1.0'
FORMAT_VERSION = '1'
OOI_TYPES = ('BIO_SAMPLE', 'CARGO', 'BAGGAGE', 'ANIMAL', 'OTHER', 'PERSON')
# every XrayScan field that the private scan record (4011,xx05) carries: all but the arrays
RECORD_FIELDS = ('device_id', 'waybill', 'first_seq', 'start_time', 'line_period', 'belt_speed',
                 'pixel_pitch', 'kvp', 'tube_current_ma', 'model', 'serial', 'extra')
_TEXT_FIELDS = ('device_id', 'waybill', 'model', 'serial')
_FLOAT_FIELDS = ('start_time', 'line_period', 'belt_speed', 'pixel_pitch', 'kvp',
                 'tube_current_ma')

_P_VERSION, _P_CHANNEL, _P_DARK, _P_AIR, _P_RECORD = 0x01, 0x02, 0x03, 0x04, 0x05
# group 6100 elements of DICOS v03, not in the DICOM dictionary (written with explicit VRs)
_SERIES_ENERGY = 0x61000030  # US, energy identifier of this series
_SERIES_ENERGY_DESCRIPTION = 0x61000031  # LO
_NUMBER_OF_ENERGIES = 0x61000032  # US, energies in this scan


@dataclass(frozen=True)
class _ChannelInfo:
    series_number: int
    image_characteristics: str  # Image Type value 2
    energy: int | None  # Series Energy (6100,0030); None for backscatter
    detector_id: str
    description: str


_CHANNEL_INFO = {
    'low': _ChannelInfo(1, 'LOW ENERGY', 1, 'FRONT',
                        'low-energy transmission, front layer of the dual-layer detector'),
    'high': _ChannelInfo(2, 'HIGH ENERGY', 2, 'REAR',
                         'high-energy transmission, rear layer of the dual-layer detector'),
    'back': _ChannelInfo(3, 'INTENSITY', None, 'BACKSCATTER',
                         'backscatter detector beside the tube'),
}


@dataclass(frozen=True, eq=False)
class ChannelObject:
    """One channel's DICOS object as read from a file (see `read_channel`)."""

    path: Path
    channel: str  # 'low', 'high' or 'back'
    scan_uid: str  # Scan Instance UID (0020,000D)
    series_uid: str
    sop_instance_uid: str
    image: np.ndarray  # (lines, pixels) uint16
    dark: np.ndarray  # (pixels,) float64
    air: np.ndarray  # (pixels,) float64
    record: dict  # the scan record: RECORD_FIELDS -> value


def scan_uids(scan: XrayScan) -> dict:
    """Return the scan's UIDs, derived from device id, first line seq and start time only.

    Keys: 'scan' (Scan Instance UID), 'frame_of_reference', and per channel 'series/<ch>' and
    'instance/<ch>'. Re-exporting the same scan gives the same UIDs (pydicom's generate_uid
    hashes its entropy sources under pydicom's root 1.2.826.0.1.3680043.8.498).
    """
    base = ['customs_lab.xray.dicos', str(scan.device_id), str(int(scan.first_seq)),
            repr(float(scan.start_time))]
    uids = {'scan': generate_uid(entropy_srcs=base + ['scan']),
            'frame_of_reference': generate_uid(entropy_srcs=base + ['frame_of_reference'])}
    for channel in CHANNELS:
        for role in ('series', 'instance'):
            uids[f'{role}/{channel}'] = generate_uid(entropy_srcs=base + [role, channel])
    return uids


def write_scan(scan: XrayScan, path, *, ooi_type: str = 'CARGO', id_authority: str = 'WAYBILL',
               location: str = '', address: str = '') -> list:
    """Write `scan` to the directory `path` as low.dcs, high.dcs, back.dcs; return their paths.

    ooi_type: DICOS OOI Type (OOI_TYPES); id_authority: OOI ID Assigning Authority (who issued
    the waybill number); location, address: DICOS Machine Location and Machine Address.
    Each file is written to a temporary name and renamed, so a reader never sees half a file.
    ValueError if the scan cannot be written exactly (non-finite numbers, an `extra` that is not
    JSON data, more than 65535 lines or pixels); FileExistsError if `path` holds another scan.
    """
    if not isinstance(scan, XrayScan):
        raise ValueError(f'write_scan needs an XrayScan, got {type(scan).__name__}')
    if ooi_type not in OOI_TYPES:
        raise ValueError(f'ooi_type must be one of {OOI_TYPES}, got {ooi_type!r}')
    if scan.lines > 65535 or scan.pixels > 65535:
        raise ValueError(f'a DICOS image has at most 65535 rows and columns, the scan is '
                         f'{scan.lines} lines x {scan.pixels} pixels')
    record_text = _record_text(scan)
    uids = scan_uids(scan)
    when = _utc(scan.start_time)
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for index, channel in enumerate(CHANNELS):
        target = directory / f'{channel}{FILE_SUFFIX}'
        if target.exists():
            _check_same_scan(target, uids['scan'])
        dataset = _channel_dataset(scan, index, channel, uids, when, record_text, ooi_type,
                                   id_authority, location, address)
        _save_atomically(dataset, target)
        written.append(target)
    return written


def read_channel(path) -> ChannelObject:
    """Read and check one channel's file; ValueError if it is not a Customs Lab raw DICOS DX."""
    path = Path(path)
    try:
        ds = pydicom.dcmread(path)
    except Exception as error:  # pydicom raises many types on damaged input
        raise ValueError(f'{path}: not a readable DICOM/DICOS file ({error})') from None
    where = str(path)
    meta = getattr(ds, 'file_meta', None)
    syntax = meta.get('TransferSyntaxUID') if meta is not None else None
    if syntax != ExplicitVRLittleEndian:
        raise ValueError(f'{where}: transfer syntax {syntax}, expected Explicit VR Little Endian '
                         f'(raw data is stored uncompressed)')
    sop_class = ds.get('SOPClassUID')
    if sop_class is None:
        raise ValueError(f'{where}: no SOP Class UID (0008,0016): truncated, or not a DICOS '
                         f'object')
    if sop_class == SOP_CLASS_FOR_PRESENTATION:
        raise ValueError(f'{where}: a DICOS DX For Presentation image, not raw data '
                         f'(expected {SOP_CLASS_FOR_PROCESSING})')
    if sop_class != SOP_CLASS_FOR_PROCESSING:
        name = getattr(sop_class, 'name', sop_class)
        raise ValueError(f'{where}: SOP class {name}, not a DICOS Digital X-Ray Image Storage - '
                         f'For Processing ({SOP_CLASS_FOR_PROCESSING}) object')
    for keyword, expected in (('Modality', MODALITY), ('PresentationIntentType', 'FOR PROCESSING'),
                              ('SamplesPerPixel', 1), ('PhotometricInterpretation', 'MONOCHROME2'),
                              ('BitsAllocated', 16), ('BitsStored', 16),
                              ('PixelRepresentation', 0)):
        if ds.get(keyword) != expected:
            raise ValueError(f'{where}: {keyword} is {ds.get(keyword)!r}, expected {expected!r}')
    if int(ds.get('NumberOfFrames') or 1) != 1:
        raise ValueError(f'{where}: {ds.NumberOfFrames} frames, a DICOS DX image has one')
    try:
        block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR)
        version, channel = str(block[_P_VERSION].value), str(block[_P_CHANNEL].value)
        dark_bytes, air_bytes = block[_P_DARK].value, block[_P_AIR].value
        record_text = block[_P_RECORD].value
    except KeyError as error:
        raise ValueError(f'{where}: no complete {PRIVATE_CREATOR!r} private block in group '
                         f'{PRIVATE_GROUP:04X} ({error}): not a Customs Lab raw scan') from None
    if version != FORMAT_VERSION:
        raise ValueError(f'{where}: format version {version!r}, this reader knows '
                         f'{FORMAT_VERSION!r}')
    if channel not in CHANNELS:
        raise ValueError(f'{where}: unknown channel {channel!r} (known: {CHANNELS})')
    rows, columns = int(ds.get('Rows') or 0), int(ds.get('Columns') or 0)
    if rows < 1 or columns < 1:
        raise ValueError(f'{where}: declared shape ({rows}, {columns}) has no pixels')
    pixel_bytes = ds.get('PixelData')
    size = 0 if pixel_bytes is None else len(pixel_bytes)
    if size != rows * columns * 2:
        raise ValueError(f'{where}: pixel data has {size} bytes, the declared shape '
                         f'({rows} rows, {columns} columns, 16 bits) needs {rows * columns * 2}')
    references = []
    for name, raw in (('dark', dark_bytes), ('air', air_bytes)):
        if not isinstance(raw, bytes) or len(raw) != columns * 8:
            raise ValueError(f'{where}: the {name} reference must be {columns} float64 values')
        references.append(np.frombuffer(raw, dtype='<f8').astype(float))
    image = np.frombuffer(pixel_bytes, dtype='<u2').reshape(rows, columns).astype(np.uint16)
    return ChannelObject(path=path, channel=channel, scan_uid=str(ds.get('StudyInstanceUID', '')),
                         series_uid=str(ds.get('SeriesInstanceUID', '')),
                         sop_instance_uid=str(ds.get('SOPInstanceUID', '')), image=image,
                         dark=references[0], air=references[1],
                         record=_parse_record(record_text, where))


def read_scan(path) -> XrayScan:
    """Re-import a scan written by `write_scan`: `path` is its directory or one of its files.

    Every *.dcs file in the directory must be one channel of the same scan, each channel exactly
    once; ValueError otherwise, or if any file is damaged (see `read_channel`).
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f'{path}: no such file or directory')
    directory = path if path.is_dir() else path.parent
    files = sorted(p for p in directory.glob(f'*{FILE_SUFFIX}') if p.is_file())
    if not files:
        raise ValueError(f'{directory}: no {FILE_SUFFIX} files')
    objects = [read_channel(file) for file in files]
    scans = sorted({obj.scan_uid for obj in objects})
    if len(scans) != 1:
        raise ValueError(f'{directory}: files of {len(scans)} scans ({scans}); a scan directory '
                         f'holds one scan')
    by_channel = {}
    for obj in objects:
        if obj.channel in by_channel:
            raise ValueError(f'{directory}: channel {obj.channel!r} twice '
                             f'({by_channel[obj.channel].path.name}, {obj.path.name})')
        by_channel[obj.channel] = obj
    missing = [channel for channel in CHANNELS if channel not in by_channel]
    if missing:
        raise ValueError(f'{directory}: channel(s) {missing} missing')
    first = by_channel[CHANNELS[0]]
    for obj in by_channel.values():
        if obj.record != first.record:
            raise ValueError(f'{directory}: {obj.path.name} and {first.path.name} disagree on '
                             f'the scan record')
        if obj.image.shape != first.image.shape:
            raise ValueError(f'{directory}: {obj.path.name} is {obj.image.shape}, '
                             f'{first.path.name} is {first.image.shape}')
    arrays = {channel: by_channel[channel].image for channel in CHANNELS}
    dark = np.stack([by_channel[channel].dark for channel in CHANNELS])
    air = np.stack([by_channel[channel].air for channel in CHANNELS])
    return XrayScan(**first.record, **arrays, dark=dark, air=air)


def scan_relpath(scan: XrayScan) -> Path:
    """Return the scan's directory below an export root: <YYYYMMDD>/<device>/<HHMMSS>_<seq>_<wb>.

    Date and time are UTC of the first line. Every component is reduced to ASCII letters, digits,
    '.', '_', '-' (no leading dot); a component that had to change gets an 8-digit hash of the
    original, so different waybills never share a directory and none can leave the root.
    """
    when = _utc(scan.start_time)
    device = _safe_component(str(scan.device_id), 'unknown-device')
    waybill = _safe_component(str(scan.waybill), 'unread')
    leaf = f'{when:%H%M%S}_{int(scan.first_seq)}_{waybill}'
    return Path(f'{when:%Y%m%d}') / device / leaf


def export_directory(scans, directory, **options) -> list:
    """Write each scan below `directory` at `scan_relpath`; return the scans' directories.

    `options` go to `write_scan`. ValueError if a target would lie outside `directory` (cannot
    happen with `scan_relpath`; checked anyway).
    """
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    resolved_root = root.resolve()
    written = []
    for scan in scans:
        target = root / scan_relpath(scan)
        if not target.resolve().is_relative_to(resolved_root):
            raise ValueError(f'{target}: outside the export directory {root}')
        write_scan(scan, target, **options)
        written.append(target)
    return written


# ----------------------------------------------------------------------------------------------
# writing

def _channel_dataset(scan, index, channel, uids, when, record_text, ooi_type, id_authority,
                     location, address) -> Dataset:
    info = _CHANNEL_INFO[channel]
    image = np.ascontiguousarray(scan.raw(channel), dtype='<u2')
    date, time = f'{when:%Y%m%d}', f'{when:%H%M%S.%f}'
    sop_instance_uid = uids[f'instance/{channel}']

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SOP_CLASS_FOR_PROCESSING
    meta.MediaStorageSOPInstanceUID = sop_instance_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta

    # SOP Common
    ds.SpecificCharacterSet = 'ISO_IR 192'  # UTF-8
    ds.SOPClassUID = SOP_CLASS_FOR_PROCESSING
    ds.SOPInstanceUID = sop_instance_uid
    ds.DICOSVersion = DICOS_VERSION
    ds.TimezoneOffsetFromUTC = '+0000'
    # Object of Inspection: the parcel, identified by its waybill
    ds.PatientID = _text(scan.waybill, 64) or 'UNREAD'  # OOI ID
    ds.IssuerOfPatientID = _text(id_authority, 64)  # OOI ID Assigning Authority
    ds.TypeOfPatientID = 'BARCODE' if scan.waybill else 'TEXT'  # OOI ID Type
    ds.OOIType = ooi_type
    ds.OOITypeDescriptor = 'PARCEL'
    ds.AlgorithmRoutingCodeSequence = Sequence()
    # General Scan (DICOM's study level)
    ds.StudyInstanceUID = uids['scan']
    ds.StudyDate, ds.StudyTime = date, time  # Scan Start Date and Time
    ds.StudyID = _scan_id(scan)
    ds.ScanType = 'OPERATIONAL'
    ds.StudyDescription = 'X-ray parcel scan: dual-energy transmission and backscatter, raw'
    ds.add_new(_NUMBER_OF_ENERGIES, 'US', 2)
    # General Series and DX Series: one series per channel
    ds.SeriesInstanceUID = uids[f'series/{channel}']
    ds.SeriesDate, ds.SeriesTime = date, time
    ds.Modality = MODALITY
    ds.SeriesNumber = info.series_number
    ds.SeriesDescription = info.description
    ds.AcquisitionStatus = 'SUCCESSFUL'
    ds.PresentationIntentType = 'FOR PROCESSING'
    if info.energy is not None:
        ds.add_new(_SERIES_ENERGY, 'US', info.energy)
        ds.add_new(_SERIES_ENERGY_DESCRIPTION, 'LO', info.image_characteristics)
    # Frame of Reference: the three channels share one pixel grid
    ds.FrameOfReferenceUID = uids['frame_of_reference']
    ds.PositionReferenceIndicator = ''
    # General Equipment
    ds.Manufacturer = MANUFACTURER
    ds.InstitutionName = _text(location, 64)  # Machine Location
    ds.InstitutionAddress = _text(address, 1024)  # Machine Address
    ds.StationName = _text(scan.device_id, 16)  # Machine ID
    ds.ManufacturerModelName = _text(scan.model, 64)
    ds.DeviceSerialNumber = _text(scan.serial, 64)
    ds.SoftwareVersions = f'customs_lab {__version__}'
    # DX Image
    ds.ImageType = ['ORIGINAL', info.image_characteristics]
    ds.InstanceNumber = 1
    ds.ContentDate, ds.ContentTime = date, time
    ds.AcquisitionDateTime = f'{when:%Y%m%d%H%M%S.%f}+0000'
    ds.PixelIntensityRelationship = 'LIN'
    ds.PixelIntensityRelationshipSign = 1
    ds.RescaleIntercept = '0'
    ds.RescaleSlope = '1'
    ds.RescaleType = 'US'  # unspecified: detector ADU
    ds.PresentationLUTShape = 'IDENTITY'
    ds.BurnedInAnnotation = 'NO'
    ds.LossyImageCompression = '00'
    ds.CalibrationImage = 'NO'
    ds.PixelSpacing = [_ds(scan.line_pitch * 1000.0), _ds(scan.pixel_pitch * 1000.0)]  # mm
    # DX Detector
    ds.DetectorType = ''  # type 2: the scan does not record the detector technology
    ds.DetectorID = info.detector_id
    ds.DetectorDescription = info.description
    if info.energy is not None:
        ds.DetectorConfiguration = 'SANDWICH'  # dual-layer: front (low) over rear (high)
        ds.LowEnergyDetectors = 'INTEGRATING'
        ds.HighEnergyDetectors = 'INTEGRATING'
    # X-Ray Generation
    ds.KVP = _ds(scan.kvp)
    ds.XRayTubeCurrentInuA = _ds(scan.tube_current_ma * 1000.0)
    # rows run across the belt (+y); successive lines image the parcel further back (-x, it
    # moves +x); origin: the first line's first pixel, pixels centred on the focal spot
    ds.ImageOrientationPatient = [0, 1, 0, -1, 0, 0]
    ds.ImagePositionPatient = [0, _ds(-(scan.pixels - 1) / 2.0 * scan.pixel_pitch * 1000.0), 0]
    # Acquisition Context (type 2)
    ds.AcquisitionContextSequence = Sequence()
    # Image Pixel
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = 'MONOCHROME2'
    ds.Rows, ds.Columns = image.shape
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    # what it takes to rebuild the XrayScan exactly
    block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
    block.add_new(_P_VERSION, 'LO', FORMAT_VERSION)
    block.add_new(_P_CHANNEL, 'LO', channel)
    block.add_new(_P_DARK, 'OD', np.asarray(scan.dark[index], dtype='<f8').tobytes())
    block.add_new(_P_AIR, 'OD', np.asarray(scan.air[index], dtype='<f8').tobytes())
    block.add_new(_P_RECORD, 'UT', record_text)
    ds.PixelData = image.tobytes()
    ds['PixelData'].VR = 'OW'
    return ds


def _record_text(scan: XrayScan) -> str:
    """Return the scan record as JSON; ValueError if it would not re-import identically."""
    record = {}
    for name in _TEXT_FIELDS:
        value = getattr(scan, name)
        if not isinstance(value, str):
            raise ValueError(f'{name} must be a str, got {type(value).__name__}')
        record[name] = value
    try:
        record['first_seq'] = operator.index(scan.first_seq)
    except TypeError:
        raise ValueError(f'first_seq must be an integer, got {scan.first_seq!r}') from None
    for name in _FLOAT_FIELDS:
        value = float(getattr(scan, name))
        if not math.isfinite(value):
            raise ValueError(f'{name} must be finite, got {value}')
        record[name] = value
    if not isinstance(scan.extra, dict):
        raise ValueError(f'extra must be a dict, got {type(scan.extra).__name__}')
    record['extra'] = scan.extra
    try:
        text = json.dumps(record, sort_keys=True, ensure_ascii=True, allow_nan=False,
                          separators=(',', ':'))
    except (TypeError, ValueError) as error:
        raise ValueError(f'extra must be JSON data (str keys; str, int, float, bool, None, '
                         f'lists, dicts; finite numbers): {error}') from None
    if json.loads(text)['extra'] != scan.extra:
        raise ValueError('extra must be JSON data (str keys, lists rather than tuples) to '
                         're-import identically')
    return text


def _parse_record(text, where: str) -> dict:
    try:
        record = json.loads(text)
    except (TypeError, ValueError) as error:
        raise ValueError(f'{where}: the scan record is not JSON ({error})') from None
    if not isinstance(record, dict) or set(record) != set(RECORD_FIELDS):
        keys = sorted(record) if isinstance(record, dict) else type(record).__name__
        raise ValueError(f'{where}: the scan record has {keys}, expected {sorted(RECORD_FIELDS)}')
    for name in _TEXT_FIELDS:
        if not isinstance(record[name], str):
            raise ValueError(f'{where}: {name} in the scan record is not a string')
    if not isinstance(record['first_seq'], int) or isinstance(record['first_seq'], bool):
        raise ValueError(f'{where}: first_seq in the scan record is not an integer')
    for name in _FLOAT_FIELDS:
        value = record[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f'{where}: {name} in the scan record is not a number')
        record[name] = float(value)
    if not isinstance(record['extra'], dict):
        raise ValueError(f'{where}: extra in the scan record is not an object')
    return record


def _check_same_scan(target: Path, scan_uid: str):
    try:
        existing = pydicom.dcmread(target, stop_before_pixels=True,
                                   specific_tags=['StudyInstanceUID']).get('StudyInstanceUID')
    except Exception:  # any unreadable file is refused below
        existing = None
    if existing != scan_uid:
        raise FileExistsError(f'{target} exists and is not this scan (Scan Instance UID '
                              f'{existing}); raw data is never overwritten by another scan')


def _save_atomically(dataset: Dataset, target: Path):
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f'.{target.name}.',
                                         suffix='.tmp')
    os.close(handle)
    try:
        dataset.save_as(temporary, enforce_file_format=True)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _utc(timestamp) -> datetime.datetime:
    value = float(timestamp)
    if not math.isfinite(value):
        raise ValueError(f'start_time must be finite, got {value}')
    try:
        return datetime.datetime.fromtimestamp(value, tz=datetime.timezone.utc)
    except (OverflowError, OSError, ValueError) as error:
        raise ValueError(f'start_time {value} is not a representable date ({error})') from None


def _ds(value) -> DSfloat:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f'cannot store the non-finite value {value} as a decimal string')
    return DSfloat(value, auto_format=True)


def _text(value, limit: int) -> str:
    """Return `value` fit for a DICOM LO/SH/ST value: printable, no backslash, at most `limit`."""
    cleaned = ''.join(ch if ch.isprintable() else ' ' for ch in str(value)).replace('\\', '/')
    return cleaned.strip()[:limit].strip()


def _scan_id(scan: XrayScan) -> str:
    """Return the Scan ID (SH, 16 characters): the first line's sequence number."""
    text = str(int(scan.first_seq))
    if len(text) > 16:
        text = hashlib.sha256(text.encode()).hexdigest()[:16]
    return text


_WINDOWS_RESERVED = {'CON', 'PRN', 'AUX', 'NUL', *(f'COM{i}' for i in range(10)),
                     *(f'LPT{i}' for i in range(10))}


def _safe_component(text: str, fallback: str) -> str:
    """Return `text` as one safe path component (see `scan_relpath`)."""
    ascii_text = unicodedata.normalize('NFKD', text).encode('ascii', 'ignore').decode('ascii')
    safe = re.sub(r'[^A-Za-z0-9._-]+', '_', ascii_text).lstrip('.')[:48].rstrip('.')
    if safe.split('.')[0].upper() in _WINDOWS_RESERVED:
        safe = f'_{safe}'
    if not text:
        return fallback
    if safe == text:
        return safe
    digest = hashlib.sha256(text.encode('utf-8', 'surrogatepass')).hexdigest()[:8]
    return f'{safe or fallback}-{digest}'
