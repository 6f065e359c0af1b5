"""perfsuite.analysis.stats: two-sample tests, ratio CI, corrections, outliers, power.

The calibration tests draw thousands of synthetic comparisons at once (vectorised), so
they check the claims (false-alarm rate <= alpha, power as computed) in well under a second.
"""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from perfsuite.analysis import stats

finite = st.floats(min_value=50.0, max_value=150.0, allow_nan=False)
sample = st.lists(finite, min_size=2, max_size=12)


def binom_upper(p: float, n: int, z: float = 3.5) -> float:
    """Upper tolerance of an observed rate whose true value is p (normal approx., 3.5 sd)."""
    return p + z * math.sqrt(p * (1 - p) / n)


def test_error_pct_unchanged():
    x = [100.0, 110.0, 90.0, 105.0]
    assert stats.error_pct(x, "range") == pytest.approx(100 * 10 / np.mean(x))
    assert stats.error_pct(x, "cv") == pytest.approx(100 * np.std(x, ddof=1) / np.mean(x))
    assert math.isnan(stats.error_pct([5.0]))


@pytest.mark.filterwarnings("ignore:Precision loss")  # scipy's reference, on near-ties
@given(sample, sample)
def test_welch_matches_scipy_row_by_row(a, b):
    assume(np.std(a) > 1e-6 or np.std(b) > 1e-6)
    r = stats.welch(stats.pack([a]), stats.pack([b]))
    ref = sps.ttest_ind(b, a, equal_var=False).pvalue
    assert r.p[0] == pytest.approx(ref, rel=1e-6, abs=1e-12)


def test_ragged_rows_equal_separate_calls():
    rng = np.random.default_rng(3)
    groups_a = [rng.normal(100, 5, n) for n in (2, 5, 9)]
    groups_b = [rng.normal(97, 5, n) for n in (7, 3, 4)]
    together = stats.welch(stats.pack(groups_a), stats.pack(groups_b)).p
    alone = [stats.welch(stats.pack([a]), stats.pack([b])).p[0] for a, b in zip(groups_a, groups_b)]
    np.testing.assert_allclose(together, alone)
    mw = stats.mannwhitney_p(stats.pack(groups_a), stats.pack(groups_b))
    ref = [sps.mannwhitneyu(b, a).pvalue for a, b in zip(groups_a, groups_b)]
    np.testing.assert_allclose(mw, ref)


@settings(max_examples=200)
@given(sample, sample)
def test_fieller_ci_agrees_with_welch(a, b):
    """The CI excludes 1 exactly when Welch's p < 0.05, and it contains the ratio."""
    assume(np.std(a) > 1e-3 and np.std(b) > 1e-3)
    r = stats.welch(stats.pack([a]), stats.pack([b]))
    assume(np.isfinite(r.ci_low[0]) and abs(r.p[0] - 0.05) > 1e-6)
    assert stats.ci_contains(r.ci_low, r.ci_high, r.ci_rays, r.ratio[0])[0]
    assert (r.p[0] < 0.05) == (not stats.ci_contains(r.ci_low, r.ci_high, r.ci_rays, 1.0)[0])


def test_fieller_coverage():
    """95% of intervals contain the true ratio (checked over 4000 draws at CV 8%, n = 5)."""
    rng = np.random.default_rng(11)
    a = rng.normal(100, 8, (4000, 5))
    b = rng.normal(90, 0.08 * 90, (4000, 5))
    r = stats.welch(a, b)
    cover = np.mean((r.ci_low <= 0.9) & (0.9 <= r.ci_high))
    assert abs(cover - 0.95) < 3.5 * math.sqrt(0.05 * 0.95 / 4000)


def test_unbounded_and_degenerate_cases():
    r = stats.welch(stats.pack([[1.0, -1.0, 2.0]]), stats.pack([[5.0, 6.0, 7.0]]))
    assert r.ci_rays[0] and r.ci_low[0] < r.ratio[0] - 1 and r.ci_high[0] < r.ratio[0]
    line = stats.welch(stats.pack([[1.0, -1.0, 0.5]]), stats.pack([[0.2, -0.3, 0.4]]))
    assert np.isinf(line.ci_low[0]) and np.isinf(line.ci_high[0]) and not line.ci_rays[0]
    same = stats.welch(stats.pack([[3.0, 3.0]]), stats.pack([[3.0, 3.0]]))
    assert same.p[0] == 1.0 and same.ci_low[0] == same.ci_high[0] == 1.0
    one = stats.welch(stats.pack([[3.0]]), stats.pack([[3.0, 4.0]]))
    assert np.isnan(one.p[0])


@given(st.lists(st.one_of(st.floats(0, 1), st.just(float("nan"))), min_size=1, max_size=40))
def test_corrections_properties(p):
    p = np.array(p)
    h, b = stats.holm(p), stats.bh(p)
    ok = np.isfinite(p)
    assert np.array_equal(np.isfinite(h), ok) and np.array_equal(np.isfinite(b), ok)
    assert np.all(h[ok] >= p[ok] - 1e-15) and np.all(h[ok] <= 1)
    assert np.all(b[ok] >= p[ok] - 1e-15) and np.all(b[ok] <= h[ok] + 1e-12)
    order = np.argsort(p[ok], kind="stable")
    assert np.all(np.diff(h[ok][order]) >= -1e-12) and np.all(np.diff(b[ok][order]) >= -1e-12)


def test_corrections_known_values():
    p = [0.01, 0.04, 0.03, float("nan"), 0.2]
    np.testing.assert_allclose(stats.holm(p), [0.04, 0.09, 0.09, np.nan, 0.2])
    np.testing.assert_allclose(stats.bh(p), [0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, np.nan, 0.2])
    with pytest.raises(ValueError):
        stats.adjust(p, "bonferoni")


def test_outliers_flag_one_wild_run_without_dropping():
    x = stats.pack([[100, 101, 99, 100.5, 98.7, 160], [100, 102, 98, 101, 99], [1, 2, 3]])
    for method in ("mad", "tukey"):
        flags = stats.outliers(x, method)
        assert flags.shape == x.shape
        assert flags[0].tolist() == [False] * 5 + [True]
        assert not flags[1:].any()  # ordinary spread, and too few runs to judge
    assert np.isfinite(x[0, 5])  # the data is untouched


def test_reps_needed_reaches_the_power_it_promises():
    """At n = reps_needed(...), simulated power is >= the requested 80% (minus sampling error)."""
    rng = np.random.default_rng(5)
    for cv in (0.03, 0.05, 0.08):
        n = int(stats.reps_needed(cv, cv, 0.05, alpha=0.05, power=0.8))
        a = rng.normal(1.0, cv, (4000, n))
        b = rng.normal(0.95, 0.95 * cv, (4000, n))
        hit = np.mean(stats.welch(a, b).p < 0.05)
        assert hit >= 0.8 - 3.5 * math.sqrt(0.16 / 4000), (cv, n, hit)
        # ... and one run fewer would not have been enough (the answer is not padded).
        assert stats.welch_power(0.05, cv, cv, n - 1, n - 1, 0.05) < 0.8 + 0.02


def test_welch_power_matches_simulation_at_seed_noise():
    rng = np.random.default_rng(8)
    for cv in (0.03, 0.05, 0.08):
        claimed = float(stats.welch_power(0.05, cv, cv, 5, 5, 0.05))
        a = rng.normal(1.0, cv, (5000, 5))
        b = rng.normal(0.95, 0.95 * cv, (5000, 5))
        r = stats.welch(a, b)
        seen = np.mean((r.p < 0.05) & (r.ratio < 1))
        tol = 3.5 * math.sqrt(claimed * (1 - claimed) / 5000)
        # Welch estimates its df: up to 3 points below the noncentral-t claim at n = 5, never above.
        assert claimed - 0.03 - tol <= seen <= claimed + tol, (cv, seen, claimed)
