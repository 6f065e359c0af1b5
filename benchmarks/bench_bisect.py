"""Bisection decision benchmark: wrong commits and boots, sequential vs fixed rules -> RESULTS-bisect.md.

    .venv/bin/python benchmarks/bench_bisect.py [--runs 1000] [-o benchmarks/RESULTS-bisect.md]

No QEMU: the decision logic alone (perfsuite.bisect.schedule + decide, the same code the
command runs) on synthetic histories of 32 commits with a 10% step, one boot's value having
CV 5% (a boot effect of 4% and repetition noise of 3%), seeded. Compared at the same total
budget of boots with a fixed-n rule (n boots per endpoint and per midpoint, nearer level
wins) and a fixed 2-of-3 vote (each of 3 midpoint boots votes for the nearer level; the
endpoints get the rest of the budget). Then the smallest fixed n that stays within the
bound, and the same with a slow host drift.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from perfsuite.bisect import schedule as S  # noqa: E402
from perfsuite.bisect import simulate as M  # noqa: E402

HEAD = ["rule", "wrong commit", "not named", "boots per step", "boots per bisection"]


def table(rows: list[list[str]], head: list[str] = HEAD) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    return out + ["| " + " | ".join(r) + " |" for r in rows]


def scenario(truth: M.Truth, runs: int, seed: int, bound: float) -> tuple[list[str], dict]:
    policy = S.policy_for(truth.n, threshold=0.05, bound=bound)
    seq = M.simulate("sequential", truth, runs, seed, policy=policy)
    budget = seq.boots_total
    rows = [[f"sequential (alpha {policy.alpha:.1%} per call)"] + seq.row()[1:]]
    steps = S.D.planned_steps(truth.n)
    per_commit = budget / (2 + steps)            # fixed-n: 2 endpoints + `steps` midpoints
    fixed_same = {}
    for n in sorted({int(np.floor(per_commit)), int(np.ceil(per_commit))}):
        fixed_same[n] = M.simulate("fixed", truth, runs, seed + n, n=n)
        rows.append([f"fixed n={n} (same budget)"] + fixed_same[n].row()[1:])
    n_end = max(1, int(round((budget - 3 * steps) / 2)))
    vote = M.simulate("vote", truth, runs, seed + 99, n_endpoint=n_end)
    rows.append([f"2-of-3 vote, endpoints n={n_end} (same budget)"] + vote.row()[1:])
    smallest = None
    for n in range(2, 31):
        s = fixed_same.get(n) or M.simulate("fixed", truth, runs, seed + n, n=n)
        if s.wrong <= bound:
            smallest = (n, s)
            break
    if smallest:
        rows.append([f"fixed n={smallest[0]} (smallest within {bound:.0%})"] + smallest[1].row()[1:])
    else:
        rows.append([f"fixed n (smallest within {bound:.0%})", "none for n <= 30", "", "", ""])
    return rows, {"seq": seq, "vote": vote, "fixed": fixed_same, "smallest": smallest}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=20261201)
    ap.add_argument("-o", "--output", default=str(Path(__file__).with_name("RESULTS-bisect.md")))
    a = ap.parse_args()
    t0 = time.time()
    bound = 0.05
    base = M.Truth(n=32, step=0.10, boot_cv=0.04, rep_cv=0.03, reps=1)
    rows, r = scenario(base, a.runs, a.seed, bound)
    drift = M.Truth(n=32, step=0.10, boot_cv=0.04, rep_cv=0.03, reps=1, drift=0.005)
    rows_d, rd = scenario(drift, a.runs, a.seed + 1000, bound)
    se = (bound * (1 - bound) / a.runs) ** 0.5
    lines = [
        "# Bisection decision benchmark (benchmarks/bench_bisect.py)", "",
        f"Machine: {os.cpu_count()} CPUs; Python {platform.python_version()}, numpy {np.__version__}. "
        f"No QEMU (simulated boots; the host's load does not enter the figures). "
        f"{a.runs} bisections per rule, seed {a.seed}; {time.time() - t0:.0f} s in all.", "",
        f"History: 32 commits after the good one, the culprit uniform among them, a 10% drop from it "
        f"on; one boot's value has CV {base.cv:.1%} (boot effect {base.boot_cv:.0%}, repetition noise "
        f"{base.rep_cv:.0%}, 1 repetition per boot). Bound on a wrong commit: {bound:.0%} "
        f"(standard error of a {bound:.0%} rate over {a.runs} runs: {se:.1%}). "
        "*not named*: not reproduced or a step undecided (the command exits 1; it never names a "
        "commit then). Boots per step exclude the confirmation; boots per bisection include it.", "",
        "## No drift", ""] + table(rows) + [
        "", "## Host drift: a random walk of 0.5% per boot", ""] + table(rows_d) + [""]
    Path(a.output).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
