"""Moderated t-test (`compare --test moderated`): borrow strength across configurations.

With 5 runs a side, each configuration's variance is estimated on 8 degrees of freedom and
that noise costs power: the t quantile is large and a row whose sample spread happens to be
high cannot be detected. The configurations of one matrix are measured on the same host by
the same fio job, so their relative variances (CV^2) are alike: an empirical-Bayes prior
for them, estimated from all rows (Smyth 2004, the limma method), shrinks each row's
variance towards the common value by as much as the rows agree.

Per row g (log values, so the variance is a relative one): pooled variance s_g^2 on
d_g = nA + nB - 2 degrees of freedom. The prior: s_g^2 ~ s0^2 chi2(d_g)/d_g given a
sigma_g^2 ~ scaled-inverse-chi2(d0, s0^2). With e_g = log s_g^2 - digamma(d_g/2) +
log(d_g/2), the moments give trigamma(d0/2) = var(e) - mean(trigamma(d_g/2)) and
log s0^2 = mean(e) + digamma(d0/2) - log(d0/2); var(e) not above the sampling part means
the rows share one variance (d0 = infinity). Then
    s~_g^2 = (d0 s0^2 + d_g s_g^2) / (d0 + d_g),  t = (mean log B - mean log A) / (s~_g sqrt(1/nA + 1/nB)).

With a *known* prior t is t-distributed on d0 + d_g degrees of freedom. A prior estimated
from the very rows it is used on is not known, and treating it so made the test liberal
(family-wise false alarms up to 6.6% at alpha 5% with 4 configurations, n 5,
benchmarks/bench_stats.py): s0^2 then rests on the m rows only, not on d0 more degrees of
freedom each. So, when the prior comes from the rows themselves:
- var(e) is inflated by one standard error, sqrt(2 / (m - 1)), before d0 is solved for: an
  overestimated d0 (too much shrinkage of a row whose variance really is larger) is what
  makes false alarms, an underestimated one only costs power;
- the rows share one variance (d0 infinite): s~^2 is the pooled variance of all rows and t
  is exactly t-distributed on sum(d_g) degrees of freedom (the pooled variance is independent
  of each row's mean difference);
- otherwise the degrees of freedom are Satterthwaite's for s~_g^2, the d0 s0^2 part carrying
  1 / (1/d0 + 1/nu_s0) of them, where nu_s0 = 2 m / (trigamma(d0/2) + mean trigamma(d_g/2))
  is what the estimate of s0^2 rests on; never more than sum(d_g).
A prior passed in (the nightly history's, from many stored rows independent of tonight's)
is used as known. With fewer than 3 rows, or a row with fewer than 2 runs on a side, there
is nothing to borrow: those rows keep Welch's p.
"""

from __future__ import annotations

import math

import numpy as np

from perfsuite.analysis.stats import moments

D0_MAX = 1e4  # "infinite": the rows share one variance


def prior(var: np.ndarray, df: np.ndarray) -> tuple[float, float]:
    """(d0, s0^2) from row variances `var` on `df` degrees of freedom (finite, > 0 only);
    var(e) taken one standard error high, so d0 errs small (see the module docstring)."""
    from scipy.optimize import brentq
    from scipy.special import digamma, polygamma

    ok = np.isfinite(var) & (var > 0) & (df > 0)
    var, df = var[ok], df[ok]
    if var.size < 3:
        return 0.0, math.nan
    e = np.log(var) - digamma(df / 2) + np.log(df / 2)
    var_e = float(np.var(e, ddof=1)) * (1 + math.sqrt(2 / (var.size - 1)))
    extra = var_e - float(np.mean(polygamma(1, df / 2)))
    if extra <= polygamma(1, D0_MAX / 2):
        d0 = D0_MAX
    else:
        d0 = 2 * brentq(lambda h: float(polygamma(1, h)) - extra, 1e-8, D0_MAX / 2)
    s02 = float(np.exp(np.mean(e) + digamma(d0 / 2) - np.log(d0 / 2)))
    return float(d0), s02


def moderated_p(a, b, d0: float | None = None, s02: float | None = None) -> np.ndarray:
    """Two-sided moderated-t p-value per row of B vs A (NaN where a side has < 2 runs)."""
    return moderated(a, b, d0, s02)[0]


def _posterior(pooled: np.ndarray, df: np.ndarray, d0, s02):
    """(s~^2, degrees of freedom) per row; the prior estimated from these rows when d0 is None."""
    from scipy.special import polygamma

    if d0 is not None:  # a known prior
        if not d0 > 0 or not np.isfinite(s02):
            return pooled, df
        return (d0 * s02 + df * pooled) / (d0 + df), d0 + df
    d0, s02 = prior(pooled, df)
    ok = np.isfinite(pooled) & (pooled > 0) & (df > 0)
    if not d0 > 0 or not np.isfinite(s02):
        return pooled, df
    total = float(df[ok].sum())
    if d0 >= D0_MAX:  # one shared variance: the pooled variance of all rows, exactly t
        common = float((df[ok] * pooled[ok]).sum() / total)
        return np.where(np.isfinite(pooled), common, np.nan), np.full(df.shape, total)
    nu_s0 = 2 * ok.sum() / (float(polygamma(1, d0 / 2)) + float(np.mean(polygamma(1, df[ok] / 2))))
    nu_prior = 1 / (1 / d0 + 1 / nu_s0)
    post = (d0 * s02 + df * pooled) / (d0 + df)
    with np.errstate(invalid="ignore", divide="ignore"):
        satt = (d0 * s02 + df * pooled) ** 2 / ((d0 * s02) ** 2 / nu_prior + (df * pooled) ** 2 / df)
    return post, np.minimum(satt, total)


def moderated(a, b, d0: float | None = None, s02: float | None = None, conf: float = 0.95):
    """(p, ci_low, ci_high) per row: the moderated t and its interval for the ratio of
    geometric means, exp(difference of mean logs +- t quantile x moderated SE)."""
    from scipy.special import stdtr, stdtrit

    la = np.log(np.where(np.asarray(a, dtype=float) > 0, a, np.nan))
    lb = np.log(np.where(np.asarray(b, dtype=float) > 0, b, np.nan))
    ma, mb = moments(la), moments(lb)
    df = ma.n + mb.n - 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        pooled = ((ma.n - 1) * ma.var + (mb.n - 1) * mb.var) / df
        post, dft = _posterior(pooled, df, d0, s02)
        se = np.sqrt(post * (1 / ma.n + 1 / mb.n))
        t = (mb.mean - ma.mean) / se
        p = 2 * stdtr(dft, -np.abs(t))
        half = stdtrit(dft, 0.5 + conf / 2) * se
        lo, hi = np.exp(mb.mean - ma.mean - half), np.exp(mb.mean - ma.mean + half)
    exact = (post == 0) & np.isfinite(ma.mean) & np.isfinite(mb.mean)
    p = np.where(exact, np.where(mb.mean == ma.mean, 1.0, 0.0), p)
    few = (ma.n < 2) | (mb.n < 2)
    return np.where(few, np.nan, p), np.where(few, np.nan, lo), np.where(few, np.nan, hi)
