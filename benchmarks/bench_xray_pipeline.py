"""X-ray lane throughput and latency: firmware -> driver -> inspection -> /evidence, over DDS.

    OPENBLAS_NUM_THREADS=1 tools/with_env.sh python benchmarks/bench_xray_pipeline.py \
        [--parcels 60] [--factors 1 2 4 8 16] [--gap-lines 30]

About 4 minutes. The X-ray subsystem runs as a site runs it: `customs-lab launch
launch/xray.launch.xml` starts the driver and the inspection node as their own processes (an
isolated ROS domain, wall time); this process plays the scanner's firmware on a Unix socket
(simulation/xray_firmware.py, gated as a belt scanner runs) and listens on /evidence. Parcels:
the evidence benchmark's held-out kind (simulation/xray_evidence_set.py: 0.4 m boxes of
declared goods, half hiding a threat; no declarations are published, so no manifest item),
rendered before the clock starts, queued back to back with `--gap-lines` lines of empty belt
between them (30 lines = 6 cm at the default 0.5 m/s and 250 lines/s).

Each run drives the firmware's clock at `factor` times real time: the belt offers factor x (3600 /
seconds per parcel on the belt) parcels an hour. Per run: offered parcels/h, evidence received,
latency from the parcel's last line leaving the firmware to its xray.threat Evidence arriving here
(median, 95th percentile, max; first and last ten parcels: a latency that grows along the run means
the lane cannot keep up), the inspection node's own time per scan (from its diagnostics) and the
lines the firmware dropped because the driver did not read them. The machine's two cores are shared
by the firmware (this process), the driver, the inspection node and DDS, as on a site computer.
"""

import argparse
from concurrent.futures import ProcessPoolExecutor
import multiprocessing
import os
import pathlib
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
SERIAL = 91  # scanner unit of this benchmark's parcels


def render(seed: int):
    """Return (low, high, back, waybill) of parcel `seed` (run in a worker)."""
    from customs_lab.common.upu_s10 import make_identifier
    from customs_lab.simulation import xray_evidence_set as evidence_set
    from customs_lab.simulation.xray_physics import XrayPhysics
    from customs_lab.xray.scanner_model import ScannerModel

    scene, _, _, _, rng = evidence_set.draw(seed)
    physics = XrayPhysics(ScannerModel(), SERIAL)
    low, high, back = physics.render(scene, rng, lead=0, trail=0)
    return low, high, back, make_identifier('EB', seed % 10**8, 'KR')


def run(parcels, factor: float, gap_lines: int, domain: int) -> dict:
    """Run the pipeline once at `factor` x real time; return the figures."""
    from diagnostic_msgs.msg import DiagnosticArray
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from customs_interfaces.msg import Evidence
    from customs_lab.simulation.xray_evidence_set import TEST_SERIAL
    from customs_lab.simulation.xray_firmware import XrayFirmware
    from customs_lab.simulation.xray_physics import XrayPhysics
    from customs_lab.xray.scanner_model import ScannerModel

    data = pathlib.Path(tempfile.mkdtemp(prefix='xrb'))
    (data / 'dev').mkdir()
    address = str(data / 'dev' / 'xray.sock')
    model = ScannerModel()
    physics = XrayPhysics(model, TEST_SERIAL)
    rng = np.random.default_rng(5)
    firmware = XrayFirmware(address, model, gap_lines=gap_lines, gated=True,
                            air_lines=lambda n: physics.air_lines(n, rng),
                            dark_lines=lambda n: physics.dark_lines(n, rng))
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_LOG_DIR=str(data / 'log'),
               OPENBLAS_NUM_THREADS='1')
    launch = subprocess.Popen(
        [shutil.which('customs-lab') or 'customs-lab', 'launch',
         str(ROOT / 'launch' / 'xray.launch.xml'), f'data_dir:={data}',
         f'parcel_xray_1_address:={address}', 'use_sim_time:=false'],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    os.environ['ROS_DOMAIN_ID'] = str(domain)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('bench_xray_pipeline', context=context)
    arrived, inspection = {}, {}
    lock = threading.Lock()

    def on_evidence(msg):
        if msg.kind == Evidence.KIND_XRAY_THREAT:
            with lock:
                arrived.setdefault(msg.subject.id, time.monotonic())

    def on_diagnostics(msg):
        for status in msg.status:
            if status.name.startswith('xray_inspection'):
                inspection.update({v.key: v.value for v in status.values})

    node.create_subscription(Evidence, '/evidence', on_evidence, 100)
    node.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics, 10)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        started = time.monotonic()
        while not (firmware.connected and node.count_publishers('/evidence') >= 1):
            firmware.advance(time.monotonic() - started)  # idle: status, calibration frames
            time.sleep(0.01)
            if time.monotonic() - started > 60:
                raise RuntimeError('the driver and the inspection node did not come up in 60 s')
        time.sleep(2.0)  # the inspection node loads its models after it has published
        dropped_before = firmware.dropped_lines  # lines read before the driver connected
        for low, high, back, waybill in parcels:
            firmware.queue_parcel(low, high, back, waybill)
        waybills = [p[3] for p in parcels]
        done_at = []
        clock0, wall0 = firmware._now or 0.0, time.monotonic()  # noqa: SLF001
        seconds_on_belt = sum(p[0].shape[0] + gap_lines for p in parcels) / model.line_rate
        while len(done_at) < len(parcels):
            firmware.advance(clock0 + factor * (time.monotonic() - wall0))
            now = time.monotonic()
            while len(done_at) < firmware.parcels_scanned:
                done_at.append(now)
            time.sleep(0.002)
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline:
            firmware.advance(clock0 + factor * (time.monotonic() - wall0))
            with lock:
                if all(w in arrived for w in waybills):
                    break
            time.sleep(0.01)
        time.sleep(1.5)  # one more diagnostics period
        with lock:
            latency = np.array([arrived[w] - t for w, t in zip(waybills, done_at, strict=True)
                                if w in arrived])
        return {'factor': factor, 'offered': factor * 3600.0 * len(parcels) / seconds_on_belt,
                'parcels': len(parcels), 'received': len(latency), 'latency': latency,
                'inspection_mean_ms': inspection.get('mean_ms', '?'),
                'inspection_max_ms': inspection.get('max_ms', '?'),
                'dropped_lines': firmware.dropped_lines - dropped_before}
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        firmware.close()
        os.killpg(launch.pid, signal.SIGINT)
        try:
            launch.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(launch.pid, signal.SIGKILL)
        shutil.rmtree(data, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--parcels', type=int, default=60)
    parser.add_argument('--factors', type=float, nargs='+', default=[1.0, 2.0, 4.0, 8.0, 16.0])
    parser.add_argument('--gap-lines', type=int, default=30)
    parser.add_argument('--domain', type=int, default=91)
    args = parser.parse_args(argv)
    print('command: OPENBLAS_NUM_THREADS=1 tools/with_env.sh python '
          'benchmarks/bench_xray_pipeline.py ' + shlex.join(sys.argv[1:] if argv is None
                                                            else argv))
    print(f'machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, '
          f'python {platform.python_version()}')
    context = multiprocessing.get_context('spawn')
    with ProcessPoolExecutor(2, mp_context=context) as pool:
        parcels = list(pool.map(render, range(70000, 70000 + args.parcels)))
    lines = np.mean([p[0].shape[0] for p in parcels])
    print(f'{len(parcels)} parcels rendered, {lines:.0f} lines each on average, '
          f'{args.gap_lines} lines of belt between them')
    print(f'{"factor":>6} {"offered/h":>9} {"evidence":>8} {"median":>7} {"p95":>7} '
          f'{"max":>7} {"first10":>7} {"last10":>7} {"inspect":>8} {"dropped":>7}')
    for factor in args.factors:
        result = run(parcels, factor, args.gap_lines, args.domain)
        latency = result['latency']
        if not len(latency):
            print(f'{factor:>6.1f} {result["offered"]:>9,.0f} {0:>8}  no evidence arrived')
            continue
        print(f'{factor:>6.1f} {result["offered"]:>9,.0f} '
              f'{result["received"]:>4}/{result["parcels"]:<3} '
              f'{np.median(latency):>6.2f}s {np.percentile(latency, 95):>6.2f}s '
              f'{latency.max():>6.2f}s {np.median(latency[:10]):>6.2f}s '
              f'{np.median(latency[-10:]):>6.2f}s {result["inspection_mean_ms"]:>6}ms '
              f'{result["dropped_lines"]:>7}', flush=True)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
