"""A radiation portal monitor's lane: subjects pass one at a time, panels count Poisson photons.

The lane runs along the device frame's +x axis; the detector plane is x = 0. A subject enters
with its front at x = -approach, moves at the lane's speed, and leaves when its rear passes
x = exit. Each frame, every panel counts Poisson(live_time * (background * shadow + sum of the
expected rates from the sources inside the subject)), the rates from
`customs_lab.radiation.physics` (ICRP-107 lines, exact solid angle, attenuation by air,
shielding, cargo and container wall), split into the portal's energy windows; each NaI
spectrometer counts a Poisson spectrum, recorded at the gain its firmware reports
(simulation/lane_spectra.py: spectra, windows and the subject's shadow on the background).

Each He-3 neutron module (radiation/neutron.py) counts Poisson(live_time * measured rate): the
true rate is the cosmic-ray background of its face (the site's `cosmic_neutron_flux`) times the
subject's ship effect, plus neutron.count_rate of the subject's neutron emitters through their
own shields and the cargo towards the module (hydrogen's removal only, count_transmission); the
non-paralysable dead time reduces it. Ship effect: neutron.ship_effect_factor of the subject's
areal mass (weighed gross mass plus a container's 2 mm steel walls, over its floor), with
steel's enhancement for every load (the upper end: hydrogenous loads may even lower the
background, not modelled); it acts in proportion to how much of the module's view the
subject's side face covers (shadow.face_fractions), in full when the subject is centred on the
module. Neutron counts come from their own random stream (spawned from the lane's), so they
change none of the gamma counts.

This is the firmware's world: it knows the truth. Only the simulator uses it.
"""

from collections import deque
from dataclasses import dataclass
import math

import numpy as np

from customs_lab.common.subjects import SubjectKind
from customs_lab.radiation import neutron, physics
from customs_lab.radiation.identification import apply_gain
from customs_lab.radiation.shadow import SubjectBox, face_fractions
from customs_lab.simulation import lane_spectra
from customs_lab.simulation.scenario import CONTAINER_WALL_STEEL, SimSubject
from customs_lab.site.layout import PortalSpec

NORM_GRID = (8, 6, 2)  # points along length, depth (y) and height that stand for bulk cargo
SPEED_SENSOR_ERROR = 0.01  # relative 1-sigma error of the lane's speed measurement


@dataclass(frozen=True)
class LaneEvent:
    """An occupancy edge: the lane reader's read of the subject id (possibly misread)."""

    occupied: bool
    subject_id: str
    speed: float = math.nan  # m/s, as the lane's speed sensor measured it


@dataclass(frozen=True)
class LaneFrame:
    """One counting frame of the lane."""

    counts: np.ndarray  # int, one per panel
    live_time: float  # s
    occupied: bool
    events: tuple  # LaneEvent, in order, that happened during this frame
    windows: np.ndarray | None = None  # int (panels, windows): counts per energy window
    spectra: dict | None = None  # spectrometer id -> counts per channel in this frame
    neutron_counts: dict | None = None  # neutron module id -> counts in this frame


def neutron_modules(spec: PortalSpec) -> list[neutron.NeutronModule]:
    """Return a portal's He-3 modules (site.layout.NeutronModuleSpec) as neutron.NeutronModule."""
    return [
        neutron.NeutronModule(m.id, m.center, m.normal, m.width, m.height, m.tubes,
                              m.pressure_atm, m.tube_diameter, m.active_length, m.dead_time)
        for m in spec.neutron_modules
    ]


def areal_mass(sim: SimSubject) -> float:
    """Return the subject's mass over its floor, g/cm^2 (gross mass; a container's walls too)."""
    length, width, height = sim.size
    if length <= 0 or width <= 0:
        return 0.0
    mass = sim.gross_mass  # kg
    if sim.subject.kind == SubjectKind.CONTAINER:  # its steel walls, roof and floor
        surface = 2.0 * (length * width + length * height + width * height)  # m^2
        mass += surface * CONTAINER_WALL_STEEL * 7874.0
    return max(mass, 0.0) * 1000.0 / (length * width * 1e4)


def _source_points(sim: SimSubject):
    """Return [(position in subject frame, nuclide, activity Bq, own shields)] of a subject."""
    points = []
    length, width, height = sim.size
    for item in sim.truth:
        if item.nuclide and item.activity > 0:
            points.append(
                (
                    np.array(item.position, dtype=float),
                    item.nuclide,
                    item.activity,
                    tuple(item.shields),
                )
            )
        for nuclide, specific in item.specific_activity.items():
            total = specific * item.mass * 1000.0  # Bq/g * g
            nx, ny, nz = NORM_GRID
            share = total / (nx * ny * nz)
            for i in range(nx):
                for j in range(ny):
                    for k in range(nz):
                        position = np.array(
                            [
                                (i + 0.5) / nx * length,
                                (j + 0.5) / ny * width,
                                (k + 0.5) / nz * height * 0.8,
                            ]
                        )
                        points.append((position, nuclide, share, ()))
    return points


def _shields_towards(sim: SimSubject, position, own_shields, panel_normal_y: float):
    """Shields between a point and the panels on one side: own shielding, cargo, container wall."""
    shields = list(own_shields)
    width = sim.size[1]
    if sim.cargo_material and sim.cargo_density > 0 and width > 0:
        # The panel's normal points into the lane: a panel on the left (+y) has normal -y.
        depth = (width - position[1]) if panel_normal_y < 0 else position[1]
        if depth > 0:
            shields.append(physics.Shield(sim.cargo_material, sim.cargo_density, float(depth)))
    if sim.subject.kind == SubjectKind.CONTAINER:  # its steel side wall
        shields.append(physics.Shield('Fe', 7.874, CONTAINER_WALL_STEEL))
    return tuple(shields)


class PortalLane:
    """Simulate one portal lane: queue, motion, occupancy, Poisson counts."""

    def __init__(self, spec: PortalSpec, rng: np.random.Generator, spectra: bool = True):
        """Build the lane; spectra=False leaves its spectrometers out (gross counts only)."""
        self.spec = spec
        self._rng = rng
        self._queue = deque()
        self._active = None  # (SimSubject, entry time, expected rates per frame, length)
        self._occupied = False
        self._read_id = ''
        self._panels = physics.detector_panels(spec.panels)
        self._background = np.array([p.background for p in spec.panels])
        self.panel_detectors, self.spectrometers = lane_spectra.detectors(spec)
        if not spectra:
            self.spectrometers = []
        edges = spec.window_edges_kev
        self._window_maps = (
            [lane_spectra.window_matrix(d.spectrometer, edges) for d in self.panel_detectors]
            if edges
            else []
        )
        self._background_windows = (
            np.array(
                [
                    d.background @ m
                    for d, m in zip(self.panel_detectors, self._window_maps, strict=True)
                ]
            )
            if self._window_maps
            else np.zeros((len(self._panels), 0))
        )
        self.neutron_modules = neutron_modules(spec)
        self._neutron_background = np.array([
            neutron.cosmic_background_rate(m, spec.cosmic_neutron_flux)
            for m in self.neutron_modules])
        self._neutron_rng = rng.spawn(1)[0] if self.neutron_modules else None
        self._free_at = 0.0
        self.passed = []  # subjects that left the lane: (key, entry time, exit time)
        self.entered = []  # subjects that entered it: (SimSubject, entry time); callers drain

    @property
    def busy(self) -> bool:
        """Return True while a subject is in the lane or waiting for it."""
        return self._active is not None or bool(self._queue)

    def enqueue(self, sim: SimSubject):
        """Add an arriving subject to the lane's queue."""
        self._queue.append(sim)

    def _length(self, sim: SimSubject) -> float:
        return sim.size[0] if sim.size[0] > 0 else 0.5

    def _enter(self, sim: SimSubject, t0: float):
        self.entered.append((sim, t0))
        spec = self.spec
        length = self._length(sim)
        n_frames = (
            int(math.ceil((spec.approach + length + spec.exit) / spec.speed / spec.frame_period))
            + 1
        )
        expected = np.zeros((n_frames, len(self._panels)))
        points = _source_points(sim)
        if points:
            # front at x = -approach + v * t; subject frame origin = rear, right, bottom corner
            times = (np.arange(n_frames) + 0.5) * spec.frame_period
            rear = -spec.approach + spec.speed * times - length
            width = sim.size[1]
            for p_index, panel in enumerate(self._panels):
                sources_per_point = []
                for position, nuclide, activity, own in points:
                    shields = _shields_towards(sim, position, own, float(panel.normal[1]))
                    sources_per_point.append((position, nuclide, activity, shields))
                for f_index in range(n_frames):
                    offset = np.array([rear[f_index], -width / 2.0, spec.subject_floor_height])
                    sources = [
                        physics.PointSource(nuclide, activity, position + offset, shields)
                        for position, nuclide, activity, shields in sources_per_point
                    ]
                    expected[f_index, p_index] = physics.expected_count_rate(panel, sources)
        self._active = (sim, t0, expected, length, self._detector_model(sim, length, n_frames))

    def _detector_model(self, sim: SimSubject, length: float, n_frames: int) -> dict:
        """Return the per-frame detector model of a passage.

        Window fractions of the panels' source counts, source spectra, and the shadow factors
        on each detector's background.
        """
        spec = self.spec
        times = (np.arange(n_frames) + 0.5) * spec.frame_period
        offsets = np.column_stack(
            [
                -spec.approach + spec.speed * times - length,
                np.full(n_frames, -sim.size[1] / 2.0),
                np.full(n_frames, spec.subject_floor_height),
            ]
        )
        points = _source_points(sim)

        def shields(position, own, normal_y):
            return _shields_towards(sim, position, own, normal_y)

        model = {
            'panel_shadow': np.column_stack(
                [lane_spectra.shadow(spec, sim, offsets, length, d) for d in self.panel_detectors]
            ),
            'spectra': [],
            'spectrometer_shadow': [
                lane_spectra.shadow(spec, sim, offsets, length, d) for d in self.spectrometers
            ],
            'window_fractions': [],
        }
        for detector, window_map in zip(self.panel_detectors, self._window_maps, strict=False):
            shape = detector.source_spectra(points, offsets, shields) @ window_map
            total = shape.sum(axis=1, keepdims=True)
            model['window_fractions'].append(
                np.divide(shape, total, out=np.zeros_like(shape), where=total > 0)
            )
        for detector in self.spectrometers:
            model['spectra'].append(
                detector.source_spectra(points, offsets, shields) if points else None
            )
        model['neutron_rates'] = self._neutron_rates(sim, offsets, length)
        return model

    def _neutron_rates(self, sim: SimSubject, offsets, length: float) -> np.ndarray:
        """Return (frames, modules): each module's true count rate (cps) during a passage."""
        rates = np.tile(self._neutron_background, (len(offsets), 1))
        if not self.neutron_modules:
            return rates
        emitters = [item for item in sim.truth if item.neutron_rate > 0]
        _, width, height = sim.size
        box = (SubjectBox(length, width, height, floor=float(offsets[0, 2]))
               if width > 0 and height > 0 else None)
        excess = neutron.ship_effect_factor(areal_mass(sim)) - 1.0
        for m, module in enumerate(self.neutron_modules):
            if box is not None and excess:
                where = ([module.center], [module.normal[1]])
                covered = face_fractions(*where, offsets[:, 0], box)[:, 0]
                full = face_fractions(*where, [module.center[0] - length / 2.0], box)[0, 0]
                if full > 0:
                    rates[:, m] *= 1.0 + excess * np.minimum(covered / full, 1.0)
            for item in emitters:
                position = np.array(item.position, dtype=float)
                shields = _shields_towards(sim, position, item.shields, float(module.normal[1]))
                rates[:, m] += [
                    neutron.count_rate(module, [neutron.NeutronSource(
                        item.neutron_rate, position + offset, shields)])
                    for offset in offsets
                ]
        return rates

    def step(self, t: float, gains=None) -> LaneFrame:
        """Advance to the frame that ends at sim time t; return its counts and occupancy events.

        gains: spectrometer id -> the gain the device records at now (1 = calibrated).
        """
        spec = self.spec
        events = []
        if self._active is None and self._queue and t >= self._free_at:
            self._enter(self._queue.popleft(), t)
        source = np.zeros(len(self._panels))
        panel_shadow = np.ones(len(self._panels))
        spectra = [d.background.copy() for d in self.spectrometers]
        window_fractions = None
        neutron_rates = self._neutron_background
        occupied = False
        if self._active is not None:
            sim, t0, expected, length, model = self._active
            elapsed = t - t0
            # the frame ending at t spans [t - T, t]; expected[i] is at t0 + (i + 1/2) T
            index = int(round(elapsed / spec.frame_period)) - 1
            if 0 <= index < len(expected):
                source = expected[index]
                panel_shadow = model['panel_shadow'][index]
                window_fractions = [f[index] for f in model['window_fractions']]
                neutron_rates = model['neutron_rates'][index]
                for j, own in enumerate(model['spectra']):
                    spectra[j] *= model['spectrometer_shadow'][j][index]
                    if own is not None:
                        spectra[j] += own[index]
            front = -spec.approach + spec.speed * elapsed
            rear = front - length
            occupied = rear <= spec.occupancy_half_width and front >= -spec.occupancy_half_width
            if rear > spec.exit:
                self.passed.append((sim.subject.key, t0, t))
                self._active = None
                self._free_at = t + spec.headway
                occupied = False
        if occupied != self._occupied:
            if occupied:
                self._read_id = self._read(self._active[0].subject.id)
            speed = spec.speed * (1.0 + SPEED_SENSOR_ERROR * self._rng.standard_normal())
            events.append(LaneEvent(occupied, self._read_id, float(speed)))
            self._occupied = occupied
        period = spec.frame_period
        windows = None
        if self._window_maps:
            rates = self._background_windows * panel_shadow[:, None]
            if window_fractions is not None:
                rates = rates + source[:, None] * np.array(window_fractions)
            in_windows = self._rng.poisson(rates * period)
            counts, windows = in_windows.sum(axis=1), in_windows[:, :-1]
        else:
            counts = self._rng.poisson((self._background * panel_shadow + source) * period)
        recorded = {}
        for detector, expected_rate in zip(self.spectrometers, spectra, strict=True):
            gain = (gains or {}).get(detector.id, 1.0)
            if gain != 1.0:
                expected_rate = apply_gain(expected_rate, detector.spectrometer, gain)
            recorded[detector.id] = self._rng.poisson(np.maximum(expected_rate, 0.0) * period)
        neutron_counts = None
        if self.neutron_modules:
            neutron_counts = {
                module.module_id: neutron.simulate_counts(self._neutron_rng, rate, period,
                                                          module.dead_time)
                for module, rate in zip(self.neutron_modules, neutron_rates, strict=True)
            }
        return LaneFrame(
            counts=counts,
            live_time=period,
            occupied=occupied,
            events=tuple(events),
            windows=windows,
            spectra=recorded,
            neutron_counts=neutron_counts,
        )

    def _read(self, subject_id: str) -> str:
        """Read the id as the lane reader (OCR / barcode) does: now and then one is wrong."""
        if self._rng.random() >= self.spec.ocr_misread_probability:
            return subject_id
        position = int(self._rng.integers(4, len(subject_id)))
        wrong = (
            str((int(subject_id[position]) + 1) % 10) if subject_id[position].isdigit() else 'X'
        )
        return subject_id[:position] + wrong + subject_id[position + 1 :]
