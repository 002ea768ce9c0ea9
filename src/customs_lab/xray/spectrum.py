"""The scanner's X-ray tube spectrum and its detectors' energy response.

Core module (numpy / spekpy / xraydb via materials, no ROS); pure functions of a ScannerModel,
shared by the simulator and the dual-energy calibration.

Spectrum: spekpy (Poludniowski et al., "SpekPy v2.0 - a software toolkit for modeling x-ray tube
spectra", Med. Phys. 48 (2021) 3630; its default 'casim' physics) for a tungsten reflection
target at the model's kVp and anode angle, through the model's filtration, on the central axis
at 1 m, per mAs. spekpy's 0.5 keV spectrum is integrated into fixed bins of ENERGY_BIN_KEV from
ENERGY_MIN_KEV to the kVp (the last bin may be narrower): photons per bin per mAs per cm^2 at
1 m. Below 10 keV nothing passes 2 mm of Al, the belt and the parcel's wall. One spekpy call
takes ~1-2 s: results are cached per (kVp, anode angle, filtration).

Detectors: energy-integrating scintillators. A photon of energy E reaching a layer of linear
attenuation mu and thickness t interacts with probability p = 1 - exp(-mu t) (xraydb total
cross section) and is taken to deposit all of E: the mean signal per incident photon is the
weight w = p E (keV) and its second moment p E^2 (keV^2), which set the compound-Poisson noise
of an energy-integrating detector. Simplifications: no K-fluorescence escape (Cs/I K-shell
x-rays leave thin CsI layers in reality), no Compton escape, no optical light spread or Swank
factor of the scintillator, normal incidence (the slant path of off-axis pixels, at most ~8 %
longer, is ignored). Layers: the front (low-energy) layer; the rear (high-energy) layer behind
the front layer and the interlayer filter; the backscatter layer, for a photon scattered back
by 180 degrees (Compton, E' = E / (1 + 2 E / 511 keV)) from a primary of energy E: its weight
is p(E') E', indexed by the *primary* energy so that the simulator's and the calibration's
matrices share one energy axis.
"""

from dataclasses import dataclass
from functools import lru_cache
import math

import numpy as np

from customs_lab.xray import materials
from customs_lab.xray.scanner_model import ScannerModel

ENERGY_MIN_KEV = 10.0  # lowest bin edge
ENERGY_BIN_KEV = 2.0  # bin width of the shared energy grid (K-edges fall inside a bin)
SPEKPY_BIN_KEV = 0.5  # spekpy's internal bin width (its default)
SPEKPY_DISTANCE_CM = 100.0  # spekpy's focus-to-detector distance for the spectrum (1 m)


def energy_grid(kvp: float, bin_kev: float = ENERGY_BIN_KEV) -> tuple[np.ndarray, np.ndarray]:
    """Return (bin centres, bin edges) in keV from ENERGY_MIN_KEV to `kvp`."""
    kvp, bin_kev = float(kvp), float(bin_kev)
    if not (math.isfinite(kvp) and kvp > ENERGY_MIN_KEV + 1.0):
        raise ValueError(f'kvp must exceed {ENERGY_MIN_KEV + 1.0} kV, got {kvp!r}')
    if not (math.isfinite(bin_kev) and 0.1 <= bin_kev <= 20.0):
        raise ValueError(f'bin width must be in [0.1, 20] keV, got {bin_kev!r}')
    edges = np.arange(ENERGY_MIN_KEV, kvp, bin_kev)
    if kvp - edges[-1] < 0.25 * bin_kev and len(edges) > 1:
        edges = edges[:-1]  # no sliver of a bin at the end point: widen the last one
    edges = np.append(edges, kvp)
    return 0.5 * (edges[:-1] + edges[1:]), edges


@lru_cache(maxsize=32)
def _spekpy_spectrum(kvp: float, anode_angle_deg: float,
                     filtration: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Return spekpy's (mid-bin keV, photons / keV / cm^2 / mAs at 1 m)."""
    import spekpy  # imported here: ~0.3 s, only modules that need a spectrum pay it

    try:
        spek = spekpy.Spek(kvp=kvp, th=anode_angle_deg, dk=SPEKPY_BIN_KEV,
                           z=SPEKPY_DISTANCE_CM, mas=1.0)
        for element, mm in filtration:
            if mm > 0:
                spek.filter(str(element), float(mm))
        energies, fluence = spek.get_spectrum(edges=False, flu=True, diff=True)
    except Exception as error:  # spekpy raises bare Exceptions for unknown materials etc.
        raise ValueError(f'spekpy cannot model kvp={kvp}, anode angle {anode_angle_deg}, '
                         f'filtration {filtration}: {error}') from None
    return np.asarray(energies, dtype=float), np.asarray(fluence, dtype=float)


@lru_cache(maxsize=32)
def _binned_spectrum(kvp: float, anode_angle_deg: float, filtration: tuple,
                     bin_kev: float) -> tuple[np.ndarray, np.ndarray]:
    fine_energies, fluence = _spekpy_spectrum(kvp, anode_angle_deg, filtration)
    step = fine_energies[1] - fine_energies[0]
    fine_edges = np.append(fine_energies - 0.5 * step, fine_energies[-1] + 0.5 * step)
    cumulative = np.append(0.0, np.cumsum(np.clip(fluence, 0.0, None) * step))
    centres, edges = energy_grid(kvp, bin_kev)
    photons = np.diff(np.interp(edges, fine_edges, cumulative))
    for array in (centres, photons):
        array.setflags(write=False)
    return centres, photons


def _check_model(model) -> ScannerModel:
    if not isinstance(model, ScannerModel):
        raise ValueError(f'expected a ScannerModel, got {type(model).__name__}')
    model.check()
    return model


def tube_spectrum(model: ScannerModel,
                  bin_kev: float = ENERGY_BIN_KEV) -> tuple[np.ndarray, np.ndarray]:
    """Return (bin centre energies keV, photons per bin per mAs per cm^2 at 1 m) of the tube.

    From spekpy (tungsten anode, the model's kvp, anode angle and filtration), integrated into
    the grid of `energy_grid(model.kvp, bin_kev)`. Read-only arrays, cached.
    """
    model = _check_model(model)
    filtration = tuple((str(element), float(mm)) for element, mm in model.filtration)
    return _binned_spectrum(float(model.kvp), float(model.anode_angle_deg), filtration,
                            float(bin_kev))


def layer_absorption(layer: tuple, energies_kev) -> np.ndarray:
    """Return 1 - exp(-mu t) of a (formula, g/cm^3, mm) layer at energies (keV)."""
    transmission = layer_transmission(layer, energies_kev)
    return 1.0 - transmission


def layer_transmission(layer: tuple, energies_kev) -> np.ndarray:
    """Return exp(-mu t) of a (formula, g/cm^3, mm) layer at energies (keV)."""
    try:
        formula, density, mm = layer
        density, mm = float(density), float(mm)
    except (TypeError, ValueError):
        raise ValueError(f'a detector layer is (formula, g/cm^3, mm), got {layer!r}') from None
    if not (density > 0 and mm >= 0 and math.isfinite(density) and math.isfinite(mm)):
        raise ValueError(f'a detector layer needs density > 0 and thickness >= 0, got {layer!r}')
    mass_mu = materials.mass_attenuation(str(formula), energies_kev)
    return np.exp(-mass_mu * density * mm / 10.0)


@dataclass(frozen=True, eq=False)
class DetectorWeights:
    """The detectors' response on the spectrum's energy grid (all arrays per primary energy).

    low / high: keV deposited in the front / rear transmission layer per photon of energy E
    reaching the detector; back: keV deposited in the backscatter layer per photon scattered
    back (180 degrees) from a primary of energy E, which arrives at back_energy_kev (E').
    *_absorbed: the interaction probabilities p behind the weights (w = p E).
    """

    energies_kev: np.ndarray
    low: np.ndarray
    high: np.ndarray
    back: np.ndarray
    back_energy_kev: np.ndarray
    low_absorbed: np.ndarray
    high_absorbed: np.ndarray
    back_absorbed: np.ndarray

    def weights(self, channel: str) -> np.ndarray:
        """Return the mean keV per photon of 'low', 'high' or 'back'."""
        if channel not in ('low', 'high', 'back'):
            raise ValueError(f"unknown channel {channel!r} (known: 'low', 'high', 'back')")
        return getattr(self, channel)

    def second_moment(self, channel: str) -> np.ndarray:
        """Return the mean keV^2 per photon (p E^2) of a channel: its compound-Poisson variance."""
        energy = self.back_energy_kev if channel == 'back' else self.energies_kev
        return self.weights(channel) * energy


@lru_cache(maxsize=32)
def _detector_weights(kvp: float, bin_kev: float, front: tuple, interlayer: tuple,
                      rear: tuple, back_layer: tuple) -> DetectorWeights:
    energies, _ = energy_grid(kvp, bin_kev)
    front_absorbed = layer_absorption(front, energies)
    rear_absorbed = (layer_transmission(front, energies) * layer_transmission(interlayer, energies)
                     * layer_absorption(rear, energies))
    back_energy = materials.compton_energy(energies, 180.0)
    back_absorbed = layer_absorption(back_layer, back_energy)
    arrays = dict(energies_kev=energies, low=front_absorbed * energies,
                  high=rear_absorbed * energies, back=back_absorbed * back_energy,
                  back_energy_kev=back_energy, low_absorbed=front_absorbed,
                  high_absorbed=rear_absorbed, back_absorbed=back_absorbed)
    for array in arrays.values():
        array.setflags(write=False)
    return DetectorWeights(**arrays)


def detector_weights(model: ScannerModel, bin_kev: float = ENERGY_BIN_KEV) -> DetectorWeights:
    """Return the front, rear and backscatter layers' weights on the spectrum's grid (cached).

    See the module docstring for the model (energy-integrating, full deposition of every
    interacting photon, no K-escape, no light spread).
    """
    model = _check_model(model)
    layers = tuple((str(f), float(d), float(mm)) for f, d, mm in (
        model.front_layer, model.interlayer_filter, model.rear_layer, model.backscatter_layer))
    return _detector_weights(float(model.kvp), float(bin_kev), *layers)
