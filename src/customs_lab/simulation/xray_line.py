"""A simulated X-ray scanner on a conveyor: parcels from the lane, physics, and the firmware.

The site simulator owns one per `xray_scanner` device of the site file. Each parcel that enters
the scanner's conveyor lane (its radiation portal lane, simulation/portal_lane.py) reaches the
scanner's fan `(approach + offset) / speed` s later; at entry its scene is built from its truth
(simulation/parcel_scene.py) and rendered (simulation/xray_physics.py) in a worker process, so
the simulator's clock never waits for the physics; when the parcel is due, its raw lines go to
the scanner's firmware (simulation/xray_firmware.py), which streams them to the driver over a
Unix socket in <data_dir>/dev, gated to the parcels as a belt scanner runs. The barcode reader
at the tunnel reads the waybill, or nothing (`barcode_unread_probability`), or another parcel's
(`barcode_misread_probability`).

Rendering a parcel takes ~0.3 s of CPU; at 20x real time the default scenario's 150 parcels an
hour keep a quarter of the worker's core busy.
"""

from concurrent.futures import ProcessPoolExecutor
import multiprocessing
import os
import signal

import numpy as np

from customs_lab.simulation.parcel_scene import parcel_scene
from customs_lab.simulation.xray_firmware import XrayFirmware
from customs_lab.simulation.xray_physics import XrayPhysics
from customs_lab.site.layout import PortalSpec, XrayScannerSpec

GAP_LINES = 30  # lines of empty belt the scanner reads before and after every parcel

_worker_physics = None  # the worker process's XrayPhysics


def _init_worker(model, serial_seed: int):
    global _worker_physics
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the simulator stops it, not Ctrl-C
    _worker_physics = XrayPhysics(model, serial_seed)


def _render(scene, seed: int):
    return _worker_physics.render(scene, np.random.default_rng(seed), lead=0, trail=0)


class XrayLine:
    """One scanner on a conveyor: follow the lane's parcels, render them, play the firmware."""

    def __init__(self, spec: XrayScannerSpec, conveyor: PortalSpec, address: str, seed: int,
                 waybills=(), workers: int = 1):
        """Start the firmware on `address` and the rendering worker(s).

        seed: the scenario's (the physics' fixed pattern, the scenes and the barcode reader
        follow from it); waybills: every parcel id of the day (what a misread can give).
        """
        self.spec, self.conveyor = spec, conveyor
        self.seed = int(seed)
        self.delay = (conveyor.approach + spec.offset) / conveyor.speed  # lane entry -> fan
        serial_seed = self.seed % 2**31
        self.physics = XrayPhysics(spec.model, serial_seed)  # air and dark lines, here
        self._line_rng = np.random.default_rng([self.seed, 7001])
        self._reader_rng = np.random.default_rng([self.seed, 7002])
        self.waybills = sorted(waybills)
        self.firmware = XrayFirmware(
            address, spec.model, serial=f'SIM-{spec.name.upper()}', gap_lines=GAP_LINES,
            air_lines=lambda n: self.physics.air_lines(n, self._line_rng),
            dark_lines=lambda n: self.physics.dark_lines(n, self._line_rng), gated=True,
            seed=serial_seed)
        context = multiprocessing.get_context('spawn')  # never fork a process running DDS
        os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')
        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                        initializer=_init_worker,
                                        initargs=(spec.model, serial_seed))
        self.pending = []  # [due sim s, key, waybill as read, future, late], in due order
        self.stats = {'parcels': 0, 'queued': 0, 'late': 0, 'unread': 0, 'misread': 0,
                      'render_errors': 0}
        self.last_error = ''

    @property
    def address(self) -> str:
        """Return the socket the firmware listens on."""
        return self.firmware.address

    @property
    def busy(self) -> bool:
        """Return True while parcels are on their way to or through the scanner."""
        return bool(self.pending) or self.firmware.busy

    def enter(self, sim, t0: float):
        """Take a parcel that entered the conveyor lane at sim time t0."""
        index = self.stats['parcels']
        self.stats['parcels'] += 1
        scene = parcel_scene(sim, np.random.default_rng([self.seed, 7003, index]))
        future = self.pool.submit(_render, scene, int(self.seed * 1000 + index) % 2**63)
        due = t0 + self.delay - GAP_LINES / self.spec.model.line_rate
        self.pending.append([due, sim.subject.key, self._read(sim.subject.id), future, False])
        self.pending.sort(key=lambda p: p[0])

    def _read(self, waybill: str) -> str:
        draw = self._reader_rng.random()
        if draw < self.spec.barcode_unread_probability:
            self.stats['unread'] += 1
            return ''
        if draw < self.spec.barcode_unread_probability + self.spec.barcode_misread_probability:
            others = [w for w in self.waybills if w != waybill]
            if others:
                self.stats['misread'] += 1
                return str(self._reader_rng.choice(others))
        return waybill

    def step(self, t: float):
        """Put the parcels due by sim time t on the belt and advance the firmware to t."""
        while self.pending and self.pending[0][0] <= t:
            due, key, waybill, future, late = self.pending[0]
            if not future.done():
                if not late:  # the render is not ready: the belt waits for it
                    self.stats['late'] += 1
                    self.pending[0][4] = True
                break
            self.pending.pop(0)
            try:
                low, high, back = future.result()
            except Exception as error:  # noqa: BLE001 - a worker's failure is reported, not fatal
                self.stats['render_errors'] += 1
                self.last_error = f'{key}: {error!r}'
                continue
            self.firmware.queue_parcel(low, high, back, waybill)
            self.stats['queued'] += 1
        self.firmware.advance(t)

    def close(self):
        """Stop the worker and the firmware."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.firmware.close()
