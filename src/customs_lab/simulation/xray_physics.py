"""The parcel X-ray scanner's physics: a ParcelScene on the belt rendered into raw detector lines.

Core module (numpy; spectrum and attenuation from customs_lab.xray.spectrum / materials; no
ROS). Geometry of scanner_model.py: the focal spot at the origin below the belt, the fan beam
in the plane x = 0 perpendicular to the belt, the belt surface at z = source_to_belt, detector
pixel i at (0, y_i, source_to_detector); pixel i sees the pencil ray from the focal spot to its
centre. The parcel (parcel_scene.py frame: x along the belt, its x = size[0] face first) moves
towards +x; line n samples the parcel at x = size[0] - (n - lead + 0.5) * line_pitch. A line
integrates over the belt's travel: an object is seen in line n with the chord of its section at
the middle of its overlap with the line's slice of width line_pitch, times the overlapping
fraction of the slice (partial volume, linear in the chord: thin edges are not lost).

Transmission (Beer-Lambert, narrow beam): per ray, the chord L through every object (analytic:
the section of a box or of a cylinder across the fan is a rectangle, that of an ellipsoid or of
a cylinder along x an ellipse; ray-rectangle by slabs, ray-ellipse by the quadratic), the belt
(belt_rubber, belt_thickness / cos) and the air on the whole path (1.4 m of air absorbs ~10 % at
20 keV: constant, calibrated out), attenuation A = L @ mu (rays x energies, xraydb), expected
keV deposited per layer S1 = g_p sum_E N(E) exp(-A(E)) w(E) with N the tube spectrum (spekpy, per
mAs and cm^2 at 1 m), g_p = mAs per line x pixel area x cos(phi) / r^2 (inverse square and the
obliquity of a flat detector line), w the layer's weight (spectrum.detector_weights).

Photon noise: an energy-integrating layer's signal is compound Poisson, variance
S2 = g_p sum_E N exp(-A) p(E) E^2. It is drawn per energy group (NOISE_GROUPS contiguous ranges
of the grid): counts ~ Poisson(S1_g^2 / S2_g) times S2_g / S1_g, which has exactly the mean S1_g
and the variance S2_g of the group's compound Poisson sum (only higher moments are approximate).
Then per pixel and channel: ADU = gain_c x pixel_gain x keV + dark offset + Gaussian read noise,
rounded and clipped to the ADC range. gain_c makes the unobstructed (belt in the beam) central
ray read model.air_level above dark; pixel gains (spread model.gain_spread) and dark offsets
(model.dark_offset, 10 % spread) are fixed per scanner, drawn from serial_seed: what the dark and
air calibration corrects. `set_drift` scales the tube output and shifts the dark offsets.

Backscatter (single scatter along each pixel's pencil ray): Compton scattering back through
~180 degrees, dsigma/dOmega of Klein-Nishina per free electron times the electron density
(binding is negligible at this momentum transfer: materials.py), scattered energy
E' = E / (1 + 2E/511 keV). Along the ray the segments (belt, then the objects by their entry
distance: objects never interpenetrate) attenuate the primary at E on the way in and the
scattered photon at E' on the way out (the return path taken along the same ray); within a
segment of length L the depth integral is (1 - exp(-mu L)) / mu, mu = mu_E + mu_E'. The
detector (model.backscatter_area beside the tube) subtends area / s^2, s the distance from the
focal spot to the segment's scatter-weighted mean depth 1/mu - L / (exp(mu L) - 1) (taken at
the middle energy group); it absorbs with the backscatter layer's weight. Computed on
BACKSCATTER_GROUPS energy groups of equal photon share (group-mean energies: the hardening
inside a group is ignored), float32 for speed; Poisson noise as above; scaled so that 10 cm of
water on the belt reads model.backscatter_level above dark on the central ray. A real fan-beam
scanner's backscatter detector would integrate over the whole fan; a per-pixel channel (as a
flying-spot or collimated-segment system has) is what the raw-scan contract asks for.
"""

from dataclasses import dataclass
import math

import numpy as np

from customs_lab.simulation.parcel_scene import ParcelScene
from customs_lab.xray import materials, spectrum
from customs_lab.xray.scanner_model import ScannerModel

NOISE_GROUPS = 4  # energy groups of the compound-Poisson noise draw
BACKSCATTER_GROUPS = 8  # energy groups of the backscatter calculation (equal photon shares)
BELT_MATERIAL = 'belt_rubber'  # C5H8 at 0.95 g/cm^3 (scanner_model.py)
REFERENCE_WATER = 0.10  # m of water on the belt that reads model.backscatter_level
DARK_SPREAD = 0.10  # relative pixel-to-pixel spread of the dark offsets
DEFAULT_LEAD = 20  # air lines before and after a parcel
_CHUNK = 400_000  # rays x objects per chunk of lines (memory bound)
_KIND = {'box': 0, 'cylinder_x': 1, 'cylinder_y': 2, 'cylinder_z': 3, 'ellipsoid': 4}
_TINY = 1e-12


@dataclass(frozen=True)
class TruthBox:
    """Where one object (or one group of objects) is in a rendered scan (inclusive indices)."""

    name: str
    material: str
    category: str
    threat: str
    contraband: bool
    first_line: int
    last_line: int
    first_pixel: int
    last_pixel: int


@dataclass
class _Layout:
    """A scene's objects as arrays in the scanner frame (y, z) and the parcel frame (x)."""

    x0: np.ndarray  # parcel-frame x extent
    x1: np.ndarray
    cx: np.ndarray
    sx: np.ndarray
    cy: np.ndarray  # scanner-frame centre across the belt
    cz: np.ndarray  # scanner-frame height of the centre
    sy: np.ndarray
    sz: np.ndarray
    kind: np.ndarray
    substance: np.ndarray  # index into the physics' per-substance arrays


class XrayPhysics:
    """Renders parcels into raw (low, high, back) uint16 lines of one simulated scanner."""

    def __init__(self, model: ScannerModel, serial_seed: int, noise_groups: int = NOISE_GROUPS,
                 bin_kev: float = spectrum.ENERGY_BIN_KEV):
        """Set up the spectrum, detector response, geometry and the scanner's fixed pattern."""
        if not isinstance(model, ScannerModel):
            raise ValueError(f'expected a ScannerModel, got {type(model).__name__}')
        model.check()
        if (isinstance(serial_seed, bool) or not isinstance(serial_seed, (int, np.integer))
                or serial_seed < 0):
            raise ValueError(f'serial_seed must be a non-negative integer, got {serial_seed!r}')
        if not (isinstance(noise_groups, int) and 1 <= noise_groups <= 64):
            raise ValueError(f'noise_groups must be an integer in [1, 64], got {noise_groups!r}')
        self.model = model
        self.energies, self.photons = spectrum.tube_spectrum(model, bin_kev)
        self.response = spectrum.detector_weights(model, bin_kev)
        energies = self.energies
        pixels = model.pixels
        self.pixel_y = np.asarray(model.pixel_y(), dtype=float)  # m at the detector
        distance = np.hypot(self.pixel_y, model.source_to_detector)  # m
        self.dir_y = self.pixel_y / distance
        self.dir_z = model.source_to_detector / distance
        # photons per (photons per mAs and cm^2 at 1 m) into one pixel in one line
        self.geometry = ((model.tube_current_ma * model.line_period)
                         * (model.detector_pitch * 100.0) ** 2 * self.dir_z / distance**2)
        self._geometry_ref = ((model.tube_current_ma * model.line_period)
                              * (model.detector_pitch * 100.0) ** 2 / model.source_to_detector**2)
        # background of every ray: air over the whole path and the belt
        self._mu_air = materials.mu('air', energies)
        self._mu_belt = materials.mu(BELT_MATERIAL, energies)
        self.belt_chord = model.belt_thickness / self.dir_z  # m along each ray
        self.belt_entry = (model.source_to_belt - model.belt_thickness) / self.dir_z
        self._background = (np.outer(distance * 100.0, self._mu_air)
                            + np.outer(self.belt_chord * 100.0, self._mu_belt))  # (P, E)
        # energy groups: noise groups over the grid; backscatter groups with mean energies
        self._groups = np.array_split(np.arange(len(energies)), noise_groups)
        self._weights = self._transmission_weights()  # (E, 4 G)
        self._setup_backscatter()
        # the scanner's fixed pattern
        fixed = np.random.default_rng(int(serial_seed))
        self.pixel_gain = np.clip(1.0 + model.gain_spread * fixed.standard_normal((3, pixels)),
                                  0.5, 1.5)
        self.pixel_dark = np.clip(model.dark_offset * (
            1.0 + DARK_SPREAD * fixed.standard_normal((3, pixels))), 0.0, None)
        self.tube_output, self.dark_shift = 1.0, 0.0
        self._air_cache = {}
        self._substances = {}  # (material, density) -> row of the substance arrays
        self._rows = {'mu': [], 'back': [], 'electrons': []}  # per substance
        self._tables_cache = None
        self._belt_row = self._substance(BELT_MATERIAL, materials.MATERIALS[BELT_MATERIAL].density)
        self._gain = self._channel_gains()  # ADU per keV of low, high, back

    # -----------------------------------------------------------------------------------------
    # set-up

    def _transmission_weights(self) -> np.ndarray:
        """Return (E, 4 G): columns low S1, low S2, high S1, high S2 per noise group."""
        response, photons = self.response, self.photons
        columns = []
        for channel in ('low', 'high'):
            first = photons * response.weights(channel)
            second = photons * response.second_moment(channel)
            for values in (first, second):
                for group in self._groups:
                    column = np.zeros_like(values)
                    column[group] = values[group]
                    columns.append(column)
        return np.stack(columns, axis=1)

    def _setup_backscatter(self):
        energies, photons, response = self.energies, self.photons, self.response
        share = np.cumsum(photons) / photons.sum()
        cuts = np.searchsorted(share, np.arange(1, BACKSCATTER_GROUPS) / BACKSCATTER_GROUPS)
        groups = [g for g in np.split(np.arange(len(energies)), np.unique(cuts)) if len(g)]
        mean = np.array([np.sum(photons[g] * energies[g]) / max(photons[g].sum(), _TINY)
                         for g in groups])
        first = np.array([np.sum(photons[g] * response.back[g]) for g in groups])
        second = np.array([np.sum(photons[g] * response.second_moment('back')[g])
                           for g in groups])
        self._back_energy = mean  # primary group energies (keV)
        self._back_scattered = materials.compton_energy(mean, 180.0)
        self._back_kn = materials.klein_nishina(mean, 180.0)  # cm^2/sr per electron
        self._back_middle = len(groups) // 2  # the group whose mu places the scatter depth
        self._back_first, self._back_second = first, second  # photons x keV (x keV)
        air_in = materials.mu('air', mean)
        air_out = materials.mu('air', self._back_scattered)
        self._back_air = air_in + air_out  # 1/cm, in and out
        # which noise group each backscatter group belongs to (by its mean energy)
        edges = [self.energies[g[-1]] + 1e-9 for g in self._groups]
        self._back_noise_group = np.minimum(np.searchsorted(edges, mean), len(self._groups) - 1)

    def _substance(self, material: str, density: float) -> int:
        key = (material, round(float(density), 9))
        row = self._substances.get(key)
        if row is None:
            substance = materials.get_material(material).at_density(density)
            row = len(self._rows['mu'])
            self._substances[key] = row
            self._rows['mu'].append(materials.mu(substance, self.energies))
            self._rows['back'].append(materials.mu(substance, self._back_energy)
                                      + materials.mu(substance, self._back_scattered))
            self._rows['electrons'].append(materials.electron_density(substance))
            self._tables_cache = None
        return row

    def _tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return the substances' mu (S, E), mu in + out of backscatter (S, Gb), n_e (S,)."""
        if self._tables_cache is None:
            self._tables_cache = tuple(np.array(self._rows[key])
                                       for key in ('mu', 'back', 'electrons'))
        return self._tables_cache

    def _channel_gains(self) -> np.ndarray:
        """Return ADU per keV of low, high (air_level on the central ray) and back."""
        model = self.model
        background = (model.source_to_detector * 100.0 * self._mu_air
                      + model.belt_thickness * 100.0 * self._mu_belt)
        transmitted = self.photons * np.exp(-background) * self._geometry_ref
        low = np.sum(transmitted * self.response.low)
        high = np.sum(transmitted * self.response.high)
        water = self._substance('water', 1.0)
        belt_z0 = model.source_to_belt - model.belt_thickness
        entry = np.array([[belt_z0, model.source_to_belt]])
        chord = np.array([[model.belt_thickness, REFERENCE_WATER]])
        first, _ = self._backscatter(entry, chord, np.array([[self._belt_row, water]]),
                                     np.array([self._geometry_ref]))
        back = float(first[0].sum())
        if not (low > 0 and high > 0 and back > 0):
            raise ValueError('the scanner model lets no signal reach a detector layer')
        return np.array([model.air_level / low, model.air_level / high,
                         model.backscatter_level / back])

    # -----------------------------------------------------------------------------------------
    # drift and references

    def set_drift(self, tube_output: float = 1.0, dark_shift: float = 0.0):
        """Set the tube output factor (1 nominal) and a dark offset shift (ADU) for all lines."""
        try:
            output, shift = float(tube_output), float(dark_shift)
        except (TypeError, ValueError):
            raise ValueError(f'drift needs numbers, got {tube_output!r}, {dark_shift!r}') from None
        if not (math.isfinite(output) and 0.0 < output <= 10.0):
            raise ValueError(f'tube_output must be in (0, 10], got {tube_output!r}')
        if not math.isfinite(shift):
            raise ValueError(f'dark_shift must be finite, got {dark_shift!r}')
        self.tube_output, self.dark_shift = output, shift

    def dark_lines(self, n: int, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return n lines of (low, high, back) with the X-rays off."""
        n = _count(n, 'n')
        zero = np.zeros((n, self.model.pixels, 1))
        return self._digitise([(zero, zero)] * 3, rng)

    def air_lines(self, n: int, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return n lines of (low, high, back) with the X-rays on and the belt empty."""
        n = _count(n, 'n')
        moments = self._air_moments()
        return self._digitise([(np.broadcast_to(a, (n,) + a.shape),
                                np.broadcast_to(b, (n,) + b.shape)) for a, b in moments], rng)

    def _air_moments(self):
        """Return [(S1, S2) of (P, G)] per channel for an empty belt, at the current output."""
        cached = self._air_cache.get(self.tube_output)
        if cached is None:
            cached = self._air_cache[self.tube_output] = self._compute_air_moments()
        return cached

    def _compute_air_moments(self):
        transmission = np.exp(-self._background)  # (P, E)
        sums = (transmission @ self._weights) * (self.geometry * self.tube_output)[:, None]
        g = len(self._groups)
        low, high = (sums[:, :g], sums[:, g:2 * g]), (sums[:, 2 * g:3 * g], sums[:, 3 * g:])
        entry = self.belt_entry[:, None]
        chord = self.belt_chord[:, None]
        back = self._backscatter(entry, chord, np.full((len(entry), 1), self._belt_row),
                                 self.geometry * self.tube_output)
        return [low, high, self._noise_groups(*back)]

    def expected_air(self) -> np.ndarray:
        """Return the mean (3, pixels) ADU above dark of an empty belt (no noise)."""
        moments = self._air_moments()
        return np.stack([first.sum(-1) * self._gain[c] * self.pixel_gain[c]
                         for c, (first, _) in enumerate(moments)])

    # -----------------------------------------------------------------------------------------
    # rendering

    def render(self, scene: ParcelScene, rng, lead: int = DEFAULT_LEAD,
               trail: int = DEFAULT_LEAD) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return the (low, high, back) uint16 (lines, pixels) arrays of a parcel passing.

        `lead` air lines come before the parcel's first line, `trail` after its last.
        """
        lines, parts = [], []
        for chunk in self._chunks(scene, lead, trail):
            parts.append(self._digitise(chunk, rng))
        for c in range(3):
            lines.append(np.concatenate([part[c] for part in parts], axis=0))
        return tuple(lines)

    def expected(self, scene: ParcelScene, lead: int = DEFAULT_LEAD,
                 trail: int = DEFAULT_LEAD) -> np.ndarray:
        """Return the mean (3, lines, pixels) ADU above dark of a parcel passing (no noise)."""
        out = []
        for chunk in self._chunks(scene, lead, trail):
            out.append(np.stack([first.sum(-1) * self._gain[c] * self.pixel_gain[c]
                                 for c, (first, _) in enumerate(chunk)]))
        return np.concatenate(out, axis=1)

    def scene_lines(self, scene: ParcelScene, lead: int = DEFAULT_LEAD,
                    trail: int = DEFAULT_LEAD) -> int:
        """Return the number of lines `render` returns for a scene."""
        return _count(lead, 'lead') + self._parcel_lines(scene) + _count(trail, 'trail')

    def chords(self, scene: ParcelScene, line: int,
               lead: int = DEFAULT_LEAD) -> tuple[np.ndarray, np.ndarray]:
        """Return (entry distance, chord) in m of every pixel's ray through every object.

        Arrays (pixels, objects) for `line` of `render`'s arrays, objects in the order of
        scene.all_objects(); the chord includes the partial-volume fraction (see the module
        docstring), the entry distance is from the focal spot along the ray.
        """
        lead, line = _count(lead, 'lead'), _count(line, 'line')
        layout = self._layout(scene)
        pitch = self.model.line_pitch
        centre = scene.size[0] - (line - lead + 0.5) * pitch
        lo = np.maximum(layout.x0, centre - pitch / 2.0)
        hi = np.minimum(layout.x1, centre + pitch / 2.0)
        fraction = np.clip((hi - lo) / pitch, 0.0, 1.0)
        everything = np.arange(len(layout.kind))
        entry, chord = self._chords(layout, everything, (0.5 * (lo + hi))[None, :])
        return entry[0], chord[0] * fraction[None, :]

    def _parcel_lines(self, scene: ParcelScene) -> int:
        return int(math.ceil(scene.size[0] / self.model.line_pitch - 1e-9))

    def _check_scene(self, scene: ParcelScene):
        model = self.model
        if not isinstance(scene, ParcelScene):
            raise ValueError(f'expected a ParcelScene, got {type(scene).__name__}')
        if abs(scene.belt_y) + scene.size[1] / 2.0 > model.tunnel_width / 2.0 + 1e-9:
            raise ValueError(f'parcel {scene.waybill}: {scene.size[1]} m wide at y = '
                             f'{scene.belt_y} m does not fit the {model.tunnel_width} m tunnel')
        if scene.size[2] > model.tunnel_height:
            raise ValueError(f'parcel {scene.waybill}: {scene.size[2]} m high does not fit the '
                             f'{model.tunnel_height} m tunnel')

    def _layout(self, scene: ParcelScene) -> _Layout:
        self._check_scene(scene)
        objects = scene.all_objects()
        base_y = scene.belt_y - scene.size[1] / 2.0
        centre = np.array([item.centre for item in objects])
        size = np.array([item.size for item in objects])
        kind = np.array([_KIND['cylinder_' + item.axis] if item.shape == 'cylinder'
                         else _KIND[item.shape] for item in objects])
        substance = np.array([self._substance(item.material, item.density) for item in objects])
        return _Layout(x0=centre[:, 0] - size[:, 0] / 2.0, x1=centre[:, 0] + size[:, 0] / 2.0,
                       cx=centre[:, 0], sx=size[:, 0], cy=base_y + centre[:, 1],
                       cz=self.model.source_to_belt + centre[:, 2], sy=size[:, 1],
                       sz=size[:, 2], kind=kind, substance=substance)

    def _chunks(self, scene: ParcelScene, lead: int, trail: int):
        """Yield the per-channel (S1, S2) of (lines, P, G) of consecutive chunks of lines."""
        lead, trail = _count(lead, 'lead'), _count(trail, 'trail')
        layout = self._layout(scene)
        pitch = self.model.line_pitch
        total = lead + self._parcel_lines(scene) + trail
        centres = scene.size[0] - (np.arange(total) - lead + 0.5) * pitch
        mu = self._tables()[0]
        step = max(1, _CHUNK // max(1, self.model.pixels * len(layout.kind)))
        for start in range(0, total, step):
            yield self._chunk(layout, centres[start:start + step], mu)

    def _chunk(self, layout: _Layout, centres, mu):
        pitch, geometry = self.model.line_pitch, self.geometry * self.tube_output
        lo = np.maximum(layout.x0[None, :], centres[:, None] - pitch / 2.0)  # (n, K)
        hi = np.minimum(layout.x1[None, :], centres[:, None] + pitch / 2.0)
        fraction = np.clip((hi - lo) / pitch, 0.0, 1.0)
        present = np.flatnonzero(np.any(fraction > 0, axis=0))
        n, pixels, g = len(centres), self.model.pixels, len(self._groups)
        air = self._air_moments()
        if len(present) == 0:
            return [(np.broadcast_to(a, (n,) + a.shape), np.broadcast_to(b, (n,) + b.shape))
                    for a, b in air]
        fraction = fraction[:, present]
        section_x = 0.5 * (lo[:, present] + hi[:, present])
        entry, chord = self._chords(layout, present, section_x)  # (n, P, K) m
        chord *= fraction[:, None, :]
        hit = np.any(chord > 0, axis=2)  # (n, P): rays through the parcel
        sums = np.empty((n, pixels, 4 * g))
        sums[:] = np.concatenate([air[0][0], air[0][1], air[1][0], air[1][1]], axis=1)
        rays = np.nonzero(hit)
        if len(rays[0]):
            attenuation = (chord[rays] * 100.0) @ mu[layout.substance[present]]
            attenuation += self._background[rays[1]]
            sums[rays] = (np.exp(-attenuation) @ self._weights) * geometry[rays[1]][:, None]
        back_first = np.broadcast_to(air[2][0], (n, pixels, g)).copy()
        back_second = np.broadcast_to(air[2][1], (n, pixels, g)).copy()
        if len(rays[0]):
            first, second = self._ray_backscatter(entry[rays], chord[rays], rays[1],
                                                  layout.substance[present], geometry)
            back_first[rays], back_second[rays] = first, second
        return [(sums[..., :g], sums[..., g:2 * g]), (sums[..., 2 * g:3 * g], sums[..., 3 * g:]),
                (back_first, back_second)]

    def _chords(self, layout: _Layout, present, section_x):
        """Return entry distance and chord (m) of every ray (n, P) through every object (K)."""
        k = present
        half_x = layout.sx[k] / 2.0
        u = (section_x - layout.cx[k]) / half_x
        root = np.sqrt(np.clip(1.0 - u * u, 0.0, None))  # (n, K)
        kind = layout.kind[k]
        shrink_y = np.isin(kind, (_KIND['cylinder_z'], _KIND['ellipsoid']))
        shrink_z = np.isin(kind, (_KIND['cylinder_y'], _KIND['ellipsoid']))
        half_y = layout.sy[k] / 2.0 * np.where(shrink_y, root, 1.0)  # (n, K)
        half_z = layout.sz[k] / 2.0 * np.where(shrink_z, root, 1.0)
        ellipse = np.isin(kind, (_KIND['cylinder_x'], _KIND['ellipsoid']))
        dy = self.dir_y[None, :, None]
        dy = np.where(np.abs(dy) < _TINY, _TINY, dy)
        dz = self.dir_z[None, :, None]
        cy, cz = layout.cy[k][None, None, :], layout.cz[k][None, None, :]
        hy, hz = half_y[:, None, :], half_z[:, None, :]
        # rectangles: slabs
        ty1, ty2 = (cy - hy) / dy, (cy + hy) / dy
        entry = np.maximum(np.minimum(ty1, ty2), (cz - hz) / dz)
        exit_ = np.minimum(np.maximum(ty1, ty2), (cz + hz) / dz)
        if np.any(ellipse):
            ey, ez = np.maximum(hy, _TINY), np.maximum(hz, _TINY)
            a = (dy / ey) ** 2 + (dz / ez) ** 2
            b = dy * cy / ey**2 + dz * cz / ez**2
            c = (cy / ey) ** 2 + (cz / ez) ** 2 - 1.0
            disc = np.sqrt(np.clip(b * b - a * c, 0.0, None))
            ellipse = ellipse[None, None, :]
            entry = np.where(ellipse, (b - disc) / a, entry)
            exit_ = np.where(ellipse, (b + disc) / a, exit_)
        chord = np.where((hy > 0) & (hz > 0), np.clip(exit_ - entry, 0.0, None), 0.0)
        return entry, chord

    def _ray_backscatter(self, entry, chord, pixel, substance, geometry):
        """Return the backscatter (S1, S2) of (R, G) of rays through objects (R, K)."""
        order = np.argsort(np.where(chord > 0, entry, np.inf), axis=1)
        entry = np.take_along_axis(entry, order, axis=1)
        chord = np.take_along_axis(chord, order, axis=1)
        index = np.where(chord > 0, substance[order], -1)
        entry = np.concatenate([self.belt_entry[pixel][:, None], entry], axis=1)
        chord = np.concatenate([self.belt_chord[pixel][:, None], chord], axis=1)
        index = np.concatenate([np.full((len(pixel), 1), self._belt_row), index], axis=1)
        return self._noise_groups(*self._backscatter(entry, chord, index, geometry[pixel]))

    def _backscatter(self, entry, chord, index, geometry):
        """Return the backscatter (S1, S2) of (R, Gb) of segments ordered along each ray.

        entry, chord (R, H) m; index (R, H): substance row, -1 for no segment (a ray's
        segments come first, in their order along it; every ray has at least one). The
        segments are processed as one flat list (rays after rays): the attenuation before a
        segment is a cumulative sum within its ray.
        """
        _, back, electrons = self._tables()
        valid = index >= 0
        rows, _ = np.nonzero(valid)
        index, entry, length = index[valid], entry[valid], chord[valid] * 100.0  # cm
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        ray = np.cumsum(np.r_[0, np.diff(rows) > 0])
        # float32 for the (segments x groups) arrays (speed), float64 for the running sums
        total = back[index].astype(np.float32)  # (M, Gb) 1/cm, in at E plus out at E'
        path = total * length.astype(np.float32)[:, None]  # attenuation in and out
        before = np.cumsum(path, axis=0, dtype=np.float64)
        before -= before[starts][ray]  # ray by ray
        before = before.astype(np.float32) - path
        grow = np.expm1(np.minimum(path, np.float32(50.0)))
        depth = grow / ((grow + 1.0) * total)  # (1 - exp(-mu L)) / mu, cm
        # the scatter-weighted mean depth in the segment, 1/mu - L/(exp(mu L) - 1) (L/2 when
        # thin), at the middle energy group: where the solid angle and the air path are taken
        mu, step = total[:, self._back_middle], path[:, self._back_middle]
        with np.errstate(divide='ignore', invalid='ignore'):
            mean_depth = np.where(step < 1e-3, length * (0.5 - step / 12.0),
                                  1.0 / mu - length / np.expm1(np.clip(step, 1e-3, 50.0)))
        distance = np.maximum(entry + mean_depth / 100.0, 0.01)  # m from the focal spot
        before += np.multiply.outer(distance * 100.0, self._back_air).astype(np.float32)
        scattered = depth * np.exp(-before)
        scattered *= (electrons[index] * self.model.backscatter_area
                      / distance**2).astype(np.float32)[:, None]
        per_photon = np.add.reduceat(scattered.astype(np.float64), starts, axis=0)
        per_photon *= self._back_kn  # (R, Gb) photons into the detector per primary photon
        scale = np.asarray(geometry, dtype=float)[:, None]
        return (per_photon * self._back_first * scale, per_photon * self._back_second * scale)

    def _noise_groups(self, first, second):
        """Sum backscatter groups into the noise groups."""
        shape = first.shape[:-1] + (len(self._groups),)
        out_first, out_second = np.zeros(shape), np.zeros(shape)
        for group in range(len(self._groups)):
            members = self._back_noise_group == group
            out_first[..., group] = first[..., members].sum(-1)
            out_second[..., group] = second[..., members].sum(-1)
        return out_first, out_second

    def _digitise(self, moments, rng):
        """Draw compound-Poisson keV per channel, apply gains, dark, read noise, ADC."""
        model = self.model
        out = []
        for c, (first, second) in enumerate(moments):
            first, second = np.asarray(first), np.asarray(second)
            with np.errstate(divide='ignore', invalid='ignore'):
                counts = np.where(second > 0, first * first / second, 0.0)
                quantum = np.where(first > 0, second / first, 0.0)
            kev = np.sum(rng.poisson(counts) * quantum, axis=-1)
            adu = (kev * self._gain[c] * self.pixel_gain[c] + self.pixel_dark[c] + self.dark_shift
                   + model.read_noise * rng.standard_normal(kev.shape))
            out.append(np.clip(np.rint(adu), 0, model.full_scale).astype(np.uint16))
        return tuple(out)

    # -----------------------------------------------------------------------------------------
    # truth

    def truth_boxes(self, scene: ParcelScene, lead: int = DEFAULT_LEAD,
                    groups: bool = True) -> list[TruthBox]:
        """Return each content object's (or group's) region in `render`'s arrays.

        Lines: those whose slice of the belt overlaps the object; pixels: the projection of its
        bounding box from the focal spot onto the detector line. With groups=True, the parts of
        a group (a knife's blade and handle) give one box named after the group, with the
        material of its heaviest part. The walls of the box are not listed.
        """
        lead = _count(lead, 'lead')
        self._check_scene(scene)
        model = self.model
        pitch, length = model.line_pitch, scene.size[0]
        base_y = scene.belt_y - scene.size[1] / 2.0
        boxes = {}
        for item in scene.objects:
            lo, hi = item.lo, item.hi
            first_line = int(math.floor(lead - 1 + (length - hi[0]) / pitch + 1e-9)) + 1
            last_line = int(math.ceil(lead + (length - lo[0]) / pitch - 1e-9)) - 1
            u = [(base_y + y) * model.source_to_detector / (model.source_to_belt + z)
                 for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
            first_pixel = int(math.floor(min(u) / model.detector_pitch + model.pixels / 2.0))
            last_pixel = int(math.floor(max(u) / model.detector_pitch + model.pixels / 2.0))
            key = item.group if groups else item.name
            box = [first_line, last_line, max(first_pixel, 0), min(last_pixel, model.pixels - 1),
                   item.mass, item]
            if key in boxes:
                old = boxes[key]
                box = [min(old[0], box[0]), max(old[1], box[1]), min(old[2], box[2]),
                       max(old[3], box[3]), *(old[4:] if old[4] >= item.mass else box[4:])]
            boxes[key] = box
        out = [TruthBox(key, item.material, item.category, item.threat, item.contraband,
                        first, last, left, right)
               for key, (first, last, left, right, _, item) in boxes.items()]
        return sorted(out, key=lambda box: (box.first_line, box.first_pixel, box.name))


def _count(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f'{what} must be a non-negative integer, got {value!r}')
    return int(value)

