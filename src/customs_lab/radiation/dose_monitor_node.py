"""Dose monitor: each officer post's dose from the located sources, with alerts.

Subscribes to /radiation/located_sources (customs_interfaces/LocatedSource, from every portal's
rpm_alarm). Each source is followed along its lane at its subject's measured velocity
(radiation/exposure.py: the lane's ends from the portal's pose, approach and exit in the site
file) and its air-kerma rate integrated at every officer post of the site file
(`officer_posts`). Publishes, once a second and when a source adds to a post:

- /radiation/officer_dose (customs_interfaces/OfficerDose, one per post): rate now, peak rate,
  dose this shift, the limits and the alert level, and the source behind most of it;
- /radiation/officer_markers (MarkerArray): the posts coloured by level (green, orange for the
  rate limit, red for the dose limit) with their dose;
- /diagnostics: one status per post (OK, WARN above the rate limit, ERROR above the dose limit),
  and a warning in the log when a post's level rises.

A shift starts when the node starts and lasts `shift_length` s (8 h; 0: one shift for the
node's life): at its end each post's dose is logged and the doses start again from 0 (what a
source still in its lane then would add is not counted: a passage lasts under a minute). Doses
are air kerma (uGy); the default limits are 6 uGy/h (about the 7.5 uSv/h of a supervised
area's dose rate, IRR17 in the UK) and 3.3 uGy per shift (the 1 mSv a year public limit over
250 shifts: officers are not radiation workers), both parameters.
"""

import math
import pathlib

from rclpy.node import Node
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from customs_interfaces.msg import LocatedSource, OfficerDose
from customs_lab.common.data_dir import share_dir
from customs_lab.common.node_support import (
    LOCATED_TOPIC,
    OFFICER_DOSE_TOPIC,
    OFFICER_MARKERS_TOPIC,
    Diagnostics,
    declare,
    msg_to_subject,
    reliable,
    run_node,
    time_msg_to_seconds,
)
from customs_lab.common.rviz import post_markers
from customs_lab.radiation.exposure import LEVEL_NAMES, ExposureLedger, lane_track
from customs_lab.site.layout import load_site


def lane_ends(portal):
    """Return the map points where a portal's lane starts and ends (device x = -approach, exit)."""
    c, s = math.cos(portal.pose.yaw), math.sin(portal.pose.yaw)
    return tuple((portal.pose.x + c * x, portal.pose.y + s * x, 0.0)
                 for x in (-portal.approach, portal.exit))


class DoseMonitor(Node):
    """Officer posts' doses from the located sources."""

    def __init__(self, **kwargs):
        super().__init__('dose_monitor', **kwargs)
        declare(self, 'site_file', '', 'Site description with the officer posts and the lanes '
                '(empty: config/site.yaml)', read_only=True)
        declare(self, 'dose_rate_limit', 6.0, 'Alert when a post sees this air-kerma rate, uGy/h',
                minimum=1e-3, maximum=1e6, read_only=True)
        declare(self, 'dose_limit', 3.3, "Alert when a post's dose this shift reaches this, uGy",
                minimum=1e-3, maximum=1e6, read_only=True)
        declare(self, 'sample_period', 0.1, 'Time step along a source track, s', minimum=0.01,
                maximum=10.0, read_only=True)
        declare(self, 'publish_period', 1.0, 'Period of the officer_dose messages, s',
                minimum=0.1, maximum=60.0, read_only=True)
        declare(self, 'shift_length', 28800.0, 'Length of a shift, s (0: no end)',
                minimum=0.0, maximum=7 * 86400.0, read_only=True)
        site_file = self.get_parameter('site_file').value
        path = pathlib.Path(site_file) if site_file else share_dir() / 'config' / 'site.yaml'
        site = load_site(path)  # a bad site file is a start-up error, named by load_site
        if not site.officer_posts:
            self.get_logger().warning(f'{path} has no officer_posts: no dose to monitor')
        self.lanes = {portal.hardware_id: lane_ends(portal) for portal in site.portals.values()}
        self.posts = site.officer_posts
        self.ledger = self._new_shift()
        self.shift_start = None  # s, set by the first publish (sim time may start late)
        self.refused = 0
        self.dose_pub = self.create_publisher(OfficerDose, OFFICER_DOSE_TOPIC, reliable(50))
        self.marker_pub = self.create_publisher(MarkerArray, OFFICER_MARKERS_TOPIC, 10)
        self.create_subscription(LocatedSource, LOCATED_TOPIC, self.on_located, reliable(20))
        self.diagnostics = Diagnostics(self)
        self.create_timer(self.get_parameter('publish_period').value, self.publish)
        self.get_logger().info(f'monitoring {len(site.officer_posts)} officer posts '
                               f'from {path}')

    def _new_shift(self) -> ExposureLedger:
        return ExposureLedger(
            self.posts,
            rate_limit=self.get_parameter('dose_rate_limit').value,
            dose_limit=self.get_parameter('dose_limit').value,
            step=self.get_parameter('sample_period').value)

    def _end_shift_if_due(self, seconds: float):
        """Log the shift's doses and start a new one when the shift is over."""
        if self.shift_start is None:
            self.shift_start = seconds
        length = self.get_parameter('shift_length').value
        if length <= 0 or seconds - self.shift_start < length:
            return
        for exposure in self.ledger.alerts(seconds):  # the last moments' alerts, not lost
            self.get_logger().warning(
                f'officer dose alert, {LEVEL_NAMES[exposure.level]}: '
                f'{exposure.message(self.ledger.rate_limit, self.ledger.dose_limit)}')
        for post in self.ledger.posts:
            exposure = self.ledger.exposure(post, seconds)
            self.get_logger().info('end of shift: ' + exposure.message(
                self.ledger.rate_limit, self.ledger.dose_limit))
        shifts = (seconds - self.shift_start) // length  # whole shifts, on the shift's clock
        self.ledger, self.shift_start = self._new_shift(), self.shift_start + shifts * length

    def on_located(self, msg: LocatedSource):
        """Follow a located source through its lane and add it to every post."""
        subject = msg_to_subject(msg.subject).id or '(unread)'
        label = f'{subject} {msg.nuclide}'
        lane = self.lanes.get(msg.sensor_id)
        p, v = msg.pose.pose.position, msg.velocity
        try:
            if lane is None:
                raise ValueError(f'no lane of a device {msg.sensor_id!r} in the site file')
            track = lane_track(label, msg.nuclide, msg.activity, (p.x, p.y, p.z),
                               (v.x, v.y, v.z), time_msg_to_seconds(msg.header.stamp), *lane)
            totals = self.ledger.add(track)
        except ValueError as error:
            self.refused += 1
            self.get_logger().error(f'{label}: no dose assessed: {error}')
            return
        worst = max(totals, key=totals.get, default=None)
        if worst is not None:
            self.get_logger().info(f'{label}: adds up to {totals[worst]:.3g} uGy at {worst} '
                                   f'over {track.end - track.start:.0f} s in the lane')
        self.publish()

    def publish(self):
        """Publish every post's exposure now; warn about the posts whose level rose."""
        now = self.get_clock().now()
        seconds = now.nanoseconds * 1e-9
        self._end_shift_if_due(seconds)
        for exposure in self.ledger.alerts(seconds):
            self.get_logger().warning(
                f'officer dose alert, {LEVEL_NAMES[exposure.level]}: '
                f'{exposure.message(self.ledger.rate_limit, self.ledger.dose_limit)}')
        header = Header(stamp=now.to_msg(), frame_id='map')
        posts = []
        for number, post in enumerate(self.ledger.posts):
            exposure = self.ledger.exposure(post, seconds)
            text = exposure.message(self.ledger.rate_limit, self.ledger.dose_limit)
            msg = OfficerDose(header=header, officer_id=post, dose_rate=exposure.rate,
                              peak_dose_rate=exposure.peak_rate, dose=exposure.dose,
                              dose_rate_limit=self.ledger.rate_limit,
                              dose_limit=self.ledger.dose_limit, level=exposure.level,
                              message=text)
            msg.position.x, msg.position.y, msg.position.z = exposure.position
            self.dose_pub.publish(msg)
            posts.append((number, exposure.position, exposure.level,
                          f'{post}: {exposure.dose:.2g} uGy'))
            self.diagnostics.update(
                f'dose_monitor: {post}', post,
                (Diagnostics.OK, Diagnostics.WARN, Diagnostics.ERROR)[exposure.level], text,
                {'dose_uGy': f'{exposure.dose:.4g}', 'dose_rate_uGy_h': f'{exposure.rate:.4g}',
                 'peak_dose_rate_uGy_h': f'{exposure.peak_rate:.4g}',
                 'sources_refused': self.refused})
        if posts:
            self.marker_pub.publish(post_markers(header, posts))


def main(args=None):
    """Entry point of the dose_monitor executable."""
    return run_node(DoseMonitor, args)

