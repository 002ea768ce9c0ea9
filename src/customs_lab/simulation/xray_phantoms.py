"""Calibration phantoms of the X-ray scanner: step wedges of reference materials, scanned.

A dual-energy calibration (customs_lab.xray.decomposition) is made as a factory makes one: step
wedges of reference materials of known composition (hence known Zeff) and known step
thicknesses are put on the belt and scanned; the mean low- and high-energy attenuation of each
step, with the step's mass thickness, is what the calibration keeps. Here the scanner is the
simulator (XrayPhysics, photon and read noise included) and the wedges are ParcelScenes of
slabs; nothing else of the simulator is used.

Wedge: STEPS slabs side by side along the belt, each STEP_LENGTH long and WIDTH wide, centred
on the central ray, in a box of negligible density; step thicknesses spaced so that the
high-energy attenuation runs log-evenly from A_MIN to A_MAX (set from the tube spectrum and the
rear layer's response, polychromatic, before the scan), none thicker than MAX_THICKNESS (the
tunnel). Measured per step: the mean of -ln T over the middle lines of the step and the
MEASURE_PIXELS central pixels (away from the edges' partial volume), from an XrayScan with dark
and air references averaged over REFERENCE_LINES lines, as the driver takes them.

Reference set (CALIBRATION_SET, Zeff 5.4-30): polyethylene, graphite, PMMA, POM (Delrin),
water, PTFE, magnesium, aluminium, silicon, titanium, iron, copper, zinc: the plastics and
light metals of commercial step wedges, and pure elements for the rest. PTFE, magnesium and
silicon are not in materials.MATERIALS: they are defined here (PHANTOM_MATERIALS); XrayObject
takes a Material as well as a table name.

Command (writes the shipped calibration of the default ScannerModel):

    python -m customs_lab.simulation.xray_phantoms --write config/xray/CL-XR-2E_dual_energy.json
"""

import argparse
import math
import pathlib
import shlex
import sys

import numpy as np

from customs_lab.simulation.parcel_scene import ParcelScene, XrayObject
from customs_lab.simulation.xray_physics import XrayPhysics
from customs_lab.xray import materials
from customs_lab.xray.decomposition import DualEnergyCalibration, ReferenceWedge
from customs_lab.xray.scan import XrayScan
from customs_lab.xray.scanner_model import ScannerModel

STEPS = 20
STEP_LENGTH = 0.03  # m along the belt (15 lines at 2 mm)
WIDTH = 0.2  # m across the belt
A_MIN, A_MAX = 0.015, 6.5  # range of -ln T_high the steps span
MAX_THICKNESS = 0.44  # m: the tunnel is 0.5 m high
MEASURE_PIXELS = 60  # central pixels averaged per step
EDGE_LINES = 3  # lines left out at either end of a step (partial volume)
REFERENCE_LINES = 64  # dark and air lines averaged into the references
DEFAULT_SEED = 20261201
DEFAULT_SERIAL = 7  # the scanner unit whose fixed pattern the phantoms are scanned with

PHANTOM_MATERIALS = {
    'ptfe': materials.Material('ptfe', 'C2F4', 2.2, 'organic', 'PTFE (Teflon)'),
    'magnesium': materials.Material('magnesium', 'Mg', 1.74, 'metal', ''),
    'silicon': materials.Material('silicon', 'Si', 2.33, 'inorganic', ''),
}
CALIBRATION_SET = ('polyethylene', 'graphite', 'pmma', 'pom', 'water', 'ptfe', 'magnesium',
                   'aluminium', 'silicon', 'titanium', 'iron', 'copper', 'zinc')


def phantom_material(material) -> materials.Material:
    """Return a Material from a Material, a PHANTOM_MATERIALS or a materials.MATERIALS name."""
    if isinstance(material, materials.Material):
        return material
    if material in PHANTOM_MATERIALS:
        return PHANTOM_MATERIALS[material]
    return materials.get_material(material)


def high_attenuation(physics: XrayPhysics, material, mass_thickness) -> np.ndarray:
    """Return the expected -ln T_high of mass thicknesses (g/cm^2) of a material (no noise).

    Polychromatic: the tube spectrum times the rear layer's weights, on the central ray (air
    and belt in the beam, as in the air reference).
    """
    material = phantom_material(material)
    mass_mu = materials.mass_attenuation(material.formula, physics.energies)
    model = physics.model
    background = (model.source_to_detector * 100.0 * materials.mu('air', physics.energies)
                  + model.belt_thickness * 100.0 * materials.mu('belt_rubber', physics.energies))
    weights = physics.photons * np.exp(-background) * physics.response.high
    mass_thickness = np.atleast_1d(np.asarray(mass_thickness, dtype=float))
    signal = np.exp(-np.outer(mass_thickness, mass_mu)) @ weights
    return -np.log(signal / weights.sum())


def step_mass_thicknesses(physics: XrayPhysics, material, steps: int = STEPS,
                          a_min: float = A_MIN, a_max: float = A_MAX) -> np.ndarray:
    """Return mass thicknesses (g/cm^2) whose A_high runs log-evenly from a_min to a_max.

    Capped at MAX_THICKNESS of the material (fewer steps are then kept, none repeated).
    """
    material = phantom_material(material)
    grid = np.geomspace(1e-4, 500.0, 2000)
    attenuation = high_attenuation(physics, material, grid)
    targets = np.geomspace(a_min, a_max, steps)
    masses = np.exp(np.interp(np.log(targets), np.log(attenuation), np.log(grid)))
    limit = MAX_THICKNESS * 100.0 * material.density
    return masses[masses <= limit]


def wedge_scene(material, mass_thicknesses, waybill: str = 'PHANTOM') -> ParcelScene:
    """Return a step wedge: one slab per mass thickness (g/cm^2) along the belt, thin first."""
    material = phantom_material(material)
    wall = 0.004
    thicknesses = np.asarray(mass_thicknesses, dtype=float) / material.density / 100.0  # m
    if np.any(thicknesses <= 0) or np.any(thicknesses > MAX_THICKNESS):
        raise ValueError(f'{material.name}: step thicknesses must be in (0, {MAX_THICKNESS}] m')
    objects = []
    for k, thickness in enumerate(thicknesses):
        centre = (wall + STEP_LENGTH * (k + 0.5), wall + WIDTH / 2.0, wall + thickness / 2.0)
        objects.append(XrayObject(f'step{k}', material, 'box', centre,
                                  (STEP_LENGTH, WIDTH, float(thickness))))
    size = (2 * wall + STEP_LENGTH * len(thicknesses), 2 * wall + WIDTH,
            max(2 * wall + float(thicknesses.max()) + 0.002, 0.03))
    return ParcelScene(waybill, size, tuple(objects), box_density=1e-6, belt_y=0.0)


def simulated_scan(physics: XrayPhysics, scene: ParcelScene, rng, lead: int = 20,
                   trail: int = 20, reference_lines: int = REFERENCE_LINES) -> XrayScan:
    """Return the XrayScan of a scene: rendered lines plus averaged dark and air references."""
    model = physics.model
    low, high, back = physics.render(scene, rng, lead=lead, trail=trail)
    dark = np.stack([np.mean(lines, axis=0, dtype=float)
                     for lines in physics.dark_lines(reference_lines, rng)])
    air = np.stack([np.mean(lines, axis=0, dtype=float)
                    for lines in physics.air_lines(reference_lines, rng)])
    return XrayScan(device_id='xray_sim', waybill=scene.waybill, first_seq=0, start_time=0.0,
                    line_period=model.line_period, belt_speed=model.belt_speed,
                    pixel_pitch=model.belt_pitch, low=low, high=high, back=back, dark=dark,
                    air=air, kvp=model.kvp, tube_current_ma=model.tube_current_ma,
                    model=model.model, serial='sim')


def step_regions(model: ScannerModel, scene: ParcelScene, lead: int = 20
                 ) -> list[tuple[slice, slice]]:
    """Return (lines, pixels) of the middle of each step of a wedge_scene in its scan."""
    pitch = model.line_pitch
    centre_pixel = model.pixels // 2
    pixels = slice(centre_pixel - MEASURE_PIXELS // 2, centre_pixel + MEASURE_PIXELS // 2)
    regions = []
    for item in scene.objects:
        # line n samples x = size - (n - lead + 0.5) pitch: the step's x range in lines
        first = math.ceil(lead + (scene.size[0] - item.hi[0]) / pitch - 0.5)
        last = math.floor(lead + (scene.size[0] - item.lo[0]) / pitch - 0.5)
        regions.append((slice(first + EDGE_LINES, last - EDGE_LINES + 1), pixels))
    return regions


def measure_wedge(scan: XrayScan, regions) -> tuple[np.ndarray, np.ndarray]:
    """Return the mean -ln T_low and -ln T_high over each region of a scan."""
    calibrated = scan.calibrated()
    a_low = -np.log(calibrated['low'])
    a_high = -np.log(calibrated['high'])
    low = np.array([a_low[lines, pixels].mean() for lines, pixels in regions])
    high = np.array([a_high[lines, pixels].mean() for lines, pixels in regions])
    return low, high


def scan_wedge(physics: XrayPhysics, material, rng,
               mass_thicknesses=None) -> ReferenceWedge:
    """Return the ReferenceWedge of one material's step wedge scanned by `physics`."""
    material = phantom_material(material)
    if mass_thicknesses is None:
        mass_thicknesses = step_mass_thicknesses(physics, material)
    scene = wedge_scene(material, mass_thicknesses)
    scan = simulated_scan(physics, scene, rng)
    low, high = measure_wedge(scan, step_regions(physics.model, scene))
    keep = np.flatnonzero((high > 0) & (low > 0))
    keep = keep[np.concatenate([[True], np.diff(high[keep]) > 0])]  # growing attenuation
    return ReferenceWedge(material.name, material.formula, materials.effective_z(
        material.formula), material.density, tuple(np.asarray(mass_thicknesses)[keep]),
        tuple(low[keep]), tuple(high[keep]))


def calibrate(physics: XrayPhysics, rng, names=CALIBRATION_SET,
              note: str = '') -> DualEnergyCalibration:
    """Return the dual-energy calibration fitted to step wedges of `names` scanned by physics."""
    wedges = [scan_wedge(physics, name, rng) for name in names]
    model = physics.model
    return DualEnergyCalibration.fit(wedges, model=model.model, kvp=model.kvp, note=note)


def main(argv=None) -> int:
    """Write the dual-energy calibration of the default scanner model (see module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--write', required=True, help='path of the calibration JSON file')
    parser.add_argument('--seed', type=int, default=DEFAULT_SEED, help='noise seed')
    parser.add_argument('--serial-seed', type=int, default=DEFAULT_SERIAL,
                        help='the simulated scanner unit (fixed-pattern seed)')
    args = parser.parse_args(argv)
    model = ScannerModel()
    physics = XrayPhysics(model, serial_seed=args.serial_seed)
    command = 'python -m customs_lab.simulation.xray_phantoms ' + shlex.join(
        sys.argv[1:] if argv is None else list(argv))
    note = (f'step wedges of {", ".join(CALIBRATION_SET)} scanned by the simulator '
            f'(XrayPhysics, serial seed {args.serial_seed}, noise seed {args.seed}); '
            f'made by: {command}')
    calibration = calibrate(physics, np.random.default_rng(args.seed), note=note)
    path = pathlib.Path(args.write)
    calibration.save(path)
    print(f'wrote {path}: {len(calibration.references)} references, Zeff '
          f'{calibration.zeff_range[0]:.2f}-{calibration.zeff_range[1]:.2f}, opaque above '
          f'A_high {calibration.max_high_attenuation:.2f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
