"""What the plausibility checks (perfsuite.analysis.checks) need of each run name, gathered
for all names in one pass over the plain columns (perfsuite.analysis.runs): first known
config values, the finite IOPS, the distinct versions and queue counts seen, and the
Little's-law figures. Pure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from perfsuite.analysis.runs import Runs, as_runs, group_mean, missing


def pair_keys() -> tuple[str, ...]:
    """What must be equal for two rows to be an mq / no-mq pair: every identity column of the
    registry but the queue count (and the binary's path: the version says which build), plus
    the QEMU version and the accelerator."""
    from perfsuite.matrix import axes
    return (*(c for c in axes.identity_columns() if c not in ("num_queues", "qemu")),
            "qemu_version", "accel")


VERSION_COLUMNS = (("qemu_version", "QEMU versions"), ("guest_kernel", "guest kernels"),
                   ("guest_fio_version", "guest fio versions"), ("fio_version", "fio versions"),
                   ("accel", "accelerators"))


def _known(v) -> bool:
    return not missing(v)


def _int(v):
    if not _known(v):
        return None
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


@dataclass
class RowFacts:
    """What the checks need of one run name, gathered for all names in one pass over the
    runs (per-name pandas calls were the analyzer's cost on large trees)."""

    name: str
    first: dict          # column -> first known value under the name
    iops: list[float]    # finite IOPS of its runs
    distinct: dict       # column -> {known value: runs with it} (the columns that may differ)
    inflight: float | None = None   # mean IOPS x mean latency (Little's law), None if unknown
    cap: float | None = None        # max I/Os fio could keep in flight (sum of numjobs x iodepth)


_FIRST_COLUMNS = ("smp", "num_queues", "numjobs", "accel")
_DISTINCT_COLUMNS = ("queues_seen", "cpus_seen", *(c for c, _ in VERSION_COLUMNS))


def row_facts(frame) -> dict[str, RowFacts]:
    """name -> RowFacts, in name order; one pass over each column, whatever the row count."""
    runs = as_runs(frame)
    groups = runs.groups("name")
    present = [c for c in dict.fromkeys((*_FIRST_COLUMNS, *pair_keys())) if c in runs.columns]
    iops = [_number(v) for v in runs["iops"]] if "iops" in runs.columns else [math.nan] * len(runs)
    little = _little_per_name(runs, groups)
    cols = {c: runs[c] for c in (*present, *_DISTINCT_COLUMNS) if c in runs.columns}
    cols = {c: v for c, v in cols.items() if runs.any_known(c)}  # without meta most are empty
    known = [c for c in present if c in cols]
    versions = dict(VERSION_COLUMNS)
    out = {}
    for n, idx in groups.items():
        first = dict.fromkeys(present)
        first.update({c: next((cols[c][i] for i in idx if _known(cols[c][i])), None) for c in known})
        distinct: dict[str, dict] = {}
        for c in _DISTINCT_COLUMNS:
            if c not in cols:
                continue
            counts: dict = {}
            for i in idx:
                v = cols[c][i]
                if _known(v):
                    v = str(v) if c in versions else v
                    counts[v] = counts.get(v, 0) + 1
            if counts:
                distinct[c] = counts
        x = [iops[i] for i in idx if math.isfinite(iops[i])]
        inflight, cap = little.get(n, (None, None))
        out[n] = RowFacts(n, first, x, distinct, inflight, cap)
    return out


def _number(v) -> float:
    """pandas.to_numeric(errors='coerce') of one cell."""
    if missing(v):
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _little_per_name(runs: Runs, groups: dict[str, list[int]]) -> dict[str, tuple[float, float]]:
    """name -> (mean I/Os in flight = IOPS x mean latency, the most fio could keep in flight)
    over the runs where both are known. The cap is fio's iodepth_total (the sum over its job
    sections of iodepth x jobs); a frame without that column falls back to numjobs x iodepth,
    which is right for one job section only."""
    if any(c not in runs.columns for c in ("iops", "lat_mean_us")):
        return {}
    if "iodepth_total" in runs.columns:
        caps = [_number(v) for v in runs["iodepth_total"]]
    elif "numjobs" in runs.columns and "iodepth" in runs.columns:
        caps = [a * b for a, b in zip(map(_number, runs["numjobs"]), map(_number, runs["iodepth"]))]
    else:
        return {}
    iops, lat = ([_number(v) for v in runs[c]] for c in ("iops", "lat_mean_us"))
    out = {}
    for n, idx in groups.items():
        ok = [i for i in idx if lat[i] > 0 and all(math.isfinite(x[i]) for x in (iops, lat, caps))]
        if ok:
            out[n] = (group_mean(iops[i] * lat[i] * 1e-6 for i in ok), max(caps[i] for i in ok))
    return out
