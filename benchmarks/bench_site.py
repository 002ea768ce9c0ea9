"""Run the simulated site once and print what it cost: wall time, sim speed-up, CPU and memory.

    tools/with_env.sh python benchmarks/bench_site.py --scenario smoke --rate 20

Runs `customs-lab launch launch/site.launch.xml` exactly as `make run` does (in its own ROS
domain, localhost discovery, a throw-away data directory), samples every process of the launch
from /proc twice a second (CPU time, resident memory), and prints one row per node. Figures go
to docs/BENCHMARKS.md with the command that produced them.
"""

import argparse
import json
import os
import pathlib
import random
import re
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
TICKS = os.sysconf('SC_CLK_TCK')
PAGE = os.sysconf('SC_PAGE_SIZE')


def children_of(pid):
    """Return the pids of every descendant of pid (from /proc)."""
    parents = {}
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open(f'/proc/{entry}/stat') as handle:
                    fields = handle.read().rsplit(')', 1)[1].split()
                parents.setdefault(int(fields[1]), []).append(int(entry))
            except OSError:
                continue
    found, stack = [], [pid]
    while stack:
        for child in parents.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def sample(pid):
    """Return (cpu seconds, rss bytes, node label) of a process, or None if it is gone."""
    try:
        with open(f'/proc/{pid}/stat') as handle:
            fields = handle.read().rsplit(')', 1)[1].split()
        with open(f'/proc/{pid}/cmdline', 'rb') as handle:
            argv = handle.read().decode(errors='replace').split('\0')
        with open(f'/proc/{pid}/statm') as handle:
            rss = int(handle.read().split()[1]) * PAGE
    except OSError:
        return None
    cpu = (int(fields[11]) + int(fields[12])) / TICKS
    name = next((a.split(':=', 1)[1] for a in argv if a.startswith('__node:=')), None)
    namespace = next((a.split(':=', 1)[1] for a in argv if a.startswith('__ns:=')), '/')
    label = (namespace.rstrip('/') + '/' + name).lstrip('/') if name else None
    return cpu, rss, label


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--scenario', default='smoke')
    parser.add_argument('--rate', default='20')
    options = parser.parse_args()
    data = pathlib.Path(tempfile.mkdtemp(prefix='customs_lab_bench_'))
    env = dict(os.environ, CUSTOMS_LAB_DATA_DIR=str(data), ROS_LOG_DIR=str(data / 'log'),
               ROS_DOMAIN_ID=str(random.randint(101, 200)),
               ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    command = ['customs-lab', 'launch', str(ROOT / 'launch' / 'site.launch.xml'),
               f'scenario:={options.scenario}', f'rate:={options.rate}']
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    output = []
    reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)
    reader.start()
    usage = {}  # pid -> [label, cpu, peak rss]
    while process.poll() is None:
        for pid in children_of(process.pid):
            result = sample(pid)
            if result is None or result[2] is None:
                continue
            cpu, rss, label = result
            record = usage.setdefault(pid, [label, 0.0, 0])
            record[1] = cpu
            record[2] = max(record[2], rss)
        time.sleep(0.5)
    wall = time.monotonic() - started
    reader.join(timeout=5)
    text = ''.join(output)
    if process.returncode != 0:
        print(text[-3000:])
        sys.exit(f'the site ended with status {process.returncode}')
    finished = re.search(r'scenario finished at sim time ([0-9.]+) s', text)
    sim_seconds = float(finished.group(1)) if finished else float('nan')
    report = json.loads((data / 'reports' / 'latest.json').read_text())
    print(f'scenario {options.scenario} at rate {options.rate}: {report["subjects_seen"]} '
          f'subjects, {report["decisions_in_database"]} decisions in the database')
    print(f'wall time {wall:.1f} s for {sim_seconds:.0f} s of sim time: speed-up '
          f'{sim_seconds / wall:.1f}x (asked {options.rate}x; includes start-up and shutdown)')
    print(f'{"node":40s} {"CPU s":>7s} {"CPU %":>6s} {"peak RSS MiB":>13s}')
    total_cpu = total_rss = 0.0
    for label, cpu, rss in sorted(usage.values()):
        total_cpu += cpu
        total_rss += rss
        print(f'{label:40s} {cpu:7.1f} {100 * cpu / wall:6.1f} {rss / 2**20:13.0f}')
    print(f'{"all nodes":40s} {total_cpu:7.1f} {100 * total_cpu / wall:6.1f} '
          f'{total_rss / 2**20:13.0f}')
    print(f'(2-core machine: 200% is everything; data in {data})')


if __name__ == '__main__':
    main()
