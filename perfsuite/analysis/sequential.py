"""A sequential test whose error rates hold under optional stopping, by construction.

Used by `perfsuite nightly --sequential`: after every interleaved pair of boots (baseline
boot i, candidate boot i) the night looks at the data and either stops or boots another pair.

The data: paired log-ratios d_i = log(mean of candidate boot i) - log(mean of baseline boot
i). Pairs are interleaved, so host drift over the night cancels within a pair; boot means are
the unit, so boot-to-boot variation is in the spread. Under "no change" the d_i are iid
N(0, sigma^2) with sigma unknown.

The test: a mixture sequential t-test. With t the one-sample t statistic of d_1..d_n
(nu = n - 1) and a normal prior of scale tau on the standardized change delta = mu / sigma,

    BF_n = (1 + n tau^2)^(-1/2) * [(1 + t^2 / ((1 + n tau^2) nu)) / (1 + t^2 / nu)]^(-(nu + 1)/2)

is the Bayes factor of "changed" against "unchanged" computed from the scale-invariant part
of the data (the right Haar prior 1/sigma on the unknown sigma). Because it is a likelihood
ratio of that invariant, it is a nonnegative martingale with mean 1 under "no change", and
Ville's inequality gives P(BF_n >= 1/alpha for some n) <= alpha, whatever rule decides when
to look and when to stop: no plug-in variance is treated as known (the old Wald SPRT did
that, so its bounds guaranteed nothing). Stopping for "no change" early can only lower the
false-alarm rate.

Decisions at each look n >= n_min:
- change: BF_n >= 1 / alpha (two-sided; the direction is the sign of the mean);
- no change: the (1 - alpha) confidence sequence for mu, {mu: BF_n(mu) < 1/alpha} =
  mean +- c_n s / sqrt(n), lies inside (log(1 - threshold), log(1 + threshold)): any change
  is smaller than the threshold, and that statement too holds with probability >= 1 - alpha
  under optional stopping;
- cap: n = n_max without either (the night's verdict is `inconclusive`).
The anytime-valid p-value is min(1, 1 / max_{k <= n} BF_k). Across configurations the night
uses alpha / m per configuration (Bonferroni, valid for e-values under any dependence).

c_n: solving BF = g = 1/alpha for x = t^2 / nu with a = 1 + n tau^2 and
r = (g sqrt(a))^(-2 / (nu + 1)) gives x = (1 - r) / (r - 1/a) (no finite solution, an
unbounded sequence, when r <= 1/a), and c_n = sqrt(nu x).

Estimate after stopping: the mean at an early stop is biased away from zero (paths that
happen to run high stop first). The reported change is Whitehead's bias-adjusted estimate:
the mu~ with mu~ = mean - b(mu~), b(mu) = E_mu[mean at the stop] - mu found by simulating
the same stopping rule at the observed spread (seeded, so a night is reproducible).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

SEQ_CONTINUE, SEQ_CHANGE, SEQ_NONE, SEQ_CAP = "continue", "change", "no change", "cap"

# Prior scale of the standardized change: tau = 1 suits changes of 0.5-1.5 paired SDs
# (a 5% drop at 3-10% per-boot CV); the guarantee holds for any tau, only power moves.
TAU = 1.0


class Design(NamedTuple):
    alpha: float = 0.05  # per configuration (the night divides its alpha over configs)
    threshold: float = 0.05
    n_min: int = 3
    n_max: int = 38  # 90% power for a 5% change at 5% CV per boot, one config (bench_sequential)
    tau: float = TAU


def bayes_factor(n, mean, sd, tau: float = TAU, mu0: float = 0.0):
    """The mixture t Bayes factor BF_n of "mean != mu0" (arrays broadcast; NaN for n < 2)."""
    n, mean, sd = (np.asarray(v, dtype=float) for v in (n, mean, sd))
    nu = n - 1
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        t2 = n * (mean - mu0) ** 2 / sd**2
        a = 1 + n * tau * tau
        logbf = -0.5 * np.log(a) - (nu + 1) / 2 * (np.log1p(t2 / (a * nu)) - np.log1p(t2 / nu))
        bf = np.exp(logbf)
    bf = np.where((sd == 0) & (mean != mu0) & (n >= 2), np.inf, bf)
    return np.where(n >= 2, bf, np.nan)


def cs_halfwidth(n, sd, alpha: float, tau: float = TAU):
    """Half-width of the (1 - alpha) confidence sequence for the mean at n (inf if unbounded)."""
    n, sd = np.asarray(n, dtype=float), np.asarray(sd, dtype=float)
    nu = n - 1
    a = 1 + n * tau * tau
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.exp(-2.0 / (nu + 1) * (math.log(1 / alpha) + 0.5 * np.log(a)))
        x = (1 - r) / (r - 1 / a)
        hw = np.sqrt(nu * x) * sd / np.sqrt(n)
    return np.where((r > 1 / a) & (n >= 2), hw, np.inf)


class Paths(NamedTuple):
    n: np.ndarray  # pairs at the stop
    decision: np.ndarray  # SEQ_* (str)
    direction: np.ndarray  # -1 drop, +1 rise, 0 none
    mean: np.ndarray  # mean log-ratio at the stop (unadjusted)
    sd: np.ndarray
    p: np.ndarray  # anytime-valid p-value at the stop


def _prefix(d: np.ndarray):
    """Mean and SD of every prefix of every row (cumulative sums, centred for accuracy)."""
    n = np.arange(1, d.shape[1] + 1, dtype=float)
    centre = np.nan_to_num(d[:, :1])
    x = d - centre
    m = np.cumsum(x, axis=1) / n
    v = (np.cumsum(x * x, axis=1) - n * m * m) / np.maximum(n - 1, 1)
    return n, m + centre, np.sqrt(np.maximum(v, 0.0))


def run_paths(d, design: Design) -> Paths:
    """Apply the design along rows of paired log-ratios (column j = pair j; NaN = not made).

    A row stops at its first decision, at n_max, or at its last pair (then `cap` unless
    the last look decided): the same rule the night applies pair by pair.
    """
    d = np.atleast_2d(np.asarray(d, dtype=float))
    width = min(d.shape[1], design.n_max)
    d = d[:, :width]
    avail = np.isfinite(d).sum(axis=1)
    n, m, s = _prefix(np.where(np.isfinite(d), d, 0.0))
    bf = bayes_factor(n, m, s, design.tau)
    hw = cs_halfwidth(n, s, design.alpha, design.tau)
    lo, hi = math.log1p(-design.threshold), math.log1p(design.threshold)
    look = (n >= design.n_min) & (n <= avail[:, None])
    change = look & (bf >= 1 / design.alpha)
    none = look & ~change & (m - hw > lo) & (m + hw < hi)
    last = np.minimum(avail, width) - 1
    stop = change | none
    stop[np.arange(d.shape[0]), np.maximum(last, 0)] = True
    first = stop.argmax(axis=1)
    rows = np.arange(d.shape[0])
    dec = np.where(change[rows, first], SEQ_CHANGE, np.where(none[rows, first], SEQ_NONE, SEQ_CAP))
    dec = np.where((dec == SEQ_CAP) & (avail < design.n_max), SEQ_CONTINUE, dec)
    mean = m[rows, first]
    direction = np.where(dec == SEQ_CHANGE, np.sign(mean), 0).astype(int)
    with np.errstate(invalid="ignore"):
        best = np.maximum.accumulate(np.where(look, np.nan_to_num(bf, nan=0.0), 0.0), axis=1)
    p = np.minimum(1.0, 1.0 / np.maximum(best[rows, first], 1e-300))
    return Paths(first + 1, dec, direction, mean, s[rows, first], p)


def adjusted_mean(mean: float, sd: float, n: int, design: Design, stopped_early: bool,
                  sims: int = 2000, seed: int = 0) -> float:
    """Whitehead's bias-adjusted mean log-ratio for a path stopped at n pairs (see module doc)."""
    if not stopped_early or not (np.isfinite(mean) and np.isfinite(sd) and sd > 0):
        return float(mean)
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((sims, design.n_max))

    def bias(mu):
        at_stop = run_paths(mu + sd * z, design)
        return float(at_stop.mean.mean()) - mu

    mu = float(mean)
    for _ in range(8):  # a contraction in practice: the bias changes slowly with mu
        new = float(mean) - bias(mu)
        if abs(new - mu) < 1e-5:
            break
        mu = new
    return mu


def pairs_from_boots(values_a, boots_a, values_b, boots_b) -> np.ndarray:
    """Paired log-ratios of boot means, the i-th boot of each side together, in boot order.

    Without boot numbers, or with every run in one boot, the runs themselves are the units
    (in the order given).
    """
    def means(v, b):
        v = np.asarray(v, dtype=float)
        ok = np.isfinite(v)
        if b is None:
            return v[ok]
        b = np.asarray(b, dtype=object)[ok]
        v = v[ok]
        keys = sorted({k for k in b.tolist() if k is not None and k == k}, key=_boot_key)
        if len(keys) < 2:
            return v
        return np.array([v[b == k].mean() for k in keys])

    ma, mb = means(values_a, boots_a), means(values_b, boots_b)
    k = min(ma.size, mb.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.log(mb[:k]) - np.log(ma[:k])


def _boot_key(k):
    try:
        return (0, float(k), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(k))
