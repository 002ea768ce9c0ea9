"""The site description (config/site.yaml) and the site map (maps/*.yaml + PGM), as plain data.

Used by the site simulator (device geometry), the site_map node (/map and /tf_static) and tests.
"""

from dataclasses import dataclass
import itertools
import math
import pathlib

import numpy as np
import yaml

from customs_lab.xray.scanner_model import ScannerModel


@dataclass(frozen=True)
class Pose2D:
    """A planar pose in the map frame: x, y in m, yaw in rad."""

    x: float
    y: float
    yaw: float = 0.0

    def quaternion(self) -> tuple[float, float, float, float]:
        """Return (x, y, z, w) of the rotation about z by yaw."""
        return 0.0, 0.0, math.sin(self.yaw / 2.0), math.cos(self.yaw / 2.0)


@dataclass(frozen=True)
class PanelSpec:
    """One detector panel of a portal, in the device frame."""

    id: str
    center: tuple[float, float, float]  # m
    normal: tuple[float, float, float]  # unit vector into the lane
    width: float  # m along x
    height: float  # m along z
    thickness: float  # m
    background: float  # cps of natural background


@dataclass(frozen=True)
class SpectrometerSpec:
    """One NaI(Tl) spectrometer of a portal, in the device frame (see config/site.yaml)."""

    id: str
    center: tuple[float, float, float]  # m
    normal: tuple[float, float, float]  # unit vector into the lane
    width: float  # m, face along x
    height: float  # m, face along z
    depth: float  # m, crystal depth along the normal
    channels: int
    max_kev: float
    resolution_662: float  # FWHM / E at 662 keV
    gain_temperature_coefficient: float  # relative gain change per degree Celsius


@dataclass(frozen=True)
class NeutronModuleSpec:
    """One He-3 neutron module of a portal, in the device frame (radiation/neutron.py's model).

    Polyethylene-moderated He-3 proportional counters behind a moderator face of width (along x)
    by height (along z) m facing the lane along `normal`; `tubes` tubes of tube_diameter (m),
    filled to pressure_atm, active over active_length (m) along z; non-paralysable dead time, s.
    """

    id: str
    center: tuple[float, float, float]  # m
    normal: tuple[float, float, float]  # unit vector into the lane
    width: float = 0.30  # m
    height: float = 1.80  # m
    tubes: int = 4
    pressure_atm: float = 3.0
    tube_diameter: float = 0.0508  # m
    active_length: float = 1.80  # m
    dead_time: float = 4e-6  # s


@dataclass(frozen=True)
class PortalSpec:
    """A radiation portal monitor with its lane (see config/site.yaml for each field's meaning)."""

    name: str
    hardware_id: str
    subject_kind: str
    frame_id: str
    pose: Pose2D
    speed: float
    approach: float
    exit: float
    subject_floor_height: float
    headway: float
    occupancy_half_width: float
    frame_period: float
    ocr_misread_probability: float
    model: str
    panels: tuple[PanelSpec, ...]
    spectrometers: tuple[SpectrometerSpec, ...] = ()
    spectrum_period: float = 1.0  # s between two spectra of a spectrometer
    window_edges_kev: tuple[float, ...] = ()  # the PVT panels' energy windows (edges, keV)
    background_front_fraction: float = 0.5  # share of the background a subject can shadow
    neutron_modules: tuple[NeutronModuleSpec, ...] = ()  # He-3 modules (none: gamma only)
    cosmic_neutron_flux: float = 0.012  # n/cm^2/s at the site (the simulator's background)


@dataclass(frozen=True)
class XrayScannerSpec:
    """A conveyor X-ray scanner on a portal lane's belt (see config/site.yaml)."""

    name: str
    hardware_id: str
    subject_kind: str
    frame_id: str
    pose: Pose2D  # the tunnel's centre on the belt surface, x along the belt
    conveyor: str  # the portal device whose belt carries the subjects through it
    offset: float  # m along the belt from that portal to the tunnel's centre
    barcode_unread_probability: float  # the belt's barcode reader reads nothing
    barcode_misread_probability: float  # it reads another valid waybill
    model: ScannerModel


@dataclass(frozen=True)
class Site:
    """The whole site description."""

    name: str
    map_file: str
    portals: dict
    zones: dict
    source: pathlib.Path
    officer_posts: dict = None  # post id -> (x, y, z) in the map, m
    xray_scanners: dict = None  # device name -> XrayScannerSpec


def _point(spec, where) -> tuple[float, float, float]:
    point = tuple(float(spec[k]) for k in ('x', 'y', 'z'))
    if not all(math.isfinite(v) for v in point):
        raise ValueError(f'{where}: x, y, z must be finite, got {point}')
    return point


def _pose(spec) -> Pose2D:
    return Pose2D(float(spec['x']), float(spec['y']), float(spec.get('yaw', 0.0)))


def _positive(name, value, where):
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f'{where}: {name} must be a positive number, got {value}')
    return value


def _unit(vector, what: str) -> tuple[float, float, float]:
    normal = np.asarray(vector, dtype=float)
    if normal.shape != (3,) or not math.isclose(float(np.linalg.norm(normal)), 1.0, abs_tol=1e-6):
        raise ValueError(f'{what}: normal must be a unit 3-vector')
    return tuple(float(v) for v in normal)


def _spectrometer(entry, where) -> SpectrometerSpec:
    channels = int(entry.get('channels', 1024))
    if not 16 <= channels <= 16384:
        raise ValueError(f'spectrometer {entry["id"]}: channels must be in [16, 16384]')
    return SpectrometerSpec(
        str(entry['id']),
        tuple(float(v) for v in entry['center']),
        _unit(entry['normal'], f'spectrometer {entry["id"]}'),
        _positive('width', entry['width'], where),
        _positive('height', entry['height'], where),
        _positive('depth', entry['depth'], where),
        channels,
        _positive('max_kev', entry.get('max_kev', 3000.0), where),
        _positive('resolution_662', entry.get('resolution_662', 0.07), where),
        float(entry.get('gain_temperature_coefficient', 0.0)),
    )


_ID_RESERVED = ',;:$*\r\n '  # the serial protocol's separators and framing


def _neutron_module(entry) -> NeutronModuleSpec:
    module_id = str(entry['id'])
    if not module_id or any(c in module_id for c in _ID_RESERVED):
        raise ValueError(f'neutron module id {module_id!r} must be non-empty, without spaces '
                         'or any of , ; : $ *')
    what = f'neutron module {module_id}'
    center = tuple(float(v) for v in entry['center'])
    if len(center) != 3 or not all(math.isfinite(v) for v in center):
        raise ValueError(f'{what}: center must be 3 finite numbers (m), got {entry["center"]}')
    tubes = entry.get('tubes', 4)
    if isinstance(tubes, bool) or not isinstance(tubes, int) or tubes < 1:
        raise ValueError(f'{what}: tubes must be a positive integer, got {tubes!r}')
    dead_time = float(entry.get('dead_time', 4e-6))
    if not (math.isfinite(dead_time) and 0.0 <= dead_time < 1e-3):
        raise ValueError(f'{what}: dead_time must be in [0, 1e-3) s, got {dead_time}')
    return NeutronModuleSpec(
        module_id, center, _unit(entry['normal'], what),
        _positive('width', entry.get('width', 0.30), what),
        _positive('height', entry.get('height', 1.80), what),
        tubes,
        _positive('pressure_atm', entry.get('pressure_atm', 3.0), what),
        _positive('tube_diameter', entry.get('tube_diameter', 0.0508), what),
        _positive('active_length', entry.get('active_length', 1.80), what),
        dead_time,
    )


def _neutron_modules(device) -> tuple[NeutronModuleSpec, ...]:
    modules = tuple(_neutron_module(entry) for entry in device.get('neutron_modules') or ())
    ids = [m.id for m in modules]
    if len(set(ids)) != len(ids):
        raise ValueError(f'neutron module ids must be unique, got {ids}')
    return modules


def _probability(name, value, where) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f'{where}: {name} must be in [0, 1], got {value}')
    return value


def _xray_scanner(name: str, device: dict, where: str) -> XrayScannerSpec:
    return XrayScannerSpec(
        name=name,
        hardware_id=str(device.get('hardware_id', f'xray/{name}')),
        subject_kind=str(device.get('subject_kind', 'parcel')),
        frame_id=str(device.get('frame_id', name)),
        pose=_pose(device['pose']),
        conveyor=str(device['conveyor']),
        offset=_positive('offset', device['offset'], where),
        barcode_unread_probability=_probability(
            'barcode_unread_probability', device.get('barcode_unread_probability', 0.0), where),
        barcode_misread_probability=_probability(
            'barcode_misread_probability', device.get('barcode_misread_probability', 0.0), where),
        model=ScannerModel.from_dict(device.get('model'), f'{where}: model'),
    )


def load_site(path) -> Site:
    """Read and check a site file. Raise ValueError naming the file and device on a bad entry."""
    path = pathlib.Path(path)
    try:
        spec = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f'{path}: cannot read the site file: {error}') from None
    portals, scanners = {}, {}
    for name, device in (spec.get('devices') or {}).items():
        where = f'{path}: device {name}'
        try:
            if device['type'] == 'xray_scanner':
                scanners[name] = _xray_scanner(name, device, where)
                continue
            if device['type'] != 'radiation_portal_monitor':
                raise ValueError(f'unknown device type {device["type"]!r}')
            panels = []
            for panel in device['panels']:
                panels.append(
                    PanelSpec(
                        str(panel['id']),
                        tuple(float(v) for v in panel['center']),
                        _unit(panel['normal'], f'panel {panel["id"]}'),
                        _positive('width', panel['width'], where),
                        _positive('height', panel['height'], where),
                        _positive('thickness', panel['thickness'], where),
                        _positive('background', panel['background'], where),
                    )
                )
            spectrometers = tuple(
                _spectrometer(entry, where) for entry in device.get('spectrometers') or ()
            )
            edges = tuple(float(e) for e in device.get('energy_windows_kev') or ())
            if edges and (len(edges) < 2 or any(b <= a for a, b in itertools.pairwise(edges))):
                raise ValueError(f'energy_windows_kev must increase, got {edges}')
            front = float(device.get('background_front_fraction', 0.5))
            if not 0.0 <= front <= 1.0:
                raise ValueError(f'background_front_fraction must be in [0, 1], got {front}')
            portals[name] = PortalSpec(
                name=name,
                hardware_id=str(device.get('hardware_id', f'rpm/{name}')),
                subject_kind=str(device['subject_kind']),
                frame_id=str(device.get('frame_id', name)),
                pose=_pose(device['pose']),
                speed=_positive('speed', device['speed'], where),
                approach=_positive('approach', device['approach'], where),
                exit=_positive('exit', device['exit'], where),
                subject_floor_height=float(device.get('subject_floor_height', 0.0)),
                headway=float(device.get('headway', 0.0)),
                occupancy_half_width=_positive(
                    'occupancy_half_width', device['occupancy_half_width'], where
                ),
                frame_period=_positive('frame_period', device['frame_period'], where),
                ocr_misread_probability=float(device.get('ocr_misread_probability', 0.0)),
                model=str(device.get('model', 'CL-RPM')),
                panels=tuple(panels),
                spectrometers=spectrometers,
                spectrum_period=_positive(
                    'spectrum_period', device.get('spectrum_period', 1.0), where
                ),
                window_edges_kev=edges,
                background_front_fraction=front,
                neutron_modules=_neutron_modules(device),
                cosmic_neutron_flux=_positive(
                    'cosmic_neutron_flux', device.get('cosmic_neutron_flux', 0.012), where
                ),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f'{where}: {error!r}') from None
    zones = {name: _pose(zone['pose']) for name, zone in (spec.get('zones') or {}).items()}
    try:
        posts = {str(name): _point(post, f'{path}: officer post {name}')
                 for name, post in (spec.get('officer_posts') or {}).items()}
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f'{path}: officer_posts: {error}') from None
    for name, scanner in scanners.items():
        if scanner.conveyor not in portals:
            raise ValueError(f'{path}: device {name}: conveyor {scanner.conveyor!r} is not a '
                             f'portal of the site (portals: {sorted(portals)})')
        belt = portals[scanner.conveyor].speed
        if not math.isclose(scanner.model.belt_speed, belt, rel_tol=1e-6):
            raise ValueError(f'{path}: device {name}: model.belt_speed '
                             f"{scanner.model.belt_speed} m/s differs from its conveyor's "
                             f'speed {belt} m/s')
    site = spec.get('site') or {}
    return Site(
        name=str(site.get('name', path.stem)),
        map_file=str(site.get('map_file', '')),
        portals=portals,
        zones=zones,
        source=path,
        officer_posts=posts,
        xray_scanners=scanners,
    )


@dataclass(frozen=True)
class OccupancyMap:
    """An occupancy grid as map_server reads it: values -1 unknown, 0 free, 100 occupied."""

    data: np.ndarray  # int8, shape (height, width), row 0 at the bottom (map origin)
    resolution: float  # m per cell
    origin: tuple[float, float, float]  # x, y, yaw of cell (0, 0) in the map frame


def load_map(yaml_path) -> OccupancyMap:
    """Read a map_server map (YAML + binary PGM, trinary mode) into an OccupancyMap."""
    yaml_path = pathlib.Path(yaml_path)
    meta = yaml.safe_load(yaml_path.read_text())
    image = yaml_path.parent / meta['image']
    pixels = read_pgm(image)
    occupancy = pixels.astype(float) / 255.0
    if not int(meta.get('negate', 0)):
        occupancy = 1.0 - occupancy
    grid = np.full(pixels.shape, -1, dtype=np.int8)
    grid[occupancy > float(meta['occupied_thresh'])] = 100
    grid[occupancy < float(meta['free_thresh'])] = 0
    origin = tuple(float(v) for v in meta['origin'])
    return OccupancyMap(np.flipud(grid), float(meta['resolution']), origin)


def read_pgm(path) -> np.ndarray:
    """Read a binary (P5) 8-bit PGM image into a uint8 array (rows top to bottom)."""
    data = pathlib.Path(path).read_bytes()
    tokens, position = [], 0
    while len(tokens) < 4:
        while data[position : position + 1].isspace():
            position += 1
        if data[position : position + 1] == b'#':
            position = data.index(b'\n', position) + 1
            continue
        start = position
        while not data[position : position + 1].isspace():
            position += 1
        tokens.append(data[start:position])
    if tokens[0] != b'P5' or int(tokens[3]) > 255:
        raise ValueError(f'{path}: only 8-bit binary PGM (P5) is supported')
    width, height = int(tokens[1]), int(tokens[2])
    pixels = np.frombuffer(data, dtype=np.uint8, count=width * height, offset=position + 1)
    return pixels.reshape(height, width)


def write_pgm(path, pixels: np.ndarray):
    """Write a uint8 array as a binary PGM."""
    pixels = np.asarray(pixels, dtype=np.uint8)
    header = f'P5\n{pixels.shape[1]} {pixels.shape[0]}\n255\n'.encode('ascii')
    pathlib.Path(path).write_bytes(header + pixels.tobytes())
