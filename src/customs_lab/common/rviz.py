"""Messages for RViz: a point cloud with an intensity field, and markers for a located source.

sensor_msgs_py is not among the pip wheels, so PointCloud2 is packed here (x, y, z, intensity as
float32, little-endian, dense), as sensor_msgs_py.point_cloud2.create_cloud would.
"""

import numpy as np
from sensor_msgs.msg import PointCloud2, PointField
from visualization_msgs.msg import Marker, MarkerArray

FIELDS = [PointField(name=name, offset=4 * i, datatype=PointField.FLOAT32, count=1)
          for i, name in enumerate(('x', 'y', 'z', 'intensity'))]


def intensity_cloud(header, points, values) -> PointCloud2:
    """Return a PointCloud2 of (n, 3) points with one intensity each (e.g. uGy/h)."""
    data = np.column_stack([np.asarray(points, dtype=np.float32).reshape(-1, 3),
                            np.asarray(values, dtype=np.float32).reshape(-1)])
    return PointCloud2(header=header, height=1, width=len(data), fields=FIELDS,
                       is_bigendian=False, point_step=16, row_step=16 * len(data),
                       data=data.astype('<f4').tobytes(), is_dense=True)


def source_markers(header, marker_id: int, position, std, label: str,
                   lifetime_s: float = 0.0) -> MarkerArray:
    """Return a located source as a sphere of its 2-sigma extent and a label above it."""
    sphere = Marker(header=header, ns='located_sources', id=2 * marker_id, type=Marker.SPHERE,
                    action=Marker.ADD)
    sphere.pose.position.x, sphere.pose.position.y, sphere.pose.position.z = (
        float(v) for v in position)
    sphere.pose.orientation.w = 1.0
    sphere.scale.x, sphere.scale.y, sphere.scale.z = (max(4.0 * float(s), 0.1) for s in std)
    sphere.color.r, sphere.color.g, sphere.color.b, sphere.color.a = 1.0, 0.1, 0.1, 0.7
    text = Marker(header=header, ns='located_sources', id=2 * marker_id + 1,
                  type=Marker.TEXT_VIEW_FACING, action=Marker.ADD, text=label)
    text.pose = sphere.pose
    text.pose.position.z = float(position[2]) + 1.0
    text.scale.z = 0.5
    text.color.r = text.color.g = text.color.b = text.color.a = 1.0
    for marker in (sphere, text):
        marker.lifetime.sec = int(lifetime_s)
    return MarkerArray(markers=[sphere, text])
