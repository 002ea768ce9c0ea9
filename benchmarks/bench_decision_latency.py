"""Latency from the last evidence to the committed database row (issue 3), over real DDS.

    tools/with_env.sh python benchmarks/bench_decision_latency.py [--rates 10 50 200]
        [--subjects 1000]

The fusion node and the clearance bridge run as on a site: launch/fusion.launch.xml through the
launch runner (one process each, Fast DDS, config/fusion.yaml and config/clearance.yaml, wall
time), writing to a throwaway PostgreSQL server (fsync on, `track_commit_timestamp` on so that
every row's commit time can be read back). The prior is fitted on the smoke scenario's history,
as the site fits it from its database.

This process plays the site around them: it publishes the declarations first (containers and
parcels of the history, made due an hour from now so that no decision timeout fires), waits
until the bridge has stored them all, then publishes one radiation Evidence per subject at a
steady rate. Evidence is the last (and only) evidence fusion waits for, so each subject is
decided when it arrives. Per subject:

  evidence published -> decision received here  (DDS, fusion's engine, DDS)
  evidence published -> row committed            (... + the bridge: outbox group commit,
                                                   writer batch, PostgreSQL commit)

the commit time being PostgreSQL's own (pg_xact_commit_timestamp of the decision row), on the
same clock as the publish time. p50 / p99 / max per evidence rate, and that every decision is
stored exactly once.
"""

import argparse
import dataclasses
import os
import pathlib
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tests'))  # the throwaway PostgreSQL of the test suite
os.environ['ROS_DOMAIN_ID'] = os.environ.get('CUSTOMS_LAB_BENCH_DOMAIN_ID') or str(
    101 + os.getpid() % 100)
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'

from postgres_support import ThrowawayPostgres, fresh_database  # noqa: E402
import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from customs_interfaces.msg import Declaration, Evidence, RiskDecision, SubjectRef  # noqa: E402
from customs_lab.clearance.clearance_bridge_node import declaration_msg  # noqa: E402
from customs_lab.clearance.database import ClearanceDatabase  # noqa: E402
from customs_lab.common.node_support import (  # noqa: E402
    DECISIONS_QOS,
    DECISIONS_TOPIC,
    DECLARATIONS_TOPIC,
    EVIDENCE_TOPIC,
    LATCHED_ALL,
    reliable,
    seconds_to_time_msg,
    uuid_to_msg,
)
from customs_lab.fusion.declaration_prior import DeclarationPrior  # noqa: E402
from customs_lab.fusion.prior_training import save_model  # noqa: E402
from customs_lab.simulation.history import (  # noqa: E402
    clearance_records,
    generate_history,
    training_records,
)
from customs_lab.simulation.scenario import Scenario  # noqa: E402

KINDS = {'container': SubjectRef.KIND_CONTAINER, 'parcel': SubjectRef.KIND_PARCEL}


def declarations(count: int, due: float) -> tuple[list, DeclarationPrior]:
    """Return `count` container and parcel declarations of the smoke history, and its prior."""
    scenario = Scenario.load(ROOT / 'config' / 'scenarios' / 'smoke.yaml')
    history = generate_history(scenario)
    prior = DeclarationPrior(inspection_sensitivity=0.9).fit(training_records(history))
    records = [r for r in clearance_records(history)
               if getattr(r, 'subject_kind', '') in KINDS and hasattr(r, 'items')]
    if len(records) < count:
        raise SystemExit(f'the smoke history has {len(records)} declarations, not {count}')
    return [dataclasses.replace(r, expected_arrival=due) for r in records[:count]], prior


def evidence_msg(record, llr: float) -> Evidence:
    """Return a portal's evidence for a declared subject, stamped now."""
    msg = Evidence(evidence_id=uuid_to_msg(uuid.uuid4()), sensor_id='rpm/portal_lane_1',
                   source_node='/bench', kind=Evidence.KIND_RADIATION_GAMMA,
                   log_likelihood_ratio=llr, correlation_group='rpm/portal_lane_1',
                   explanation=f'bench: {llr:+.2f} nats')
    msg.subject = SubjectRef(kind=KINDS[record.subject_kind], id=record.subject_id,
                             id_valid=True)
    msg.header.stamp = seconds_to_time_msg(time.time())
    return msg


def commit_times(url: str) -> dict:
    """Return {subject id: [commit wall time of each decision row]}."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text(
                'SELECT subject_id, extract(epoch from pg_xact_commit_timestamp(xmin)) '
                'FROM decisions')).all()
    finally:
        engine.dispose()
    out = {}
    for subject_id, committed in rows:
        out.setdefault(subject_id, []).append(float(committed))
    return out


def quantiles(values_ms) -> str:
    """Return 'p50 x ms, p99 y ms, max z ms'."""
    v = np.asarray(values_ms)
    return (f'p50 {np.percentile(v, 50):6.1f} ms, p99 {np.percentile(v, 99):6.1f} ms, '
            f'max {v.max():6.1f} ms')


def run_rate(rate: float, count: int, workdir: pathlib.Path, server) -> dict:
    """Run fusion + bridge on a fresh database; publish `count` evidence at `rate`/s; time it."""
    url = fresh_database(server.url())
    ClearanceDatabase(url).migrate()  # (the bridge would at its first write: count meanwhile)
    data = workdir / f'rate-{rate:g}'
    data.mkdir()
    due = time.time() + 3600.0
    records, prior = declarations(count, due)
    save_model(prior, data / 'declaration_prior.json')
    log = open(data / 'launch.log', 'w')  # noqa: SIM115 - closed below
    command = [shutil.which('customs-lab') or 'customs-lab', 'launch',
               str(ROOT / 'launch' / 'fusion.launch.xml'), f'database_url:={url}',
               f'data_dir:={data}', 'use_sim_time:=false']
    launch = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('bench_site', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    received = {}
    node.create_subscription(
        RiskDecision, DECISIONS_TOPIC,
        lambda m: received.setdefault(m.subject.id, time.time()), DECISIONS_QOS)
    declare = node.create_publisher(Declaration, DECLARATIONS_TOPIC, LATCHED_ALL)
    publish = node.create_publisher(Evidence, EVIDENCE_TOPIC, reliable(1000))
    database = ClearanceDatabase(url)

    # the executor spins in its own thread, so that each decision is stamped when it arrives,
    # whatever this thread is doing (pacing the evidence, polling the database)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()

    def spin_until(condition, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not condition():
            time.sleep(0.05)
        return condition()

    try:
        if not spin_until(lambda: publish.get_subscription_count() >= 1
                          and declare.get_subscription_count() >= 2, 60.0):
            raise RuntimeError(f'fusion and the bridge did not come up: see {log.name}')
        for record in records:
            declare.publish(declaration_msg(record))
        if not spin_until(lambda: database.count_declarations() >= count, 120.0):
            raise RuntimeError('the bridge did not store the declarations')
        spin_until(lambda: False, 2.0)  # fusion has had the same messages
        rng = np.random.default_rng(int(rate))
        llrs = rng.normal(-1.0, 1.0, count)
        llrs[rng.random(count) < 0.02] = 15.0  # a few alarms
        published = {}
        start = time.monotonic()
        for n, record in enumerate(records):
            delay = start + n / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            msg = evidence_msg(record, float(llrs[n]))
            published[record.subject_id] = time.time()
            publish.publish(msg)
        sent = time.monotonic() - start
        if not spin_until(lambda: database.count_decisions() >= count, 120.0):
            raise RuntimeError(f'{database.count_decisions()} of {count} decisions stored')
        spin_until(lambda: len(received) >= count, 10.0)
        audit_ok = database.verify_audit().ok
    finally:
        database.dispose()
        executor.shutdown()
        spinner.join(5.0)
        node.destroy_node()
        rclpy.shutdown(context=context)
        os.killpg(launch.pid, signal.SIGINT)
        try:
            launch.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(launch.pid, signal.SIGKILL)
            launch.wait()
        log.close()
    committed = commit_times(url)
    once = all(len(committed.get(r.subject_id, [])) == 1 for r in records)
    to_decision = [1e3 * (received[s] - t) for s, t in published.items() if s in received]
    to_row = [1e3 * (committed[s][0] - t) for s, t in published.items() if s in committed]
    return {'sent_rate': count / sent, 'to_decision': to_decision, 'to_row': to_row,
            'once': once, 'audit_ok': audit_ok, 'received': len(received),
            'missing': count - len(to_row)}


def main():
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rates', nargs='+', type=float, default=[10.0, 50.0, 200.0],
                        help='evidence messages per second')
    parser.add_argument('--subjects', type=int, default=1000, help='subjects per rate')
    options = parser.parse_args()
    print(f'command: python {shlex.join(sys.argv)}')
    server = ThrowawayPostgres(settings={'track_commit_timestamp': 'on'})
    try:
        with tempfile.TemporaryDirectory() as workdir:
            results = {rate: run_rate(rate, options.subjects, pathlib.Path(workdir), server)
                       for rate in options.rates}
    finally:
        server.close()
    print(f'PostgreSQL {server.bin.split("/")[-2]} (throwaway, Unix socket, fsync on); fusion and '
          'bridge from launch/fusion.launch.xml, one process each; Fast DDS; '
          f'{os.cpu_count()} CPUs')
    for rate, r in results.items():
        print(f'{options.subjects} subjects at {rate:g} evidence/s (sent at '
              f'{r["sent_rate"]:.1f}/s): every decision stored once: {r["once"]}; '
              f'audit chain intact: {r["audit_ok"]}')
        print(f'  evidence -> decision received  {quantiles(r["to_decision"])} '
              f'({r["received"]} decisions)')
        print(f'  evidence -> database commit    {quantiles(r["to_row"])}'
              + (f' ({r["missing"]} subjects without a row)' if r['missing'] else ''))


if __name__ == '__main__':
    main()
