"""Site map node: the site's occupancy grid on /map and the device frames on /tf_static.

Does what nav2's map_server and tf2_ros' static_transform_publisher would (neither exists as a
wheel): reads the site file (config/site.yaml) and its map (maps/site.yaml + PGM), publishes
nav_msgs/OccupancyGrid on `map` (reliable, transient local) and, on /tf_static, map -> each
device frame and device -> each detector frame (panels, spectrometers, neutron modules), so
that RViz shows the site.
"""

import pathlib

from geometry_msgs.msg import TransformStamped
from nav_msgs.msg import OccupancyGrid
from rclpy.node import Node
from tf2_msgs.msg import TFMessage

from customs_lab.common.data_dir import share_dir
from customs_lab.common.node_support import LATCHED, Diagnostics, declare, run_node
from customs_lab.site.layout import load_map, load_site


def static_transforms(site, map_frame: str = 'map'):
    """Return (parent, child, (x, y, z), (qx, qy, qz, qw)) for every device and detector frame.

    A device's detectors (gamma panels, spectrometers, neutron modules) hang off its frame as
    `<device frame>/<detector id>`, at their centres (orientation: the device's).
    """
    frames = []
    for portal in site.portals.values():
        frames.append(
            (
                map_frame,
                portal.frame_id,
                (portal.pose.x, portal.pose.y, 0.0),
                portal.pose.quaternion(),
            )
        )
        for detector in (*portal.panels, *portal.spectrometers, *portal.neutron_modules):
            frames.append(
                (
                    portal.frame_id,
                    f'{portal.frame_id}/{detector.id}',
                    tuple(detector.center),
                    (0.0, 0.0, 0.0, 1.0),
                )
            )
    for name, pose in site.zones.items():
        frames.append((map_frame, name, (pose.x, pose.y, 0.0), pose.quaternion()))
    return frames


class SiteMap(Node):
    """Publish the site map and the static frames."""

    def __init__(self, **kwargs):
        super().__init__('site_map', **kwargs)
        site_file = declare(self, 'site_file', '', 'Site description (empty: config/site.yaml)')
        self.map_frame = declare(self, 'map_frame', 'map', 'Fixed frame of the site (REP-105)')
        site_path = pathlib.Path(site_file) if site_file else share_dir() / 'config' / 'site.yaml'
        self.site = load_site(site_path)
        map_path = pathlib.Path(self.site.map_file)
        if not map_path.is_absolute():
            map_path = share_dir() / map_path
        grid = load_map(map_path)
        msg = OccupancyGrid()
        msg.header.frame_id = self.map_frame
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.info.resolution = grid.resolution
        msg.info.height, msg.info.width = grid.data.shape
        msg.info.origin.position.x, msg.info.origin.position.y = grid.origin[0], grid.origin[1]
        msg.info.origin.orientation.w = 1.0
        msg.data = grid.data.ravel().tolist()
        self.map_pub = self.create_publisher(OccupancyGrid, 'map', LATCHED)
        self.map_pub.publish(msg)
        self.tf_pub = self.create_publisher(TFMessage, '/tf_static', LATCHED)
        transforms = []
        for parent, child, xyz, quaternion in static_transforms(self.site, self.map_frame):
            t = TransformStamped()
            t.header.stamp = msg.header.stamp
            t.header.frame_id, t.child_frame_id = parent, child
            t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = xyz
            (
                t.transform.rotation.x,
                t.transform.rotation.y,
                t.transform.rotation.z,
                t.transform.rotation.w,
            ) = quaternion
            transforms.append(t)
        self.tf_pub.publish(TFMessage(transforms=transforms))
        self.diagnostics = Diagnostics(self, stale_after=None)
        self.diagnostics.update(
            'site_map',
            'site',
            Diagnostics.OK,
            f'{msg.info.width}x{msg.info.height} cells, {len(transforms)} static frames',
            {'map': str(map_path), 'site': str(site_path)},
        )
        self.get_logger().info(
            f'map {map_path} ({msg.info.width}x{msg.info.height} cells at '
            f'{grid.resolution} m), {len(transforms)} static frames'
        )


def main(args=None):
    """Run the site map node."""
    return run_node(SiteMap, args)


if __name__ == '__main__':
    raise SystemExit(main())
