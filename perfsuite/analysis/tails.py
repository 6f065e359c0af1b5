"""Tail latency with an interval: `compare --metric p99` (also p99.9, p50) from fio's json+ histograms.

fio's json+ output carries, per job and direction, the completion-latency histogram
(`clat_ns.bins`: bucket value in ns -> completions; 64 buckets per power of two, so a
bucket is at most 1/64 = 1.6% wide). From it, per **boot**:

- the boot's histogram is the sum of its repetitions' (every completion the boot made,
  all jobs and directions together: the p99 of all its I/Os, not the mean of the
  per-direction p99s that the results frame holds);
- its q-quantile is the completion at rank ceil(q N), and its confidence interval the
  distribution-free order-statistic one: ranks l = Binomial(N, q).ppf(a/2) and
  u = Binomial(N, q).ppf(1 - a/2) + 1 bracket the true quantile with probability >= 1 - a
  *if completions are independent*. They are not quite (a slow stretch of the host makes
  a run of slow completions), which is why this interval is only the floor of the noise:
- on the log scale (a percentile's spread is multiplicative), y_i = log quantile of boot i,
  its within-boot standard error s_i = (log upper - log lower) / (2 z), at least the
  bucket's width / sqrt(12) (a quantile is known to its bucket only).

A side's k boots are combined as a random-effects mean with equal weights:
var(y_i) = tau^2 + s_i^2, tau^2 = max(0, var(y) - mean(s^2)) (the boot-to-boot part),
so var(mean y) = max(var(y), mean(s^2)) / k on k - 1 degrees of freedom: the spread
between boots (which already holds each boot's sampling noise) is the error unless it is
smaller than the within-boot sampling alone says it must be. The two sides are compared by
Welch's t on that scale (Satterthwaite's df): ratio = exp(difference of mean logs), the
ratio of the sides' geometric-mean quantiles, with its (1 - alpha) interval. With a single
boot per side the runs are the units (as `stats.boot_units` does) and compare's one-boot
warning says the error is understated.

Runs without histograms (plain json, gtod_reduce) keep the results frame's per-repetition
percentiles, compared the same way on the log scale (comparison.log_welch).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

QUANTILE = {"lat_p50_us": 0.50, "lat_p99_us": 0.99, "lat_p999_us": 0.999}
BUCKET = math.log1p(1 / 64)  # fio's histogram resolution (FIO_IO_U_PLAT_BITS = 6), log scale
Histogram = tuple[np.ndarray, np.ndarray]  # (latency in us, ascending; completions)


def histogram(doc: dict) -> Histogram | None:
    """The completion-latency histogram of one fio json+ document, summed over its jobs and
    directions; None when it has no (valid) `clat_ns.bins`."""
    keys, counts = [], []
    for job in doc.get("jobs") or []:
        if not isinstance(job, dict):
            return None
        for d in ("read", "write", "trim", "mixed"):
            st = job.get(d)
            clat = st.get("clat_ns") if isinstance(st, dict) else None
            bins = clat.get("bins") if isinstance(clat, dict) else None
            if bins is None:
                continue
            if not isinstance(bins, dict):
                return None
            try:  # keys are decimal strings (ns), counts integers
                k = np.array([int(x) for x in bins], dtype=np.int64)
                c = np.array(list(bins.values()))
            except (TypeError, ValueError, OverflowError):
                return None
            if c.size and (c.dtype.kind not in "iu" or (c < 0).any() or (k < 0).any()):
                return None
            keys.append(k)
            counts.append(c)
    if not keys or sum(int(c.sum()) for c in counts) == 0:
        return None
    uniq, inv = np.unique(np.concatenate(keys), return_inverse=True)
    return uniq / 1000.0, np.bincount(inv, weights=np.concatenate(counts).astype(float), minlength=uniq.size)


def read_histogram(path: str) -> Histogram | None:
    """histogram() of one fio output file; None when it cannot be read or has no bins.
    (fio.load_json drops the bins for speed, so the object is decoded here: as fio wrote
    it, or from the first line that opens an object to the last brace.)"""
    import orjson

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    if b'"bins"' not in data:
        return None
    start = 0 if data.lstrip().startswith(b"{") else data.find(b"\n{") + 1
    try:
        doc = orjson.loads(data[start:data.rfind(b"}") + 1])
    except orjson.JSONDecodeError:
        return None
    return histogram(doc) if isinstance(doc, dict) else None


def merge(hists: Sequence[Histogram]) -> Histogram:
    """The sum of several histograms (one boot's repetitions)."""
    vals = np.concatenate([h[0] for h in hists])
    uniq, inv = np.unique(vals, return_inverse=True)
    return uniq, np.bincount(inv, weights=np.concatenate([h[1] for h in hists]), minlength=uniq.size)


def quantile_ci(h: Histogram, q: float, conf: float = 0.95) -> tuple[float, float, float]:
    """(quantile, lower, upper): the completion at rank ceil(q N) and the order-statistic
    interval at level `conf` (independent completions assumed)."""
    from scipy.stats import binom

    vals, counts = h
    cum = np.cumsum(counts)
    n = float(cum[-1])

    def at(rank: float) -> float:
        return float(vals[min(int(np.searchsorted(cum, max(rank, 1.0))), vals.size - 1)])

    a = 1.0 - conf
    lo, hi = binom.ppf(a / 2, n, q), binom.ppf(1 - a / 2, n, q) + 1
    return at(math.ceil(q * n)), at(lo), at(min(hi, n))


def boot_estimates(hists: Sequence[Histogram], boots: Sequence | None, q: float):
    """(y, s) per unit: log quantile and its within-unit standard error. The units are the
    boots when the runs span two or more, else the runs (`stats.boot_units`' rule)."""
    from scipy.stats import norm

    keys = [None if b is None or b != b else b for b in (boots if boots is not None else [None] * len(hists))]
    if len({k for k in keys if k is not None}) >= 2:
        groups: dict = {}
        for i, (h, k) in enumerate(zip(hists, keys)):
            groups.setdefault(("run", i) if k is None else ("boot", k), []).append(h)
        units = [merge(g) for g in groups.values()]
    else:
        units = list(hists)
    z = float(norm.ppf(0.975))
    y, s = [], []
    for h in units:
        est, lo, hi = quantile_ci(h, q)
        y.append(math.log(est))
        s.append(max((math.log(hi) - math.log(lo)) / (2 * z), BUCKET / math.sqrt(12)))
    return np.array(y), np.array(s)


def side_mean(y: np.ndarray, s: np.ndarray) -> tuple[float, float, float]:
    """(mean log, its variance, df) of one side's units: max(var(y), mean(s^2)) / k on k - 1."""
    k = y.size
    within = float(np.mean(s**2))
    if k < 2:
        return float(y.mean()), within, math.inf
    return float(y.mean()), max(float(np.var(y, ddof=1)), within) / k, float(k - 1)


def compare_tails(ya, sa, yb, sb, conf: float):
    """(ratio, ci_low, ci_high, p) of B vs A from the units' log quantiles (Welch on the log
    scale with the random-effects variances of side_mean)."""
    from scipy.special import stdtr, stdtrit

    ma, va, da = side_mean(ya, sa)
    mb, vb, db = side_mean(yb, sb)
    d, v = mb - ma, va + vb
    den = va**2 / da + vb**2 / db
    df = v**2 / den if den > 0 else math.inf
    if v == 0:
        return math.exp(d), math.exp(d), math.exp(d), (1.0 if d == 0 else 0.0)
    half = float(stdtrit(df, 0.5 + conf / 2)) * math.sqrt(v)
    p = float(2 * stdtr(df, -abs(d) / math.sqrt(v)))
    return math.exp(d), math.exp(d - half), math.exp(d + half), p


def apply(comp, base, cand, reader=read_histogram) -> None:
    """In place on a Comparison of a tail metric: every row whose runs all carry json+
    histograms gets the histogram-based mean, ratio, interval and p; the correction and
    the verdicts are then redone over all rows. Says in params / warnings which rows did."""
    import pandas as pd

    from perfsuite.analysis import stats
    from perfsuite.analysis.comparison import lower_is_better, verdicts

    rows, prm = comp.rows, comp.params
    col = prm["metric"]
    if col not in QUANTILE or not len(rows) or "path" not in base.columns or "path" not in cand.columns:
        return
    q, alpha = QUANTILE[col], prm["alpha"]

    def units(frame, name):
        sub = frame[frame["name"] == name]
        hists = [reader(p) for p in sub["path"]]
        if not hists or any(h is None for h in hists):
            return None
        return boot_estimates(hists, sub["boot"].tolist() if "boot" in sub.columns else None, q)

    done = 0
    for idx, r in rows.iterrows():
        ua, ub = units(base, r["name_base"]), units(cand, r["name_cand"])
        if ua is None or ub is None:
            continue
        ratio, lo, hi, p = compare_tails(*ua, *ub, conf=1.0 - alpha)
        rows.loc[idx, ["mean_base", "mean_cand", "ratio", "ci_low", "ci_high", "p", "ci_rays"]] = [
            math.exp(ua[0].mean()), math.exp(ub[0].mean()), ratio, lo, hi, p, False]
        done += 1
    if not done:
        prm["tail"] = "repetition percentiles (no json+ histograms)"
        return
    few = (rows["n_base"].to_numpy() < 2) | (rows["n_cand"].to_numpy() < 2)
    p = np.where(few, np.nan, pd.to_numeric(rows["p"]).to_numpy(dtype=float))
    rows["p"] = p
    rows["p_adj"] = stats.adjust(p, prm["correction"])
    rows["verdict"] = verdicts(rows["p_adj"].to_numpy(dtype=float), rows["ratio"].to_numpy(dtype=float),
                               rows["ci_low"].to_numpy(dtype=float), rows["ci_high"].to_numpy(dtype=float),
                               rows["ci_rays"].to_numpy(dtype=bool), few, prm["threshold"], alpha,
                               lower_is_better(col))
    prm["tail"] = f"json+ histograms ({done} of {len(rows)} rows), boot-to-boot variance included"
    if done < len(rows):
        comp.warnings.append(f"{len(rows) - done} row(s) of {col} from the repetitions' percentiles: "
                             "not every run has a json+ histogram")
