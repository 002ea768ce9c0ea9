"""Clearance delivery benchmark: decisions per second into PostgreSQL, latency, pgbench ceiling.

    tools/with_env.sh python benchmarks/bench_clearance.py [--decisions 20000]
        [--database-url postgresql+psycopg://...]   (default: a throwaway server, as the tests)

Measures the bridge's own path (clearance/outbox.py + clearance/delivery.py, as the node runs
them, without DDS): every decision is committed to the durable outbox (synchronous=FULL, one
commit per decision, as the subscription callback does), then written to PostgreSQL in batches
with the audit chain and its evidence rows, then removed from the outbox.

1. throughput: a producer puts decisions as fast as it can while the writer delivers; figure =
   decisions / time until the last is committed in PostgreSQL. Once with the outbox at
   synchronous=FULL (the default: an accepted decision survives a power cut), once at NORMAL.
2. latency: decisions put at a steady rate (--rate), each timed from the outbox put to the
   database commit that stored it; p50 / p99.
3. ceiling: pgbench on the same server, one client, one single-row INSERT per transaction
   (the same durability: synchronous_commit on), and 500 rows per transaction.
"""

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tests'))  # the throwaway PostgreSQL of the test suite

from postgres_support import ThrowawayPostgres, binaries, fresh_database  # noqa: E402

from customs_lab.clearance.database import ClearanceDatabase  # noqa: E402
from customs_lab.clearance.delivery import Delivery  # noqa: E402
from customs_lab.clearance.outbox import Outbox  # noqa: E402
from customs_lab.clearance.records import DecisionRecord  # noqa: E402


def decision(n: int) -> DecisionRecord:
    """Return a realistic decision: two evidence contributions, a paragraph of explanation."""
    return DecisionRecord(
        decision_id=f'00000000-0000-4000-8000-{n:012d}',
        subject_kind='container',
        subject_id=f'CSQU{n % 1000000:06d}3',
        zone='',
        id_valid=True,
        channel='GREEN',
        recommended_action='release',
        prior_risk=0.01,
        posterior_risk=0.012,
        posterior_log_odds=-4.41,
        model_version='fusion-logodds/0.2.0+cfg.3f2a9c11',
        decided_at=float(n),
        explanation='GREEN (release): risk 0.012 from prior 0.01; evidence: radiation.gamma from '
        'rpm/portal_lane_1 +0.19 nats (gross counts 1.02x background, 0.3 sigma)',
        contributions=tuple(
            {
                'evidence_id': f'00000000-0000-4000-{9000 + k}-{n:012d}',
                'kind': kind,
                'sensor_id': sensor,
                'log_likelihood_ratio': 0.19,
                'weight': 1.0,
                'contribution': 0.19,
                'explanation': 'gross counts 1.02x background',
            }
            for k, (kind, sensor) in enumerate(
                [('radiation.gamma', 'rpm/portal_lane_1'), ('declaration.risk', 'clearance')]
            )
        ),
    )


def run_delivery(url, workdir, count, rate=None, synchronous='FULL'):
    """Put `count` decisions (at `rate`/s, or flat out) while delivering; return timings."""
    outbox = Outbox(pathlib.Path(workdir) / f'outbox-{time.monotonic_ns()}.db', synchronous)
    database = ClearanceDatabase(url)
    database.migrate()
    put_at, stored_at = {}, {}

    def on_stored(record, _new):
        stored_at[record.key] = time.perf_counter()

    delivery = Delivery(outbox, database, batch_size=500, on_stored=on_stored)
    stop = threading.Event()
    writer = threading.Thread(target=delivery.run, args=(stop, 0.01))
    writer.start()
    records = [decision(n) for n in range(count)]
    start = time.perf_counter()
    for n, record in enumerate(records):
        if rate:
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        put_at[record.key] = time.perf_counter()
        delivery.accept(record)  # as the bridge's subscription callback does
    produced = time.perf_counter()
    while len(stored_at) < count:
        time.sleep(0.005)
    done = time.perf_counter()
    stop.set()
    delivery.wake.set()
    writer.join()
    assert database.count_decisions() == count and database.verify_audit().ok
    database.dispose()
    outbox.close()
    latencies = np.array([stored_at[k] - put_at[k] for k in put_at])
    return {
        'seconds': done - start,
        'put_rate': count / (produced - start),
        'rate': count / (done - start),
        'p50_ms': 1e3 * float(np.percentile(latencies, 50)),
        'p99_ms': 1e3 * float(np.percentile(latencies, 99)),
    }


def pgbench(server, seconds, rows_per_transaction):
    """Return pgbench's transactions/s and rows/s for single-client INSERTs on `server`."""
    url = fresh_database(server.url())
    database = url.split('/')[-1].split('?')[0]
    script = tempfile.NamedTemporaryFile('w', suffix='.sql', delete=False)
    values = ', '.join(
        f"(:id::bigint * {rows_per_transaction} + {k}, repeat('x', 600))"
        for k in range(rows_per_transaction)
    )
    script.write(f'\\set id random(1, 1000000000)\nINSERT INTO rows VALUES {values};\n')
    script.close()
    os.chmod(script.name, 0o644)
    base = [*server.as_user, os.path.join(binaries(), 'psql'), '-q', '-h', server.socket_dir,
            '-p', str(server.port), '-U', 'postgres', database]
    subprocess.run([*base, '-c', 'CREATE TABLE rows (id bigint, payload text)'], check=True)
    out = subprocess.run(
        [*server.as_user, os.path.join(binaries(), 'pgbench'), '-n', '-c', '1', '-j', '1',
         '-T', str(seconds), '-f', script.name, '-h', server.socket_dir, '-p', str(server.port),
         '-U', 'postgres', database],
        capture_output=True, text=True,
    )
    os.unlink(script.name)
    if out.returncode:
        raise RuntimeError(f'pgbench failed: {out.stderr.strip()}')
    out = out.stdout
    tps = float(next(line for line in out.splitlines() if line.startswith('tps')).split()[2])
    return tps, tps * rows_per_transaction


def main():
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--decisions', type=int, default=20000)
    parser.add_argument('--rate', type=float, default=500.0, help='decisions/s for latency')
    parser.add_argument('--latency-decisions', type=int, default=5000)
    parser.add_argument('--pgbench-seconds', type=int, default=10)
    options = parser.parse_args()
    server = ThrowawayPostgres()
    try:
        with tempfile.TemporaryDirectory() as workdir:
            url = fresh_database(server.url())
            flat = run_delivery(url, workdir, options.decisions)
            normal = run_delivery(
                fresh_database(server.url()), workdir, options.decisions, synchronous='NORMAL'
            )
            steady = run_delivery(
                fresh_database(server.url()), workdir, options.latency_decisions, options.rate
            )
        single_tps, _ = pgbench(server, options.pgbench_seconds, 1)
        _, batch_rows = pgbench(server, options.pgbench_seconds, 500)
    finally:
        server.close()
    print(f'PostgreSQL {server.bin.split("/")[-2]}, throwaway server on a Unix socket, fsync on')
    print(f'throughput: {options.decisions} decisions in {flat["seconds"]:.1f} s = '
          f'{flat["rate"]:.0f} decisions/s stored (outbox puts {flat["put_rate"]:.0f}/s; '
          f'each decision = 1 row + 2 evidence rows + subject upsert + audit entry)')
    print(f'throughput with outbox_synchronous=NORMAL (survives a process crash, not a power '
          f'cut): {normal["rate"]:.0f} decisions/s')
    print(f'latency at {options.rate:.0f} decisions/s ({options.latency_decisions} decisions): '
          f'outbox put -> database commit p50 {steady["p50_ms"]:.1f} ms, '
          f'p99 {steady["p99_ms"]:.1f} ms')
    print(f'pgbench ceiling, 1 client: {single_tps:.0f} single-row INSERT transactions/s; '
          f'{batch_rows:.0f} rows/s at 500 rows per transaction')


if __name__ == '__main__':
    main()
