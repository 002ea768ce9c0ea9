"""Messages for RViz: a point cloud with an intensity field, markers for sources and officer posts.

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


def _label(header, ns: str, marker_id: int, position, text: str, size: float) -> Marker:
    """Return a white text marker facing the viewer at `position` (its own Pose object)."""
    label = Marker(header=header, ns=ns, id=marker_id, type=Marker.TEXT_VIEW_FACING,
                   action=Marker.ADD, text=text)
    label.pose.position.x, label.pose.position.y, label.pose.position.z = (
        float(v) for v in position)
    label.pose.orientation.w = 1.0
    label.scale.z = size
    label.color.r = label.color.g = label.color.b = label.color.a = 1.0
    return label


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
    text = _label(header, 'located_sources', 2 * marker_id + 1,
                  (position[0], position[1], float(position[2]) + 1.0), label, 0.5)
    for marker in (sphere, text):
        marker.lifetime.sec = int(lifetime_s)
    return MarkerArray(markers=[sphere, text])


LEVEL_COLOURS = ((0.1, 0.8, 0.2), (1.0, 0.6, 0.0), (1.0, 0.1, 0.1))  # ok, rate, dose


def post_markers(header, posts) -> MarkerArray:
    """Return officer posts as cylinders coloured by alert level, with their dose as a label.

    posts: (marker id, (x, y, z) chest position, level 0-2, label) for each post.
    """
    markers = []
    for marker_id, position, level, label in posts:
        body = Marker(header=header, ns='officer_posts', id=2 * marker_id,
                      type=Marker.CYLINDER, action=Marker.ADD)
        body.pose.position.x, body.pose.position.y = float(position[0]), float(position[1])
        body.pose.position.z = float(position[2]) / 2.0
        body.pose.orientation.w = 1.0
        body.scale.x = body.scale.y = 0.5
        body.scale.z = float(position[2])
        body.color.r, body.color.g, body.color.b = LEVEL_COLOURS[min(int(level), 2)]
        body.color.a = 0.9
        text = _label(header, 'officer_posts', 2 * marker_id + 1,
                      (position[0], position[1], float(position[2]) + 0.8), label, 0.4)
        markers += [body, text]
    return MarkerArray(markers=markers)
