"""Power and runs needed: for Welch's test alone, and for the verdict rule compare applies.

The verdict `regression` needs two things at once: the corrected p-value below alpha, and the
estimated change beyond the threshold. Sizing n for the t-test alone (the old formula) left the
verdict firing far less often than promised. Here the probability of the verdict itself is
computed, and n is the smallest value at which it reaches the power asked for, found by a
search over n (power is not a smooth fixed point of n: df and quantiles move in steps).

Power of the verdict for a true relative change e (a drop: e > 0), relative CVs cvA, cvB, n
runs (units: boot means when runs share boots) per side, threshold h, level alpha over `rows`
configurations (Holm and BH both test the first hit at alpha / rows when one row is changed):
    the estimate d_hat ~ N(-e, se^2), se^2 = (cvA^2 + cvB^2 (1-e)^2) / n, independent of the
    standard error s_hat, s_hat^2 = se^2 W / df, W ~ chi2(df) (df by Welch-Satterthwaite);
    regression  <=>  d_hat < -max(h, c s_hat),  c = t(1 - alpha / (2 rows), df);
    P = E_W[ Phi((e - max(h, c s_hat)) / se) ],
the expectation taken over 64 equally likely chi-square quantiles (Wilson-Hilferty). With h = 0
and rows = 1 this is one tail of the noncentral-t power of Welch's test (`welch_power`).
"""

from __future__ import annotations

import numpy as np

_NODES = (np.arange(64) + 0.5) / 64  # equal-probability points of W's distribution


def _chi2_nodes(df):
    """Chi-square quantiles at _NODES (Wilson-Hilferty: fast, and close enough to average over)."""
    from scipy.special import ndtri

    z = ndtri(_NODES)
    k = np.asarray(df, dtype=float)[..., None]
    c = 2.0 / (9.0 * k)
    return k * np.maximum(1 - c + z * np.sqrt(c), 0.0) ** 3


def welch_power(effect, cv_a, cv_b, n_a, n_b, alpha: float = 0.05):
    """Power of the two-sided Welch test to see a relative change `effect` (noncentral t)."""
    from scipy import stats as sps

    effect, cv_a, cv_b, n_a, n_b = np.broadcast_arrays(
        *(np.asarray(v, dtype=float) for v in (effect, cv_a, cv_b, n_a, n_b)))
    sa, sb = cv_a**2 / n_a, cv_b**2 / n_b
    with np.errstate(invalid="ignore", divide="ignore"):
        df = (sa + sb) ** 2 / (sa**2 / (n_a - 1) + sb**2 / (n_b - 1))
        ncp = np.abs(effect) / np.sqrt(sa + sb)
        crit = sps.t.ppf(1 - alpha / 2, df)
        power = sps.nct.sf(crit, df, ncp) + sps.nct.cdf(-crit, df, ncp)
    return power


def verdict_power(effect, cv_a, cv_b, n, alpha: float = 0.05, threshold: float = 0.0,
                  rows: int = 1):
    """Probability that compare says `regression` for a true relative drop `effect` (> 0)."""
    from scipy import stats as sps

    effect, cv_a, cv_b, n = np.broadcast_arrays(
        *(np.asarray(v, dtype=float) for v in (effect, cv_a, cv_b, n)))
    e = np.abs(effect)
    sa, sb = cv_a**2 / n, (cv_b * (1 - e)) ** 2 / n
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.sqrt(sa + sb)
        df = (sa + sb) ** 2 / (sa**2 / (n - 1) + sb**2 / (n - 1))
        crit = sps.t.ppf(1 - alpha / (2 * max(rows, 1)), df)
        w = _chi2_nodes(df)
        s_hat = se[..., None] * np.sqrt(w / df[..., None])
        bar = np.maximum(threshold, crit[..., None] * s_hat)
        return sps.norm.cdf((e[..., None] - bar) / se[..., None]).mean(axis=-1)


def reps_needed(cv_a, cv_b, effect, alpha: float = 0.05, power: float = 0.8,
                threshold: float = 0.0, rows: int = 1, cap: int = 10_000):
    """Smallest n per side (>= 2) with verdict_power >= power; NaN where unknown or out of reach.

    threshold = 0, rows = 1: sized for Welch's test alone (one tail; the other tail adds
    nothing measurable at 80% power). A true change at or below the threshold is out of
    reach (the estimate falls beyond it at most half the time): NaN.
    """
    cv_a, cv_b, effect = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (cv_a, cv_b, effect)))
    shape = cv_a.shape
    cv_a, cv_b, effect = cv_a.ravel(), cv_b.ravel(), np.abs(effect.ravel())
    ok = np.isfinite(cv_a) & np.isfinite(cv_b) & (effect > threshold) & (effect > 0) & (effect < 1)
    out = np.full(cv_a.shape, np.nan)
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return out.reshape(shape)

    def enough(n):
        return verdict_power(effect[idx], cv_a[idx], cv_b[idx], n, alpha, threshold, rows) >= power

    # Exponential search for an n that is enough, then bisection (power rises with n).
    lo = np.full(idx.size, 1.0)  # never enough (n = 1 has no spread)
    hi = np.full(idx.size, 2.0)
    zero = (cv_a[idx] == 0) & (cv_b[idx] == 0)
    for _ in range(int(np.log2(cap)) + 2):
        good = enough(hi) | zero
        if good.all():
            break
        lo = np.where(good, lo, hi)
        hi = np.where(good, hi, np.minimum(2 * hi, cap))
    reach = enough(hi) | zero
    while np.any(hi - lo > 1):
        mid = np.floor((lo + hi) / 2)
        good = enough(mid)
        lo, hi = np.where(good, lo, mid), np.where(good, mid, hi)
    out[idx] = np.where(reach, hi, np.nan)
    return out.reshape(shape)
