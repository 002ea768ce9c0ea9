"""Site simulator node: the world of a simulated customs site, on sim time.

Reads a scenario (the day's traffic) and the site file (device geometry), then, step by step:
publishes /clock (faster than real time on request: parameter `rate`), files each subject's
declaration on /clearance/declarations before it arrives, moves subjects through the portal lanes,
and plays each portal's firmware on a pseudo-terminal (the driver reads it with pyserial).
Ground truth goes to /simulation/ground_truth, for the evaluator only; /simulation/status tells
everyone how far the scenario is and when it has finished.
"""

import pathlib

from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
from geometry_msgs.msg import Point
import numpy as np
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rosgraph_msgs.msg import Clock as ClockMsg

from customs_interfaces.msg import (
    Declaration,
    DeclaredItem,
    GroundTruthItem,
    GroundTruthSubject,
    ScenarioStatus,
)
from customs_lab.common.data_dir import data_dir
from customs_lab.common.node_support import (
    DECLARATIONS_TOPIC,
    GROUND_TRUTH_TOPIC,
    LATCHED,
    LATCHED_ALL,
    SCENARIO_STATUS_TOPIC,
    Diagnostics,
    declare,
    run_node,
    seconds_to_time_msg,
    subject_to_msg,
)
from customs_lab.simulation.portal_lane import PortalLane
from customs_lab.simulation.rpm_firmware import RpmFirmware
from customs_lab.simulation.scenario import Scenario, generate_traffic
from customs_lab.site.layout import load_site


def resolve_config(value: str, subdir: str, suffix: str = '.yaml') -> pathlib.Path:
    """Resolve a config file given as a path, or as a name inside the package's config/<subdir>."""
    path = pathlib.Path(value)
    if path.suffix == suffix and path.exists():
        return path
    try:
        share = pathlib.Path(get_package_share_directory('customs_lab'))
    except PackageNotFoundError:
        share = pathlib.Path(__file__).resolve().parents[3]
    candidate = share / 'config' / subdir / (value if value.endswith(suffix) else value + suffix)
    if not candidate.exists():
        raise ValueError(f'no such file: {value} (also looked for {candidate})')
    return candidate


class SiteSimulator(Node):
    """The simulated site: clock, declarations, lanes and device firmware, ground truth."""

    def __init__(self, **kwargs):
        super().__init__('site_simulator', **kwargs)
        scenario_name = declare(
            self,
            'scenario',
            'default',
            'Scenario name (config/scenarios/<name>.yaml) or path to a file',
        )
        site_file = declare(self, 'site_file', 'site', 'Site description: name in config/ or path')
        self.rate = declare(
            self,
            'rate',
            10.0,
            'Sim time speed-up over real time (1 = real time)',
            minimum=0.1,
            maximum=1000.0,
        )
        self.step = declare(
            self,
            'step',
            0.1,
            "Sim time step, s (the devices' frame period)",
            minimum=0.01,
            maximum=1.0,
        )
        start_delay = declare(
            self,
            'start_delay',
            2.0,
            'Wall-clock s to wait before sim time starts, for subscribers to join',
            minimum=0.0,
            maximum=60.0,
        )
        self.end_grace = declare(
            self,
            'end_grace',
            30.0,
            'Sim s after the last subject left before the scenario is finished',
            minimum=0.0,
            maximum=3600.0,
        )
        self.data_dir = data_dir(
            declare(self, 'data_dir', '', 'Data directory (empty: $CUSTOMS_LAB_DATA_DIR or XDG)')
        )

        self.scenario = Scenario.load(resolve_config(scenario_name, 'scenarios'))
        self.site = load_site(resolve_config(site_file, '', '.yaml'))
        self.traffic = generate_traffic(self.scenario)
        rng = np.random.default_rng(self.scenario.seed + 1)
        self.lanes, self.firmware = {}, {}
        for name, spec in self.site.portals.items():
            self.lanes[name] = PortalLane(spec, rng)
            self.firmware[name] = RpmFirmware(
                self.data_dir / 'dev' / name,
                spec.model,
                f'SIM-{name.upper()}',
                [p.id for p in spec.panels],
            )
            self.get_logger().info(f'{name}: firmware on {self.firmware[name].link_path}')
        unknown = {s.device for s in self.traffic if s.device and s.device not in self.lanes}
        if unknown:
            raise ValueError(
                f'scenario names devices missing from the site file: {sorted(unknown)}'
            )

        self.clock_pub = self.create_publisher(ClockMsg, '/clock', 10)
        self.declaration_pub = self.create_publisher(Declaration, DECLARATIONS_TOPIC, LATCHED_ALL)
        self.truth_pub = self.create_publisher(GroundTruthSubject, GROUND_TRUTH_TOPIC, LATCHED_ALL)
        self.status_pub = self.create_publisher(ScenarioStatus, SCENARIO_STATUS_TOPIC, LATCHED)
        self.diagnostics = Diagnostics(self)

        self.t = 0.0
        self.ticks = 0
        self.finished = False
        self._last_leave = 0.0
        self._pending_declarations = sorted(self.traffic, key=lambda s: s.filed_at)
        self._pending_arrivals = list(self.traffic)
        self._wall = Clock(clock_type=ClockType.STEADY_TIME)
        self._started_wall = None
        self._publish_clock()
        self._publish_status()
        self.get_logger().info(
            f'scenario {self.scenario.name} (seed {self.scenario.seed}): {len(self.traffic)} '
            f'subjects over {self.scenario.duration:.0f} s sim time at {self.rate:g}x real time'
        )
        self._start_timer = self.create_timer(start_delay, self._start, clock=self._wall)

    def _start(self):
        self._start_timer.cancel()
        self._started_wall = self._wall.now()
        self.create_timer(self.step / self.rate, self._tick, clock=self._wall)

    def _publish_clock(self):
        self.clock_pub.publish(ClockMsg(clock=seconds_to_time_msg(self.t)))

    def _tick(self):
        self.t = round(self.t + self.step, 9)
        self.ticks += 1
        self._publish_clock()
        while self._pending_declarations and self._pending_declarations[0].filed_at <= self.t:
            self.declaration_pub.publish(self._declaration(self._pending_declarations.pop(0)))
        while self._pending_arrivals and self._pending_arrivals[0].arrival <= self.t:
            sim = self._pending_arrivals.pop(0)
            self.truth_pub.publish(self._truth(sim))
            if sim.device:
                self.lanes[sim.device].enqueue(sim)
        ticks_ms = int(self.t * 1000)
        for name, lane in self.lanes.items():
            firmware = self.firmware[name]
            firmware.poll_host(ticks_ms)
            frame = lane.step(self.t)
            for event in frame.events:
                firmware.send_occupancy(ticks_ms, event.occupied, event.subject_id)
            firmware.send_counts(ticks_ms, frame.live_time, frame.occupied, frame.counts)
            if self.ticks % round(1.0 / self.step) == 0:
                firmware.send_status(ticks_ms)
            if lane.busy:
                self._last_leave = self.t
        if self.ticks % round(1.0 / self.step) == 0:
            self._publish_status()
            self._update_diagnostics()
        if (
            not self.finished
            and not self._pending_arrivals
            and self.t >= self.scenario.duration
            and not any(lane.busy for lane in self.lanes.values())
            and self.t - self._last_leave >= self.end_grace
        ):
            self.finished = True
            self._publish_status()
            self.get_logger().info(f'scenario finished at sim time {self.t:.1f} s')

    def _publish_status(self):
        spawned = len(self.traffic) - len(self._pending_arrivals)
        msg = ScenarioStatus(
            scenario=self.scenario.name,
            seed=self.scenario.seed,
            progress=min(1.0, self.t / self.scenario.duration),
            duration=self.scenario.duration,
            subjects_spawned=spawned,
            subjects_total=len(self.traffic),
            finished=self.finished,
        )
        msg.header.stamp = seconds_to_time_msg(self.t)
        self.status_pub.publish(msg)

    def _update_diagnostics(self):
        speed = 0.0
        if self._started_wall is not None:
            wall = (self._wall.now() - self._started_wall).nanoseconds * 1e-9
            speed = self.t / wall if wall > 0 else 0.0
        level = Diagnostics.OK if speed >= 0.8 * self.rate else Diagnostics.WARN
        self.diagnostics.update(
            'site_simulator: clock',
            'simulation',
            level,
            f'sim time {self.t:.1f} s at {speed:.1f}x (asked {self.rate:g}x)',
            {'sim_time': f'{self.t:.1f}', 'speed': f'{speed:.2f}'},
        )
        for name, firmware in self.firmware.items():
            level = Diagnostics.OK if firmware.dropped_lines == 0 else Diagnostics.WARN
            self.diagnostics.update(
                f'site_simulator: {name} firmware',
                f'sim/{name}',
                level,
                f'{firmware.dropped_lines} lines not read by the host',
                {'link': str(firmware.link_path), 'dropped_lines': firmware.dropped_lines},
            )

    def _declaration(self, sim) -> Declaration:
        msg = Declaration(
            declaration_id=sim.declaration_id,
            subject=subject_to_msg(sim.subject),
            declarant_id=sim.declarant_id,
            consignee_id=sim.consignee_id,
            origin_country=sim.origin_country,
            gross_mass=sim.gross_mass,
            expected_arrival=seconds_to_time_msg(sim.declared_arrival),
        )
        msg.header.stamp = seconds_to_time_msg(self.t)
        msg.items = [
            DeclaredItem(
                hs_code=line.hs_code,
                description=line.description,
                quantity=line.quantity,
                net_mass=line.net_mass,
                value=line.value,
                currency=line.currency,
            )
            for line in sim.declared
        ]
        return msg

    def _truth(self, sim) -> GroundTruthSubject:
        msg = GroundTruthSubject(subject=subject_to_msg(sim.subject), contraband=sim.contraband)
        msg.header.stamp = seconds_to_time_msg(self.t)
        msg.items = [
            GroundTruthItem(
                category=item.category,
                description=item.description,
                contraband=item.contraband,
                nuclide=item.nuclide,
                activity=item.activity,
                position=Point(x=item.position[0], y=item.position[1], z=item.position[2]),
            )
            for item in sim.truth
        ]
        return msg

    def destroy_node(self):
        """Close the device ptys and remove their links."""
        for firmware in self.firmware.values():
            firmware.close()
        super().destroy_node()


def main(args=None):
    """Run the site simulator."""
    return run_node(SiteSimulator, args)


if __name__ == '__main__':
    raise SystemExit(main())
