#!/usr/bin/env python3
"""Whole-process speed of `./analyze.py DIR` (checks on, the default) against a naive loop.

    .venv/bin/python benchmarks/bench_analyze.py [--configs 300] [--reps 10] [--rounds 5]
                                                 [--out benchmarks/RESULTS-analyze.md]

Two trees, each timed as whole processes (interpreter start, imports, reading, printing),
interleaved round by round so that a host that slows down hurts every variant alike:

1. `--configs` x `--reps` real fio files (a real fio-3.33 output, tests/data/fio/
   fio3-randread-null.json, with its numbers varied per file) in seed-style run names
   (`v1-smp-N-dataplane[-no-mq]-qd-Q`), no meta.json: data from other tools.
2. The committed example runs (examples/seed-qemu-7.2/: 36 files with meta).

Variants: `./analyze.py DIR` (checks on), `./analyze.py --no-check DIR`, and the naive loop: a
15-line script that json.loads every file, sums the jobs' iops and prints a groupby's mean.
Reported: the median wall time of each over the rounds, and the ratio naive / analyze.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
from bench_parse import vary  # noqa: E402 - the same per-file variation as the parse benchmark

TEMPLATE = REPO / "tests" / "data" / "fio" / "fio3-randread-null.json"
EXAMPLES = REPO / "examples" / "seed-qemu-7.2"
PYTHON = REPO / ".venv" / "bin" / "python"

NAIVE = '''
import json, os, sys
import pandas as pd
rows = []
root = sys.argv[1]
for name in sorted(os.listdir(root)):
    d = os.path.join(root, name)
    for f in os.listdir(d):
        if f.endswith(".json") and not f.endswith(".meta.json"):
            doc = json.load(open(os.path.join(d, f)))
            iops = sum(j[k]["iops"] for j in doc["jobs"] for k in ("read", "write", "trim"))
            rows.append({"name": name, "iops": iops})
df = pd.DataFrame(rows)
g = df.groupby("name")["iops"]
print((g.mean().to_frame("mean").assign(err=(g.max() - g.min()) / 2 / g.mean() * 100)).to_string())
'''


def make_tree(root: Path, configs: int, reps: int, seed: int = 1) -> int:
    rng = random.Random(seed)
    doc = json.loads(TEMPLATE.read_text())
    n = 0
    for i in range(configs):
        smp = (1, 2, 4, 8)[i % 4]
        mq = "" if (i // 4) % 2 == 0 else "-no-mq"
        name = f"v1-smp-{smp}-dataplane{mq}-qd-{i // 8 + 1}"
        d = root / name
        d.mkdir(parents=True)
        for rep in range(1, reps + 1):
            (d / f"{rep}.json").write_text(json.dumps(vary(json.loads(json.dumps(doc)), rng)))
            n += 1
    return n


# The warm-up round writes the .pyc files a user's interpreter keeps; with
# PYTHONDONTWRITEBYTECODE inherited (some shells and CI set it) every timed run would compile
# perfsuite's modules from source again, a cost no installed copy pays.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def wall(argv: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=ENV)
    return time.perf_counter() - t


def bench(tree: Path, rounds: int, naive: Path) -> dict[str, float]:
    variants = {
        "analyze (checks on)": [str(PYTHON), str(REPO / "analyze.py"), str(tree)],
        "analyze --no-check": [str(PYTHON), str(REPO / "analyze.py"), "--no-check", str(tree)],
        "naive loop": [str(PYTHON), str(naive), str(tree)],
    }
    for argv in variants.values():  # warm the page cache and the .pyc files
        wall(argv)
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(rounds):
        for k, argv in variants.items():
            times[k].append(wall(argv))
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", type=int, default=300)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "RESULTS-analyze.md"))
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="perfsuite-bench-analyze-"))
    try:
        naive = tmp / "naive.py"
        naive.write_text(NAIVE)
        files = make_tree(tmp / "runs", args.configs, args.reps)
        big = bench(tmp / "runs", args.rounds, naive)
        small = bench(EXAMPLES, args.rounds, naive)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load = os.getloadavg()
    lines = [
        "# `./analyze.py` whole process vs a naive loop (benchmarks/bench_analyze.py)", "",
        f"Machine: {platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average at the end {load[0]:.1f} (other work was running: ratios are measured "
        "side by side, interleaved, medians of the rounds).", "",
        f"| tree | variant | median wall (s), {args.rounds} rounds | naive / variant |", "|---|---|---|---|",
    ]
    examples = sum(1 for p in EXAMPLES.glob("*/*.json") if not p.name.endswith(".meta.json"))
    for label, res in ((f"{files} fio files, {args.configs} configs, no meta", big),
                       (f"examples/seed-qemu-7.2 ({examples} files with meta)", small)):
        for k, v in res.items():
            lines.append(f"| {label} | {k} | {v:.3f} | {res['naive loop'] / v:.2f}x |")
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
