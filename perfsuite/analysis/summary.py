"""Results frame (one row per repetition) -> summary frame (one row per run name).

The summary has `name`, `mean`, `error_pct` (perfsuite.analysis.stats.error_pct of the chosen
kind, NaN with fewer than two runs; `sem` and `ci95` over boot means when the runs carry
several boots, see stats.boot_units), `n` (runs that had the metric), and the config
columns that are constant within a name (label, smp, num_queues, dataplane, ...), so a
report can group rows without re-parsing names.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from perfsuite.analysis.stats import ERROR_KINDS, boot_units, error_pct

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


def missing_metric(frame: pd.DataFrame, metric: str) -> pd.Series:
    """Per name, how many runs lack the metric (e.g. no disk_util section); only names > 0."""
    col = metric_column(metric)
    values = frame[col].to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    counts = pd.Series(bad, index=frame["name"]).groupby(level=0, sort=True).sum()
    return counts[counts > 0].astype(int)


def one_boot_names(frame: pd.DataFrame, metric: str = "iops") -> list[str]:
    """Names whose runs (two or more) all share one boot: their sem/ci95 miss the boot-to-boot part."""
    if "boot" not in frame.columns:
        return []
    col = metric_column(metric)
    ok = np.isfinite(frame[col].to_numpy(dtype=float))
    out = []
    for name, g in frame[ok].groupby("name", sort=True):
        if boot_units(g[col].to_numpy(dtype=float), g["boot"].to_numpy(dtype=object)).one_boot:
            out.append(str(name))
    return out


def summarize(frame: pd.DataFrame, metric: str = "iops", error: str = "range") -> pd.DataFrame:
    """One row per name, sorted by name. Runs without the metric are left out of n."""
    if error not in ERROR_KINDS:
        raise ValueError(f"unknown error kind {error!r}; choose one of {', '.join(ERROR_KINDS)}")
    col = metric_column(metric)
    values = frame[col].to_numpy(dtype=float)
    ok = np.isfinite(values)
    names = frame["name"].to_numpy()[ok]
    values = values[ok]
    boots = frame["boot"].to_numpy(dtype=object)[ok] if "boot" in frame.columns else None
    if values.size == 0:
        return pd.DataFrame({c: [] for c in SUMMARY_COLUMNS}).astype({"mean": float, "error_pct": float, "n": int})

    # One stable sort, then slice per name: cheaper than pandas groupby + apply per group.
    order = np.argsort(names, kind="stable")
    names, values = names[order], values[order]
    boots = None if boots is None else boots[order]
    uniq, starts, counts = np.unique(names, return_index=True, return_counts=True)
    sums = np.add.reduceat(values, starts)
    errors = [error_pct(values[s : s + c], error, None if boots is None else boots[s : s + c])
              for s, c in zip(starts, counts)]
    out = pd.DataFrame({
        "name": uniq.astype(object),
        "mean": sums / counts,
        "error_pct": np.asarray(errors, dtype=float),
        "n": counts.astype(int),
    })
    cfg = [c for c in _config_columns() if c in frame.columns]
    if cfg:
        first = frame.loc[ok, ["name", *cfg]].groupby("name", sort=True).first()
        out = out.join(first, on="name")
    host = [c for c in HOST_SUMMARY_COLUMNS if c in frame.columns and frame[c].notna().any()]
    if host:
        means = frame.loc[ok, ["name", *host]].groupby("name", sort=True)[host].mean()
        out = out.join(means, on="name")
    return out.reset_index(drop=True)
