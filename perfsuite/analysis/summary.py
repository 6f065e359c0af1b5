"""Results (one row per repetition) -> summary (one row per run name).

Works on plain columns (perfsuite.analysis.runs.Runs; a DataFrame is taken too), so the
analyzer's table needs no pandas: `summary_runs` is the summary, `summarize` the same as a
DataFrame for the report and other callers.

The summary has `name`, `mean`, `error_pct` (perfsuite.analysis.stats.error_pct of the chosen
kind, NaN with fewer than two runs; `sem` and `ci95` over boot means when the runs carry
several boots, see stats.boot_units), `n` (runs that had the metric), and the config
columns that are constant within a name (label, smp, num_queues, dataplane, ...), so a
report can group rows without re-parsing names.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from perfsuite.analysis.plainstats import ERROR_KINDS, error_pct, segment_sum
from perfsuite.analysis.runs import FLOAT, Runs, as_runs, group_mean, missing

if TYPE_CHECKING:
    import pandas as pd

# --metric value -> results column, and the heading the seed's table used for it.
# disk-read-ios keeps the "IOPS" heading: it exists to reproduce tables published that way.
METRICS = {
    "iops": ("iops", "IOPS"),
    "read-iops": ("read_iops", "Read IOPS"),
    "write-iops": ("write_iops", "Write IOPS"),
    "disk-read-ios": ("disk_read_ios", "IOPS"),
}
SUMMARY_COLUMNS = ("name", "mean", "error_pct", "n")
# perfsuite.hostview's per-repetition CPU columns, averaged per name when a run has them
HOST_SUMMARY_COLUMNS = ("cpu_vcpu_pct", "cpu_iothread_pct", "cpu_main_pct", "steal_pct")


def _config_columns() -> tuple[str, ...]:
    """Columns constant within a name that the summary carries: the registry's identity
    columns except the binary's path and the job file (long, and already in the meta)."""
    from perfsuite.matrix import axes
    return tuple(c for c in axes.identity_columns() if c not in ("qemu", "fio_job", "memory_mb"))


def metric_column(metric: str) -> str:
    """--metric value (or a results column name) -> results column name."""
    if metric in METRICS:
        return METRICS[metric][0]
    if metric in (col for col, _ in METRICS.values()):
        return metric
    raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")


def missing_metric(frame, metric: str) -> dict[str, int]:
    """Per name (sorted), how many runs lack the metric (e.g. no disk_util section); only names > 0."""
    runs = as_runs(frame)
    col = metric_column(metric)
    counts: dict[str, int] = {}
    for name, v in zip(runs["name"], runs[col]):
        if not math.isfinite(_float(v)):
            counts[str(name)] = counts.get(str(name), 0) + 1
    return {n: counts[n] for n in sorted(counts)}


def _float(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _finite(runs: Runs, col: str) -> list[int]:
    return [i for i, v in enumerate(runs[col]) if math.isfinite(_float(v))]


def one_boot_names(frame, metric: str = "iops") -> list[str]:
    """Names whose runs (two or more) all share one boot: their sem/ci95 miss the boot-to-boot part."""
    import numpy as np

    from perfsuite.analysis.stats import boot_units

    runs = as_runs(frame)
    if "boot" not in runs.columns:
        return []
    col = metric_column(metric)
    ok = runs.take(_finite(runs, col))
    values, boots = ok[col], ok["boot"]
    out = []
    for name, idx in ok.groups("name").items():
        x = np.asarray([values[i] for i in idx], dtype=float)
        if boot_units(x, np.asarray([boots[i] for i in idx], dtype=object)).one_boot:
            out.append(name)
    return out


def summary_runs(frame, metric: str = "iops", error: str = "range") -> Runs:
    """One row per name, sorted by name: name, mean, error_pct, n, then the config columns
    constant within a name and the host-view means. Runs without the metric are left out of n."""
    if error not in ERROR_KINDS:
        raise ValueError(f"unknown error kind {error!r}; choose one of {', '.join(ERROR_KINDS)}")
    runs = as_runs(frame)
    col = metric_column(metric)
    ok = runs.take(_finite(runs, col))
    dtypes = {"mean": FLOAT, "error_pct": FLOAT, "n": "int64"}
    if not len(ok):
        return Runs({c: [] for c in SUMMARY_COLUMNS}, dtypes)
    groups = ok.groups("name")
    values = [float(v) for v in ok[col]]
    boots = ok["boot"] if "boot" in runs.columns else None
    out: dict[str, list] = {"name": list(groups), "mean": [], "error_pct": [], "n": []}
    for idx in groups.values():
        x = [values[i] for i in idx]
        out["mean"].append(segment_sum(x) / len(x))   # what np.add.reduceat gave: the same float
        out["error_pct"].append(float(error_pct(x, error, None if boots is None else [boots[i] for i in idx])))
        out["n"].append(len(x))
    for c in (c for c in _config_columns() if c in runs.columns):
        values_c = ok[c]
        out[c] = [next((values_c[i] for i in groups[n] if not missing(values_c[i])), None) for n in out["name"]]
    for c in (c for c in HOST_SUMMARY_COLUMNS if runs.any_known(c)):
        values_c = ok[c]
        out[c] = [group_mean(values_c[i] for i in groups[n]) for n in out["name"]]
        dtypes[c] = FLOAT
    return Runs(out, dtypes)


def summarize(frame, metric: str = "iops", error: str = "range") -> pd.DataFrame:
    """summary_runs as a DataFrame (for the report, the runner's table and other frame users)."""
    return summary_runs(frame, metric, error).to_frame()

