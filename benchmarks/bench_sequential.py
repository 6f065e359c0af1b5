"""Sequential nightly benchmark: the mixture t-test's defaults on runs with boot effects.

    nice .venv/bin/python benchmarks/bench_sequential.py [--quick] [-o benchmarks/RESULTS-sequential.md]

Each simulated night makes pairs of boots (baseline boot i, candidate boot i); a boot's level
is the truth x (1 + N(0, boot_cv^2)), and its `reps` repetitions scatter around that level
with the within-boot CV. The night applies perfsuite.analysis.sequential with the defaults
of `perfsuite nightly --sequential` (alpha 0.05 over the configurations, threshold 5%, looks
from 5 pairs, cap 38) pair by pair (vectorised over whole paths: the same rule). Measured:
false alarms (A/A), power for a true 5% drop, pairs used, and the estimate at the stop
(unadjusted and bias-adjusted). Runs in about a minute on one core.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from perfsuite.analysis import sequential as S


def boot_means(rng, paths, pairs, mean, cv, boot_cv, reps):
    level = mean * (1 + rng.normal(0, boot_cv, (paths, pairs)))
    within = rng.normal(0, cv, (paths, pairs, reps)).mean(axis=2)
    return level * (1 + within)


def cell(rng, paths, cv, boot_cv, reps, configs, drop, des, adjust_paths):
    a = boot_means(rng, paths, des.n_max, 1.0, cv, boot_cv, reps)
    b = boot_means(rng, paths, des.n_max, 1.0 - drop, cv, boot_cv, reps)
    res = S.run_paths(np.log(b) - np.log(a), des)
    out = {"alarm": float(np.mean(res.decision == S.SEQ_CHANGE)),
           "regr": float(np.mean((res.decision == S.SEQ_CHANGE) & (res.direction < 0))),
           "none": float(np.mean(res.decision == S.SEQ_NONE)),
           "cap": float(np.mean(res.decision == S.SEQ_CAP)), "asn": float(res.n.mean())}
    if drop:
        k = min(adjust_paths, paths)
        early = (res.decision[:k] == S.SEQ_CHANGE)
        adj = np.array([S.adjusted_mean(m, s, n, des, d in (S.SEQ_CHANGE, S.SEQ_NONE) and n < des.n_max,
                                        sims=300, seed=i)
                        for i, (m, s, n, d) in enumerate(zip(res.mean[:k], res.sd[:k], res.n[:k],
                                                             res.decision[:k]))])
        out["ratio_all"] = float(np.exp(res.mean[:k]).mean())
        out["ratio_all_adj"] = float(np.exp(adj).mean())
        out["ratio_alarm"] = float(np.exp(res.mean[:k][early]).mean())
        out["ratio_alarm_adj"] = float(np.exp(adj[early]).mean())
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("-o", "--output", default=str(Path(__file__).with_name("RESULTS-sequential.md")))
    args = ap.parse_args()
    rng = np.random.default_rng(20261201)
    paths, adjust_paths = (4000, 100) if args.quick else (20000, 400)
    t0 = time.perf_counter()
    L = ["# Sequential nightly (benchmarks/bench_sequential.py)", "",
         f"{paths} simulated nights per cell; the bias-adjusted estimate on the first {adjust_paths}.",
         "CV = within-boot CV of one run; every cell adds a boot-to-boot CV of half of it and",
         "one repetition per boot (the nightly's layout); `reps` > 1 averages within a boot.",
         "Defaults: alpha 0.05 split over the configs, threshold 5%, first look at 5 pairs, cap 38.", "",
         "| configs | CV | boot CV | A/A: false alarms | A/A: `no change` | A/A: pairs | 5% drop: power "
         "| 5% drop: pairs | capped | mean ratio at stop (all / adjusted) | mean ratio, alarms (raw / adjusted) |",
         "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for configs in (1, 4):
        des = S.Design(alpha=0.05 / configs, threshold=0.05, n_min=5, n_max=38)
        for cv in (0.03, 0.05, 0.10):
            bcv = cv / 2
            h0 = cell(rng, paths, cv, bcv, 1, configs, 0.0, des, adjust_paths)
            h1 = cell(rng, paths, cv, bcv, 1, configs, 0.05, des, adjust_paths)
            L.append(f"| {configs} | {cv:.0%} | {bcv:.1%} | {h0['alarm']:.2%} | {h0['none']:.1%} | "
                     f"{h0['asn']:.1f} | {h1['regr']:.1%} | {h1['asn']:.1f} | {h1['cap']:.1%} | "
                     f"{h1['ratio_all']:.3f} / {h1['ratio_all_adj']:.3f} | "
                     f"{h1['ratio_alarm']:.3f} / {h1['ratio_alarm_adj']:.3f} |")
    # The stated design point: 90% power at a 5% drop, 5% CV per boot mean, one config.
    des = S.Design(alpha=0.05, threshold=0.05, n_min=5, n_max=38)
    sd = math.sqrt(2) * 0.05
    z = rng.standard_normal((paths, 38)) * sd
    pw = float(np.mean(S.run_paths(z + math.log(0.95), des).decision == S.SEQ_CHANGE))
    L += ["", f"Design point (per-boot-mean CV 5% on each side, 5% drop, one config): power {pw:.1%} "
          "at the default cap of 38 pairs.", "",
          f"Time: {time.perf_counter() - t0:.0f} s."]
    text = "\n".join(L) + "\n"
    Path(args.output).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
