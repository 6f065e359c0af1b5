"""`perfsuite run --until-precision P`: add repetitions until each mean is known well enough.

A configuration is precise enough when the half-width of the 95% Student-t confidence
interval of its mean IOPS is at most P% of the mean (`stats.error_pct(..., "ci95")`).
From the spread seen so far, the smallest n that would reach P at that spread is
estimated, and that many more repetitions are run in one boot; the loop repeats (the
spread estimate improves with n) until P is reached, the cap is hit, or a repetition fails.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from perfsuite import rundir
from perfsuite.analysis import stats


def reps_for_precision(values: Sequence[float], precision_pct: float, cap: int,
                       boots: Sequence | None = None) -> int:
    """How many repetitions in all the configuration should have (>= len(values), <= cap).

    With fewer than two finite values nothing is known about the spread: ask for two.
    With `boots` (each value's boot number) and two or more boots, the precision is that of
    the mean over boot means (stats.boot_units), and the count of boots it needs is turned
    into repetitions at the current repetitions per boot.
    """
    x = np.asarray(values, dtype=float)
    units = stats.boot_units(x, boots) if boots is not None else None
    if units is not None and units.boots >= 2 and units.boots < units.runs:
        per_boot = units.runs / units.boots
        need = reps_for_precision(units.values, precision_pct, max(2, int(cap // per_boot)))
        return int(min(cap, max(units.runs, math.ceil(need * per_boot))))
    x = x[np.isfinite(x)]
    n = x.size
    if n >= cap:
        return n
    if n < 2:
        return min(2, cap)
    if stats.error_pct(x, "ci95") <= precision_pct:
        return n
    cv_pct = stats.error_pct(x, "cv")
    for target in range(n + 1, cap + 1):
        if stats.t_quantile(0.975, target - 1) * cv_pct / math.sqrt(target) <= precision_pct:
            return target
    return cap


def _measured(runs_dir: Path, name: str) -> tuple[list[float], list | None]:
    """The IOPS measured so far, and the boot of each (None without boot numbers)."""
    from perfsuite.analysis.results import ResultsError, load_runs

    try:
        frame = load_runs(runs_dir, names=[name]).frame
    except ResultsError:
        return [], None
    if "iops" not in frame:
        return [], None
    return frame["iops"].tolist(), frame["boot"].tolist() if "boot" in frame else None


def run_until_precision(configs, runs_dir, runner, precision_pct: float, max_repeat: int) -> list:
    """Add repetitions to each config until its 95% CI half-width is <= precision_pct % of its mean."""
    from perfsuite.run.runner import run_config

    runs_dir = Path(runs_dir)
    outcomes = []
    for c in configs:
        while True:
            values, boots = _measured(runs_dir, c.name)
            target = reps_for_precision(values, precision_pct, max_repeat, boots)
            more = target - len(values)
            if more <= 0:
                reached = stats.error_pct(values, "ci95", boots)
                if not reached <= precision_pct:  # NaN (too few runs) included
                    runner.event("note", text=f"{c.name}: 95% CI ±{reached:.1f}% after {len(values)} "
                                              f"repetition(s), not the ±{precision_pct:g}% asked "
                                              f"(--max-repeat {max_repeat})")
                break
            start = max(rundir.used_numbers(runs_dir / c.name), default=0) + 1
            runner.event("more", name=c.name, n=more)
            new = run_config(c, runs_dir, range(start, start + more), runner)
            outcomes += new
            if any(o.status not in ("ok", "skipped") for o in new):
                break  # a failing configuration does not get more boots
    return outcomes
