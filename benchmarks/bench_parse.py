#!/usr/bin/env python3
"""Benchmark of the analyzer: parse + aggregate speed, and start-up time of ./analyze.py.

    .venv/bin/python benchmarks/bench_parse.py [--files 10000] [--repeat 5] [--out benchmarks/RESULTS-analyzer.md]

1. Builds a runs/ tree of N real-sized fio json+ files (default 10,000 in 500 names x 20
   repetitions) in a temporary directory, by copying a real fio-3.33 json+ output
   (tests/data/fio/fio3-libaio-randrw-1job-jsonplus.json, ~20 KB, latency percentiles and
   bins) with its numbers varied per file.
2. Times, side by side in the same process and alternating, pinned to one CPU:
   - perfsuite: results.load_runs + summary.summarize (what `./analyze.py runs/` does);
   - naive: json.load per file, sum the iops, a list of dicts -> DataFrame -> groupby.
   Reports files/s (median of --repeat rounds) and the ratio. The page cache is warm for
   both (a first untimed round reads every file once).
3. Start-up: `-X importtime` of `./analyze.py --help` and of `./analyze.py <small tree>`,
   and the median wall time of each over several runs.
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
sys.path.insert(0, str(REPO))
TEMPLATE = REPO / "tests" / "data" / "fio" / "fio3-libaio-randrw-1job-jsonplus.json"
SMALL = ["fio3-randread-null.json", "fio3-randread-null-jsonplus.json", "fio3-numjobs3.json",
         "fio3-group-reporting.json", "fio3-psync-note-diskutil.json", "fio3-randrw-jsonplus.json"]

# numbers that vary from run to run in real results
VARY = ("iops", "bw", "bw_bytes", "io_bytes", "io_kbytes", "total_ios", "mean", "stddev", "min", "max",
        "runtime", "iops_mean", "bw_mean", "read_ios", "write_ios", "util")


def vary(obj, rng: random.Random):
    """Scale the varying numbers of a fio document by a per-file factor, keeping types."""
    f = rng.uniform(0.85, 1.15)

    def walk(o):
        if isinstance(o, dict):
            for k, v in o.items():
                if isinstance(v, (dict, list)):
                    walk(v)
                elif k in VARY and isinstance(v, (int, float)) and not isinstance(v, bool):
                    o[k] = type(v)(v * f) if isinstance(v, int) else round(v * f, 6)
                elif k.replace(".", "").isdigit() and isinstance(v, int):  # percentiles, bins
                    o[k] = int(v * f)
        elif isinstance(o, list):
            for v in o:
                walk(v)

    walk(obj)
    return obj


def make_tree(root: Path, files: int, per_name: int = 20) -> int:
    template = json.loads(TEMPLATE.read_text())
    rng = random.Random(42)
    total = 0
    for i in range(files):
        name, rep = f"v4-smp-{1 + (i // per_name) % 8}-cfg-{i // per_name:04d}", i % per_name + 1
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        # fio's own layout: two-space indent, "key" : value
        text = json.dumps(vary(json.loads(json.dumps(template)), rng), indent=2, separators=(",", " : "))
        (d / f"{rep}.json").write_text(text + "\n")
        total += len(text) + 1
    return total


def perfsuite_pipeline(root: Path):
    from perfsuite.analysis.results import load_runs
    from perfsuite.analysis.summary import summarize

    res = load_runs(root)
    return summarize(res.frame, "iops", "range")


def naive_pipeline(root: Path):
    import pandas as pd

    rows = []
    for d in sorted(root.iterdir()):
        for f in sorted(d.glob("*.json")):
            if f.name.endswith(".meta.json"):
                continue
            with open(f) as fh:
                doc = json.load(fh)
            iops = sum(j[k]["iops"] for j in doc["jobs"] for k in ("read", "write", "trim"))
            rows.append({"name": d.name, "rep": f.stem, "iops": iops})
    df = pd.DataFrame(rows)
    g = df.groupby("name")["iops"]
    out = g.agg(["mean", "min", "max", "count"])
    out["error_pct"] = (out["max"] - out["min"]) / 2 / out["mean"] * 100
    return out


def time_it(fn, root: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process). On a shared, loaded machine the CPU
    time is the fairer "one core" figure: wall time also counts waiting for the CPU."""
    t, c = time.perf_counter(), time.process_time()
    fn(root)
    return time.perf_counter() - t, time.process_time() - c


def cpu_model() -> str:
    from perfsuite.run.meta import host_info

    return host_info()["cpu_model"] or "unknown"


def wall(cmd: list[str], runs: int) -> float:
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


HEAVY = ("numpy", "pandas", "scipy", "matplotlib", "jinja2", "click", "orjson")


def importtime(cmd: list[str], runs: int = 5) -> tuple[float, list[tuple[str, float]]]:
    """Median over several runs of :func:`importtime_once` (one run is too noisy)."""
    samples = [importtime_once(cmd) for _ in range(runs)]
    total = statistics.median(t for t, _ in samples)
    names = {n for _, libs in samples for n, _ in libs}
    libs = {n: statistics.median(dict(ls).get(n, 0.0) for _, ls in samples) for n in names}
    return total, sorted(libs.items(), key=lambda x: -x[1])


def importtime_once(cmd: list[str]) -> tuple[float, list[tuple[str, float]]]:
    """Total import time (sum of top-level cumulative) and the cost of the big libraries, ms.

    A library is charged to whoever imports it first, so the libraries are listed by their
    own cumulative time wherever they appear in the tree.
    """
    p = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], capture_output=True, text=True, check=True)
    total, libs = 0.0, {}
    for line in p.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line or "cumulative" in line:
            continue
        _, cum, name = line[len("import time:"):].split("|")
        if not name.startswith("  "):  # top level (not nested) import
            total += int(cum) / 1000
        if name.strip() in HEAVY:
            libs[name.strip()] = int(cum) / 1000
    return total, sorted(libs.items(), key=lambda x: -x[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "RESULTS-analyzer.md"))
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core, as the goal says

    tmp = Path(tempfile.mkdtemp(prefix="perfsuite-bench-"))
    try:
        root = tmp / "runs"
        size = make_tree(root, args.files)
        print(f"tree: {args.files} files, {size / args.files / 1024:.1f} KiB each on average", file=sys.stderr)
        ours_out, naive_out = perfsuite_pipeline(root), naive_pipeline(root)  # warm cache + imports
        assert len(ours_out) == len(naive_out)
        assert abs(ours_out["mean"].to_numpy() - naive_out["mean"].to_numpy()).max() < 1e-6 * ours_out["mean"].max()
        ours, naive = [], []
        for _ in range(args.repeat):
            ours.append(time_it(perfsuite_pipeline, root))
            naive.append(time_it(naive_pipeline, root))
        t_ours, t_naive = statistics.median(w for w, _ in ours), statistics.median(w for w, _ in naive)
        c_ours, c_naive = statistics.median(c for _, c in ours), statistics.median(c for _, c in naive)
        b_ours, b_naive = min(w for w, _ in ours), min(w for w, _ in naive)

        small = tmp / "small"
        for i, name in enumerate(["fixtures-a", "fixtures-b", "fixtures-c"]):
            (small / name).mkdir(parents=True)
            for rep in range(3):
                shutil.copy(REPO / "tests" / "data" / "fio" / SMALL[(i + rep) % len(SMALL)], small / name / f"{rep + 1}.json")
        py, shim = sys.executable, str(REPO / "analyze.py")
        wall_help = wall([py, shim, "--help"], 7)
        wall_small = wall([py, shim, str(small), "--no-check"], 7)
        wall_checks = wall([py, shim, str(small)], 7)
        imp_help, top_help = importtime([py, shim, "--help"])
        imp_small, top_small = importtime([py, shim, str(small), "--no-check"])
        imp_checks, top_checks = importtime([py, shim, str(small)])
        table = subprocess.run([py, shim, str(small), "--no-check"], capture_output=True, text=True).stdout
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    import orjson
    import pandas

    fmt = lambda top: ", ".join(f"{n} {ms:.0f}" for n, ms in top)  # noqa: E731
    lines = [
        "# Analyzer benchmark (benchmarks/bench_parse.py)",
        "",
        f"Machine: {os.cpu_count()} CPUs (nproc), {cpu_model()}; Python {platform.python_version()}, "
        f"pandas {pandas.__version__}, orjson {orjson.__version__}; {platform.system()} {platform.release()}. "
        f"Pinned to one CPU. Load average at the end: {' / '.join(f'{x:.1f}' for x in os.getloadavg())} "
        "(1/5/15 min; the machine is shared, so absolute times are noisy; the side-by-side ratio less so).",
        "",
        f"## Parse + aggregate {args.files:,} fio json+ files (~{size / args.files / 1024:.0f} KiB each, "
        f"{args.files // 20} names x 20 runs), median of {args.repeat} rounds, warm page cache",
        "",
        "| pipeline | wall s (median) | files/s (wall) | CPU s (median) | files/s (CPU) | best round files/s |",
        "|---|---:|---:|---:|---:|---:|",
        f"| perfsuite: `load_runs` + `summarize` (orjson, full record per run) | {t_ours:.2f} | "
        f"{args.files / t_ours:,.0f} | {c_ours:.2f} | {args.files / c_ours:,.0f} | {args.files / b_ours:,.0f} |",
        f"| naive: `json.load` + list of dicts + `DataFrame.groupby` (iops only) | {t_naive:.2f} | "
        f"{args.files / t_naive:,.0f} | {c_naive:.2f} | {args.files / c_naive:,.0f} | {args.files / b_naive:,.0f} |",
        "",
        f"Ratio (naive / perfsuite): **{t_naive / t_ours:.1f}x** by median wall time, "
        f"**{c_naive / c_ours:.1f}x** by median CPU time. Goal >= 5,000 files/s on one core: "
        f"{'met' if args.files / c_ours >= 5000 else 'NOT met'} by CPU time, "
        f"{'met' if args.files / t_ours >= 5000 else 'not met'} by median wall time under this load.",
        f"All rounds, wall seconds: perfsuite {', '.join(f'{w:.2f}' for w, _ in ours)}; "
        f"naive {', '.join(f'{w:.2f}' for w, _ in naive)}.",
        "",
        "## Start-up (median wall time of 7 runs; median of 5 `python -X importtime` runs)",
        "",
        "| command | wall ms | imports ms | of which libraries (ms) |",
        "|---|---:|---:|---|",
        f"| `./analyze.py --help` | {wall_help * 1000:.0f} | {imp_help:.0f} | {fmt(top_help)} |",
        f"| `./analyze.py small/ --no-check` (3 names x 3 runs) | {wall_small * 1000:.0f} | {imp_small:.0f} | {fmt(top_small)} |",
        f"| `./analyze.py small/` (default: + plausibility checks) | {wall_checks * 1000:.0f} | {imp_checks:.0f} | {fmt(top_checks)} |",
        "",
        "The analyzer's own path imports neither matplotlib, scipy nor jinja2 (scipy only for "
        "`--error ci95`); the default `--check` adds whatever perfsuite.analysis.checks imports.",
        "",
        "Output of the small tree (real fio 3.33 outputs from tests/data/fio, mixed on purpose):",
        "",
        "```",
        table.rstrip(),
        "```",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
