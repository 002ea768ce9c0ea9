"""Site simulator node: the world of a simulated customs site, on sim time.

Reads a scenario (the day's traffic) and the site file (device geometry), then, step by step:
publishes /clock (faster than real time on request: parameter `rate`), files each subject's
declaration on /clearance/declarations before it arrives, moves subjects through the portal lanes,
and plays each portal's firmware on a pseudo-terminal (the driver reads it with pyserial).
Ground truth goes to /simulation/ground_truth, for the evaluator only; /simulation/status tells
everyone how far the scenario is and when it has finished.

The site's past and its officers are simulated too:
- Before sim time starts, the scenario's history (simulation/history.py: past declarations and
  what the legacy targeting's inspections found) is written to the clearance database as legacy
  records, and the declaration prior is fitted from that database into the model file the
  fusion node loads (what analysts do with `customs-lab risk fit` on a real site). The fit reads
  the database only: declarations and inspection results, no ground truth.
- Officers: every decision that sends a subject to an inspection (X-ray, robot, physical, hold)
  is inspected `inspection_delay` s later. The officer finds each contraband item that is really
  there with probability `inspection_sensitivity` (the scenario's history value) and records the
  result through /clearance/record_inspection; the bridge stores it and publishes it to fusion.
"""

import pathlib
import time
import uuid

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
    InspectionResult,
    RiskDecision,
    ScenarioStatus,
)
from customs_interfaces.srv import RecordInspection
from customs_lab.clearance.database import ClearanceDatabase, sqlite_url
from customs_lab.common.data_dir import data_dir
from customs_lab.common.node_support import (
    DECISIONS_QOS,
    DECISIONS_TOPIC,
    DECLARATIONS_TOPIC,
    GROUND_TRUTH_TOPIC,
    LATCHED,
    LATCHED_ALL,
    SCENARIO_STATUS_TOPIC,
    Diagnostics,
    declare,
    msg_to_subject,
    run_node,
    seconds_to_time_msg,
    subject_to_msg,
    uuid_to_msg,
)
from customs_lab.common.subjects import SubjectKind
from customs_lab.fusion.prior_training import (
    MODEL_FILE,
    fit_calibration_from_database,
    fit_from_database,
    save_model,
)
from customs_lab.simulation.history import ensure_history, history_config
from customs_lab.simulation.portal_lane import PortalLane
from customs_lab.simulation.rpm_firmware import RpmFirmware
from customs_lab.simulation.scenario import Scenario, generate_traffic
from customs_lab.simulation.xray_line import XrayLine
from customs_lab.site.layout import load_site

INSPECTION_STREAM = 4  # the officers' random stream (scenario.py numbers the others)


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
        database_url = declare(
            self, 'database_url', '',
            'Clearance database for the simulated history ("": SQLite <data_dir>/clearance.db)')
        history_days = declare(
            self, 'history_days', -1,
            'Days of history written to the database before the start (-1: as the scenario '
            'says, 0: none)', minimum=-1, maximum=3650)
        prior_model = declare(
            self, 'prior_model', '',
            f'Model file the fitted declaration prior goes to ("": <data_dir>/{MODEL_FILE})')
        self.inspection_delay = declare(
            self, 'inspection_delay', 120.0,
            'Sim s from a decision to inspect until the officer records the result',
            minimum=0.0, maximum=86400.0)

        self.scenario = Scenario.load(resolve_config(scenario_name, 'scenarios'))
        self.site = load_site(resolve_config(site_file, '', '.yaml'))
        self.traffic = generate_traffic(self.scenario)
        self.sensitivity = float(history_config(self.scenario)['inspection_sensitivity'])
        if history_days:
            self._prepare_history(
                database_url or sqlite_url(self.data_dir / 'clearance.db'),
                None if history_days < 0 else history_days,
                pathlib.Path(prior_model or self.data_dir / MODEL_FILE))
        rng = np.random.default_rng(self.scenario.seed + 1)
        self.lanes, self.firmware = {}, {}
        for name, spec in self.site.portals.items():
            self.lanes[name] = PortalLane(spec, rng)
            self.firmware[name] = RpmFirmware(
                self.data_dir / 'dev' / name,
                spec.model,
                f'SIM-{name.upper()}',
                [p.id for p in spec.panels],
                spec.window_edges_kev,
                spec.spectrometers,
                spec.spectrum_period,
                [m.id for m in spec.neutron_modules],
            )
            self.get_logger().info(f'{name}: firmware on {self.firmware[name].link_path}')
        # the X-ray scanners on the conveyors: parcels reach them after the lane's monitor
        self.scanners = {}
        waybills = [s.subject.id for s in self.traffic if s.subject.kind == SubjectKind.PARCEL]
        for name, spec in (self.site.xray_scanners or {}).items():
            self.scanners[name] = XrayLine(spec, self.site.portals[spec.conveyor],
                                           str(self.data_dir / 'dev' / f'{name}.sock'),
                                           self.scenario.seed, waybills)
            self.get_logger().info(f'{name}: scanner firmware on {self.scanners[name].address}')
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
        self.by_key = {s.subject.key: s for s in self.traffic}
        self.officer_rng = np.random.default_rng([self.scenario.seed, INSPECTION_STREAM])
        self.inspected = set()  # subject keys an officer has inspected or will
        self.inspections = []  # (due sim s, request) in due order
        self.inspection_counts = {'recorded': 0, 'refused': 0, 'unmatched': 0}
        self.record_client = self.create_client(RecordInspection, '/clearance/record_inspection')
        self.create_subscription(RiskDecision, DECISIONS_TOPIC, self._on_decision, DECISIONS_QOS)

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

    def _prepare_history(self, url: str, days, model_path: pathlib.Path):
        """Write the scenario's history to the database, then fit the prior from the database."""
        started = time.monotonic()
        for attempt in range(5):  # the bridge may be migrating the same database right now
            database = ClearanceDatabase(url, actor='site_simulator')
            try:
                database.migrate()
                size, new = ensure_history(database, self.scenario, days)
                break
            except Exception as error:  # noqa: BLE001 - retried, then raised
                if attempt == 4:
                    raise
                self.get_logger().warn(f'history not written yet ({error}); retrying')
                time.sleep(1.0 + attempt)
            finally:
                database.dispose()
        self.get_logger().info(
            f'history: {size} past declarations in {database.engine.url!r} ({new} records '
            f'written, {time.monotonic() - started:.1f} s)')
        try:  # what `customs-lab risk fit` does on a real site
            model = fit_from_database(database, self.sensitivity)
            calibration = fit_calibration_from_database(database)
        except ValueError as error:
            self.get_logger().error(f'declaration prior not fitted ({error}): fusion will use '
                                    'base rates')
            return
        finally:
            database.dispose()
        save_model(model, model_path, source=f'{database.engine.url!r} (simulated history)',
                   calibration=calibration)
        self.get_logger().info(f'declaration prior {model.version} -> {model_path}')

    def _on_decision(self, msg: RiskDecision):
        """Schedule an officer's inspection of a subject sent to inspection (once per subject)."""
        if not msg.selection:
            return
        key = msg_to_subject(msg.subject).key
        if key in self.inspected:
            return
        self.inspected.add(key)
        sim = self.by_key.get(key)
        if sim is None:  # a misread id: the officer cannot match the paperwork
            self.inspection_counts['unmatched'] += 1
            return
        found = sorted({t.category for t in sim.truth
                        if t.contraband and self.officer_rng.random() < self.sensitivity})
        result = InspectionResult(
            subject=subject_to_msg(sim.subject), declaration_id=sim.declaration_id,
            decision_id=msg.decision_id, officer_id=f'officer-{len(self.inspected) % 7 + 1:02d}',
            action=msg.recommended_action, selection=msg.selection,
            outcome='seizure' if found else 'no_finding', categories=found,
            findings=f'found {", ".join(found)}' if found else 'nothing irregular')
        result.result_id = uuid_to_msg(uuid.uuid5(uuid.NAMESPACE_URL, f'inspection/{key}'))
        due = self.t + self.inspection_delay
        result.header.stamp = seconds_to_time_msg(due)
        self.inspections.append((due, result))

    def _record_due_inspections(self, everything=False):
        """Send the inspections that are due (all of them when the scenario ends)."""
        while self.inspections and (everything or self.inspections[0][0] <= self.t):
            if not self.record_client.service_is_ready():
                return  # the bridge is not up (yet): try again next tick
            _, result = self.inspections.pop(0)
            future = self.record_client.call_async(RecordInspection.Request(result=result))
            future.add_done_callback(self._on_recorded)

    def _on_recorded(self, future):
        try:
            reply = future.result()
        except Exception as error:  # noqa: BLE001 - reported, counted
            self.get_logger().warn(f'inspection result not recorded: {error}')
            self.inspection_counts['refused'] += 1
            return
        self.inspection_counts['recorded' if reply.accepted else 'refused'] += 1
        if not reply.accepted:
            self.get_logger().warn(f'inspection result refused: {reply.message}')

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
            firmware.update_temperature(self.t)
            firmware.send_frame(ticks_ms, lane.step(self.t, firmware.recording_gains()))
            if self.ticks % round(1.0 / self.step) == 0:
                firmware.send_status(ticks_ms)
            if lane.busy:
                self._last_leave = self.t
            for sim, entered_at in lane.entered:
                for scanner in self.scanners.values():
                    if (scanner.spec.conveyor == name
                            and sim.subject.kind.name.lower() == scanner.spec.subject_kind):
                        scanner.enter(sim, entered_at)
            lane.entered.clear()
        for scanner in self.scanners.values():
            scanner.step(self.t)
            if scanner.busy:
                self._last_leave = self.t
        self._record_due_inspections(everything=self.finished)
        if self.ticks % round(1.0 / self.step) == 0:
            self._publish_status()
            self._update_diagnostics()
        if (
            not self.finished
            and not self._pending_arrivals
            and self.t >= self.scenario.duration
            and not any(lane.busy for lane in self.lanes.values())
            and not any(scanner.busy for scanner in self.scanners.values())
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
        self.diagnostics.update(
            'site_simulator: officers', 'simulation', Diagnostics.OK,
            f'{len(self.inspected)} subjects sent to inspection, {len(self.inspections)} waiting',
            {**self.inspection_counts, 'waiting': len(self.inspections)},
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

        for name, scanner in self.scanners.items():
            stats = scanner.stats
            problem = stats['render_errors'] or scanner.firmware.dropped_lines
            self.diagnostics.update(
                f'site_simulator: {name} scanner', f'sim/{name}',
                Diagnostics.WARN if problem else Diagnostics.OK,
                f"{stats['queued']} parcels scanned, {scanner.firmware.dropped_lines} lines not "
                f"read by the host" + (f'; render failed: {scanner.last_error}'
                                       if stats['render_errors'] else ''),
                {'address': scanner.address, 'dropped_lines': scanner.firmware.dropped_lines,
                 **stats})

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
        for scanner in self.scanners.values():
            scanner.close()
        super().destroy_node()


def main(args=None):
    """Run the site simulator."""
    return run_node(SiteSimulator, args)


if __name__ == '__main__':
    raise SystemExit(main())
