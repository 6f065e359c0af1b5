"""Statistics behind every number perfsuite prints.

Error measures for one configuration's repetitions x_1..x_n (mean m):

- ``range`` (the default, the definition behind the seed's "± 6.31%"):
  half the spread between the slowest and the fastest run, (max - min) / 2,
  as a percentage of the mean. It says how far apart the runs landed, not how
  well the mean is known, and it grows with n; keep n fixed when comparing it.
- ``cv``: the sample standard deviation s (n - 1 in the denominator) as a
  percentage of the mean: the run-to-run noise of one repetition.
- ``sem``: the standard error of the mean, s / sqrt(n), as a percentage of the
  mean: how well the mean itself is known.
- ``ci95``: the half-width of the two-sided 95% Student-t confidence interval
  for the mean, t(0.975, n - 1) * s / sqrt(n), as a percentage of the mean.

Every measure needs at least two runs; with one run it is undefined (NaN), and
the table prints ``n/a``.

Two-sample statistics (baseline A, candidate B; the functions below work on
many rows at once: 2-D arrays, one configuration per row, NaN-padded because
rows may hold different numbers of runs):

- Welch's t-test: t = (mB - mA) / sqrt(sA + sB) with sA = vA/nA, sB = vB/nB
  (v = sample variance), degrees of freedom by Welch-Satterthwaite,
  df = (sA + sB)^2 / (sA^2/(nA-1) + sB^2/(nB-1)); two-sided p = 2 P(T_df > |t|).
  It does not assume equal variances (a noisy build must not look precise).
- Mann-Whitney U (``--test mannwhitney``): rank-based, exact for small samples
  without ties. Beware: with n runs per side its smallest two-sided p-value is
  2 / C(2n, n) (0.0079 for n = 5), so after a multiplicity correction over
  many rows it can rarely reach significance with few runs.
- Ratio of means mB/mA with a CI by **Fieller's theorem** at level conf (compare
  passes 1 - alpha; analytic, not bootstrap): the CI is every rho with
  |mB - rho mA| / sqrt(sB + rho^2 sA) <= t((1 + conf)/2, df), df the Welch df above. Solving gives the roots of
  (mA^2 - t^2 sA) rho^2 - 2 mA mB rho + (mB^2 - t^2 sB) = 0. Why Fieller: at
  rho = 1 the statistic *is* Welch's t, so the CI excludes 1 exactly when the
  Welch p < 1 - conf (table and verdict never contradict each other); it is
  asymmetric like a ratio should be; and a bootstrap with 5 runs per side
  under-covers badly and costs thousands of resamples per row. If the
  baseline mean is not itself significantly non-zero (mA^2 < t^2 sA) the set
  is unbounded: two rays (-inf, r1] U [r2, inf) when the discriminant is
  positive (``ci_rays``; the ratios between the roots, possibly 1, are
  excluded), else the whole line, reported as (-inf, inf).
- Multiplicity: with m rows tested at level alpha, some row would alarm by
  chance. Holm (step-down: sorted p_(i) times (m - i + 1), made monotone)
  controls the family-wise error rate <= alpha under any dependence;
  Benjamini-Hochberg (step-up: p_(i) * m / i, made monotone from the top)
  controls the expected share of false alarms among alarms (FDR) and is more
  powerful with many rows. Rows with NaN p-values are not counted in m.
- Outliers are *flagged*, never dropped: the modified z-score of Iglewicz and
  Hoaglin, 0.6745 (x - median) / MAD with MAD the median absolute deviation,
  flagged beyond 3.5 (robust: one wild run cannot hide itself by inflating
  the spread, as it does with mean +- 3 s); or Tukey's fences, outside
  [Q1 - 1.5 IQR, Q3 + 1.5 IQR].
- Repetitions needed and power: perfsuite.analysis.power (the power of the verdict
  rule itself, threshold and correction included, and a search over n).
- Boots: repetitions in one boot are not independent; every test and interval uses
  boot means as its unit when runs carry several boots (``boot_units``).
- Sequential testing (`perfsuite nightly --sequential`) is perfsuite.analysis.sequential:
  a mixture t-test whose false-alarm rate holds under optional stopping.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

# The error kinds and their meaning live with the numpy-free arithmetic (the CLI offers them
# without importing numpy); this module computes sem and ci95 and re-exports both names.
from perfsuite.analysis.plainstats import ERROR_HELP, ERROR_KINDS  # noqa: F401 (re-exported)

def error_pct(values: Sequence[float], kind: str = "range", boots: Sequence | None = None) -> float:
    """The error of a set of repetitions as a percentage of their mean (NaN if undefined).

    With `boots` (the boot number of each value), `sem` and `ci95` are those of the mean
    over boot means when there are two or more boots (see `boot_units`): how well the mean
    is known includes the boot-to-boot variation. `range` and `cv` describe the runs.
    """
    if kind not in ERROR_KINDS:
        raise ValueError(f"unknown error kind {kind!r}; choose one of {', '.join(ERROR_KINDS)}")
    if boots is not None and kind in ("sem", "ci95"):
        values = boot_units(values, boots).values
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = x.size
    if n < 2:
        return math.nan
    mean = x.mean()
    if mean == 0:
        return math.nan
    if kind == "range":
        half = (x.max() - x.min()) / 2.0
    else:
        s = x.std(ddof=1)
        if kind == "cv":
            half = s
        elif kind == "sem":
            half = s / math.sqrt(n)
        else:
            half = t_quantile(0.975, n - 1) * s / math.sqrt(n)
    return float(100.0 * half / abs(mean))


def t_quantile(q: float, dof: float) -> float:
    # scipy.special, not scipy.stats: the same quantile for a fraction of the import time
    # (the report pays imports on every build); imported here, the plain table needs none.
    from scipy.special import stdtrit

    return float(stdtrit(dof, q))


# ---------------------------------------------------------------- row-wise helpers


class Units(NamedTuple):
    values: np.ndarray  # one value per independent unit (a boot mean, or a run)
    boots: int  # distinct boots among the runs (0: unknown)
    runs: int
    one_boot: bool  # several runs, all in one boot: the spread misses the boot-to-boot part


def boot_units(values: Sequence[float], boots: Sequence | None = None) -> Units:
    """The independent units of one configuration's runs: boot means when runs share boots.

    Repetitions in one guest boot share that boot's state (page cache, vCPU placement, host
    layout), so they vary less among themselves than boots do; treating them as independent
    understates the error of the mean. With two or more boots each boot's mean is one
    unit (unequal repetitions per boot: still unbiased, the unit means just differ in
    precision). A single boot leaves nothing better than the runs themselves: they are
    returned with one_boot=True so the caller can warn. Runs without a boot number count
    as boots of their own (old data, where every repetition was booted afresh).
    """
    x = np.asarray(values, dtype=float)
    ok = np.isfinite(x)
    x = x[ok]
    if boots is None:
        return Units(x, 0, x.size, False)
    try:  # numbers (the usual case): no Python loop
        num = np.asarray(boots, dtype=float)[ok]
    except (TypeError, ValueError):
        num = None
    if num is not None:
        missing = ~np.isfinite(num)
        # a run without a boot number is a boot of its own: give it a key no boot has
        keys = np.where(missing, np.nanmax(np.r_[num[~missing], 0]) + 1 + np.arange(num.size), num)
        uniq, inv = np.unique(keys, return_inverse=True)
    else:
        b = np.asarray(_canon_boots(boots), dtype=object)[ok]
        missing = np.array([v is None for v in b], dtype=bool)
        labels = np.array([f"run{i}" if m else f"boot{v}" for i, (v, m) in enumerate(zip(b, missing))])
        uniq, inv = np.unique(labels, return_inverse=True)
    k = uniq.size
    if k >= 2 and k < x.size:
        sums = np.bincount(inv, weights=x, minlength=k)
        return Units(sums / np.bincount(inv, minlength=k), k, x.size, False)
    return Units(x, k, x.size, k == 1 and x.size >= 2 and not missing.all())


def _canon_boots(boots: Sequence) -> list:
    """Boot numbers as hashable values, None where unknown (NaN, None, empty)."""
    out = []
    for v in boots:
        if v is None or (isinstance(v, float) and math.isnan(v)) or v == "":
            out.append(None)
        elif isinstance(v, (float, np.floating)) and float(v).is_integer():
            out.append(int(v))
        else:
            out.append(v)
    return out



def pack(groups: Sequence[Sequence[float]]) -> np.ndarray:
    """Ragged groups of runs -> one NaN-padded 2-D array (row i = groups[i])."""
    width = max((len(g) for g in groups), default=0)
    out = np.full((len(groups), max(width, 1)), np.nan)
    for i, g in enumerate(groups):
        out[i, : len(g)] = np.asarray(g, dtype=float)
    return out


class Moments(NamedTuple):
    n: np.ndarray
    mean: np.ndarray
    var: np.ndarray  # sample variance (n - 1); NaN when n < 2


def moments(x: np.ndarray) -> Moments:
    """Count, mean and sample variance of each row, ignoring NaN (no warnings for n < 2)."""
    x = np.atleast_2d(np.asarray(x, dtype=float))
    ok = np.isfinite(x)
    n = ok.sum(axis=1)
    z = np.where(ok, x, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = z.sum(axis=1) / n
        dev = np.where(ok, x - mean[:, None], 0.0)
        var = (dev**2).sum(axis=1) / (n - 1)
    var = np.where(n >= 2, var, np.nan)
    return Moments(n, np.where(n > 0, mean, np.nan), var)


class TwoSample(NamedTuple):
    mean_a: np.ndarray
    mean_b: np.ndarray
    n_a: np.ndarray
    n_b: np.ndarray
    t: np.ndarray
    df: np.ndarray
    p: np.ndarray
    ratio: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    # True where Fieller's set is two rays: every ratio <= ci_low or >= ci_high.
    ci_rays: np.ndarray | None = None


def welch(a: np.ndarray, b: np.ndarray, conf: float = 0.95) -> TwoSample:
    """Welch's t-test B vs A per row, plus the ratio mB/mA with its Fieller CI at `conf`."""
    from scipy.special import stdtr

    a = np.atleast_2d(np.asarray(a, dtype=float))
    b = np.atleast_2d(np.asarray(b, dtype=float))
    # One common scale per row: t, p and the ratio do not change, and squares of values
    # near 1e154 (or variances of 1e77) no longer overflow into NaN.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows
        scale = np.fmax(np.nanmax(np.abs(np.where(np.isfinite(a), a, np.nan)), axis=1),
                        np.nanmax(np.abs(np.where(np.isfinite(b), b, np.nan)), axis=1))
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    ma, mb = moments(a / scale[:, None]), moments(b / scale[:, None])
    sa, sb = ma.var / ma.n, mb.var / mb.n
    se2 = sa + sb
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (mb.mean - ma.mean) / np.sqrt(se2)
        fa, fb = sa / se2, sb / se2  # shares of the variance: df without squaring se2
        df = 1.0 / (fa**2 / (ma.n - 1) + fb**2 / (mb.n - 1))
        p = 2.0 * stdtr(df, -np.abs(t))  # two-sided Student-t tail
        ratio = mb.mean / ma.mean
    # Zero spread on both sides: the difference is exact, so it is certain or absent.
    exact = (se2 == 0) & np.isfinite(ma.mean) & np.isfinite(mb.mean)
    p = np.where(exact, np.where(mb.mean == ma.mean, 1.0, 0.0), p)
    lo, hi, rays = fieller(ma.mean, mb.mean, sa, sb, df, conf, rays=True)
    lo = np.where(exact, ratio, lo)
    hi = np.where(exact, ratio, hi)
    rays = rays & ~exact
    return TwoSample(ma.mean * scale, mb.mean * scale, ma.n, mb.n, t, df, p, ratio, lo, hi, rays)


def fieller(mean_a, mean_b, se2_a, se2_b, df, conf: float = 0.95, rays: bool = False):
    """Fieller confidence set for mean_b / mean_a (independent samples).

    Three shapes: an interval (lo, hi); two rays (-inf, lo] U [hi, inf) when the baseline
    mean is not significantly non-zero but the set still excludes the ratios between the
    roots; or the whole line, reported as (-inf, inf). With rays=True also returns a mask
    of the two-ray rows (their lo < hi are the roots; the set lies outside them).
    """
    from scipy.special import stdtrit

    with np.errstate(invalid="ignore", divide="ignore"):
        q = stdtrit(df, 0.5 + conf / 2.0)
        q2 = q * q
        lead = mean_a**2 - q2 * se2_a
        disc = q2 * (se2_a * mean_b**2 + se2_b * lead)
        root = np.sqrt(np.maximum(disc, 0.0))
        r1 = (mean_a * mean_b - root) / lead
        r2 = (mean_a * mean_b + root) / lead
    bounded = lead > 0
    two = (lead < 0) & (disc > 0)
    lo = np.where(bounded | two, np.fmin(r1, r2), -np.inf)
    hi = np.where(bounded | two, np.fmax(r1, r2), np.inf)
    bad = ~np.isfinite(q)
    lo, hi = np.where(bad, np.nan, lo), np.where(bad, np.nan, hi)
    return (lo, hi, two & ~bad) if rays else (lo, hi)


def ci_contains(lo, hi, rays, value: float = 1.0):
    """Whether `value` lies in each row's confidence set (interval or two rays)."""
    rays = np.zeros(np.shape(lo), bool) if rays is None else np.asarray(rays, bool)
    inside = (lo <= value) & (value <= hi)
    return np.where(rays, ~((lo < value) & (value < hi)), inside)


def mannwhitney_p(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Two-sided Mann-Whitney U p-value per row (NaN where a side has < 2 runs).

    scipy vectorises over rows of equal length; rows are grouped by (nA, nB) so
    a typical matrix (everyone ran the same repetitions) is a single call.
    """
    from scipy import stats as sps

    a = np.atleast_2d(np.asarray(a, dtype=float))
    b = np.atleast_2d(np.asarray(b, dtype=float))
    na, nb = np.isfinite(a).sum(axis=1), np.isfinite(b).sum(axis=1)
    p = np.full(a.shape[0], np.nan)
    for key in set(zip(na.tolist(), nb.tolist())):
        if min(key) < 2:
            continue
        rows = np.flatnonzero((na == key[0]) & (nb == key[1]))
        xa = _compact(a[rows], key[0])
        xb = _compact(b[rows], key[1])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            p[rows] = sps.mannwhitneyu(xb, xa, alternative="two-sided", axis=1).pvalue
    return p


def _compact(x: np.ndarray, n: int) -> np.ndarray:
    # Move the finite values of each row to the front (stable), keep the first n.
    order = np.argsort(~np.isfinite(x), axis=1, kind="stable")
    return np.take_along_axis(x, order, axis=1)[:, :n]


# ---------------------------------------------------------------- multiplicity


def _stepwise(p: Sequence[float], step) -> np.ndarray:
    """The skeleton of Holm and BH: the finite p-values in ascending order, scaled and made
    monotone by `step(sorted p, m)`, clipped at 1; NaN stays NaN and is not counted in m."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if ok.size:
        order = ok[np.argsort(p[ok], kind="stable")]
        out[order] = np.minimum(step(p[order], ok.size), 1.0)
    return out


def holm(p: Sequence[float]) -> np.ndarray:
    """Holm step-down adjusted p-values (family-wise error); NaN stays NaN, not counted."""
    return _stepwise(p, lambda s, m: np.maximum.accumulate(s * (m - np.arange(m))))


def bh(p: Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg step-up adjusted p-values (false discovery rate)."""
    return _stepwise(p, lambda s, m: np.minimum.accumulate((s * m / np.arange(1, m + 1))[::-1])[::-1])


CORRECTIONS = {"holm": holm, "bh": bh, "none": lambda p: np.asarray(p, dtype=float)}


def adjust(p: Sequence[float], method: str = "holm") -> np.ndarray:
    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction {method!r}; choose one of {', '.join(CORRECTIONS)}")
    return CORRECTIONS[method](p)


# ---------------------------------------------------------------- outliers


def outliers(x: np.ndarray, method: str = "mad", cut: float | None = None) -> np.ndarray:
    """Boolean mask (same shape as x) of runs flagged as outliers in their row. Never drops."""
    x = np.atleast_2d(np.asarray(x, dtype=float))
    ok = np.isfinite(x)
    n = ok.sum(axis=1, keepdims=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows
        if method == "mad":
            cut = 3.5 if cut is None else cut
            med = np.nanmedian(x, axis=1, keepdims=True)
            mad = np.nanmedian(np.abs(x - med), axis=1, keepdims=True)
            with np.errstate(invalid="ignore", divide="ignore"):
                z = 0.6745 * (x - med) / mad
            # MAD = 0 (over half the runs identical): no robust scale, flag nothing.
            flag = (np.abs(z) > cut) & (mad > 0)
        elif method == "tukey":
            cut = 1.5 if cut is None else cut
            q1, q3 = np.nanpercentile(x, [25, 75], axis=1, keepdims=True)
            iqr = q3 - q1
            flag = (x < q1 - cut * iqr) | (x > q3 + cut * iqr)
        else:
            raise ValueError(f"unknown outlier method {method!r}; choose mad or tukey")
    # Fewer than 4 runs: no rule can tell an outlier from the spread.
    return flag & ok & (n >= 4)


# ---------------------------------------------------------------- power and sample size


from perfsuite.analysis.power import reps_needed, verdict_power, welch_power  # noqa: E402,F401
