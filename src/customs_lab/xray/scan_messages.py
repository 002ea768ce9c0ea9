"""XrayScan messages and images: the core XrayScan to and from ROS messages (as cv_bridge does).

No node here: the driver (xray_driver_node.py) converts its scans to messages, the inspection
node (xray_inspection_node.py) converts them back. Images are packed, little-endian: mono16
(raw ADU), 32FC1 (calibrated) or rgb8 (colour-coded and annotated), one row per scan line.
"""

import uuid

import numpy as np
from sensor_msgs.msg import Image

from customs_interfaces.msg import XrayScan as XrayScanMsg
from customs_lab.common.node_support import seconds_to_time_msg, subject_to_msg, uuid_to_msg
from customs_lab.common.subjects import Subject, SubjectKind
from customs_lab.xray.scan import XrayScan
from customs_lab.xray.scanner_model import CHANNELS

SCAN_NAMESPACE = uuid.UUID('0b3c6f1e-52d4-4c1f-9d0e-6a1f3f0e7a55')  # scan ids (uuid5)
ENCODINGS = {np.dtype(np.uint16): 'mono16', np.dtype(np.float32): '32FC1',
             np.dtype(np.uint8): 'rgb8'}


def scan_id(scan: XrayScan) -> uuid.UUID:
    """Return the scan's id: the same for the same device, first line and start time."""
    return uuid.uuid5(SCAN_NAMESPACE, f'{scan.device_id}/{scan.first_seq}/{scan.start_time!r}')


def image_msg(array: np.ndarray, stamp, frame_id: str) -> Image:
    """Return the sensor_msgs/Image of a mono16, 32FC1 or rgb8 ((h, w, 3) uint8) array."""
    array = np.ascontiguousarray(array)
    encoding = ENCODINGS.get(array.dtype)
    if encoding is None or array.ndim != (3 if encoding == 'rgb8' else 2) or (
            encoding == 'rgb8' and array.shape[2] != 3):
        raise ValueError(f'no image encoding for a {array.dtype} array of shape {array.shape}')
    msg = Image(height=int(array.shape[0]), width=int(array.shape[1]), encoding=encoding,
                is_bigendian=0, step=int(array.strides[0]))
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    msg.data = array.tobytes()
    return msg


def scan_to_msg(scan: XrayScan, sensor_id: str, frame_id: str, uri: str) -> XrayScanMsg:
    """Return the XrayScan message of a core scan."""
    stamp = seconds_to_time_msg(scan.start_time)
    subject = Subject(SubjectKind.PARCEL, scan.waybill)
    msg = XrayScanMsg(
        scan_id=uuid_to_msg(scan_id(scan)),
        subject=subject_to_msg(subject),
        sensor_id=sensor_id,
        first_seq=int(scan.first_seq) % 2**32,
        line_period=float(scan.line_period),
        belt_speed=float(scan.belt_speed),
        pixel_pitch=float(scan.pixel_pitch),
        kvp=float(scan.kvp),
        tube_current_ma=float(scan.tube_current_ma),
        model=scan.model,
        serial=scan.serial,
        low=image_msg(scan.low, stamp, frame_id),
        high=image_msg(scan.high, stamp, frame_id),
        back=image_msg(scan.back, stamp, frame_id),
        dark=[float(v) for v in scan.dark.ravel()],
        air=[float(v) for v in scan.air.ravel()],
        missing_lines=int(scan.extra.get('missing_lines', 0)),
        truncated=bool(scan.extra.get('truncated')),
        raw_data_uri=uri,
    )
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    return msg


def msg_to_scan(msg: XrayScanMsg) -> XrayScan:
    """Return the core scan of an XrayScan message (ValueError if its images are malformed)."""
    arrays = []
    for name in CHANNELS:
        image = getattr(msg, name)
        if image.encoding != 'mono16' or image.step != 2 * image.width:
            raise ValueError(f'{name}: expected packed mono16, got {image.encoding!r} '
                             f'step {image.step} for width {image.width}')
        data = np.frombuffer(bytes(image.data), dtype='>u2' if image.is_bigendian else '<u2')
        if data.size != image.height * image.width:
            raise ValueError(f'{name}: {data.size} values for {image.height} x {image.width}')
        arrays.append(data.reshape(image.height, image.width).astype(np.uint16))
    pixels = arrays[0].shape[1]
    return XrayScan(
        device_id=msg.sensor_id, waybill=msg.subject.id, first_seq=msg.first_seq,
        start_time=msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9,
        line_period=msg.line_period, belt_speed=msg.belt_speed, pixel_pitch=msg.pixel_pitch,
        low=arrays[0], high=arrays[1], back=arrays[2],
        dark=np.asarray(msg.dark, dtype=float).reshape(len(CHANNELS), pixels),
        air=np.asarray(msg.air, dtype=float).reshape(len(CHANNELS), pixels),
        kvp=msg.kvp, tube_current_ma=msg.tube_current_ma, model=msg.model, serial=msg.serial,
        extra={'missing_lines': int(msg.missing_lines), 'truncated': bool(msg.truncated),
               'raw_data_uri': msg.raw_data_uri})
