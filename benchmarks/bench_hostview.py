#!/usr/bin/env python3
"""What the host view costs: IOPS with and without per-thread sampling, side by side.

    .venv/bin/python benchmarks/bench_hostview.py [--rounds 4] [--reps 2] [--runtime 5]
                                                   [--out benchmarks/RESULTS-hostview.md]

One real TCG guest config (smp 1, dataplane, null-co, the seed's fio job), booted
--rounds times per variant, interleaved round by round with the order alternating (so the
load of other processes on a shared host hits both variants alike), --reps repetitions per
boot:

  sampled     the runner as shipped: /proc snapshots at each window edge (perfsuite.hostview)
  unsampled   perfsuite.hostview.sampler.ENABLED = False: no sampler attached

The difference is reported as the ratio of mean IOPS (sampled / unsampled) with its 95%
Fieller CI and Welch's p, beside each variant's own CV (the noise the difference must be
held against). The sampler's own CPU time per repetition is also measured directly (the
two snapshots: time.process_time around them).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from perfsuite.matrix.config import config_from_dict, name_configs  # noqa: E402


def config(runtime: int, ramp: int):
    c = config_from_dict({"smp": 1, "dataplane": True, "backend": "null-co", "memory_mb": 512,
                          "fio_job": str(REPO / "jobs" / "fio.job"), "runtime": runtime, "ramp": ramp,
                          "label": "bench"})
    return name_configs([c])[0]


def snapshot_cost(n: int = 200) -> float:
    """CPU seconds of one window's two snapshots of this process (about QEMU's thread count)."""
    from perfsuite.hostview.procstat import host_load, thread_cpu
    from perfsuite.hostview.sampler import HZ, snapshot
    pid = os.getpid()
    t0 = time.process_time()
    for _ in range(n):
        a, b = snapshot(pid), snapshot(pid)
        thread_cpu(a, b, pid, [], {}, HZ)
        host_load(a, b, HZ, {pid})
    return (time.process_time() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--runtime", type=int, default=5)
    ap.add_argument("--ramp", type=int, default=1)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "RESULTS-hostview.md"))
    args = ap.parse_args()

    from perfsuite.analysis.results import load_runs
    from perfsuite.analysis.stats import welch
    from perfsuite.hostview import sampler
    from perfsuite.run.runner import RunOptions, Runner, run_config

    c = config(args.runtime, args.ramp)
    runner = Runner(options=RunOptions(accel="tcg", resume=True))
    root = Path(tempfile.mkdtemp(prefix="bench-hostview-"))
    t0 = time.monotonic()
    load0 = os.getloadavg()
    for r in range(args.rounds):
        order = ("sampled", "unsampled") if r % 2 == 0 else ("unsampled", "sampled")
        for variant in order:
            sampler.ENABLED = variant == "sampled"
            reps = list(range(r * args.reps + 1, (r + 1) * args.reps + 1))
            out = run_config(c, root / variant, reps, runner)
            bad = [o for o in out if o.status not in ("ok", "skipped")]
            if bad:
                sys.exit(f"{variant} round {r + 1}: {bad[0].status}: {bad[0].error}")
            print(f"round {r + 1}/{args.rounds} {variant}: done ({time.monotonic() - t0:.0f} s)", flush=True)
    sampler.ENABLED = True
    def by_rep(v):
        f = load_runs(root / v).frame
        return f.assign(n=f["rep"].astype(int)).sort_values("n")["iops"].to_numpy(dtype=float)
    iops = {v: by_rep(v) for v in ("sampled", "unsampled")}
    frame_s = load_runs(root / "sampled").frame
    w = welch(iops["unsampled"][None, :], iops["sampled"][None, :])
    cv = {v: float(np.std(x, ddof=1) / np.mean(x)) for v, x in iops.items()}
    cost = snapshot_cost()
    lines = [
        "# Host view: the cost of sampling (benchmarks/bench_hostview.py)", "",
        f"Machine: {platform.node()}, {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}; "
        f"TCG. **Shared host**: other agents ran guests and tests meanwhile (load average "
        f"{load0[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end; the sampled runs saw the host "
        f"{frame_s['host_busy_pct'].mean():.0f}% busy on average).", "",
        f"Config {c.name}: smp 1, dataplane, null-co, jobs/fio.job, runtime {args.runtime} s, ramp {args.ramp} s; "
        f"{args.rounds} interleaved rounds x {args.reps} repetitions per boot per variant.", "",
        "| variant | n | mean IOPS | CV |", "|---|---|---|---|",
        *(f"| {v} | {len(x)} | {np.mean(x):,.0f} | {100 * cv[v]:.1f}% |" for v, x in iops.items()), "",
        f"Ratio sampled / unsampled: **{float(w.ratio[0]):.3f}** (95% CI {float(w.ci_low[0]):.3f}-"
        f"{float(w.ci_high[0]):.3f}), Welch p = {float(w.p[0]):.2f}. The noise it is held against: "
        f"the CVs above ({100 * min(cv.values()):.1f}-{100 * max(cv.values()):.1f}% per repetition).", "",
        "IOPS per repetition in run order (rounds alternate which variant boots first): "
        + "; ".join(f"{v} {', '.join(f'{x:,.0f}' for x in xs)}" for v, xs in iops.items()) + ".", "",
        f"The sampler's own work per repetition (two snapshots of /proc: QEMU's threads, /proc/stat, "
        f"every process, loadavg; then the shares): **{1000 * cost:.1f} ms CPU**, once at each edge of a "
        f"window of {args.runtime} s, i.e. {100 * cost / args.runtime:.3f}% of one core; nothing runs "
        "between the edges.", "",
        f"Wall time of the benchmark: {time.monotonic() - t0:.0f} s. Raw runs: {root}",
    ]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
