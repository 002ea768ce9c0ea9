"""Materials of parcels and their X-ray interaction: attenuation, electron density, Zeff.

Core module (numpy / xraydb, no ROS). Units: energies keV (xraydb wants eV: converted here),
densities g/cm^3, linear attenuation 1/cm, mass attenuation cm^2/g, electron density
electrons/cm^3.

`MATERIALS` maps a name to a `Material`: a chemical formula (xraydb syntax; mixtures are
written as mass-fraction-weighted formulas by `mixture_formula`), a density and a category.
The density is that of the solid or liquid as it is found in a parcel: the crystal density of
pure substances (narcotics, explosives, sugar: a scene packs them with `Material.at_density`),
the bulk density of things that are bulk by nature (folded clothes, flour, corrugated board).
The category is the chemistry class a dual-energy display colours: 'organic' (compounds of
H, C, N, O, Zeff below ~10, chlorine salts of organic bases included), 'mixed' (composites of
organic and heavier matter: circuit boards, battery cells, PVC), 'inorganic' (glass, ceramics,
salts), 'metal' (metals and alloys).

Attenuation: `mu` and `mass_attenuation` are xraydb's `material_mu` (Elam, Ravel and Sieber,
Radiat. Phys. Chem. 63 (2002) 121: photoelectric, coherent and incoherent cross sections, valid
here from 1 to 800 keV), cached per formula and energy grid and scaled by the density (mu is
linear in the density). Effective atomic number: the power law of Spiers (Br. J. Radiol. 19
(1946) 52), Zeff = (sum_i f_i Z_i^2.94)^(1/2.94) with f_i the fraction of the electrons that
element i contributes; 2.94 is the exponent of the photoelectric effect's Z dependence in the
tens-of-keV range (Johns and Cunningham, The Physics of Radiology, 4th ed.). Compton helpers:
the Klein-Nishina differential cross section per free electron and the Compton-shifted energy;
at backscatter angles the momentum transfer is large enough that the incoherent scattering
function S(x, Z) is ~Z, so the free-electron cross section times the electron density is a
good approximation for every Z here (Hubbell et al., J. Phys. Chem. Ref. Data 4 (1975) 471).

Composition assumptions (stated per material in `Material.note`) are approximations of typical
products, good to the few-percent level in Zeff and density, not measurements.
"""

from dataclasses import dataclass, replace
from functools import lru_cache
import math

import numpy as np
import xraydb

CATEGORIES = ('organic', 'mixed', 'inorganic', 'metal')
ZEFF_EXPONENT = 2.94  # Spiers (1946): the photoelectric effect's Z^2.94 dependence
MIN_ENERGY_KEV = 1.0
MAX_ENERGY_KEV = 800.0  # xraydb's Elam tables are unreliable above 800 keV (its own warning)

AVOGADRO = 6.02214076e23  # 1/mol
ELECTRON_MASS_KEV = 510.99895
ELECTRON_RADIUS_CM = 2.8179403262e-13  # classical electron radius r_e


@dataclass(frozen=True)
class Material:
    """A named material: xraydb formula, density (g/cm^3), category and composition note."""

    name: str
    formula: str
    density: float
    category: str
    note: str = ''

    def __post_init__(self):
        """Check the formula, density and category (ValueError)."""
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f'a material needs a name, got {self.name!r}')
        composition(self.formula)  # ValueError on an unknown element or syntax
        if not (isinstance(self.density, (int, float)) and math.isfinite(self.density)
                and self.density > 0):
            raise ValueError(f'material {self.name!r}: density must be a positive number of '
                             f'g/cm^3, got {self.density!r}')
        if self.category not in CATEGORIES:
            raise ValueError(f'material {self.name!r}: category must be one of {CATEGORIES}, '
                             f'got {self.category!r}')

    def at_density(self, density: float) -> 'Material':
        """Return the same material packed at another density (g/cm^3): powders, foams, bulk."""
        return replace(self, density=float(density))


def mixture_formula(parts: dict) -> str:
    """Return an xraydb formula of a mixture given as {formula: mass fraction}.

    The fractions are normalised; the result lists each element's moles per 100 g, e.g.
    mixture_formula({'H2O': 0.9, 'C12H22O11': 0.1}) for a 10 % sugar solution.
    """
    if not parts:
        raise ValueError('a mixture needs at least one component')
    total = float(sum(parts.values()))
    if not total > 0 or any(not (fraction >= 0) for fraction in parts.values()):
        raise ValueError(f'mixture mass fractions must be non-negative, got {parts!r}')
    moles = {}
    for formula, fraction in parts.items():
        for element, mass_fraction in composition(formula):
            amount = 100.0 * fraction / total * mass_fraction / xraydb.atomic_mass(element)
            moles[element] = moles.get(element, 0.0) + amount
    return ''.join(f'{element}{amount:.6g}' for element, amount in moles.items() if amount > 0)


@lru_cache(maxsize=1024)
def composition(formula: str) -> tuple[tuple[str, float], ...]:
    """Return ((element, mass fraction), ...) of an xraydb chemical formula; ValueError if bad."""
    atoms = _atoms(formula)
    masses = {element: count * xraydb.atomic_mass(element) for element, count in atoms}
    total = sum(masses.values())
    return tuple((element, mass / total) for element, mass in masses.items())


@lru_cache(maxsize=1024)
def _atoms(formula: str) -> tuple[tuple[str, float], ...]:
    """Return ((element, atoms per formula unit), ...); ValueError on a bad formula."""
    if not isinstance(formula, str) or not formula.strip():
        raise ValueError(f'unknown formula {formula!r}: expected a chemical formula like "H2O"')
    try:
        atoms = xraydb.chemparse(formula.strip())
        for element in atoms:
            xraydb.atomic_number(element)
    except Exception as error:  # xraydb raises ValueError or KeyError with its own text
        raise ValueError(f'unknown formula {formula!r}: {error}'.strip()) from None
    if not atoms or any(not (count > 0) for count in atoms.values()):
        raise ValueError(f'unknown formula {formula!r}: no atoms')
    return tuple((element, float(count)) for element, count in atoms.items())


_PAPER = mixture_formula({'C6H10O5': 0.88, 'CaCO3': 0.12})
_EGLASS = mixture_formula({'SiO2': 0.54, 'CaO': 0.22, 'Al2O3': 0.145, 'B2O3': 0.07,
                           'MgO': 0.015, 'Na2O': 0.01})
_FR4_RESIN = mixture_formula({'C21H24O4': 0.82, 'Br': 0.18})
_ELECTROLYTE = mixture_formula({'C3H4O3': 0.88, 'LiPF6': 0.12})
_COLLAGEN = mixture_formula({'C': 0.50, 'H': 0.065, 'N': 0.175, 'O': 0.255, 'S': 0.005})


def _table(*entries) -> dict:
    return {entry.name: entry for entry in entries}


MATERIALS = _table(
    # --- textiles, paper, wood, leather
    Material('cotton', 'C6H10O5', 1.54, 'organic', 'cellulose fibre'),
    Material('clothes', 'C6H10O5', 0.25, 'organic',
             'folded garments: cellulose (cotton) at a bulk density of 0.25'),
    Material('polyester_fabric', 'C10H8O4', 0.3, 'organic', 'folded PET fabric, bulk'),
    Material('paper', _PAPER, 0.8, 'organic', 'cellulose with 12 % CaCO3 filler (office paper)'),
    Material('book', _PAPER, 0.8, 'organic', 'paper stack (as paper)'),
    Material('cardboard', mixture_formula({'C6H10O5': 0.95, 'CaCO3': 0.05}), 0.14, 'organic',
             'single-wall corrugated board as a solid wall: ~560 g/m^2 over 4 mm'),
    Material('wood', 'C6H10O5', 0.6, 'organic', 'dry softwood as cellulose'),
    Material('leather', mixture_formula({_COLLAGEN: 0.96, 'Cr2O3': 0.04}), 0.85, 'organic',
             'chrome-tanned collagen (C 50, H 6.5, N 17.5, O 25.5, S 0.5 % by mass) with '
             '4 % Cr2O3'),
    # --- plastics and rubber
    Material('polyethylene', 'C2H4', 0.94, 'organic', 'HDPE'),
    Material('polypropylene', 'C3H6', 0.90, 'organic', ''),
    Material('polystyrene', 'C8H8', 1.05, 'organic', ''),
    Material('abs', mixture_formula({'C3H3N': 0.25, 'C4H6': 0.15, 'C8H8': 0.60}), 1.05,
             'organic', 'acrylonitrile 25, butadiene 15, styrene 60 % by mass'),
    Material('pvc', 'C2H3Cl', 1.38, 'mixed', 'rigid PVC, no fillers (Zeff 13.9: chlorine)'),
    Material('pet', 'C10H8O4', 1.38, 'organic', 'bottle-grade PET'),
    Material('nylon', 'C6H11NO', 1.14, 'organic', 'PA6'),
    Material('rubber', 'C5H8', 0.93, 'organic', 'natural rubber (polyisoprene)'),
    Material('belt_rubber', 'C5H8', 0.95, 'organic', "conveyor belt (scanner_model's note)"),
    Material('shoe_sole', mixture_formula({'C5H8': 0.60, 'C': 0.20, 'SiO2': 0.15,
                                           'ZnO': 0.05}), 1.15, 'organic',
             'rubber compound: 20 % carbon black, 15 % silica, 5 % ZnO by mass'),
    Material('paraffin_wax', 'C25H52', 0.90, 'organic', 'lipstick / candle wax'),
    # --- liquids and food
    Material('water', 'H2O', 1.0, 'organic', 'light elements: shown as organic'),
    Material('juice', mixture_formula({'H2O': 0.89, 'C12H22O11': 0.11}), 1.045, 'organic',
             '11 % sugar in water'),
    Material('ethanol', 'C2H6O', 0.789, 'organic', ''),
    Material('vegetable_oil', 'C57H104O6', 0.91, 'organic', 'as triolein'),
    Material('cream', mixture_formula({'H2O': 0.70, 'C57H104O6': 0.25, 'C3H8O3': 0.05}), 0.98,
             'organic', 'cosmetic emulsion: water 70, oil 25, glycerol 5 % by mass'),
    Material('sugar', 'C12H22O11', 1.59, 'organic', 'sucrose crystal'),
    Material('flour', mixture_formula({'C6H10O5': 0.75, 'H2O': 0.13, _COLLAGEN: 0.12}), 0.6,
             'organic', 'bulk wheat flour: starch 75, water 13, protein (as collagen) 12 %'),
    Material('food', mixture_formula({'C6H10O5': 0.45, 'H2O': 0.35, 'C57H104O6': 0.10,
                                      _COLLAGEN: 0.08, 'NaCl': 0.02}), 0.7, 'organic',
             'packed dry food (snacks, noodles): starch, water, fat, protein, 2 % salt'),
    Material('salt', 'NaCl', 2.16, 'inorganic', 'table salt crystal'),
    Material('baking_soda', 'NaHCO3', 2.20, 'inorganic', ''),
    # --- glass and ceramics
    Material('silica', 'SiO2', 2.2, 'inorganic', 'fused silica'),
    Material('glass', mixture_formula({'SiO2': 0.73, 'Na2O': 0.14, 'CaO': 0.09, 'MgO': 0.04}),
             2.5, 'inorganic', 'soda-lime glass: SiO2 73, Na2O 14, CaO 9, MgO 4 % by mass'),
    Material('ceramic', mixture_formula({'SiO2': 0.60, 'Al2O3': 0.35, 'K2O': 0.05}), 2.4,
             'inorganic', 'porcelain'),
    # --- metals and alloys
    Material('aluminium', 'Al', 2.70, 'metal', ''),
    Material('titanium', 'Ti', 4.506, 'metal', ''),
    Material('steel', 'Fe', 7.87, 'metal', 'carbon / stainless steel as iron'),
    Material('iron', 'Fe', 7.874, 'metal', ''),
    Material('copper', 'Cu', 8.96, 'metal', ''),
    Material('zinc', 'Zn', 7.14, 'metal', ''),
    Material('brass', mixture_formula({'Cu': 0.63, 'Zn': 0.37}), 8.5, 'metal',
             'cartridge brass is 70/30; 63/37 common brass'),
    Material('tin', 'Sn', 7.287, 'metal', 'white (beta) tin'),
    Material('lead', 'Pb', 11.35, 'metal', ''),
    Material('tungsten', 'W', 19.3, 'metal', ''),
    Material('ndfeb_magnet', 'Nd2Fe14B', 7.5, 'metal', 'sintered NdFeB (loudspeakers, motors)'),
    Material('ferrite_magnet', 'SrFe12O19', 4.9, 'inorganic', 'strontium ferrite'),
    Material('plutonium', 'Pu', 19.84, 'metal', 'alpha-phase metal'),
    Material('plutonium_oxide', 'PuO2', 11.46, 'inorganic', 'theoretical density'),
    # --- electronics and cells
    Material('pcb', mixture_formula({_EGLASS: 0.51, _FR4_RESIN: 0.34, 'Cu': 0.15}), 2.1,
             'mixed', 'FR-4 (60 % E-glass, 40 % brominated epoxy with 18 % Br) with copper '
             'layers as 15 % of the mass; components smeared in'),
    Material('li_ion_cell', mixture_formula({'LiCoO2': 0.32, 'C': 0.16, 'Cu': 0.10, 'Al': 0.05,
                                             _ELECTROLYTE: 0.13, 'C3H6': 0.03, 'Fe': 0.21}),
             2.8, 'mixed',
             'homogenised cylindrical cell (18650: 46 g in 16.5 cm^3) with its steel can: '
             'LiCoO2 32, graphite 16, Cu foil 10, Al foil 5, electrolyte (EC + LiPF6) 13, '
             'separator 3, steel can 21 % by mass (typical of teardown studies, e.g. Lain, J. '
             'Power Sources 97-98 (2001) 736; an assumption, not a measured cell)'),
    Material('li_ion_pouch', mixture_formula({'LiCoO2': 0.40, 'C': 0.20, 'Cu': 0.12, 'Al': 0.09,
                                              _ELECTROLYTE: 0.15, 'C3H6': 0.04}), 2.3, 'mixed',
             'homogenised pouch cell (phones, power banks): the electrode roll of li_ion_cell '
             'without the can, Al-laminate pouch counted in the Al'),
    Material('alkaline_cell', mixture_formula({'MnO2': 0.37, 'Zn': 0.16, 'KOH': 0.05,
                                               'H2O': 0.10, 'C': 0.04, 'Fe': 0.22,
                                               'C2H4': 0.06}), 2.9, 'mixed',
             'homogenised AA alkaline cell (23 g in 8 cm^3): MnO2, Zn, KOH electrolyte, '
             'graphite, steel can, seal'),
    # --- narcotics (crystal densities are approximate; scenes pack them at 0.3-0.7 g/cm^3)
    Material('cocaine_hcl', 'C17H22ClNO4', 1.34, 'organic', 'cocaine hydrochloride'),
    Material('heroin', 'C21H23NO5', 1.32, 'organic', 'diacetylmorphine base'),
    Material('methamphetamine_hcl', 'C10H16ClN', 1.18, 'organic', ''),
    Material('white_powder', 'C12H24O12', 1.54, 'organic',
             'generic cutting agent / legal powder: lactose monohydrate'),
    Material('starch', 'C6H10O5', 1.5, 'organic', 'corn starch grains'),
    # --- explosives (formulas and densities of the explosives their simulants mimic)
    Material('tnt', 'C7H5N3O6', 1.65, 'organic', 'cast TNT'),
    Material('rdx', 'C3H6N6O6', 1.82, 'organic', 'crystal density'),
    Material('c4', mixture_formula({'C3H6N6O6': 0.91, 'C26H50O4': 0.053, 'C4H8': 0.021,
                                    'C16H34': 0.016}), 1.59, 'organic',
             'RDX 91 %, dioctyl sebacate 5.3 %, polyisobutylene 2.1 %, oil 1.6 %'),
    Material('petn', 'C5H8N4O12', 1.77, 'organic', 'crystal density'),
    Material('ammonium_nitrate', 'NH4NO3', 1.725, 'organic',
             'crystal density (prills ~0.8 bulk); light elements: organic class'),
    Material('nitrocellulose', 'C6H7N3O11', 1.66, 'organic', 'smokeless propellant'),
    Material('packed_cartridges', mixture_formula({'Cu': 0.23, 'Zn': 0.10, 'Pb': 0.58,
                                                   'C6H7N3O11': 0.05, 'C6H10O5': 0.04}), 2.6,
             'metal', 'a box of 9 mm rounds smeared out: brass cases, lead bullets, propellant, '
             'cardboard (50 rounds, 650 g in 250 cm^3)'),
    # --- calibration references
    Material('pom', 'CH2O', 1.41, 'organic', 'polyoxymethylene (Delrin)'),
    Material('pmma', 'C5H8O2', 1.18, 'organic', ''),
    Material('graphite', 'C', 1.80, 'organic', 'extruded graphite'),
    # --- air and detector materials
    Material('air', '(N2)0.78084(O2)0.20946Ar0.00934(CO2)0.00041', 1.205e-3, 'organic',
             'dry air at 20 degC, 101.325 kPa (as radiation.physics)'),
    Material('csi', 'CsI', 4.51, 'inorganic', 'CsI(Tl) scintillator'),
    Material('gos', 'Gd2O2S', 7.34, 'inorganic', 'Gd2O2S:Tb (GOS) scintillator'),
)

# Reference step-wedge materials for a dual-energy calibration, light to heavy.
REFERENCE_MATERIALS = ('pom', 'pmma', 'graphite', 'water', 'aluminium', 'titanium', 'iron',
                       'copper', 'tin', 'lead')


def get_material(material) -> Material:
    """Return a Material from a table name or a Material itself; ValueError if unknown."""
    if isinstance(material, Material):
        return material
    if isinstance(material, str) and material in MATERIALS:
        return MATERIALS[material]
    raise ValueError(f'unknown material {material!r} (known: {sorted(MATERIALS)})')


def find_by_formula(formula: str, tolerance: float = 1e-3) -> Material | None:
    """Return the first table material whose mass composition equals `formula`'s, or None.

    Compositions are compared by mass fraction (so 'CH2' finds polyethylene's 'C2H4').
    """
    wanted = dict(composition(formula))
    for material in MATERIALS.values():
        have = dict(composition(material.formula))
        if set(have) == set(wanted) and all(abs(have[e] - wanted[e]) <= tolerance
                                            for e in wanted):
            return material
    return None


def _energies(energies_kev) -> np.ndarray:
    energy = np.atleast_1d(np.asarray(energies_kev, dtype=float))
    if (energy.ndim != 1 or energy.size == 0 or not np.all(np.isfinite(energy))
            or np.any(energy < MIN_ENERGY_KEV) or np.any(energy > MAX_ENERGY_KEV)):
        raise ValueError(f'photon energies must be finite, in [{MIN_ENERGY_KEV}, '
                         f'{MAX_ENERGY_KEV}] keV, got {energies_kev!r}')
    return energy


@lru_cache(maxsize=2048)
def _mass_attenuation_cached(formula: str, energies: bytes) -> np.ndarray:
    energy_ev = np.frombuffer(energies, dtype=float) * 1000.0
    value = np.asarray(xraydb.material_mu(formula, energy_ev, density=1.0, kind='total'),
                       dtype=float)
    value = np.atleast_1d(value).copy()
    value.setflags(write=False)
    return value


def mass_attenuation(material, energies_kev) -> np.ndarray:
    """Return mu/rho (cm^2/g) at energies (keV) of a Material, table name or formula.

    xraydb's total (photoelectric + coherent + incoherent) cross section; cached per formula
    and energy grid. A string that is not a table name is taken as a chemical formula.
    """
    if isinstance(material, str) and material not in MATERIALS:
        _atoms(material)  # ValueError on a bad formula
        formula = material.strip()
    else:
        formula = get_material(material).formula
    energy = _energies(energies_kev)
    return np.array(_mass_attenuation_cached(formula, energy.tobytes()))


def mu(material, energies_kev) -> np.ndarray:
    """Return the linear attenuation coefficient (1/cm) of a Material or table name at keV.

    Equal to xraydb.material_mu(formula, 1000 * energies_kev, density) (cached).
    """
    material = get_material(material)
    return material.density * mass_attenuation(material.formula, energies_kev)


def electrons_per_gram(formula: str) -> float:
    """Return the number of electrons per gram of a formula: N_A sum(n Z) / sum(n A)."""
    atoms = _atoms(formula)
    electrons = sum(count * xraydb.atomic_number(element) for element, count in atoms)
    mass = sum(count * xraydb.atomic_mass(element) for element, count in atoms)
    return AVOGADRO * electrons / mass


def electron_density(material) -> float:
    """Return the electron density (electrons/cm^3) of a Material or table name."""
    material = get_material(material)
    return material.density * electrons_per_gram(material.formula)


def effective_z(formula, exponent: float = ZEFF_EXPONENT) -> float:
    """Return the power-law effective atomic number of a formula (or Material / table name).

    Zeff = (sum_i f_i Z_i^p)^(1/p), f_i the electron fraction of element i, p = 2.94 (Spiers,
    Br. J. Radiol. 19 (1946) 52). Water: 7.42.
    """
    if isinstance(formula, Material) or (isinstance(formula, str) and formula in MATERIALS):
        formula = get_material(formula).formula
    if not (isinstance(exponent, (int, float)) and exponent > 0):
        raise ValueError(f'the Zeff exponent must be positive, got {exponent!r}')
    atoms = _atoms(formula)
    electrons = np.array([count * xraydb.atomic_number(e) for e, count in atoms])
    z = np.array([float(xraydb.atomic_number(e)) for e, _ in atoms])
    fractions = electrons / electrons.sum()
    return float(np.sum(fractions * z**exponent) ** (1.0 / exponent))


def compton_energy(energies_kev, angle_deg: float = 180.0) -> np.ndarray:
    """Return the energy (keV) of a photon Compton-scattered by `angle_deg` off a free electron.

    E' = E / (1 + (E / m_e c^2)(1 - cos theta)); at 180 degrees E / (1 + 2 E / 511 keV).
    """
    energy = np.asarray(energies_kev, dtype=float)
    if np.any(~np.isfinite(energy)) or np.any(energy <= 0):
        raise ValueError(f'photon energies must be positive, got {energies_kev!r}')
    return energy / (1.0 + energy / ELECTRON_MASS_KEV * (1.0 - math.cos(math.radians(angle_deg))))


def klein_nishina(energies_kev, angle_deg: float = 180.0) -> np.ndarray:
    """Return the Klein-Nishina dsigma/dOmega (cm^2/sr per electron) at `angle_deg`.

    dsigma/dOmega = r_e^2 / 2 P^2 (P + 1/P - sin^2 theta), P = E'/E (Klein and Nishina 1929).
    """
    energy = np.asarray(energies_kev, dtype=float)
    ratio = compton_energy(energy, angle_deg) / energy
    sin2 = math.sin(math.radians(angle_deg)) ** 2
    return 0.5 * ELECTRON_RADIUS_CM**2 * ratio**2 * (ratio + 1.0 / ratio - sin2)


def scatter_coefficient(material, energies_kev, angle_deg: float = 180.0) -> np.ndarray:
    """Return n_e dsigma/dOmega (1/(cm sr)): photons scattered to `angle_deg` per cm and sr."""
    return electron_density(material) * klein_nishina(energies_kev, angle_deg)
