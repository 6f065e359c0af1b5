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
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

ERROR_KINDS = ("range", "cv", "sem", "ci95")

ERROR_HELP = {
    "range": "half the spread (max - min) / 2 as % of the mean (the seed's definition)",
    "cv": "sample standard deviation (n-1) as % of the mean",
    "sem": "standard error of the mean, s/sqrt(n), as % of the mean",
    "ci95": "Student-t 95% confidence half-width as % of the mean",
}


def error_pct(values: Sequence[float], kind: str = "range") -> float:
    """The error of a set of repetitions as a percentage of their mean (NaN if undefined)."""
    if kind not in ERROR_KINDS:
        raise ValueError(f"unknown error kind {kind!r}; choose one of {', '.join(ERROR_KINDS)}")
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
            half = _t_quantile(0.975, n - 1) * s / math.sqrt(n)
    return float(100.0 * half / abs(mean))


def _t_quantile(q: float, dof: int) -> float:
    # scipy is imported here, not at module level: the plain table does not need it.
    from scipy import stats as sps

    return float(sps.t.ppf(q, dof))
