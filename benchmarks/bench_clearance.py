"""Clearance delivery benchmark: decisions per second into PostgreSQL, latency, pgbench ceiling.

    tools/with_env.sh python benchmarks/bench_clearance.py [--decisions 20000] [--rates 500,1000]
        (on a throwaway PostgreSQL server, started as the tests start theirs)

Measures the bridge's own path (clearance/outbox.py + clearance/delivery.py, as the node runs
them, without DDS): one producer thread (the node's executor) hands every decision to the outbox's
GroupCommitter, as the subscription callback does; the committer thread commits what waits in one
SQLite transaction (synchronous=FULL: on disk) and wakes the writer, which writes to PostgreSQL in
batches with the audit chain and the evidence rows, then removes them from the outbox.

1. throughput: the producer submits decisions as fast as it can while the committer and the
   writer work; figure = decisions / time until the last is committed in PostgreSQL. With group
   commit at synchronous=FULL (the default: an accepted decision survives a power cut) and at
   NORMAL; for comparison, with one outbox commit per decision (Delivery.accept, the bridge
   before group commit) at FULL and at NORMAL. Also the rate at which decisions were accepted
   (durable in the outbox), and the writer alone (outbox filled first, then delivered): the
   ceiling of the database side, whatever the outbox does.
2. latency: decisions submitted at steady rates (--rates), each timed from the submit to its
   outbox commit (when it counts as accepted) and to the database commit that stored it;
   p50 / p99.
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
from customs_lab.clearance.outbox import GroupCommitter, Outbox  # noqa: E402
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


def run_delivery(url, workdir, count, rate=None, synchronous='FULL', group_commit=True):
    """Put `count` decisions (at `rate`/s, or flat out) while delivering; return timings.

    group_commit: through a GroupCommitter, as the bridge does; else one commit per decision.
    """
    outbox = Outbox(pathlib.Path(workdir) / f'outbox-{time.monotonic_ns()}.db', synchronous)
    database = ClearanceDatabase(url)
    database.migrate()
    records = [decision(n) for n in range(count)]
    index = {record.key: n for n, record in enumerate(records)}
    put_at, accepted_at, stored_at = np.zeros(count), np.zeros(count), np.zeros(count)
    stored = []

    def on_stored(record, _new):
        stored_at[index[record.key]] = time.perf_counter()
        stored.append(record.key)

    delivery = Delivery(outbox, database, batch_size=500, on_stored=on_stored)
    commits = []  # (time, last ticket committed)

    def on_committed(last):
        commits.append((time.perf_counter(), last))
        delivery.wake.set()

    committer = GroupCommitter(outbox, on_committed=on_committed) if group_commit else None
    stop = threading.Event()
    writer = threading.Thread(target=delivery.run, args=(stop, 0.01))
    writer.start()
    start = time.perf_counter()
    for n, record in enumerate(records):
        if rate:
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        put_at[n] = time.perf_counter()
        if committer is not None:  # as the bridge's subscription callback does
            committer.submit(record.KIND, record.key, record.subject_key, record.to_payload())
        else:  # one commit per decision: the bridge before group commit
            delivery.accept(record)
            accepted_at[n] = time.perf_counter()
    produced = time.perf_counter()
    while len(stored) < count:
        time.sleep(0.005)
    done = time.perf_counter()
    if committer is not None:
        committer.close()
        times, lasts = np.array(commits).T
        # ticket n + 1 is durable at the first commit whose last ticket reaches it
        accepted_at = times[np.searchsorted(lasts, np.arange(1, count + 1))]
    stop.set()
    delivery.wake.set()
    writer.join()
    assert database.count_decisions() == count and database.verify_audit().ok
    database.dispose()
    outbox.close()
    accept, end_to_end = accepted_at - put_at, stored_at - put_at
    result = {
        'seconds': done - start,
        'put_rate': count / (produced - start),
        'accept_rate': count / (accepted_at.max() - start),  # durable in the outbox
        'rate': count / (done - start),
        'accept_p50_ms': 1e3 * float(np.percentile(accept, 50)),
        'accept_p99_ms': 1e3 * float(np.percentile(accept, 99)),
        'p50_ms': 1e3 * float(np.percentile(end_to_end, 50)),
        'p99_ms': 1e3 * float(np.percentile(end_to_end, 99)),
        'commits': committer.stats.groups if committer else count,
        'largest': committer.stats.largest if committer else 1,
    }
    result['mean_group'] = count / result['commits']
    return result


def run_writer_alone(url, workdir, count):
    """Return decisions/s of the writer alone: outbox filled first, then delivered."""
    outbox = Outbox(pathlib.Path(workdir) / f'outbox-{time.monotonic_ns()}.db')
    records = [decision(n) for n in range(count)]
    outbox.put_many([(r.KIND, r.key, r.subject_key, r.to_payload()) for r in records])
    database = ClearanceDatabase(url)
    database.migrate()
    delivery = Delivery(outbox, database, batch_size=500)
    start = time.perf_counter()
    while delivery.deliver_once():
        pass
    seconds = time.perf_counter() - start
    assert database.count_decisions() == count and database.verify_audit().ok
    database.dispose()
    outbox.close()
    return count / seconds


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
    parser.add_argument('--rates', default='250,500,1000', help='decisions/s for latency')
    parser.add_argument('--latency-decisions', type=int, default=5000)
    parser.add_argument('--pgbench-seconds', type=int, default=10)
    options = parser.parse_args()
    rates = [float(rate) for rate in options.rates.split(',')]
    server = ThrowawayPostgres()

    def run(count, **kwargs):
        return run_delivery(fresh_database(server.url()), workdir, count, **kwargs)

    try:
        with tempfile.TemporaryDirectory() as workdir:
            flat = {
                (sync, group): run(options.decisions, synchronous=sync, group_commit=group)
                for sync in ('FULL', 'NORMAL')
                for group in (True, False)
            }
            steady = {rate: run(options.latency_decisions, rate=rate) for rate in rates}
            writer_alone = run_writer_alone(
                fresh_database(server.url()), workdir, options.decisions
            )
        single_tps, _ = pgbench(server, options.pgbench_seconds, 1)
        _, batch_rows = pgbench(server, options.pgbench_seconds, 500)
    finally:
        server.close()
    print(f'PostgreSQL {server.bin.split("/")[-2]}, throwaway server on a Unix socket, fsync on')
    print(f'throughput, {options.decisions} decisions submitted flat out (each decision = 1 row + '
          f'2 evidence rows + subject upsert + audit entry):')
    for (sync, group), figures in flat.items():
        how = 'group commit' if group else 'one commit per decision'
        print(f'  outbox_synchronous={sync:<6} {how:<23}: {figures["rate"]:5.0f} decisions/s '
              f'stored ({figures["seconds"]:.1f} s); accepted (durable in the outbox) at '
              f'{figures["accept_rate"]:.0f}/s in {figures["commits"]} outbox commits, mean '
              f'group {figures["mean_group"]:.1f}, largest {figures["largest"]}')
    print(f'  the writer alone (outbox filled first, no producer): {writer_alone:.0f} decisions/s '
          f'stored')
    for rate, figures in steady.items():
        print(f'latency at {rate:.0f} decisions/s ({options.latency_decisions} decisions, FULL, '
              f'group commit, mean group {figures["mean_group"]:.2f}): submit -> outbox commit '
              f'p50 {figures["accept_p50_ms"]:.1f} ms, p99 {figures["accept_p99_ms"]:.1f} ms; '
              f'-> database commit p50 {figures["p50_ms"]:.1f} ms, p99 {figures["p99_ms"]:.1f} ms')
    print(f'pgbench ceiling, 1 client: {single_tps:.0f} single-row INSERT transactions/s; '
          f'{batch_rows:.0f} rows/s at 500 rows per transaction')


if __name__ == '__main__':
    main()
