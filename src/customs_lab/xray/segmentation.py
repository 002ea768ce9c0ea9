"""Object segmentation of a dual-energy scan, with mass and volume estimates.

Core module (numpy / scipy, no ROS). Input: an XrayScan and the scanner's dual-energy
calibration; output: connected regions of one material class (organic, mixed / inorganic,
metal, opaque) with their area, Zeff, mass and volume, and the scan's total mass by class.

Regions: the decomposition (smoothed with a Gaussian of `smoothing` pixels) classes every
pixel by its Zeff band (decomposition.classify); the connected pixels (8-neighbours) of one
class form a region, regions smaller than `min_pixels` are merged into the scan's 'small'
remainder (still counted in the totals). A region's Zeff is that of its mean attenuations.
Overlap: a pixel holds the whole column of matter along its ray, so a region is a region of the
projection (a phone on a sweater is a metal-and-organic column, classed by its mixture's Zeff),
not an object; its mass is the mass of its columns, and the regions' masses add up to the
scan's.

Mass: the mass thickness of every pixel (g/cm^2, from the calibration's step wedges at the
pixel's A_high and Zeff: the beam hardening included) times its footprint. The footprint of a
pixel is pixel_pitch x line_pitch at the belt; the fan beam magnifies what lies higher (a ray's
footprint at height h above the belt is (source_to_belt + h) / source_to_belt times larger),
so the masses are multiplied by (source_to_belt + mass_height) / source_to_belt, mass_height the
assumed height of the mass above the belt (MASS_HEIGHT, 0.06 m: the middle of a parcel's
typical contents). Pixels too thin to classify ('air', A below the calibration's threshold:
cardboard, a loose garment's fringe) still hold some matter: their signed attenuation is
counted as organic matter (Zeff 7) in the totals, so that the noise of empty belt averages out
and thin matter is not lost. Opaque pixels count the mass at the opaque limit (a lower bound).
Volume: mass / an assumed density per class (CLASS_DENSITY: organic 0.5 g/cm^3, typical of
packed goods; mixed / inorganic 2.0; metal 7.0): an order of magnitude, not a measurement.
"""

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from customs_lab.xray import decomposition
from customs_lab.xray.decomposition import (
    AIR,
    IMPENETRABLE,
    INORGANIC,
    METAL,
    ORGANIC,
    DualEnergyCalibration,
)
from customs_lab.xray.scan import XrayScan

MASS_HEIGHT = 0.06  # m above the belt where a parcel's mass is assumed to lie
SOURCE_TO_BELT = 0.80  # m, ScannerModel's default (focal spot to belt)
THIN_ZEFF = 7.0  # Zeff taken for matter too thin to classify
CLASS_DENSITY = {ORGANIC: 0.5, INORGANIC: 2.0, METAL: 7.0, IMPENETRABLE: 7.0}  # g/cm^3
MATERIAL_CLASSES = (ORGANIC, INORGANIC, METAL, IMPENETRABLE)


@dataclass(frozen=True)
class Region:
    """One connected region of one material class (inclusive array indices)."""

    label: int  # its value in Segmentation.labels
    material_class: int  # decomposition class code
    class_name: str
    first_line: int
    last_line: int
    first_pixel: int
    last_pixel: int
    pixels: int
    area: float  # m^2 at the belt
    zeff: float  # of the region's mean attenuations (NaN for opaque regions)
    a_high: float  # mean -ln T_high
    mass: float  # kg
    volume: float  # m^3, mass / CLASS_DENSITY of its class


@dataclass(frozen=True)
class Segmentation:
    """A scan's regions, label image and mass totals."""

    regions: tuple
    labels: np.ndarray  # (lines, pixels) int: 0 none, region.label otherwise
    classes: np.ndarray  # (lines, pixels) uint8 decomposition class
    mass_by_class: dict = field(default_factory=dict)  # class name -> kg (small regions in)
    thin_mass: float = 0.0  # kg of matter too thin to classify
    pixel_area: float = 0.0  # m^2 of one pixel's footprint (magnification corrected)

    @property
    def total_mass(self) -> float:
        """Return the scan's estimated mass, kg (every class and the thin matter)."""
        return float(sum(self.mass_by_class.values()) + self.thin_mass)

    def class_shares(self) -> dict:
        """Return each class's share of the total mass (thin matter counted as organic)."""
        total = self.total_mass
        shares = {name: mass / total if total > 0 else 0.0
                  for name, mass in self.mass_by_class.items()}
        shares['organic'] = shares.get('organic', 0.0) + (
            self.thin_mass / total if total > 0 else 0.0)
        return shares


def segment(scan: XrayScan, calibration: DualEnergyCalibration, smoothing: float = 1.0,
            min_pixels: int = 50, mass_height: float = MASS_HEIGHT,
            source_to_belt: float = SOURCE_TO_BELT) -> Segmentation:
    """Return the regions and mass totals of a scan (see the module docstring)."""
    calibrated = scan.calibrated()
    pixel_area = scan.pixel_pitch * scan.line_pitch  # m^2 at the belt
    return segment_arrays(calibrated['low'], calibrated['high'], calibration, pixel_area,
                          smoothing, min_pixels, mass_height, source_to_belt)


def segment_arrays(t_low, t_high, calibration: DualEnergyCalibration, pixel_area: float,
                   smoothing: float = 1.0, min_pixels: int = 50,
                   mass_height: float = MASS_HEIGHT,
                   source_to_belt: float = SOURCE_TO_BELT) -> Segmentation:
    """Return the regions and mass totals of transmission images; pixel_area m^2 at the belt."""
    if not (np.isfinite(pixel_area) and pixel_area > 0):
        raise ValueError(f'pixel_area must be a positive number of m^2, got {pixel_area!r}')
    if not (0.0 <= mass_height < 1.0 and source_to_belt > 0):
        raise ValueError('mass_height must be in [0, 1) m and source_to_belt positive')
    if not (isinstance(min_pixels, int) and min_pixels >= 1):
        raise ValueError(f'min_pixels must be a positive integer, got {min_pixels!r}')
    result = calibration.decompose(t_low, t_high, smoothing)
    area = pixel_area * (source_to_belt + mass_height) / source_to_belt
    cm2 = area * 1e4
    classes = result.classes
    mass = result.mass_thickness * cm2 / 1000.0  # kg per pixel
    thin = result.status == AIR
    thin_kappa = float(calibration.mass_thickness(calibration.air_attenuation / 2.0, THIN_ZEFF)
                       / (calibration.air_attenuation / 2.0))
    thin_mass = float(np.sum(np.nan_to_num(result.a_high[thin])) * thin_kappa * cm2 / 1000.0)
    labels = np.zeros(classes.shape, dtype=np.int32)
    regions = []
    mass_by_class = {}
    next_label = 1
    for code in MATERIAL_CLASSES:
        name = decomposition.CLASS_NAMES[code]
        members = classes == code
        mass_by_class[name] = float(mass[members].sum())
        if not np.any(members):
            continue
        components, count = ndimage.label(members, structure=np.ones((3, 3)))
        if count == 0:
            continue
        sizes = np.bincount(components.ravel(), minlength=count + 1)
        boxes = ndimage.find_objects(components)
        for index in np.flatnonzero(sizes[1:] >= min_pixels) + 1:
            lines, pixels = boxes[index - 1]
            inside = components[lines, pixels] == index
            a_low = result.a_low[lines, pixels][inside]
            a_high = result.a_high[lines, pixels][inside]
            zeff = (float(calibration.zeff_from_attenuation(a_low.mean(), a_high.mean()))
                    if code != IMPENETRABLE else float('nan'))
            region_mass = float(mass[lines, pixels][inside].sum())
            labels[lines, pixels][inside] = next_label
            regions.append(Region(next_label, code, name, lines.start, lines.stop - 1,
                                  pixels.start, pixels.stop - 1, int(inside.sum()),
                                  float(inside.sum() * area), zeff, float(a_high.mean()),
                                  region_mass,
                                  region_mass / (CLASS_DENSITY[code] * 1000.0)))
            next_label += 1
    regions.sort(key=lambda r: -r.mass)
    return Segmentation(tuple(regions), labels, classes, mass_by_class, thin_mass, area)
