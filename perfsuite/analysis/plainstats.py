"""The analyzer's default arithmetic without numpy: means and the range / cv errors.

`./analyze.py DIR` (range errors) and its default checks need a mean, a half-range and a
standard deviation per name; importing numpy for them was a third of the start-up. These
functions give the same floats as numpy, to the last bit, by summing in numpy's order
(pairwise summation: 8 interleaved partial sums per block of up to 128 values, blocks
halved recursively), so the table, CSV and JSON do not change with the path that made
them. `sem` and `ci95` (boot units, the t quantile) are perfsuite.analysis.stats'
(numpy, and scipy for ci95), imported only when asked for.

ERROR_KINDS and ERROR_HELP (the kinds and their meaning) live here, not in stats, so that
the CLI can offer the choice and print its help without importing numpy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

ERROR_KINDS = ("range", "cv", "sem", "ci95")

ERROR_HELP = {
    "range": "half the spread (max - min) / 2 as % of the mean (the seed's definition)",
    "cv": "sample standard deviation (n-1) as % of the mean",
    "sem": "standard error of the mean, s/sqrt(n), as % of the mean",
    "ci95": "Student-t 95% confidence half-width as % of the mean",
}

_BLOCK = 128   # numpy's PW_BLOCKSIZE


def pairwise_sum(x: Sequence[float], lo: int = 0, n: int | None = None) -> float:
    """sum(x[lo:lo+n]) in numpy's order (np.add.reduce of a contiguous float64 array)."""
    n = len(x) - lo if n is None else n
    if n < 8:
        s = -0.0
        for i in range(lo, lo + n):
            s += x[i]
        return s
    if n <= _BLOCK:
        r = list(x[lo : lo + 8])
        i = 8
        end = n - n % 8
        while i < end:
            for k in range(8):
                r[k] += x[lo + i + k]
            i += 8
        s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        for j in range(lo + i, lo + n):
            s += x[j]
        return s
    half = n // 2
    half -= half % 8
    return pairwise_sum(x, lo, half) + pairwise_sum(x, lo + half, n - half)


def segment_sum(x: Sequence[float]) -> float:
    """The sum np.add.reduceat gives one segment: its first value plus the rest's pairwise sum."""
    return x[0] + pairwise_sum(x, 1) if len(x) > 1 else (x[0] if x else 0.0)


def mean(x: Sequence[float]) -> float:
    """np.mean of a non-empty sequence of floats."""
    return pairwise_sum(x) / len(x)


def std(x: Sequence[float], ddof: int = 1) -> float:
    """np.std(x, ddof=ddof)."""
    m = mean(x)
    return math.sqrt(pairwise_sum([(v - m) * (v - m) for v in x]) / (len(x) - ddof))


def error_pct(values: Sequence[float], kind: str = "range", boots: Sequence | None = None) -> float:
    """perfsuite.analysis.stats.error_pct, the same float; range and cv without numpy."""
    if kind not in ERROR_KINDS:
        raise ValueError(f"unknown error kind {kind!r}; choose one of {', '.join(ERROR_KINDS)}")
    if kind in ("sem", "ci95"):
        from perfsuite.analysis import stats
        return stats.error_pct(values, kind, boots)
    x = [f for f in map(float, values) if math.isfinite(f)]
    if len(x) < 2:
        return math.nan
    m = mean(x)
    if m == 0:
        return math.nan
    half = (max(x) - min(x)) / 2.0 if kind == "range" else std(x)
    return float(100.0 * half / abs(m))
