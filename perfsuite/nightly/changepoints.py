"""Change points over nights: several per series, calibrated for correlated nights, BH-corrected.

Per configuration the series is the nightly log-ratio candidate/baseline (the baseline of
the same night is a control for the host). Nights are not independent: a host that is slow
one night tends to be slow the next, so a test that shuffles nights (as the first version
did) alarms far more often than it says (AR(1) 0.6: a third of flat series). Here:

1. AR(1) pre-whitening. phi is the lag-1 autocorrelation of the residuals about the best
   segmentation into at most three pieces (so a real step does not pass for correlation), its bias undone
   through a simulated map (`pooled_phi`), pooled over the configurations of the history (the
   nights are shared, so is the host's memory) and clipped to [0, 0.9]. The series
   z_t = x_t - phi x_(t-1) has independent noise; a step in x stays a step in z (smaller
   by 1 - phi, with the full jump on its first night).
2. One test per configuration: the best segmentation of z into at most three pieces (one
   step, or a level that changes and changes back), G = (SSE0 - SSE2) / (SSE2 / (n - 5)),
   an F-like statistic. Its null comes from a parametric bootstrap (`null_ar`: 4000 flat
   AR(1) histories at the estimated phi, phi re-estimated and whitened the same way,
   seeded, cached): p = P(G_null >= G).
3. Benjamini-Hochberg over the configurations at `alpha` (each night tests every
   configuration's history: without it 30 flat configs alarm somewhere most nights).
4. For the configurations that pass: PELT (ruptures, l2 cost) on z / sigma with penalty
   the single-split null's quantile at BH's level for that configuration: every change
   point it keeps clears a bar set for a flat series; several change points per series.
5. A creep (flat, then a steady slope) is named by its first night when a hinge fits
   better than any step (BIC), as before.
Reported once: `new_changes` keeps only the change points that the history up to the
previous night did not already show (within +-2 nights).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pandas as pd

COLUMNS = ["config", "series", "night", "kind", "before", "after", "change", "nights", "p"]
MIN_SIZE = 3


def split_gains(Y: np.ndarray, min_size: int = MIN_SIZE):
    """Per row: (SSE flat, best split SSE, its index k: the first of the second segment)."""
    P, T = Y.shape
    yc = Y - Y.mean(axis=1, keepdims=True)
    sse0 = (yc * yc).sum(axis=1)
    c1 = np.concatenate([np.zeros((P, 1)), np.cumsum(Y, axis=1)], axis=1)
    c2 = np.concatenate([np.zeros((P, 1)), np.cumsum(Y * Y, axis=1)], axis=1)
    ks = np.arange(min_size, T - min_size + 1)
    left = c2[:, ks] - c1[:, ks] ** 2 / ks
    right = (c2[:, -1:] - c2[:, ks]) - (c1[:, -1:] - c1[:, ks]) ** 2 / (T - ks)
    step = left + right
    j = step.argmin(axis=1)
    return sse0, step[np.arange(P), j], ks[j]


def two_split_sse(Y: np.ndarray, min_size: int = MIN_SIZE) -> np.ndarray:
    """Per row: the smallest SSE with up to two splits (three segments), by cumulative sums."""
    return two_split(Y, min_size)[0]


def two_split(Y: np.ndarray, min_size: int = MIN_SIZE):
    """Per row: (smallest SSE with up to two splits, k1, k2); k1 == k2 when one split is best."""
    P, T = Y.shape
    c1 = np.concatenate([np.zeros((P, 1)), np.cumsum(Y, axis=1)], axis=1)
    c2 = np.concatenate([np.zeros((P, 1)), np.cumsum(Y * Y, axis=1)], axis=1)

    def seg(i, j):  # SSE of Y[:, i:j] for index arrays i < j (broadcast)
        s1, s2 = c1[:, j] - c1[:, i], c2[:, j] - c2[:, i]
        return s2 - s1 * s1 / (j - i)

    _, best, k = split_gains(Y, min_size)
    b1, b2 = k.copy(), k.copy()
    for k1 in range(min_size, T - 2 * min_size + 1):
        k2 = np.arange(k1 + min_size, T - min_size + 1)
        sse = seg(np.full(k2.size, 0), np.full(k2.size, k1)) + seg(np.full(k2.size, k1), k2) + \
            seg(k2, np.full(k2.size, T))
        j = sse.argmin(axis=1)
        m = sse[np.arange(P), j]
        better = m < best
        best = np.where(better, m, best)
        b1, b2 = np.where(better, k1, b1), np.where(better, k2[j], b2)
    return best, b1, b2


def f_stat(sse0, sse2, n):
    """Gain of the best segmentation into <= 3 pieces, in units of its residual variance."""
    return (sse0 - sse2) / np.maximum(sse2 / max(n - 5, 1), 1e-300)


def statistic(Y: np.ndarray) -> np.ndarray:
    yc = Y - Y.mean(axis=1, keepdims=True)
    return f_stat((yc * yc).sum(axis=1), two_split_sse(Y), Y.shape[1])


@lru_cache(maxsize=64)
def null_one(n: int, draws: int = 4000) -> np.ndarray:
    """Sorted null draws of the best single split's gain over sigma^2 (PELT's penalty scale)."""
    rng = np.random.default_rng(2000 + n)
    s0, s1, _ = split_gains(rng.standard_normal((draws, n)))
    return np.sort(s0 - s1)


def split_autocorr(X: np.ndarray) -> np.ndarray:
    """Per row: lag-1 autocorrelation of the residuals about the row's best segmentation
    into at most three pieces (so real steps do not pass for correlation)."""
    X = np.atleast_2d(X)
    _, k1, k2 = two_split(X)
    t = np.arange(X.shape[1])[None, :]
    label = (t >= k1[:, None]).astype(int) + (t >= k2[:, None])
    r = np.empty_like(X)
    for g in range(3):
        m = label == g
        cnt = m.sum(axis=1)
        mean = np.where(m, X, 0).sum(axis=1) / np.maximum(cnt, 1)
        r = np.where(m, X - mean[:, None], r)
    den = (r * r).sum(axis=1)
    return np.where(den > 0, (r[:, 1:] * r[:, :-1]).sum(axis=1) / np.where(den > 0, den, 1), 0.0)


PHI_GRID = np.linspace(0.0, 0.9, 10)


@lru_cache(maxsize=64)
def _bias_map(n: int, draws: int = 600) -> np.ndarray:
    """Mean of split_autocorr for AR(1) series of length n at each phi of PHI_GRID (simulated)."""
    rng = np.random.default_rng(3000 + n)
    out = []
    for phi in PHI_GRID:
        e = rng.standard_normal((draws, n))
        x = np.empty_like(e)
        x[:, 0] = e[:, 0]
        for t in range(1, n):
            x[:, t] = phi * x[:, t - 1] + math.sqrt(1 - phi * phi) * e[:, t]
        out.append(float(split_autocorr(x).mean()))
    return np.maximum.accumulate(np.array(out))


def pooled_phi(series: list[np.ndarray]) -> float:
    """AR(1) coefficient shared by the series, clipped to [0, 0.9].

    The residual autocorrelation about a fitted split is biased low (the split absorbs slow
    wander; at 30 nights, phi 0.6 reads as about 0.4): it is mapped back through its
    simulated mean at each phi for the series' length (`_bias_map`), pooled by length.
    """
    vals = [(float(split_autocorr(x[None, :])[0]), x.size) for x in series if x.size >= 2 * MIN_SIZE + 2]
    if not vals:
        return 0.0
    w = np.array([t for _, t in vals], dtype=float)
    rho = float(np.average([r for r, _ in vals], weights=w))
    n = int(round(float(np.median(w))))
    return float(np.clip(np.interp(rho, _bias_map(n), PHI_GRID), 0.0, 0.9))


def whiten(x: np.ndarray, phi: float) -> np.ndarray:
    return x[1:] - phi * x[:-1]


def _ar1(rng, rows: int, n: int, phi: float) -> np.ndarray:
    e = rng.standard_normal((rows, n))
    x = np.empty_like(e)
    x[:, 0] = e[:, 0]
    for t in range(1, n):
        x[:, t] = phi * x[:, t - 1] + math.sqrt(1 - phi * phi) * e[:, t]
    return x


@lru_cache(maxsize=64)
def null_ar(n: int, phi: float, pool: int, draws: int = 4000) -> np.ndarray:
    """Sorted null draws of the statistic when phi itself is estimated (parametric bootstrap).

    Flat AR(1) histories of `pool` series at the estimated phi go through the same
    estimate-and-whiten steps; the statistic of each history's first series is kept. So a
    noisy phi (few configurations, few nights) widens the null instead of inflating alarms.
    """
    rng = np.random.default_rng(4000 + n + int(100 * phi) + 1000 * pool)
    x = _ar1(rng, draws * pool, n, phi)
    r = split_autocorr(x).reshape(draws, pool).mean(axis=1)
    phis = np.clip(np.interp(r, _bias_map(n), PHI_GRID), 0.0, 0.9)
    first = x.reshape(draws, pool, n)[:, 0, :]
    z = first[:, 1:] - phis[:, None] * first[:, :-1]
    z = np.where((phis > 0)[:, None], z, first[:, 1:])  # same length either way
    return np.sort(statistic(z))


def _p_at(x: np.ndarray, phi: float, pool: int) -> tuple[float, float]:
    z = x[1:] - phi * x[:-1]  # always one night shorter, so phi = 0 and phi > 0 compare alike
    g = float(statistic(z[None, :])[0])
    s2 = float(two_split_sse(z[None, :])[0])
    null = null_ar(x.size, phi, min(pool, 4))
    p = float((1 + null.size - np.searchsorted(null, g, side="left")) / (1 + null.size))
    return p, math.sqrt(max(s2 / max(z.size - 5, 1), 1e-300))


def test_series(x: np.ndarray, phi: float, pool: int = 1) -> tuple[float, float]:
    """(p-value of "no change", noise SD of the whitened series); phi estimated from `pool` series.

    phi estimated from few series is noisy, and an underestimate under-whitens (alarms);
    so the p-value is the larger of the ones at phi and at phi + 0.1 / sqrt(pool) (under
    half a standard error up, on the 0.05 grid): measured, it holds the nominal rate at
    AR(1) 0.3 and 0.6 for one configuration (bench_changepoints.py); nearly free when pooled.
    """
    lo = round(phi * 20) / 20  # cache the nulls on a 0.05 grid
    hi = min(0.9, round((phi + 0.1 / math.sqrt(max(pool, 1))) * 20) / 20)
    p1, s1 = _p_at(x, lo, pool)
    p2, _ = _p_at(x, hi, pool) if hi > lo else (p1, s1)
    return max(p1, p2), s1


def segment(x: np.ndarray, phi: float, sigma: float, level: float) -> list[int]:
    """Night indices where a new level starts (PELT on the whitened, scaled series)."""
    import ruptures

    z = whiten(x, phi) / sigma
    pen = float(np.quantile(null_one(z.size), 1 - level))
    bkps = ruptures.Pelt(model="l2", min_size=MIN_SIZE, jump=1).fit(z[:, None]).predict(pen=pen)
    return [b + 1 for b in bkps[:-1]]  # z[i] is night i + 1


def _creep(x: np.ndarray):
    """(BIC gain of a hinge over the best step, first night, fitted start and end levels)."""
    T = x.size
    yc = x - x.mean()
    sse0 = float((yc * yc).sum())
    _, s_step, _ = split_gains(x[None, :])
    kc = np.arange(1, T - MIN_SIZE + 1)
    X = np.maximum(0.0, np.arange(T)[None, :] - kc[:, None] + 1.0)
    Xc = X - X.mean(axis=1, keepdims=True)
    sxx = (Xc * Xc).sum(axis=1)
    sxy = Xc @ yc
    creep = sse0 - sxy**2 / sxx
    j = int(creep.argmin())
    slope = sxy[j] / sxx[j]
    icpt = x.mean() - slope * X[j].mean()
    floor = 1e-12 * max(sse0, 1e-300)
    gain = T * math.log(max(float(s_step[0]), floor) / max(float(creep[j]), floor))
    return gain, int(kc[j]), float(icpt), float(icpt + slope * (T - kc[j]))


def detect(frame: pd.DataFrame, column: str = "ratio", min_change: float = 0.01,
           alpha: float = 0.01) -> pd.DataFrame:
    """Every change point of every configuration's series in a history `results` frame."""
    items = []
    for config, g in frame.sort_values("night").groupby("config", sort=True):
        use = column if g[column].notna().sum() >= g["cand_mean"].notna().sum() else "cand_mean"
        g = g[g[use].notna() & (g[use] > 0)]
        if len(g) >= 2 * MIN_SIZE + 2:  # one night goes to whitening
            items.append((config, use, g["night"].tolist(), g[use].to_numpy(dtype=float)))
    if not items:
        return pd.DataFrame(columns=COLUMNS)
    logs = [np.log(y) for *_, y in items]
    phi = pooled_phi(logs)
    tested = [test_series(x, phi, len(logs)) for x in logs]
    from perfsuite.analysis.stats import bh

    p_adj = bh([p for p, _ in tested])
    out = []
    for (config, use, nights, y), x, (p, sigma), pa in zip(items, logs, tested, p_adj):
        if not pa <= alpha:
            continue
        level = alpha * p / pa if pa > 0 else alpha  # BH's own level for this configuration
        gain, k, a, b = _creep(x)
        if gain > 2 * math.log(x.size):
            found = [("creep", k, math.exp(a), math.exp(b))]
        else:
            cuts = segment(x, phi, sigma, max(level, 1e-6)) or [int(split_gains(x[None, :])[2][0])]
            edges = [0, *cuts, x.size]
            found = [("step", c, float(y[edges[i]:c].mean()), float(y[c:edges[i + 2]].mean()))
                     for i, c in enumerate(cuts)]
        for kind, k, before, after in found:
            change = after / before - 1 if before else math.inf
            if abs(change) >= min_change:
                out.append({"config": config, "series": use, "night": nights[k], "kind": kind,
                            "before": before, "after": after, "change": float(change),
                            "nights": len(y), "p": float(pa)})
    return pd.DataFrame(out, columns=COLUMNS)


def new_changes(frame: pd.DataFrame, night: str, tolerance: int = 2, **kw) -> pd.DataFrame:
    """The change points of the history up to `night` that the history before it did not show."""
    now = detect(frame, **kw)
    before = frame[frame["night"] < night]
    if not len(now) or not len(before):
        return now
    old = detect(before, **kw)
    order = {n: i for i, n in enumerate(sorted(frame["night"].unique()))}
    seen = {(r.config, order[r.night]) for r in old.itertuples()}
    keep = [not any((r.config, order[r.night] + d) in seen for d in range(-tolerance, tolerance + 1))
            for r in now.itertuples()]
    return now[keep].reset_index(drop=True)


def change_point(y, min_change: float = 0.01, alpha: float = 0.01, seed: int = 0) -> dict | None:
    """The first change of one series (pre-whitened with its own phi), or None. For tests
    and one-off use; `detect` is what the nightly and `perfsuite history` run."""
    y = np.asarray(y, dtype=float)
    y = y[np.isfinite(y) & (y > 0)]
    if y.size < 2 * MIN_SIZE + 2:
        return None
    frame = pd.DataFrame({"night": [f"{i:06d}" for i in range(y.size)], "config": "x", "ratio": y,
                          "cand_mean": y})
    found = detect(frame, min_change=min_change, alpha=alpha)
    if not len(found):
        return None
    r = found.iloc[0]
    return {"kind": r.kind, "index": int(r.night), "before": float(r.before), "after": float(r.after),
            "change": float(r.change), "p": float(r.p)}
