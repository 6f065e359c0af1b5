"""Speed of the reference model (issue 6): functional requests/s, perf-model prediction time.

    .venv/bin/python benchmarks/bench_model.py            # print
    .venv/bin/python benchmarks/bench_model.py --write    # also write benchmarks/RESULTS-model.md

Goals: the functional model (driver + virtqueues + device, one Python thread)
handles >= 200,000 requests/s; the performance model predicts the whole seed
matrix (jobs/matrix.toml) in < 1 s.  Every figure is the median of several
runs, measured both in wall-clock time and in CPU time of this process (the
latter is what a shared, busy machine still measures fairly).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from perfsuite.model.device import T_IN  # noqa: E402
from perfsuite.model.system import System  # noqa: E402


def functional(cpus: int, queues: int, burst: int, total: int, batched: bool) -> tuple[float, float]:
    """(requests/s wall, requests/s CPU) for ``total`` 4 KiB reads submitted in
    bursts of ``burst`` per vCPU (one kick decision per burst; ``batched``: as
    one blk-mq queue_rqs() list), each round followed by one handler pass,
    completion of everything and interrupts."""
    s = System(cpus, queues, queue_size=256)
    d, dev = s.driver, s.device
    submit, submit_many = d.submit, d.submit_many
    reqs = [(T_IN, 8 * k, 4096) for k in range(burst)]
    per_round = cpus * burst
    rounds = max(1, total // per_round)
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(rounds):
        for cpu in range(cpus):
            if batched:
                submit_many(cpu, reqs)
            else:
                for k in range(burst):
                    submit(cpu, T_IN, 8 * k, 4096, k == burst - 1)
        dev.step()
        s.deliver_interrupts()
    w1, c1 = time.perf_counter(), time.process_time()
    n = len(d.completed)
    assert n == rounds * per_round and not d.violations
    return n / (w1 - w0), n / (c1 - c0)


def perf_matrix(repeat: int) -> tuple[float, float, int]:
    """(seconds wall, seconds CPU, configs) to predict every config of jobs/matrix.toml
    for both accelerators, including loading and expanding the matrix."""
    from perfsuite.matrix.config import load_matrix
    from perfsuite.model.perf import PerfConfig, predict

    w0, c0 = time.perf_counter(), time.process_time()
    n = 0
    for _ in range(repeat):
        for c in load_matrix(ROOT / "jobs" / "matrix.toml"):
            for accel in ("kvm", "tcg"):
                predict(PerfConfig(c.smp, c.num_queues, c.dataplane, c.numjobs, c.iodepth, accel,
                                   iothreads=max(1, c.iothreads), queue_size=c.queue_size))
                n += 1
    w1, c1 = time.perf_counter(), time.process_time()
    return (w1 - w0) / repeat, (c1 - c0) / repeat, n // repeat


def median_of(fn, runs: int):
    results = [fn() for _ in range(runs)]
    return tuple(statistics.median(r[i] for r in results) for i in range(len(results[0])))


def machine() -> str:
    from perfsuite.run.meta import host_info

    cpu = host_info()["cpu_model"] or "unknown"
    try:
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "n/a"
    return (f"nproc {os.cpu_count()}, CPU {cpu}, Python {platform.python_version()}, "
            f"load average {load} at start")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--requests", type=int, default=100_000)
    ap.add_argument("--write", action="store_true", help="write benchmarks/RESULTS-model.md")
    a = ap.parse_args()
    where = machine()
    rows = []
    for label, cpus, queues, burst, batched in [
        ("4 vCPUs, 4 queues, lists of 32 (queue_rqs)", 4, 4, 32, True),
        ("4 vCPUs, 4 queues, bursts of 32, one submit() each", 4, 4, 32, False),
        ("1 vCPU, 1 queue, bursts of 32, one submit() each", 1, 1, 32, False),
        ("4 vCPUs, 1 queue, one request per kick (worst case)", 4, 1, 1, False),
    ]:
        wall, cpu = median_of(lambda c=cpus, q=queues, b=burst, m=batched: functional(c, q, b, a.requests, m), a.runs)
        rows.append((label, wall, cpu))
        print(f"functional  {label:<55} {wall:>10,.0f} req/s wall  {cpu:>10,.0f} req/s CPU")
    pw, pc, n = median_of(lambda: perf_matrix(20), a.runs)
    print(f"perf model  whole seed matrix ({n} predictions, matrix loading included): "
          f"{pw * 1e3:.2f} ms wall, {pc * 1e3:.2f} ms CPU")
    print(f"machine     {where}")
    if a.write:
        lines = [
            "# Reference model speed (benchmarks/bench_model.py)", "",
            f"Machine: {where}.", "",
            f"Medians of {a.runs} runs of {a.requests:,} requests each (functional model), "
            "one Python thread. CPU = requests per second of this process's CPU time, the fair "
            "figure on a shared machine; wall = elapsed time.", "",
            "| functional model workload | req/s (wall) | req/s (CPU) | goal |",
            "|---|---:|---:|---|",
        ]
        for label, wall, cpu in rows:
            lines.append(f"| {label} | {wall:,.0f} | {cpu:,.0f} | >= 200,000 |")
        lines += ["", "| performance model | wall | CPU | goal |", "|---|---:|---:|---|",
                  f"| predict the whole seed matrix (jobs/matrix.toml, {n} predictions, loading "
                  f"included; median of {a.runs} x 20) | {pw * 1e3:.2f} ms | {pc * 1e3:.2f} ms | < 1 s |", ""]
        (ROOT / "benchmarks" / "RESULTS-model.md").write_text("\n".join(lines))
        print("wrote benchmarks/RESULTS-model.md")


if __name__ == "__main__":
    main()
