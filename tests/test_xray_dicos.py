"""Raw X-ray scans as NEMA DICOS files: export, re-import, what plain pydicom sees, refusals."""

import dataclasses
import os
from pathlib import Path
import warnings

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
import pytest

from customs_lab.xray import dicos
from customs_lab.xray.scan import XrayScan
from customs_lab.xray.scanner_model import CHANNELS

FOR_PROCESSING = '1.2.840.10008.5.1.4.1.1.501.2.2'  # written out, not taken from the module
ARRAY_FIELDS = {'low', 'high', 'back', 'dark', 'air'}


def make_scan(seed=0, lines=37, pixels=23, **overrides) -> XrayScan:
    """Return a scan with random raw arrays that include 0 and 65535 in every channel."""
    rng = np.random.default_rng(seed)

    def raw():
        array = rng.integers(0, 65536, size=(lines, pixels), dtype=np.uint16)
        array.flat[0], array.flat[-1] = 0, 65535
        return array

    values = dict(
        device_id='xray_scanner_hall_a', waybill='CL123456789DE', first_seq=2**40 + 17,
        start_time=1_731_000_000.123456789, line_period=1 / 250.0, belt_speed=0.5,
        pixel_pitch=0.0032 * 0.8 / 1.4, low=raw(), high=raw(), back=raw(),
        dark=rng.normal(1000.0, 3.0, (3, pixels)), air=rng.normal(50000.0, 200.0, (3, pixels)),
        kvp=160.0, tube_current_ma=1.0 / 3.0, model='CL-XR-2E', serial='SN 0042',
        extra={'firmware': '2.1.0', 'belt_id': 7, 'gains': [1.0, 0.97, None, True],
               'site': {'hall': 'A'}},
    )
    values.update(overrides)
    return XrayScan(**values)


def assert_same_scan(a: XrayScan, b: XrayScan):
    for field in dataclasses.fields(XrayScan):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if field.name in ARRAY_FIELDS:
            assert x.dtype == y.dtype and x.shape == y.shape, field.name
            assert x.tobytes() == y.tobytes(), field.name  # bit for bit
        else:
            assert type(x) is type(y) and x == y, (field.name, x, y)


def test_round_trip_is_bit_exact_and_keeps_every_field(tmp_path):
    scan = make_scan()
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # pydicom warns on any value its VR does not allow
        paths = dicos.write_scan(scan, tmp_path / 'scan')
    assert [p.name for p in paths] == ['low.dcs', 'high.dcs', 'back.dcs']
    again = dicos.read_scan(tmp_path / 'scan')
    assert_same_scan(scan, again)
    assert dicos.read_scan(paths[1]).waybill == scan.waybill  # a file names its directory
    assert again.low.min() == 0 and again.low.max() == 65535


def test_the_record_covers_every_field_of_the_contract():
    non_arrays = {f.name for f in dataclasses.fields(XrayScan)} - ARRAY_FIELDS
    assert set(dicos.RECORD_FIELDS) == non_arrays


@pytest.mark.parametrize('overrides', [
    dict(waybill=''),
    dict(waybill=' Päckchen\\№ 7 ', model='', serial='', extra={}),
    dict(first_seq=-3, start_time=12.5, kvp=0.0, tube_current_ma=0.0),
    dict(first_seq=10**30, start_time=4_102_444_800.000001, device_id='x' * 80),
])
def test_round_trip_of_unusual_metadata(tmp_path, overrides):
    scan = make_scan(seed=3, lines=1, pixels=2, **overrides)
    dicos.write_scan(scan, tmp_path)
    assert_same_scan(scan, dicos.read_scan(tmp_path))


def test_uids_and_bytes_are_deterministic(tmp_path):
    scan = make_scan()
    first = dicos.write_scan(scan, tmp_path / 'a')
    second = dicos.write_scan(make_scan(), tmp_path / 'b')
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    rewritten = dicos.write_scan(scan, tmp_path / 'a')  # re-export in place is allowed
    assert [p.read_bytes() for p in rewritten] == [p.read_bytes() for p in second]
    uids = dicos.scan_uids(scan)
    assert len(set(uids.values())) == len(uids) == 2 + 2 * len(CHANNELS)
    assert dicos.scan_uids(make_scan(seed=9)) == uids  # pixels do not enter the UIDs
    assert dicos.scan_uids(make_scan(first_seq=scan.first_seq + 1))['scan'] != uids['scan']
    assert dicos.scan_uids(make_scan(device_id='other'))['scan'] != uids['scan']
    assert dicos.scan_uids(make_scan(start_time=scan.start_time + 1e-6))['scan'] != uids['scan']


def test_plain_pydicom_sees_a_dicos_dx_for_processing_image(tmp_path):
    scan = make_scan()
    dicos.write_scan(scan, tmp_path)
    datasets = {channel: pydicom.dcmread(tmp_path / f'{channel}.dcs') for channel in CHANNELS}
    for index, (channel, ds) in enumerate(datasets.items()):
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert ds.SOPClassUID == ds.file_meta.MediaStorageSOPClassUID == FOR_PROCESSING
        assert ds.Modality == 'DX'
        assert ds.PresentationIntentType == 'FOR PROCESSING'
        assert (ds.Rows, ds.Columns) == (scan.lines, scan.pixels)
        assert 'NumberOfFrames' not in ds  # one image per object
        assert (ds.BitsAllocated, ds.BitsStored, ds.PixelRepresentation) == (16, 16, 0)
        assert np.array_equal(ds.pixel_array, scan.raw(channel))
        assert ds.pixel_array.dtype == np.uint16
        assert ds.Manufacturer == 'Customs Lab'
        assert ds.StationName == scan.device_id[:16]
        assert ds.ManufacturerModelName == scan.model and ds.DeviceSerialNumber == scan.serial
        assert ds.PatientID == scan.waybill and ds.TypeOfPatientID == 'BARCODE'  # OOI ID
        assert ds.OOIType == 'CARGO' and ds.DICOSVersion == 'V03'
        assert float(ds.KVP) == pytest.approx(scan.kvp)
        assert float(ds.XRayTubeCurrentInuA) == pytest.approx(scan.tube_current_ma * 1000.0)
        assert [float(v) for v in ds.PixelSpacing] == pytest.approx(
            [scan.line_pitch * 1000.0, scan.pixel_pitch * 1000.0], rel=1e-9)
        assert ds.StudyDate == '20241107' and ds.StudyTime.startswith('172000.1234')
        block = ds.private_block(0x4011, 'CUSTOMS_LAB 1.0')
        assert block[0x02].value == channel
        assert np.frombuffer(block[0x03].value, '<f8').tobytes() == scan.dark[index].tobytes()
        assert np.frombuffer(block[0x04].value, '<f8').tobytes() == scan.air[index].tobytes()
    assert [ds.ImageType[1] for ds in datasets.values()] == ['LOW ENERGY', 'HIGH ENERGY',
                                                             'INTENSITY']
    assert len({ds.StudyInstanceUID for ds in datasets.values()}) == 1  # one scan
    assert len({ds.SeriesInstanceUID for ds in datasets.values()}) == 3  # a series per channel
    assert len({ds.FrameOfReferenceUID for ds in datasets.values()}) == 1  # one pixel grid


def write_dataset(path: Path, ds: Dataset):
    ds.save_as(path, enforce_file_format=True)


def plain_secondary_capture() -> Dataset:
    """Return an ordinary (medical) DICOM image: valid DICOM, not DICOS."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = '1.2.840.10008.5.1.4.1.1.7'
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.Rows, ds.Columns = 'OT', 2, 2
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, 'MONOCHROME2'
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = np.zeros((2, 2), '<u2').tobytes()
    return ds


def damage(path: Path, how: str):
    data = path.read_bytes()
    if how == 'truncated_end':
        path.write_bytes(data[:-101])
    elif how == 'truncated_header':
        path.write_bytes(data[:300])
    elif how == 'garbage':
        path.write_bytes(np.random.default_rng(1).bytes(len(data)))
    elif how == 'empty':
        path.write_bytes(b'')
    elif how == 'not_dicos':
        write_dataset(path, plain_secondary_capture())
    else:
        ds = pydicom.dcmread(path)
        if how == 'rows':
            ds.Rows += 1  # the pixel data no longer fits the declared shape
        elif how == 'short_pixels':
            ds.PixelData = ds.PixelData[:-2]
        elif how == 'for_presentation':
            ds.SOPClassUID = '1.2.840.10008.5.1.4.1.1.501.2.1'
            ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        elif how == 'no_private_block':
            del ds[0x4011, 0x0010]
            for tag in [t for t in ds.keys() if t.group == 0x4011]:
                del ds[tag]
        elif how == 'short_reference':
            ds.private_block(0x4011, 'CUSTOMS_LAB 1.0')[0x03].value = b'\0' * 8
        elif how == 'bad_record':
            ds.private_block(0x4011, 'CUSTOMS_LAB 1.0')[0x05].value = '{"waybill": 1}'
        elif how == 'eight_bits':
            ds.BitsAllocated = 8
        write_dataset(path, ds)


@pytest.mark.parametrize('how, message', [
    ('truncated_end', 'pixel data has'),
    ('truncated_header', 'truncated'),
    ('garbage', 'not a readable'),
    ('empty', 'not a readable'),
    ('not_dicos', 'not a DICOS Digital X-Ray'),
    ('rows', 'declared shape'),
    ('short_pixels', 'declared shape'),
    ('for_presentation', 'For Presentation'),
    ('no_private_block', 'not a Customs Lab raw scan'),
    ('short_reference', 'dark reference'),
    ('bad_record', 'scan record'),
    ('eight_bits', 'BitsAllocated'),
])
def test_damaged_or_foreign_files_are_refused(tmp_path, how, message):
    dicos.write_scan(make_scan(), tmp_path)
    target = tmp_path / 'high.dcs'
    damage(target, how)
    with pytest.raises(ValueError, match=message):
        dicos.read_channel(target)
    with pytest.raises(ValueError):
        dicos.read_scan(tmp_path)


def test_incomplete_or_mixed_scan_directories_are_refused(tmp_path):
    dicos.write_scan(make_scan(), tmp_path / 'one')
    (tmp_path / 'one' / 'back.dcs').unlink()
    with pytest.raises(ValueError, match='missing'):
        dicos.read_scan(tmp_path / 'one')
    dicos.write_scan(make_scan(), tmp_path / 'two')
    other = dicos.write_scan(make_scan(first_seq=5), tmp_path / 'other')
    os.replace(other[0], tmp_path / 'two' / 'extra.dcs')
    with pytest.raises(ValueError, match='2 scans'):
        dicos.read_scan(tmp_path / 'two')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match='no .dcs files'):
        dicos.read_scan(tmp_path / 'empty')
    with pytest.raises(ValueError, match='no such file'):
        dicos.read_scan(tmp_path / 'nowhere')


def test_another_scans_raw_data_is_never_overwritten(tmp_path):
    dicos.write_scan(make_scan(), tmp_path)
    before = (tmp_path / 'low.dcs').read_bytes()
    with pytest.raises(FileExistsError):
        dicos.write_scan(make_scan(first_seq=1), tmp_path)
    assert (tmp_path / 'low.dcs').read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ['back.dcs', 'high.dcs', 'low.dcs']


@pytest.mark.parametrize('overrides, message', [
    (dict(extra={'pair': (1, 2)}), 'JSON'),
    (dict(extra={1: 'integer key'}), 'JSON'),
    (dict(extra={'value': float('nan')}), 'JSON'),
    (dict(extra={'array': np.zeros(2)}), 'JSON'),
    (dict(start_time=float('nan')), 'finite'),
    (dict(belt_speed=float('inf')), 'finite'),
    (dict(first_seq=1.5), 'integer'),
])
def test_scans_that_cannot_round_trip_are_refused(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        dicos.write_scan(make_scan(**overrides), tmp_path)
    assert not list(tmp_path.glob('*.dcs'))


HOSTILE = ['../../etc/passwd', '', '..', '.', '/abs/olute', 'C:\\Windows\\x', 'CON',
           'Päckchen/№7', '📦' * 3, 'a' * 300, 'nul\x00byte', ' ', '.hidden', 'ok-1.2_3']


def test_export_keeps_hostile_waybills_inside_the_directory(tmp_path):
    root = tmp_path / 'export'
    scans = [make_scan(seed=i, lines=2, pixels=2, waybill=w) for i, w in enumerate(HOSTILE)]
    scans.append(make_scan(seed=99, lines=2, pixels=2, device_id='../../dev',
                           waybill='../x', first_seq=1))
    directories = dicos.export_directory(scans, root)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['export']  # nothing escaped
    assert len(set(directories)) == len(scans)  # no two waybills share a directory
    for scan, directory in zip(scans, directories, strict=True):
        relative = directory.resolve().relative_to(root.resolve())
        assert len(relative.parts) == 3 and relative == dicos.scan_relpath(scan)
        for part in relative.parts:
            assert part not in ('', '.', '..') and not part.startswith('.')
            assert all(ch.isascii() and (ch.isalnum() or ch in '._-') for ch in part), part
        assert relative.parts[0] == '20241107'
        assert dicos.read_scan(directory).waybill == scan.waybill
    assert directories[-1].resolve().relative_to(root.resolve()).parts[1] != '..'
    assert directories[HOSTILE.index('ok-1.2_3')].name.endswith('_ok-1.2_3')  # clean kept


def test_round_trip_of_a_full_size_scan_is_fast(tmp_path):
    scan = make_scan(lines=1500, pixels=352)  # a 3 m parcel at the default line pitch
    dicos.write_scan(scan, tmp_path)
    assert_same_scan(scan, dicos.read_scan(tmp_path))
