"""Dose around located sources: air-kerma rate field, officers' cumulative dose, alerts.

Core module (numpy / xraydb through radiation.physics, no ROS). The quantity is air kerma (the
energy photons transfer to charged particles per unit mass of air), in uGy and uGy/h, computed
from first principles:

    K_rate(r) = sum over sources and lines of A * y(E) * E * (mu_en/rho)_air(E)
                * T_air(E, |r - r_s|) * T_shields(E) / (4 pi |r - r_s|^2)

(mu_en/rho)_air: the photoelectric coefficient (air's fluorescence carries nothing away worth
counting), plus the Compton coefficient times the Klein-Nishina mean share of the photon's
energy given to the electron, plus pair production times (1 - 2 m_e c^2 / E); bremsstrahlung
losses in air (under 0.5 % below 3 MeV) are neglected. This reproduces NIST's mass
energy-absorption coefficients of air within 3 % from 50 keV to 3 MeV and the published
air-kerma rate constants of Cs-137 and Co-60 (tests). For radiation protection, 1 uGy of air
kerma is about 1.2 uSv of ambient dose equivalent H*(10) near 662 keV (ICRP 74); the
conversion is not applied here (its coefficients are not in the reference data this project
ships), so limits are set in air kerma.

A dose field is the kerma rate on a grid of points; a person's dose is the kerma rate
integrated along their track (positions over time, trapezoidal rule). Officers' doses from
sources moving through a lane, with alerts: radiation/exposure.py.
"""

from dataclasses import dataclass
from functools import lru_cache
import math

import numpy as np

from customs_lab.radiation.physics import (
    AIR_DENSITY,
    AIR_FORMULA,
    gamma_lines,
    mass_attenuation,
    mass_attenuation_components,
    transmission,
)

ELECTRON_MASS_KEV = 510.99895
KEV_TO_J = 1.602176634e-16
SECONDS_PER_HOUR = 3600.0


def _compton_energy_transfer(energy_kev: np.ndarray) -> np.ndarray:
    """Return the Klein-Nishina mean share of a photon's energy given to the Compton electron."""
    out = np.empty_like(energy_kev)
    for i, e in enumerate(energy_kev):
        k = e / ELECTRON_MASS_KEV
        cos = np.linspace(-1.0, 1.0, 2001)
        ratio = 1.0 / (1.0 + k * (1.0 - cos))  # E' / E
        cross = ratio**2 * (ratio + 1.0 / ratio - (1.0 - cos**2))  # dsigma / dOmega (KN)
        out[i] = np.trapezoid(cross * (1.0 - ratio), cos) / np.trapezoid(cross, cos)
    return out


@lru_cache(maxsize=64)
def _mu_en_cached(material: str, energies: tuple) -> np.ndarray:
    energy = np.array(energies, dtype=float)
    parts = mass_attenuation_components(material, energy)
    pair_share = np.clip(1.0 - 2.0 * ELECTRON_MASS_KEV / energy, 0.0, None)
    value = (parts['photo'] + parts['incoh'] * _compton_energy_transfer(energy)
             + parts['pair'] * pair_share)
    value.setflags(write=False)
    return value


def mass_energy_absorption(material: str, energy_kev) -> np.ndarray:
    """Return mu_en/rho (cm^2/g) of a light material (air, water, tissue) at energies (keV)."""
    energy = np.atleast_1d(np.asarray(energy_kev, dtype=float))
    if not (np.all(np.isfinite(energy)) and np.all(energy > 0)):
        raise ValueError('energies must be finite and > 0 keV')
    return np.array(_mu_en_cached(material, tuple(energy.tolist())))


@dataclass(frozen=True)
class DoseSource:
    """A located source: nuclide, activity (Bq), position (m), shields around it."""

    nuclide: str
    activity: float
    position: tuple
    shields: tuple = ()

    def __post_init__(self):
        if not (math.isfinite(self.activity) and self.activity >= 0):
            raise ValueError(f'activity must be finite and >= 0 Bq, got {self.activity!r}')
        position = tuple(float(v) for v in self.position)
        if len(position) != 3 or not all(math.isfinite(v) for v in position):
            raise ValueError(f'position must be three finite coordinates, got {self.position!r}')
        object.__setattr__(self, 'position', position)


@lru_cache(maxsize=256)
def _line_table(nuclide: str, shields: tuple):
    """Return (energies keV, yield * E * mu_en/rho * shield transmission, air mu 1/m)."""
    lines = gamma_lines(nuclide, min_energy_kev=10.0, min_yield=1e-5)
    energy = np.array([line.energy_kev for line in lines])
    weight = np.array([line.yield_per_decay for line in lines]) * energy * KEV_TO_J
    weight = weight * mass_energy_absorption(AIR_FORMULA, energy) * 0.1  # cm^2/g -> m^2/kg
    if shields:
        weight = weight * transmission(shields, energy)
    air = mass_attenuation(AIR_FORMULA, energy) * AIR_DENSITY * 100.0  # 1/m
    return energy, weight, air


def kerma_rate(sources, points) -> np.ndarray:
    """Return the air-kerma rate (uGy/h) at each point (n x 3, m) from the sources."""
    points = np.atleast_2d(np.asarray(points, dtype=float))
    if points.shape[1] != 3 or not np.all(np.isfinite(points)):
        raise ValueError('points must be finite (n, 3) coordinates')
    total = np.zeros(len(points))
    for source in sources:
        _, weight, air = _line_table(source.nuclide, tuple(source.shields))
        distance = np.linalg.norm(points - np.asarray(source.position), axis=1)
        distance = np.maximum(distance, 0.05)  # closer than 5 cm, a point source is no model
        per_line = weight[None, :] * np.exp(-air[None, :] * distance[:, None])
        total += source.activity * per_line.sum(axis=1) / (4.0 * math.pi * distance**2)
    return total * 1e6 * SECONDS_PER_HOUR  # Gy/s -> uGy/h


def dose_field(sources, low, high, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Return (points n x 3, uGy/h) on a regular grid over the box [low, high] (m)."""
    low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    if not (spacing > 0 and math.isfinite(spacing)) or not np.all(high >= low):
        raise ValueError('a dose field needs spacing > 0 and low <= high')
    axes = [np.arange(low[k], high[k] + 1e-9, spacing) for k in range(3)]
    points = np.array(np.meshgrid(*axes, indexing='ij')).reshape(3, -1).T
    return points, kerma_rate(sources, points)


def track_dose(sources, times, positions) -> float:
    """Return the air kerma (uGy) received along a track (times s, positions n x 3 m)."""
    times = np.asarray(times, dtype=float)
    if times.ndim != 1 or len(times) < 2 or np.any(np.diff(times) < 0):
        raise ValueError('a track needs at least two times, in order')
    rate = kerma_rate(sources, positions) / SECONDS_PER_HOUR  # uGy/s
    return float(np.trapezoid(rate, times))
