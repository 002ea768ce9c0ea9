"""What is inside a parcel, for the X-ray simulator: objects of real materials in a cardboard box.

A `ParcelScene` is a corrugated cardboard box holding `XrayObject`s: boxes, cylinders and
ellipsoids of a named material (customs_lab.xray.materials) at a density, axis-aligned in the
parcel frame. Parcel frame (m): origin at a bottom corner of the box, x along the belt (the
parcel travels towards +x: its x = size[0] face enters the scanner's fan first), y across the
belt, z up from the bottom face, which rests on the belt. `centre` and `size` of an object are
its centre and its extents along x, y, z (a cylinder's `axis` is one of them: its cross-section
is the ellipse inscribed in the other two extents; an ellipsoid is inscribed in its extents).

`parcel_scene(subject, rng)` fills the box of a scenario parcel (SimSubject) from its truth:
the declared goods (templates for the scenario's descriptions: mobile phone, clothing,
cosmetics, toys, and books, shoes, food, electronics; anything else gets a generic mix) with
their mass, and the contraband: 'narcotics' (bags of the named drug at a packing density of
0.3-0.7 g/cm^3), 'weapon' (a knife or a handgun of steel plates), 'ammunition' (9 mm rounds:
brass cases, lead bullets), 'undeclared_battery' (18650 Li-ion cells or pouch packs),
'explosive' (a simulant block), 'radioactive_source' (a steel capsule, inside a box of its
shield's material if it has one) and 'special_nuclear_material' (a sphere of metal or oxide in
its shield). Masses: the goods' objects add up to the goods' mass within ~15 % (a last item is
sized to the remainder), the contraband's to its mass within a few percent (one cartridge or
cell at most; a radioactive source's mass is its capsule's and shield's); the box walls carry
the packaging mass (gross - goods - contraband). `random_scene(rng, threats=...)` draws a box
of random goods with the asked threats, for datasets and benchmarks.

Placement: objects are dropped into the box one kit (a rigid group of parts) at a time, like a
packer filling it: a kit gets an orientation (90-degree turns, mostly lying down), an (x, y) and
sinks until it rests on the highest kit below its footprint; of a few such random poses the
packer keeps the best for `clutter` in [0, 1]: 0 fills the box bottom up and side by side, 1
stacks kits on each other near the box centre (more overlap in projection, more concealment).
Bounding boxes never intersect, so objects never interpenetrate (every shape lies inside its
bounding box); they overlap in projection wherever they are stacked.
Contraband goes in first (at its truth position's x, y when it fits, on the bottom), goods are
dropped on top. Deterministic for a given rng.

Simplifications: hollow things are homogenised (a shoe's upper, a toy's shell, a handgun's slide
as steel plates around the barrel); a bottle is its liquid (the PET wall, 0.3 mm, is left out);
shells that would contain other objects are built of six slabs (the box, lead shields).
"""

from dataclasses import dataclass, replace
import itertools
import math

import numpy as np

from customs_lab.common.subjects import SubjectKind
from customs_lab.simulation.scenario import PARCEL_SIZE, Shield, TrueItem
from customs_lab.xray import materials

THREAT_CLASSES = ('weapon', 'ammunition', 'powder', 'battery')
SHAPES = ('box', 'cylinder', 'ellipsoid')
AXES = ('x', 'y', 'z')
BOX_MATERIAL = 'cardboard'
BOX_WALL = 0.004  # m, single-wall corrugated board
PACKING_DENSITY = (0.3, 0.7)  # g/cm^3 of powder in bags
GAP = 0.0005  # m between stacked kits
GOODS_KINDS = ('mobile phone', 'clothing', 'cosmetics', 'toys', 'books', 'shoes', 'food',
               'electronics', 'mixed')
# contraband categories (scenario TrueItem.category) -> threat class ('' for none)
CONTRABAND_THREAT = {'narcotics': 'powder', 'weapon': 'weapon', 'ammunition': 'ammunition',
                     'undeclared_battery': 'battery', 'explosive': 'powder',
                     'radioactive_source': '', 'special_nuclear_material': ''}
# threat class -> the contraband category random_scene draws for it
THREAT_CATEGORY = {'powder': 'narcotics', 'weapon': 'weapon', 'ammunition': 'ammunition',
                   'battery': 'undeclared_battery'}
BOX_SIZES = ((0.25, 0.2, 0.1), (0.3, 0.2, 0.15), (0.35, 0.25, 0.2), (0.4, 0.3, 0.3),
             (0.5, 0.35, 0.25), (0.6, 0.4, 0.35))  # m, common express boxes

_FLAT = ((0, 1, 2), (1, 0, 2))  # lying flat, turned by 90 degrees about z or not
_ANY = tuple(itertools.permutations(range(3)))
_CARTRIDGE = dict(case_d=0.0099, case_h=0.019, bullet_d=0.009, bullet_h=0.012,
                  case_density=3.0, pitch=0.0105)  # 9 mm Luger; case homogenised with powder
_CELL = dict(d=0.0184, h=0.065, pitch=0.0190)  # 18650 Li-ion cell


def _vector(value, what: str) -> tuple:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f'{what} must be three numbers (m), got {value!r}') from None
    if len(out) != 3 or not all(math.isfinite(v) for v in out):
        raise ValueError(f'{what} must be three finite numbers (m), got {value!r}')
    return out


@dataclass(frozen=True)
class XrayObject:
    """One object in a parcel: material, shape, centre and extents (m, parcel frame)."""

    name: str
    material: str  # a materials.MATERIALS name
    shape: str  # 'box', 'cylinder' or 'ellipsoid'
    centre: tuple  # m
    size: tuple  # m, extents along x, y, z
    axis: str = ''  # cylinders: 'x', 'y' or 'z'
    category: str = ''  # '' -> the material's category
    threat: str = ''  # '' or one of THREAT_CLASSES
    density: float = 0.0  # g/cm^3; 0 -> the material's table density
    contraband: bool = False
    group: str = ''  # the item it belongs to (a knife's blade and handle); '' -> name

    def __post_init__(self):
        """Check every field (ValueError) and fill the defaults."""
        material = materials.get_material(self.material)
        if self.shape not in SHAPES:
            raise ValueError(f'{self.name}: shape must be one of {SHAPES}, got {self.shape!r}')
        centre, size = _vector(self.centre, 'centre'), _vector(self.size, 'size')
        if min(size) <= 0:
            raise ValueError(f'{self.name}: size must be positive, got {size}')
        if self.shape == 'cylinder' and self.axis not in AXES:
            raise ValueError(f'{self.name}: a cylinder needs an axis in {AXES}, got {self.axis!r}')
        if self.shape != 'cylinder' and self.axis:
            raise ValueError(f'{self.name}: only cylinders have an axis, got {self.axis!r}')
        if self.threat and self.threat not in THREAT_CLASSES:
            raise ValueError(f'{self.name}: threat must be "" or one of {THREAT_CLASSES}, '
                             f'got {self.threat!r}')
        if not (isinstance(self.density, (int, float)) and math.isfinite(self.density)
                and self.density >= 0):
            raise ValueError(f'{self.name}: density must be >= 0 g/cm^3, got {self.density!r}')
        category = self.category or material.category
        if category not in materials.CATEGORIES:
            raise ValueError(f'{self.name}: category must be one of {materials.CATEGORIES}, '
                             f'got {category!r}')
        object.__setattr__(self, 'centre', centre)
        object.__setattr__(self, 'size', size)
        object.__setattr__(self, 'category', category)
        object.__setattr__(self, 'density', float(self.density or material.density))
        object.__setattr__(self, 'group', self.group or self.name)

    @property
    def substance(self) -> materials.Material:
        """Return the object's material at its density."""
        return materials.get_material(self.material).at_density(self.density)

    @property
    def volume(self) -> float:
        """Return the volume, m^3."""
        factor = {'box': 1.0, 'cylinder': math.pi / 4.0, 'ellipsoid': math.pi / 6.0}[self.shape]
        return factor * self.size[0] * self.size[1] * self.size[2]

    @property
    def mass(self) -> float:
        """Return the mass, kg (g/cm^3 = 1000 kg/m^3)."""
        return self.volume * self.density * 1000.0

    @property
    def lo(self) -> np.ndarray:
        """Return the bounding box's lower corner, m."""
        return np.subtract(self.centre, np.multiply(self.size, 0.5))

    @property
    def hi(self) -> np.ndarray:
        """Return the bounding box's upper corner, m."""
        return np.add(self.centre, np.multiply(self.size, 0.5))


def hollow_box(name: str, lo, inner, wall: float, material: str,
               density: float = 0.0) -> list[XrayObject]:
    """Return six slabs of `material` forming a box of inner extents `inner` and wall `wall`.

    `lo` is the outer lower corner; the slabs do not overlap (bottom and top span the whole
    box, the y walls the x extent between them, the x walls what is left).
    """
    lo, inner = np.asarray(lo, dtype=float), np.asarray(inner, dtype=float)
    w = float(wall)
    outer = inner + 2.0 * w
    x, y, z = outer
    slabs = (('bottom', (0, 0, 0), (x, y, w)), ('top', (0, 0, z - w), (x, y, w)),
             ('side_y0', (0, 0, w), (x, w, z - 2 * w)), ('side_y1', (0, y - w, w),
                                                         (x, w, z - 2 * w)),
             ('side_x0', (0, w, w), (w, y - 2 * w, z - 2 * w)),
             ('side_x1', (x - w, w, w), (w, y - 2 * w, z - 2 * w)))
    return [_part(f'{name}/{slab}', material, 'box', lo + np.array(offset), extent,
                  density=density, group=name) for slab, offset, extent in slabs]


@dataclass(frozen=True)
class ParcelScene:
    """A cardboard box of objects and where it sits on the belt."""

    waybill: str
    size: tuple = PARCEL_SIZE  # m, outer extents along x (belt), y, z
    objects: tuple = ()
    box_material: str = BOX_MATERIAL
    box_density: float = 0.0  # g/cm^3; 0 -> the material's
    wall: float = BOX_WALL  # m
    belt_y: float = 0.0  # m, the box's centre across the belt (scanner frame y)

    def __post_init__(self):
        """Check the box and that every object is inside it and apart from the others."""
        size = _vector(self.size, 'box size')
        if min(size) <= 0:
            raise ValueError(f'box size must be positive, got {size}')
        if not (0 < self.wall < min(size) / 4.0):
            raise ValueError(f'box wall must be in (0, {min(size) / 4.0}) m, got {self.wall!r}')
        box = materials.get_material(self.box_material)
        if not (math.isfinite(self.box_density) and self.box_density >= 0):
            raise ValueError(f'box density must be >= 0 g/cm^3, got {self.box_density!r}')
        if not math.isfinite(self.belt_y):
            raise ValueError(f'belt_y must be finite, got {self.belt_y!r}')
        objects = tuple(self.objects)
        for item in objects:
            if not isinstance(item, XrayObject):
                raise ValueError(f'objects must be XrayObjects, got {type(item).__name__}')
            if np.any(item.lo < self.wall - 1e-9) or np.any(item.hi > np.subtract(
                    size, self.wall) + 1e-9):
                raise ValueError(f'{item.name} is not inside the box interior')
        pairs = interpenetrating(objects)
        if pairs:
            a, b = pairs[0]
            raise ValueError(f'{objects[a].name} and {objects[b].name} interpenetrate')
        object.__setattr__(self, 'size', size)
        object.__setattr__(self, 'objects', objects)
        object.__setattr__(self, 'box_density', float(self.box_density or box.density))

    def walls(self) -> tuple[XrayObject, ...]:
        """Return the box's six walls as slabs."""
        inner = np.subtract(self.size, 2.0 * self.wall)
        return tuple(hollow_box('box', (0.0, 0.0, 0.0), inner, self.wall, self.box_material,
                                self.box_density))

    def all_objects(self) -> tuple[XrayObject, ...]:
        """Return the walls, then the contents."""
        return self.walls() + self.objects

    @property
    def box_mass(self) -> float:
        """Return the box's (packaging) mass, kg."""
        return sum(wall.mass for wall in self.walls())

    @property
    def contents_mass(self) -> float:
        """Return the contents' mass, kg."""
        return sum(item.mass for item in self.objects)

    @property
    def mass(self) -> float:
        """Return the gross mass, kg."""
        return self.box_mass + self.contents_mass

    def group_mass(self, group: str) -> float:
        """Return the mass of one group's objects, kg."""
        return sum(item.mass for item in self.objects if item.group == group)


def interpenetrating(objects, tolerance: float = 1e-7) -> list[tuple[int, int]]:
    """Return index pairs of objects whose bounding boxes overlap by more than `tolerance` m.

    Every shape lies in its bounding box, so an empty list means no two objects interpenetrate
    (the converse does not hold: a ball in a box's corner is refused though it does not touch).
    """
    if len(objects) < 2:
        return []
    lo = np.array([item.lo for item in objects])
    hi = np.array([item.hi for item in objects])
    overlap = np.minimum(hi[:, None, :], hi[None, :, :]) - np.maximum(lo[:, None, :],
                                                                     lo[None, :, :])
    clash = np.all(overlap > tolerance, axis=2)
    a, b = np.nonzero(np.triu(clash, k=1))
    return list(zip(a.tolist(), b.tolist(), strict=True))


# ---------------------------------------------------------------------------------------------
# Kits: rigid groups of parts in a local frame (lower corner of their bounding box at 0)


def _part(name, material, shape, lo, size, axis='', density=0.0, **labels) -> XrayObject:
    lo, size = np.asarray(lo, dtype=float), np.asarray(size, dtype=float)
    return XrayObject(name, material, shape, tuple(lo + size / 2.0), tuple(size), axis,
                      density=density, **labels)


def _mass(parts) -> float:
    return sum(part.mass for part in parts)


def _bounds(parts) -> tuple[np.ndarray, np.ndarray]:
    return (np.min([part.lo for part in parts], axis=0),
            np.max([part.hi for part in parts], axis=0))


def _transform(parts, perm, offset) -> list[XrayObject]:
    """Permute the axes of a kit (new axis i is old axis perm[i]), put its corner at offset."""
    perm = list(perm)
    moved = []
    for part in parts:
        axis = AXES[perm.index(AXES.index(part.axis))] if part.axis else ''
        moved.append(replace(part, centre=tuple(np.asarray(part.centre)[perm]),
                             size=tuple(np.asarray(part.size)[perm]), axis=axis))
    lo, _ = _bounds(moved)
    shift = np.asarray(offset, dtype=float) - lo
    return [replace(part, centre=tuple(np.asarray(part.centre) + shift)) for part in moved]


def _label(parts, group: str, threat: str = '', contraband: bool = False) -> list[XrayObject]:
    return [replace(part, name=f'{group}/{part.name}', group=group, threat=threat,
                    contraband=contraband) for part in parts]


def _sized_box(rng, volume: float, flatness=(0.35, 0.6), aspect=(1.0, 1.6)) -> np.ndarray:
    """Return (x, y, z) extents of a flat box of `volume` m^3."""
    thickness = volume ** (1.0 / 3.0) * rng.uniform(*flatness)
    area = volume / thickness
    ratio = rng.uniform(*aspect)
    x = math.sqrt(area * ratio)
    return np.array([x, area / x, thickness])


def _block(rng, name, material, mass, density=0.0, shape='box', flatness=(0.35, 0.6)):
    """Return a one-part kit of `mass` kg of `material` (box or ellipsoid)."""
    density = density or materials.get_material(material).density
    volume = mass / (density * 1000.0)
    if shape == 'ellipsoid':
        volume *= 6.0 / math.pi
    return [_part(name, material, shape, (0, 0, 0), _sized_box(rng, volume, flatness),
                  density=density)]


def _garment(rng, mass=0.0):
    material = 'clothes' if rng.random() < 0.7 else 'polyester_fabric'
    density = materials.MATERIALS[material].density * rng.uniform(0.8, 1.25)
    x, y = rng.uniform(0.2, 0.3), rng.uniform(0.15, 0.22)
    z = mass / (density * 1000.0 * x * y) if mass else rng.uniform(0.015, 0.04)
    z = float(np.clip(z, 0.004, 0.1))
    return [_part('garment', material, 'box', (0, 0, 0), (x, y, z), density=density)]


def _jeans(rng):
    x, y, z = rng.uniform(0.26, 0.32), rng.uniform(0.18, 0.24), rng.uniform(0.03, 0.045)
    return [_part('denim', 'clothes', 'box', (0, 0, 0), (x, y, z), density=0.35),
            _part('zip', 'brass', 'box', (0.02, 0.4 * y, z), (0.1, 0.008, 0.002)),
            _part('button', 'brass', 'cylinder', (0.13, 0.4 * y, z), (0.017, 0.017, 0.003),
                  axis='z')]


def _socks(rng):
    return [_part('socks', 'clothes', 'ellipsoid', (0, 0, 0),
                  (rng.uniform(0.08, 0.12), rng.uniform(0.06, 0.09), rng.uniform(0.04, 0.06)),
                  density=0.3)]


def _shoes(rng):
    parts = []
    length, width = rng.uniform(0.25, 0.3), rng.uniform(0.085, 0.1)
    sole_density, upper_density = rng.uniform(0.35, 0.6), rng.uniform(0.05, 0.09)
    for side in range(2):
        y = side * (width + 0.005)
        parts.append(_part(f'sole{side}', 'shoe_sole', 'box', (0, y, 0),
                           (length, width, 0.018), density=sole_density))
        parts.append(_part(f'upper{side}', 'leather', 'box', (0.01, y, 0.018),
                           (length - 0.02, width, rng.uniform(0.06, 0.09)),
                           density=upper_density))
    return parts


def _book(rng):
    return [_part('book', 'book', 'box', (0, 0, 0),
                  (rng.uniform(0.15, 0.24), rng.uniform(0.1, 0.17), rng.uniform(0.01, 0.04)),
                  density=rng.uniform(0.7, 0.85))]


def _bottle(rng, liquid=''):
    liquid = liquid or str(rng.choice(['water', 'juice', 'vegetable_oil', 'ethanol']))
    d, h = rng.uniform(0.055, 0.08), rng.uniform(0.14, 0.24)
    return [_part('liquid', liquid, 'cylinder', (0, 0, 0), (d, d, h), axis='z'),
            _part('cap', 'polypropylene', 'cylinder', (d / 2 - 0.015, d / 2 - 0.015, h),
                  (0.03, 0.03, 0.02), axis='z', density=0.4)]


def _jar(rng):
    d, h = rng.uniform(0.06, 0.09), rng.uniform(0.06, 0.1)
    content = str(rng.choice(['food', 'cream', 'juice']))
    return [_part('base', 'glass', 'cylinder', (0, 0, 0), (d, d, 0.006), axis='z'),
            _part('content', content, 'cylinder', (0, 0, 0.006), (d, d, h), axis='z'),
            _part('lid', 'steel', 'cylinder', (0, 0, 0.006 + h), (d, d, 0.0004), axis='z')]


def _food(rng):
    kind = rng.random()
    if kind < 0.4:
        return _block(rng, 'snack', 'food', rng.uniform(0.1, 0.5),
                      density=rng.uniform(0.15, 0.5))
    if kind < 0.7:
        return _block(rng, 'sugar', 'sugar', rng.uniform(0.25, 1.0), density=0.85)
    return _block(rng, 'flour', 'flour', rng.uniform(0.25, 1.0))


def _phone(rng):
    x, y = rng.uniform(0.14, 0.16), rng.uniform(0.068, 0.076)
    bx, by = 0.5 * x, 0.86 * y
    return [_part('back_glass', 'glass', 'box', (0, 0, 0), (x, y, 0.0008)),
            _part('battery', 'li_ion_pouch', 'box', (0.005, 0.004, 0.0008), (bx, by, 0.0045)),
            _part('board', 'pcb', 'box', (0.01 + bx, 0.004, 0.0008), (x - bx - 0.015, by,
                                                                       0.0016)),
            _part('midframe', 'aluminium', 'box', (0, 0, 0.0053), (x, y, 0.0015)),
            _part('speaker', 'ndfeb_magnet', 'box', (x - 0.012, 0.3 * y, 0.0068),
                  (0.01, 0.006, 0.0015)),
            _part('screen', 'glass', 'box', (0, 0, 0.0083), (x, y, 0.0012))]


def _charger(rng):
    s = rng.uniform(0.04, 0.05)
    return [_part('housing', 'abs', 'box', (0, 0, 0), (s, s, 0.022), density=0.6),
            _part('transformer', 'copper', 'box', (0, 0, 0.022), (0.012, 0.012, 0.01),
                  density=4.5),
            _part('board', 'pcb', 'box', (0.015, 0, 0.022), (s - 0.015, s, 0.0016)),
            _part('prongs', 'brass', 'box', (0.01, 0.01, -0.016), (0.02, 0.0025, 0.016),
                  density=4.0)]


def _cable(rng):
    d = rng.uniform(0.07, 0.1)
    return [_part('cable', 'pvc', 'cylinder', (0, 0, 0), (d, d, 0.012), axis='z', density=0.7)]


def _earphones(rng):
    return [_part('case', 'abs', 'box', (0, 0, 0), (0.06, 0.05, 0.025), density=0.45),
            _part('magnets', 'ndfeb_magnet', 'box', (0.02, 0.02, 0.025), (0.02, 0.008, 0.003))]


def _laptop(rng):
    x, y = rng.uniform(0.3, 0.34), rng.uniform(0.21, 0.24)
    return [_part('base', 'aluminium', 'box', (0, 0, 0), (x, y, 0.0015)),
            _part('battery', 'li_ion_pouch', 'box', (0.02, 0.01, 0.0015), (x - 0.04, 0.07,
                                                                           0.006)),
            _part('board', 'pcb', 'box', (0.02, 0.09, 0.0015), (0.2, 0.09, 0.0016)),
            _part('fan', 'copper', 'box', (0.24, 0.1, 0.0015), (0.05, 0.06, 0.004),
                  density=3.0),
            _part('keyboard', 'abs', 'box', (0, 0, 0.0075), (x, y, 0.004), density=0.8),
            _part('screen', 'glass', 'box', (0, 0, 0.0115), (x, y, 0.0015)),
            _part('lid', 'aluminium', 'box', (0, 0, 0.013), (x, y, 0.0012))]


def _toy_figure(rng):
    return [_part('toy', 'abs', 'ellipsoid', (0, 0, 0),
                  (rng.uniform(0.06, 0.15), rng.uniform(0.05, 0.12), rng.uniform(0.08, 0.2)),
                  density=rng.uniform(0.15, 0.35))]


def _plush(rng):
    return [_part('plush', 'polyester_fabric', 'ellipsoid', (0, 0, 0),
                  (rng.uniform(0.12, 0.25), rng.uniform(0.1, 0.2), rng.uniform(0.1, 0.2)),
                  density=rng.uniform(0.03, 0.06))]


def _toy_car(rng):
    x, y = rng.uniform(0.12, 0.2), rng.uniform(0.06, 0.1)
    parts = [_part('body', 'abs', 'box', (0, 0, 0.012), (x, y, 0.05), density=0.3),
             _part('motor', 'copper', 'cylinder', (0.02, 0.01, 0.062), (0.025, 0.02, 0.02),
                   axis='x', density=3.5),
             _part('magnet', 'ferrite_magnet', 'box', (0.05, 0.01, 0.062), (0.012, 0.02, 0.01))]
    for n in range(2):  # axles
        parts.append(_part(f'axle{n}', 'steel', 'cylinder', (0.02 + n * (x - 0.05), 0, 0.004),
                           (0.003, y, 0.003), axis='y'))
    cells = int(rng.integers(2, 5))
    for n in range(cells):  # AA cells lying along x in the battery compartment
        parts.append(_part(f'cell{n}', 'alkaline_cell', 'cylinder',
                           (0.08, 0.01 + 0.0155 * n, 0.062), (0.0505, 0.0145, 0.0145),
                           axis='x'))
    return parts


def _blocks(rng):
    return _block(rng, 'blocks', 'abs', rng.uniform(0.1, 0.4), density=rng.uniform(0.25, 0.4))


def _lotion(rng):
    d, h = rng.uniform(0.04, 0.06), rng.uniform(0.1, 0.18)
    return [_part('lotion', 'cream', 'cylinder', (0, 0, 0), (d, d, h), axis='z'),
            _part('pump', 'polypropylene', 'cylinder', (d / 2 - 0.01, d / 2 - 0.01, h),
                  (0.02, 0.02, 0.03), axis='z', density=0.5),
            _part('spring', 'steel', 'cylinder', (d / 2 - 0.003, d / 2 - 0.003, h + 0.03),
                  (0.006, 0.006, 0.012), axis='z', density=1.5)]


def _perfume(rng):
    x, y = rng.uniform(0.05, 0.08), rng.uniform(0.025, 0.04)
    h = rng.uniform(0.05, 0.08)
    return [_part('glass_base', 'glass', 'box', (0, 0, 0), (x, y, 0.012)),
            _part('perfume', 'ethanol', 'box', (0.003, 0.003, 0.012), (x - 0.006, y - 0.006, h)),
            _part('glass_top', 'glass', 'box', (0, 0, 0.012 + h), (x, y, 0.006)),
            _part('cap', 'aluminium', 'cylinder', (x / 2 - 0.01, y / 2 - 0.01, 0.018 + h),
                  (0.02, 0.02, 0.02), axis='z', density=0.8)]


def _lipstick(rng):
    return [_part('wax', 'paraffin_wax', 'cylinder', (0, 0, 0), (0.05, 0.012, 0.012),
                  axis='x'),
            _part('case', 'aluminium', 'cylinder', (0.05, 0, 0), (0.035, 0.016, 0.016),
                  axis='x', density=0.6)]


def _cream_jar(rng):
    d = rng.uniform(0.05, 0.07)
    return [_part('cream', 'cream', 'cylinder', (0, 0, 0), (d, d, 0.035), axis='z'),
            _part('lid', 'polypropylene', 'cylinder', (0, 0, 0.035), (d, d, 0.012), axis='z',
                  density=0.5)]


def _small_electronics(rng):
    x, y = rng.uniform(0.06, 0.14), rng.uniform(0.04, 0.1)
    return [_part('housing', 'abs', 'box', (0, 0, 0), (x, y, 0.02), density=0.4),
            _part('board', 'pcb', 'box', (0, 0, 0.02), (0.8 * x, 0.8 * y, 0.0016))]


def _filler(material: str, density_range=(0.0, 0.0)):
    def make(rng, mass):
        density = rng.uniform(*density_range) if density_range[1] else 0.0
        return _block(rng, material, material, mass, density=density)
    return make


def _garment_filler(rng, mass):
    return _garment(rng, mass)


# description keyword -> (core kits, fill kits, filler of the remaining mass)
_TEMPLATES = {
    'mobile phone': ((_phone, _charger, _cable), (_earphones, _cable, _book),
                     _filler('cardboard', (0.1, 0.2))),
    'clothing': ((_garment,), (_garment, _garment, _jeans, _socks, _garment), _garment_filler),
    'cosmetics': ((_perfume,), (_lotion, _cream_jar, _lipstick, _perfume, _bottle),
                  _filler('cream')),
    'toys': ((_toy_car,), (_toy_figure, _plush, _blocks, _toy_car), _filler('abs', (0.2, 0.4))),
    'books': ((_book,), (_book,), _filler('paper')),
    'shoes': ((_shoes,), (_shoes, _socks), _garment_filler),
    'food': ((_food,), (_food, _jar, _bottle), _filler('food', (0.3, 0.6))),
    'electronics': ((_laptop,), (_charger, _cable, _small_electronics, _earphones),
                    _filler('cardboard', (0.1, 0.2))),
    'mixed': ((), (_book, _garment, _food, _bottle, _shoes, _jar, _toy_figure, _charger,
                   _small_electronics, _jeans), _garment_filler),
}
_KEYWORDS = (('phone', 'mobile phone'), ('cloth', 'clothing'), ('shirt', 'clothing'),
             ('apparel', 'clothing'), ('cosmetic', 'cosmetics'), ('perfume', 'cosmetics'),
             ('toy', 'toys'), ('book', 'books'), ('shoe', 'shoes'), ('food', 'food'),
             ('snack', 'food'), ('laptop', 'electronics'), ('computer', 'electronics'),
             ('electronic', 'electronics'))


def goods_kind(description: str) -> str:
    """Return the goods template for a declared description ('mixed' if none matches)."""
    text = str(description).lower()
    for keyword, kind in _KEYWORDS:
        if keyword in text:
            return kind
    return text if text in _TEMPLATES else 'mixed'


def goods_kits(description: str, mass: float, rng, prefix: str = '') -> list[list[XrayObject]]:
    """Return kits of goods of `description` adding up to about `mass` kg (within ~15 %)."""
    if not (math.isfinite(mass) and mass >= 0):
        raise ValueError(f'goods mass must be >= 0 kg, got {mass!r}')
    kind = goods_kind(description)
    core, fill, filler = _TEMPLATES[kind]
    kits = [make(rng) for make in core]
    total = sum(_mass(kit) for kit in kits)
    misses = 0
    while total < 0.85 * mass and misses < 5 and len(kits) < 40:
        kit = fill[int(rng.integers(len(fill)))](rng)
        if total + _mass(kit) > 1.05 * mass:
            misses += 1
            continue
        kits.append(kit)
        total += _mass(kit)
    if mass - total > 0.02:
        kits.append(filler(rng, mass - total))
    return [_label(kit, f'{prefix}{kind.replace(" ", "_")}-{n}') for n, kit in enumerate(kits)]


# ---------------------------------------------------------------------------------------------
# Contraband


def _drug(description: str) -> str:
    text = description.lower()
    for keyword, material in (('meth', 'methamphetamine_hcl'), ('yaba', 'methamphetamine_hcl'),
                              ('cocaine', 'cocaine_hcl'), ('heroin', 'heroin')):
        if keyword in text:
            return material
    return 'white_powder'


def _powder_bags(rng, material: str, mass: float) -> list:
    count = 1 if mass < 0.4 else int(rng.integers(1, 4))
    shares = rng.dirichlet(np.full(count, 4.0)) if count > 1 else np.ones(1)
    bags = []
    for n, share in enumerate(shares):
        shape = 'ellipsoid' if rng.random() < 0.3 else 'box'
        bags.append(_block(rng, f'bag{n}', material, mass * float(share),
                           density=rng.uniform(*PACKING_DENSITY), shape=shape,
                           flatness=(0.3, 0.55)))
    return bags


def _knife(rng, mass: float):
    handle_length, handle = rng.uniform(0.09, 0.12), rng.choice(['abs', 'wood', 'nylon'])
    handle_part = _part('handle', str(handle), 'box', (0, 0, 0), (handle_length, 0.024, 0.016))
    width, thickness = rng.uniform(0.02, 0.035), rng.uniform(0.0018, 0.003)
    steel = materials.MATERIALS['steel'].density * 1000.0  # kg/m^3
    blade_mass = max(mass - handle_part.mass if mass else rng.uniform(0.05, 0.2), 0.02)
    length = float(np.clip(blade_mass / (steel * width * thickness), 0.07, 0.2))
    width = float(np.clip(blade_mass / (steel * length * thickness), 0.015, 0.05))
    thickness = blade_mass / (steel * width * length)  # the mass exactly
    return [handle_part,
            _part('blade', 'steel', 'box',
                  (handle_length, 0.012 - width / 2, 0.008 - thickness / 2),
                  (length, width, thickness))]


def _handgun(rng, mass: float):
    parts = [
        _part('slide_left', 'steel', 'box', (0, 0, 0.105), (0.185, 0.005, 0.03)),
        _part('barrel', 'steel', 'cylinder', (0.06, 0.005, 0.11), (0.115, 0.013, 0.013),
              axis='x'),
        _part('slide_right', 'steel', 'box', (0, 0.018, 0.105), (0.185, 0.005, 0.03)),
        _part('slide_top', 'steel', 'box', (0, 0.005, 0.128), (0.185, 0.013, 0.004)),
        _part('frame', 'nylon', 'box', (0.03, 0, 0.09), (0.155, 0.023, 0.015)),
        _part('grip_left', 'nylon', 'box', (0.0, 0, 0.0), (0.055, 0.0045, 0.09)),
        _part('magazine', 'steel', 'box', (0.01, 0.0045, 0.0), (0.035, 0.014, 0.09),
              density=2.5),
        _part('grip_right', 'nylon', 'box', (0.0, 0.0185, 0.0), (0.055, 0.0045, 0.09)),
        _part('trigger_guard', 'steel', 'box', (0.06, 0.008, 0.07), (0.04, 0.007, 0.004)),
    ]
    if mass:
        scale = float(np.clip(mass / _mass(parts), 0.4, 2.5)) ** (1.0 / 3.0)
        parts = [replace(p, centre=tuple(np.multiply(p.centre, scale)),
                         size=tuple(np.multiply(p.size, scale))) for p in parts]
    return parts


def _cartridges(rng, mass: float):
    c = _CARTRIDGE
    case_density = c['case_density']
    bullet = materials.MATERIALS['lead'].density
    one = (math.pi / 4.0 * 1000.0) * (c['case_d'] ** 2 * c['case_h'] * case_density
                                      + c['bullet_d'] ** 2 * c['bullet_h'] * bullet)
    count = max(1, round(mass / one)) if mass else int(rng.integers(5, 30))
    modelled = min(count, 24)
    columns = int(math.ceil(math.sqrt(modelled * 1.5)))
    parts = []
    for n in range(modelled):
        x, y = (n % columns) * c['pitch'], (n // columns) * c['pitch']
        parts.append(_part(f'case{n}', 'brass', 'cylinder', (x, y, 0),
                           (c['case_d'], c['case_d'], c['case_h']), axis='z',
                           density=case_density))
        off = (c['case_d'] - c['bullet_d']) / 2.0
        parts.append(_part(f'bullet{n}', 'lead', 'cylinder', (x + off, y + off, c['case_h']),
                           (c['bullet_d'], c['bullet_d'], c['bullet_h']), axis='z'))
    rest = mass - modelled * one if mass else 0.0
    if rest > 0.02:
        density = materials.MATERIALS['packed_cartridges'].density
        width = columns * c['pitch']
        length = rest / (density * 1000.0 * width * 0.031)
        parts.append(_part('packed', 'packed_cartridges', 'box',
                           (0, (modelled // columns + 1) * c['pitch'], 0),
                           (width, length, 0.031)))
    return parts


def _battery_pack(rng, mass: float, description: str):
    text = description.lower()
    pouch = any(word in text for word in ('pouch', 'power bank', 'phone')) or (
        'cell' not in text and rng.random() < 0.3)
    if mass <= 0:
        mass = rng.uniform(0.1, 0.8)
    if pouch or mass < 0.04:
        return _block(rng, 'pouch', 'li_ion_pouch', mass, flatness=(0.15, 0.3))
    c = _CELL
    cell = materials.MATERIALS['li_ion_cell'].density * 1000.0 * math.pi / 4.0 * c['d'] ** 2 * (
        c['h'])
    count = max(1, round(mass / cell))
    modelled = min(count, 20)
    columns = int(math.ceil(math.sqrt(modelled)))
    parts = [_part(f'cell{n}', 'li_ion_cell', 'cylinder',
                   ((n % columns) * c['pitch'], (n // columns) * c['pitch'], 0),
                   (c['d'], c['d'], c['h']), axis='z') for n in range(modelled)]
    rest = mass - modelled * cell
    if rest > 0.02:
        density = materials.MATERIALS['li_ion_pouch'].density * 1000.0
        width = columns * c['pitch']
        parts.append(_part('pack', 'li_ion_pouch', 'box',
                           (0, (modelled // columns + 1) * c['pitch'], 0),
                           (width, rest / (density * width * c['h']), c['h'])))
    return parts


def _explosive(rng, mass: float, description: str):
    text = description.lower()
    material, density = 'c4', 0.0
    for keyword, name in (('tnt', 'tnt'), ('rdx', 'rdx'), ('petn', 'petn'), ('semtex', 'petn'),
                          ('ammonium', 'ammonium_nitrate'), ('anfo', 'ammonium_nitrate')):
        if keyword in text:
            material = name
    if material == 'ammonium_nitrate':
        density = 0.8  # prills
    parts = _block(rng, 'charge', material, mass or rng.uniform(0.2, 1.5), density=density,
                   flatness=(0.3, 0.5))
    if rng.random() < 0.5:  # a detonator beside it
        x, y, z = parts[0].size
        parts.append(_part('detonator', 'aluminium', 'cylinder', (x, y / 2, z / 2 - 0.0035),
                           (0.05, 0.007, 0.007), axis='x', density=1.2))
    return parts


def _shield_material(shield: Shield) -> str:
    found = materials.find_by_formula(shield.material)
    if found is None:
        raise ValueError(f'shield material {shield.material!r} has no entry in '
                         f'customs_lab.xray.materials.MATERIALS')
    return found.name


def _shielded(rng, core: list, shields) -> list:
    """Wrap a kit in a hollow box of each shield (innermost first)."""
    parts = core
    for n, shield in enumerate(shields):
        lo, hi = _bounds(parts)
        wall = float(shield.thickness)
        if wall < 0.0005:
            continue
        parts = [replace(p, centre=tuple(np.asarray(p.centre) - lo + wall)) for p in parts]
        parts += hollow_box(f'shield{n}', (0, 0, 0), hi - lo, wall, _shield_material(shield),
                            density=float(shield.density))
    return parts


def _source(rng, item: TrueItem):
    capsule = [_part('capsule', 'steel', 'cylinder', (0, 0, 0), (0.008, 0.008, 0.01), axis='z')]
    return _shielded(rng, capsule, item.shields)


def _nuclear(rng, item: TrueItem):
    oxide = 'oxide' in item.description.lower()
    material = 'plutonium_oxide' if oxide else 'plutonium'
    density = materials.MATERIALS[material].density
    mass = item.mass if item.mass > 0 else 0.5
    diameter = 2.0 * (3.0 * mass / (4.0 * math.pi * density * 1000.0)) ** (1.0 / 3.0)
    sphere = [_part('core', material, 'ellipsoid', (0, 0, 0), (diameter,) * 3)]
    own = {material, 'plutonium', 'plutonium_oxide'}
    shields = [s for s in item.shields
               if (materials.find_by_formula(s.material) or materials.MATERIALS['lead']).name
               not in own]
    return _shielded(rng, sphere, shields)


def contraband_kits(item: TrueItem, rng, index: int = 0) -> list[tuple[list, str]]:
    """Return (kit, threat class) pairs of one contraband TrueItem (mass from item.mass)."""
    category, mass = item.category, float(item.mass)
    threat = CONTRABAND_THREAT.get(category, '')
    group = f'{category}-{index}'
    if category == 'narcotics':
        bags = _powder_bags(rng, _drug(item.description), mass or rng.uniform(0.1, 2.0))
        return [(_label(bag, f'{group}.{n}', threat, True), threat) for n, bag in enumerate(bags)]
    if category == 'weapon':
        text = item.description.lower()
        gun = any(word in text for word in ('gun', 'pistol', 'revolver', 'firearm')) or (
            'knife' not in text and rng.random() < 0.5)
        kit = _handgun(rng, mass) if gun else _knife(rng, mass)
    elif category == 'ammunition':
        kit = _cartridges(rng, mass)
    elif category == 'undeclared_battery':
        kit = _battery_pack(rng, mass, item.description)
    elif category == 'explosive':
        kit = _explosive(rng, mass, item.description)
    elif category == 'radioactive_source':
        kit = _source(rng, item)
    elif category == 'special_nuclear_material':
        kit = _nuclear(rng, item)
    else:  # contraband without an X-ray signature of its own: a dense organic package
        kit = _block(rng, 'package', 'food', mass or rng.uniform(0.1, 1.0), density=0.8)
    return [(_label(kit, group, threat, True), threat)]


# ---------------------------------------------------------------------------------------------
# Packing


class _Packer:
    """Drops kits into the box interior, keeping their bounding boxes apart.

    Each kit is tried in CANDIDATES random poses (orientation, x, y; z where it comes to rest);
    the pose kept minimises (1 - clutter) * its top height - clutter * the share of its
    footprint lying on other kits: low clutter fills the box bottom up and side by side, high
    clutter stacks kits on each other.
    """

    CANDIDATES = 8

    def __init__(self, size, wall: float, rng, clutter: float):
        self.lo = np.full(3, float(wall))
        self.hi = np.asarray(size, dtype=float) - wall
        self.rng, self.clutter = rng, float(clutter)
        self.box_lo, self.box_hi = np.zeros((0, 3)), np.zeros((0, 3))  # placed kits

    def _rest(self, xy, dims) -> tuple[float, float]:
        """Return (z where a footprint comes to rest, share of it lying on other kits)."""
        if not len(self.box_lo):
            return self.lo[2], 0.0
        width = (np.minimum(self.box_hi[:, :2], xy + dims[:2])
                 - np.maximum(self.box_lo[:, :2], xy))
        under = np.all(width > 1e-9, axis=1)
        if not np.any(under):
            return self.lo[2], 0.0
        share = float(np.sum(np.prod(width[under], axis=1))) / float(dims[0] * dims[1])
        return max(self.lo[2], float(self.box_hi[under, 2].max()) + GAP), min(share, 1.0)

    def _scan(self, extent, rotations, step: float = 0.01):
        """Return the lowest-topped pose on a grid of (x, y) over the floor, or None."""
        best = None
        for perm in rotations:
            dims = extent[list(perm)]
            room = self.hi - self.lo - dims
            if np.any(room < 0):
                continue
            xs = self.lo[0] + np.linspace(0.0, room[0], int(room[0] / step) + 2)
            ys = self.lo[1] + np.linspace(0.0, room[1], int(room[1] / step) + 2)
            xy = np.stack(np.meshgrid(xs, ys, indexing='ij'), axis=-1).reshape(-1, 2)
            width = (np.minimum(self.box_hi[None, :, :2], xy[:, None, :] + dims[:2])
                     - np.maximum(self.box_lo[None, :, :2], xy[:, None, :]))
            under = np.all(width > 1e-9, axis=2)  # (positions, kits)
            tops = np.where(under, self.box_hi[None, :, 2] + GAP, self.lo[2])
            z = tops.max(axis=1) if tops.shape[1] else np.full(len(xy), self.lo[2])
            top = z + dims[2]
            k = int(np.argmin(top))
            if top[k] <= self.hi[2] + 1e-12 and (best is None or top[k] < best[0]):
                best = (float(top[k]), perm, np.array([xy[k, 0], xy[k, 1], z[k]]), dims)
        return best

    def _orientation(self, extent, rotations):
        """Return a permutation: mostly one of the lowest poses (things lie down)."""
        heights = np.array([extent[perm[2]] for perm in rotations])
        low = [perm for perm, h in zip(rotations, heights, strict=True)
               if h <= 1.25 * heights.min()]
        choice = low if self.rng.random() < 0.75 else rotations
        return choice[int(self.rng.integers(len(choice)))]

    def place(self, kit, rotations=_ANY, prefer_xy=None, tries: int = 60):
        """Return the kit placed in the box, or None if it does not fit."""
        rng, clutter = self.rng, self.clutter
        lo, hi = _bounds(kit)
        extent = hi - lo
        best = None
        found = 0
        for attempt in range(tries):
            perm = self._orientation(extent, rotations)
            dims = extent[list(perm)]
            room = self.hi - self.lo - dims
            if np.any(room < 0):
                continue
            preferred = prefer_xy is not None and attempt < 4
            if preferred:
                xy = np.clip(np.asarray(prefer_xy[:2]) - dims[:2] / 2.0, self.lo[:2],
                             self.lo[:2] + room[:2])
            else:
                spread = 1.0 if attempt >= tries // 2 else 1.0 - 0.7 * clutter
                xy = self.lo[:2] + room[:2] * (0.5 + spread * (rng.random(2) - 0.5))
            z, share = self._rest(xy, dims)
            if z + dims[2] > self.hi[2] + 1e-12:
                continue
            score = (1.0 - clutter) * (z + dims[2]) / self.hi[2] - clutter * share
            corner = np.array([xy[0], xy[1], z])
            if best is None or score < best[0] or preferred:
                best = (score, perm, corner, dims)
            found += 1
            if preferred or found >= self.CANDIDATES:
                break
        if best is None:
            best = self._scan(extent, rotations)
        if best is None:
            return None
        _, perm, corner, dims = best
        self.box_lo = np.vstack([self.box_lo, corner])
        self.box_hi = np.vstack([self.box_hi, corner + dims])
        return _transform(kit, perm, corner)


def _rotations(kit) -> tuple:
    """Return the orientations a kit may take: flat things stay flat."""
    lo, hi = _bounds(kit)
    dims = hi - lo
    return _FLAT if dims[2] < 0.5 * min(dims[0], dims[1]) else _ANY


def build_scene(waybill: str, size, goods, hidden, rng, clutter: float = 0.5,
                packaging: float = 0.3, belt_y: float | None = None) -> ParcelScene:
    """Return a scene of goods [(description, kg), ...] and contraband TrueItems in a box.

    `packaging` (kg) sets the box walls' density; `belt_y` (m) defaults to a small random
    offset across the belt. ValueError if the contraband does not fit.
    """
    if not (isinstance(clutter, (int, float)) and 0.0 <= clutter <= 1.0):
        raise ValueError(f'clutter must be in [0, 1], got {clutter!r}')
    size = _vector(size, 'box size')
    if min(size) <= 4 * BOX_WALL:
        raise ValueError(f'box size must exceed {4 * BOX_WALL} m, got {size}')
    packer = _Packer(size, BOX_WALL, rng, clutter)
    objects = []
    for index, item in enumerate(hidden):
        prefer = item.position if any(item.position) else None
        for kit, _ in contraband_kits(item, rng, index):
            pending = [kit]
            while pending:
                part = pending.pop()
                placed = packer.place(part, _rotations(part), prefer)
                if placed is not None:
                    objects += placed
                elif len(part) == 1 and part[0].threat == 'powder' and part[0].size[0] > 0.02:
                    halves = [replace(part[0], size=(part[0].size[0] / 2,) + part[0].size[1:])]
                    pending += [halves, [replace(halves[0], name=halves[0].name + "'")]]
                else:
                    raise ValueError(f'{item.description} does not fit in a {size} m box')
    kits = []
    for index, (description, mass) in enumerate(goods):
        kits += goods_kits(description, float(mass), rng, prefix=f'g{index}.')
    kits.sort(key=lambda kit: -float(np.prod(_bounds(kit)[1] - _bounds(kit)[0])))
    for kit in kits:
        placed = packer.place(kit, _rotations(kit))
        if placed is not None:
            objects += placed
    inner = np.subtract(size, 2 * BOX_WALL)
    wall_volume = float(np.prod(size) - np.prod(inner))  # m^3
    density = float(np.clip(packaging / (wall_volume * 1000.0), 0.05, 1.0))
    if belt_y is None:
        belt_y = float(rng.uniform(-0.05, 0.05))
    return ParcelScene(waybill=waybill, size=size, objects=tuple(objects),
                       box_density=density, belt_y=belt_y)


def parcel_scene(subject, rng, clutter: float = 0.5) -> ParcelScene:
    """Return the scene of a scenario parcel (SimSubject): its goods and its hidden contraband.

    Goods: each 'goods' TrueItem's description and mass; contraband: every TrueItem marked
    contraband; the box: the subject's size, walls weighing gross - goods - contraband.
    """
    if getattr(getattr(subject, 'subject', None), 'kind', None) != SubjectKind.PARCEL:
        raise ValueError('parcel_scene needs a parcel SimSubject')
    size = subject.size if all(s > 0 for s in subject.size) else PARCEL_SIZE
    goods = [(item.description, item.mass) for item in subject.truth if item.category == 'goods']
    hidden = [item for item in subject.truth if item.contraband]
    net = sum(mass for _, mass in goods) + sum(item.mass for item in hidden)
    packaging = float(np.clip(subject.gross_mass - net, 0.1, 1.5))
    return build_scene(subject.subject.id, size, goods, hidden, rng, clutter, packaging)


def _threat_item(rng, name: str) -> TrueItem:
    category = THREAT_CATEGORY.get(name, name)
    if category not in CONTRABAND_THREAT:
        raise ValueError(f'unknown threat {name!r} (known: {THREAT_CLASSES} or '
                         f'{tuple(CONTRABAND_THREAT)})')
    if category == 'narcotics':
        drug = str(rng.choice(['methamphetamine', 'cocaine', 'heroin', 'ketamine']))
        return TrueItem(category, f'{drug} powder', True, mass=float(rng.uniform(0.1, 2.0)))
    if category == 'weapon':
        kind = str(rng.choice(['kitchen knife', 'handgun']))
        mass = rng.uniform(0.1, 0.3) if 'knife' in kind else rng.uniform(0.6, 1.0)
        return TrueItem(category, kind, True, mass=float(mass))
    if category == 'ammunition':
        return TrueItem(category, '9 mm ammunition', True, mass=float(rng.uniform(0.05, 0.7)))
    if category == 'undeclared_battery':
        kind = str(rng.choice(['18650 Li-ion cells', 'Li-ion power bank']))
        return TrueItem(category, kind, True, mass=float(rng.uniform(0.1, 0.9)))
    if category == 'explosive':
        kind = str(rng.choice(['C-4 simulant', 'TNT simulant', 'ammonium nitrate']))
        return TrueItem(category, kind, True, mass=float(rng.uniform(0.2, 1.2)))
    if category == 'radioactive_source':
        shields = (Shield('Pb', 11.35, float(rng.uniform(0.005, 0.02))),) if (
            rng.random() < 0.5) else ()
        return TrueItem(category, 'Cs-137 source', True, nuclide='Cs-137', shields=shields)
    return TrueItem(category, 'weapons-grade plutonium metal', True,
                    mass=float(rng.uniform(0.1, 0.5)))


def random_scene(rng, threats=(), clutter: float = 0.5, size=None, goods=None,
                 waybill: str = 'RANDOM000') -> ParcelScene:
    """Return a random parcel with the given threats (THREAT_CLASSES names or categories).

    size: box extents (m), default a random BOX_SIZES entry; goods: [(description, kg)],
    default one to three GOODS_KINDS filling the box to a density growing with clutter.
    """
    if isinstance(threats, str):
        threats = (threats,)
    size = _vector(size, 'box size') if size is not None else BOX_SIZES[
        int(rng.integers(len(BOX_SIZES)))]
    hidden = [_threat_item(rng, name) for name in threats]
    if goods is None:
        volume = float(np.prod(size))  # m^3
        total = volume * 1000.0 * rng.uniform(0.02, 0.05 + 0.1 * clutter)  # kg
        count = int(rng.integers(1, 4))
        shares = rng.dirichlet(np.full(count, 2.0))
        goods = [(str(rng.choice(GOODS_KINDS)), total * float(s)) for s in shares]
    return build_scene(waybill, size, goods, hidden, rng, clutter,
                       packaging=float(np.prod(size)) * 8.0)
