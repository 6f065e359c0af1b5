"""Regression tests for the statistics bugs of issue 12 (each failed before its fix)."""

import math

import numpy as np
import pandas as pd
import pytest

from perfsuite.analysis import comparison as C
from perfsuite.report import verdicts as V
from perfsuite.analysis import stats


def test_reps_needed_is_enough_and_minimal():
    # The fixed-point iteration returned 2 here (45% power); 3 are needed.
    n = int(stats.reps_needed(0.015, 0.015, 0.05))
    assert n == 3
    assert stats.welch_power(0.05, 0.015, 0.015, n, n) >= 0.8
    assert stats.welch_power(0.05, 0.015, 0.015, n - 1, n - 1) < 0.8


def test_reps_needed_for_the_verdict_rule_reaches_its_power():
    """Sized for regression = Holm-corrected p < alpha AND drop beyond the threshold."""
    rng = np.random.default_rng(3)
    cv, thr, effect, m = 0.05, 0.05, 0.075, 4
    n = int(stats.reps_needed(cv, cv, effect, alpha=0.05, power=0.8, threshold=thr, rows=m))
    assert n > int(stats.reps_needed(cv, cv, effect, alpha=0.05, power=0.8))
    a = rng.normal(1.0, cv, (4000, n))
    b = rng.normal(1 - effect, cv, (4000, n))
    w = stats.welch(a, b)
    hit = np.mean((w.p * m < 0.05) & (w.ratio < 1 - thr))  # Bonferroni = Holm's first step
    assert hit >= 0.8 - 0.03, (n, hit)
    a, b = a[:, : n - 1], b[:, : n - 1]
    w = stats.welch(a, b)
    assert np.mean((w.p * m < 0.05) & (w.ratio < 1 - thr)) < 0.8 + 0.02


def test_fieller_two_rays_excluding_one():
    w = stats.welch(stats.pack([[-1, 1, .5, -.4, .1]]), stats.pack([[5, 6, 5, 4, 6]]))
    assert w.p[0] < 1e-4
    assert bool(w.ci_rays[0])
    lo, hi = w.ci_low[0], w.ci_high[0]
    assert np.isfinite(lo) and np.isfinite(hi) and lo < 1 < hi  # 1 lies in the excluded gap
    assert not (lo < w.ratio[0] < hi)  # the estimate is in the confidence set


def test_ci_level_follows_alpha():
    a = [93.3, 100.5, 101.8, 107.8, 92.2]
    b = [93.9, 88.9, 93.8, 82.0, 95.4]
    fa = pd.DataFrame({"name": "x", "iops": a})
    fb = pd.DataFrame({"name": "x", "iops": b})
    r = C.compare(fa, fb, alpha=0.10).rows.iloc[0]
    assert r.verdict == "regression"
    assert r.ci_high < 1.0  # the interval agrees with the verdict


def test_welch_huge_values_give_p():
    a = stats.pack([[1e100, 1.1e100, 0.9e100, 1.05e100]])
    b = stats.pack([[2e100, 2.1e100, 1.9e100, 2.05e100]])
    w = stats.welch(a, b)
    ref = stats.welch(a / 1e100, b / 1e100)
    assert np.isfinite(w.p[0]) and w.p[0] == pytest.approx(ref.p[0], rel=1e-9)
    assert w.ci_low[0] == pytest.approx(ref.ci_low[0], rel=1e-9)


def test_infinite_runs_are_warned_about():
    fa = pd.DataFrame({"name": "x", "iops": [100.0, 101.0, math.inf, 99.0]})
    fb = pd.DataFrame({"name": "x", "iops": [100.0, 102.0, 98.0]})
    c = C.compare(fa, fb)
    assert any("non-finite" in w and "baseline" in w for w in c.warnings), c.warnings


def test_two_rays_render_and_serialise():
    import json

    fa = pd.DataFrame({"name": "x", "iops": [-1, 1, .5, -.4, .1]})
    fb = pd.DataFrame({"name": "x", "iops": [5.0, 6, 5, 4, 6]})
    c = C.compare(fa, fb)
    assert " or >=" in V.render_table(c)
    row = json.loads(V.render_json(c))["rows"][0]
    assert row["ci_rays"] is True and row["verdict"] == "improvement"
