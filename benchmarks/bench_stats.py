"""Statistics benchmark: false alarms, power, runs needed, compare speed -> RESULTS-stats.md.

    .venv/bin/python benchmarks/bench_stats.py [--quick] [-o benchmarks/RESULTS-stats.md]

Everything is simulated with a known truth (normal runs with a chosen CV, seeded), so the
figures are measured, not claimed: A/A comparisons for the false-alarm rate, a true 5% drop
for the power, and Wald's SPRT vs the fixed-n Welch test for the runs needed.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd

from perfsuite.analysis import comparison as C
from perfsuite.analysis import stats


def frames(rows: int, n: int, cv: float, drop: float, rng) -> tuple[pd.DataFrame, pd.DataFrame]:
    out = []
    for label, mu in (("a", 1e5), ("b", 1e5 * (1 - drop))):
        v = rng.normal(mu, cv * mu, (rows, n))
        out.append(pd.DataFrame({"name": np.repeat([f"{label}-c{i}" for i in range(rows)], n),
                                 "iops": v.ravel(), "label": label, "smp": np.repeat(np.arange(rows), n)}))
    return out[0], out[1]


def seed_noise(rows: int, rng) -> list[dict]:
    """A/A and 5%-drop at CV 3..8%, 5 runs per side, one row per comparison (no correction)."""
    table = []
    for cv in (0.03, 0.04, 0.05, 0.06, 0.07, 0.08):
        rec = {"cv": cv}
        for test in ("welch", "mannwhitney"):
            a, b = frames(rows, 5, cv, 0.0, rng)
            aa = C.compare(a, b, test=test, correction="none").rows
            a, b = frames(rows, 5, cv, 0.05, rng)
            dd = C.compare(a, b, test=test, correction="none").rows
            rec[test] = {
                "aa_reject": float(np.mean(aa["p"] < 0.05)),
                "aa_alarm": float(np.mean(aa["verdict"].isin(["regression", "improvement"]))),
                "detect": float(np.mean((dd["p"] < 0.05) & (dd["ratio"] < 1))),
                "verdict_regr": float(np.mean(dd["verdict"] == "regression")),
            }
        rec["claimed"] = float(stats.welch_power(0.05, cv, 0.95 * cv, 5, 5, 0.05))
        rec["reps_80"] = int(stats.reps_needed(cv, cv, 0.05, alpha=0.05, power=0.8))
        table.append(rec)
    return table


def runs_needed(paths: int, rng, cv=0.05, change=0.05, alpha=0.01, power=0.9, cap=64) -> dict:
    fixed = int(stats.reps_needed(cv, cv, change, alpha=alpha, power=power))
    out = {"fixed_n": fixed, "cap": cap}
    # The fixed-n Welch test at its own n, simulated.
    a, b0 = rng.normal(1, cv, (paths, fixed)), rng.normal(1, cv, (paths, fixed))
    b1 = rng.normal(1 - change, cv * (1 - change), (paths, fixed))
    out["fixed_alpha"] = float(np.mean(stats.welch(a, b0).p < alpha))
    r1 = stats.welch(a, b1)
    out["fixed_power"] = float(np.mean((r1.p < alpha) & (r1.ratio < 1)))
    # Wald's SPRT along whole paths.
    a, b0 = rng.normal(1, cv, (paths, cap)), rng.normal(1, cv, (paths, cap))
    b1 = rng.normal(1 - change, cv * (1 - change), (paths, cap))
    n0, d0, _ = stats.sequential_paths(a, b0, change, alpha, 1 - power)
    n1, d1, s1 = stats.sequential_paths(a, b1, change, alpha, 1 - power)
    out.update(seq_alpha=float(np.mean(d0 == stats.SEQ_CHANGE)),
               seq_power=float(np.mean((d1 == stats.SEQ_CHANGE) & (s1 < 0))),
               asn0=float(n0.mean()), asn1=float(n1.mean()),
               p90_0=float(np.percentile(n0, 90)), p90_1=float(np.percentile(n1, 90)),
               capped0=float(np.mean(d0 == stats.SEQ_CAP)), capped1=float(np.mean(d1 == stats.SEQ_CAP)))
    # The nightly pipeline: SPRT stopping (>= 5 pairs), then compare's verdict on all runs made.
    for tag, b, n in (("h0", b0, n0), ("h1", b1, n1)):
        n = np.maximum(n, 5)
        mask = np.arange(cap)[None, :] < n[:, None]
        w = stats.welch(np.where(mask, a, np.nan), np.where(mask, b, np.nan))
        regr = (w.p < 0.05) & (w.ratio - 1 < -change)
        out[f"pipeline_regr_{tag}"] = float(np.mean(regr))
    # What the same SPRT does when the noise is not the CV it is judged at (alpha only).
    out["alpha_by_cv"] = {}
    for other in (0.03, 0.04, 0.06, 0.07, 0.08, 0.10, 0.15):
        x, y = rng.normal(1, other, (paths, cap)), rng.normal(1, other, (paths, cap))
        _, d, _ = stats.sequential_paths(x, y, change, alpha, 1 - power)
        out["alpha_by_cv"][other] = float(np.mean(d == stats.SEQ_CHANGE))
    return out


def timing(repeats: int, rng) -> dict:
    a, b = frames(200, 30, 0.05, 0.0, rng)
    res = {}
    for test in ("welch", "mannwhitney"):
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            C.compare(a, b, test=test)
            ts.append(time.perf_counter() - t0)
        res[test] = statistics.median(ts)
    return res


def machine() -> str:
    import scipy

    from perfsuite.run.meta import host_info

    cpu = host_info()["cpu_model"] or "unknown"

    return (f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {cpu}; Python "
            f"{platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
            f"pandas {pd.__version__}")


def render(noise, need, speed, rows, paths) -> str:
    pct = lambda v: f"{100 * v:.1f}%"  # noqa: E731
    L = ["# Statistics benchmark (benchmarks/bench_stats.py)", "",
         f"Machine: {machine()}.", "",
         "All figures are simulated with a known truth: each run's IOPS is normal with the",
         "given CV; one comparison = 5 runs per side; no multiplicity correction (per-row rates).",
         "", f"## A/A false alarms and power for a true 5% drop ({rows} comparisons per cell)", "",
         "| CV | Welch p<0.05 (A/A) | alarms (A/A) | Welch detects 5% drop | claimed (noncentral t) "
         "| verdict `regression` | Mann-Whitney p<0.05 (A/A) | MW detects | runs for 80% |",
         "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in noise:
        w, m = r["welch"], r["mannwhitney"]
        L.append(f"| {r['cv']:.0%} | {pct(w['aa_reject'])} | {pct(w['aa_alarm'])} | {pct(w['detect'])} | "
                 f"{pct(r['claimed'])} | {pct(w['verdict_regr'])} | {pct(m['aa_reject'])} | "
                 f"{pct(m['detect'])} | {r['reps_80']} |")
    L += ["", "- *alarms*: verdict `regression` or `improvement` (significant AND beyond the 5% threshold).",
          "- *verdict `regression`* needs the estimated drop to exceed the 5% threshold too, so for a",
          "  true drop of exactly 5% it can reach at most ~50%: to catch 5% drops reliably, run with",
          "  `--threshold 3%` or more runs (the *runs for 80%* column: per side, Welch, alpha 5%).",
          "", f"## Runs needed: CV 5%, true change 5%, 90% power, <= 1% false alarms ({paths} paths)", "",
          "| procedure | runs per side | false alarms | power |", "|---|---:|---:|---:|",
          f"| fixed-n Welch t-test (two-sided, alpha 1%) | {need['fixed_n']} | {pct(need['fixed_alpha'])} | "
          f"{pct(need['fixed_power'])} |",
          f"| Wald SPRT (`stats.sequential_test`), mean with a change | {need['asn1']:.1f} "
          f"(90th pct {need['p90_1']:.0f}) | | {pct(need['seq_power'])} |",
          f"| Wald SPRT, mean without a change | {need['asn0']:.1f} (90th pct {need['p90_0']:.0f}) | "
          f"{pct(need['seq_alpha'])} | |", "",
          f"The SPRT is capped at {need['cap']} pairs (reached by {pct(need['capped1'])} of paths with a "
          f"change, {pct(need['capped0'])} without). Its false-alarm rate when the noise is another "
          "CV (same 5% alternative): " + ", ".join(f"CV {k:.0%}: {pct(v)}" for k, v in
                                                  need["alpha_by_cv"].items()) + ".",
          f"Nightly pipeline (SPRT stopping, at least 5 pairs, then compare's verdict on every run): "
          f"`regression` on {pct(need['pipeline_regr_h0'])} of A/A nights, on "
          f"{pct(need['pipeline_regr_h1'])} with a true 5% drop.", "",
          "## Speed: compare 200 configurations x 30 runs per side (median of 7)", "",
          f"- Welch + Fieller + Holm + outliers + runs needed: {speed['welch'] * 1000:.0f} ms",
          f"- Mann-Whitney instead of Welch: {speed['mannwhitney'] * 1000:.0f} ms", ""]
    return "\n".join(L)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer draws (a smoke run)")
    ap.add_argument("-o", "--output", default=str(Path(__file__).with_name("RESULTS-stats.md")))
    args = ap.parse_args()
    rng = np.random.default_rng(20261125)
    rows, paths = (2000, 4000) if args.quick else (20000, 40000)
    noise = seed_noise(rows, rng)
    need = runs_needed(paths, rng)
    speed = timing(7, rng)
    text = render(noise, need, speed, rows, paths)
    Path(args.output).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
