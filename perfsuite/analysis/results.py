"""runs/ tree -> one row per repetition (CONTRACTS.md section 3): plain columns
(perfsuite.analysis.runs.Runs, no pandas) and, on first use, the same as a pandas DataFrame.

    runs/<NAME>/<N>.json        one repetition (any *.json except *.meta.json)
    runs/<NAME>/<N>.meta.json   optional: what produced it (config, versions, host, guest)

Bad data never raises out of here as a stray KeyError: a malformed fio file is named in a
warning and skipped (or raises ResultsError with strict=True); a run whose fio reported an
error is excluded and counted in a warning; a missing directory or a tree without results
raises ResultsError with one clear sentence.
"""

from __future__ import annotations

from perfsuite.errors import PerfsuiteError

import fnmatch
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    import pandas as pd

from perfsuite.analysis.fio import FIELDS, FioParseError, parse_file
from perfsuite.analysis.runs import FLOAT, INT, Runs, as_float
from perfsuite.hostview import columns as hostview_columns
from perfsuite.matrix import axes
from perfsuite.matrix.config import parse_name
from perfsuite.rundir import RunListing, list_runs, natural_key

# column <- path inside meta.json
META_PATHS = {
    "accel": ("accel",),
    "qemu_version": ("versions", "qemu"),
    "guest_kernel": ("guest", "kernel"),
    "guest_fio_version": ("guest", "fio_version"),
    "queues_seen": ("guest", "queues"),
    "cpus_seen": ("guest", "cpus_online"),
    "mismatch": ("mismatch",),
    "status": ("status",),
    "host": ("host", "hostname"),
    "host_cpu": ("host", "cpu_model"),
    "host_cpus": ("host", "cpus"),
    "boot": ("boot",),
    "started": ("started",),
    "finished": ("finished",),
    "synthetic": ("synthetic",),
    "true_iops": ("true_iops",),
    # perfsuite migrate (docs/migrate.md): one repetition's completed migrations
    "mig_completed": ("migration", "summary", "completed"),
    "mig_total_time_ms": ("migration", "summary", "total_time_ms"),
    "mig_downtime_ms": ("migration", "summary", "downtime_ms"),
    "mig_setup_time_ms": ("migration", "summary", "setup_time_ms"),
    "mig_bytes": ("migration", "summary", "bytes"),
    "mig_dip_depth": ("migration", "summary", "dip_depth"),
    "mig_dip_recover_ms": ("migration", "summary", "dip_recover_ms"),
}
FIO_COLUMNS = tuple(f for f in FIELDS if f != "error")
# derived from the meta's host_threads / host_load (perfsuite.hostview.columns)
HOST_COLUMNS = hostview_columns.COLUMNS
# Filled from the run's name when it has no meta (identity from the name): the base name's
# axes and `variant`, the rest of the name.
NAME_COLUMNS = (*axes.BASE_AXES, "variant")


def columns() -> tuple[str, ...]:
    """The frame's columns: fio's, then the registry's meta columns, then the other meta ones."""
    meta_cols = axes.meta_columns()
    return ("name", "rep", "path", *FIO_COLUMNS, *meta_cols,
            *(c for c in NAME_COLUMNS if c not in meta_cols), *META_PATHS, *HOST_COLUMNS)


_ALWAYS = frozenset(("name", "rep", "path", *FIO_COLUMNS, *NAME_COLUMNS))


class ResultsError(PerfsuiteError):
    """No usable results (missing directory, empty tree, or a bad file under strict=True)."""


@dataclass
class LoadResult:
    """What load_runs found: `runs` (plain columns) and `frame`, the same as a DataFrame,
    built (importing pandas) on first use."""

    runs: Runs
    warnings: list[str] = field(default_factory=list)

    @property
    def frame(self) -> pd.DataFrame:
        return self.runs.to_frame()


def load_runs(
    runs_dir: str | os.PathLike, strict: bool = False, names: str | list[str] | None = None
) -> LoadResult:
    """Load every repetition under runs_dir. `names`: glob(s) on run names, to load only those."""
    root = Path(runs_dir)
    unreadable: list[str] = []
    groups = _listed(root, names, unreadable)
    rows: list[dict[str, Any]] = []
    warnings: list[str] = list(unreadable)
    failed: dict[str, int] = {}
    with_meta = False
    for name in sorted(groups, key=natural_key):
        from_name = parse_name(name)
        for r in groups[name].reps:
            rec = _record(r, name, strict, warnings, failed)
            if rec is None:
                continue
            if r.meta:
                rec.update(flatten_meta(r.meta))
                with_meta = True
            if rec.get("smp") is None:  # no meta config: the configuration's identity is its name
                rec.update(from_name)
            rows.append(rec)
    for name, count in sorted(failed.items()):
        warnings.append(f"{name}: excluded {count} run(s) where fio reported an error (error != 0)")
    if not rows:
        detail = f" ({len(warnings)} problem(s): {warnings[0]})" if warnings else ""
        raise ResultsError(f"no usable fio results in {str(root)!r}{detail}")
    return LoadResult(runs=_to_runs(rows, with_meta), warnings=warnings)


def _listed(root: Path, names: str | list[str] | None, unreadable: list[str]) -> dict[str, RunListing]:
    """The run names under root (those matching `names`), each with its repetitions' files."""
    if not root.exists():
        raise ResultsError(f"runs directory {str(root)!r} does not exist")
    if not root.is_dir():
        raise ResultsError(f"{str(root)!r} is not a directory")
    try:
        groups = _find_runs(root, unreadable)
    except OSError as exc:
        raise ResultsError(f"cannot list {str(root)!r}: {exc.strerror or exc}") from None
    if not groups:
        raise ResultsError(f"no fio results in {str(root)!r} (expected {root}/<NAME>/<N>.json)")
    if names:
        patterns = [names] if isinstance(names, str) else list(names)
        groups = {n: f for n, f in groups.items() if any(fnmatch.fnmatchcase(n, p) for p in patterns)}
        if not groups:
            raise ResultsError(f"no run name in {str(root)!r} matches {' or '.join(patterns)!r}")
    return groups


def _record(r, name: str, strict: bool, warnings: list[str], failed: dict[str, int]) -> dict[str, Any] | None:
    """One repetition's fio record with its name, number and path, or None (and why, in
    `warnings`, or counted in `failed` when fio itself reported an error); --strict raises."""
    if r.result is None or not r.counts:
        if r.why:  # failed, cut short, or a result its meta disowns
            if strict and r.result is not None:
                raise ResultsError(r.why)
            warnings.append(r.why)
        return None
    path = str(r.result)
    try:
        rec = parse_file(path)
    except FioParseError as exc:
        if strict:
            raise ResultsError(f"{path}: {exc}") from None
        warnings.append(f"skipped {path}: {exc}")
        return None
    if rec["error"]:
        failed[name] = failed.get(name, 0) + 1
        return None
    if (why := _implausible(rec)) is not None:
        if strict:
            raise ResultsError(f"{path}: {why}")
        warnings.append(f"skipped {path}: {why}")
        return None
    del rec["error"]
    rec["name"], rec["rep"], rec["path"] = name, r.stem, path
    if r.meta_problem:
        if strict:
            raise ResultsError(r.meta_problem)
        warnings.append(r.meta_problem)
    return rec


# No block device does a trillion IOPS; above that a value is corrupt (1e308 would also
# overflow every mean and print as a 300-digit number).
MAX_IOPS = 1e12


def _implausible(rec: dict[str, Any]) -> str | None:
    v = rec.get("iops")
    if isinstance(v, (int, float)) and v == v and not (0 <= v <= MAX_IOPS):  # NaN: unknown
        return f"implausible IOPS {v:.3g} (not between 0 and {MAX_IOPS:.0e})"
    return None


def _find_runs(root: Path, unreadable: list[str]) -> dict[str, RunListing]:
    """NAME -> its listing (perfsuite.rundir), for every run directory under root."""
    groups, problems = list_runs(root)
    unreadable += problems
    return groups


def flatten_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """meta.json (schema 1) -> the flat meta columns of the results frame."""
    out: dict[str, Any] = {}
    config = meta.get("config")
    if isinstance(config, dict):
        for k in axes.meta_columns():
            if k in config:
                out[k] = _scalar(config[k])
    for col, path in META_PATHS.items():
        v: Any = meta
        for p in path:
            v = v.get(p) if isinstance(v, dict) else None
        if col == "mismatch":
            v = "; ".join(map(str, v)) if isinstance(v, list) else (v if isinstance(v, str) else None)
        out[col] = _scalar(v)
    out.update(hostview_columns.derive(meta))
    return out


def _scalar(v: Any) -> Any:
    # a column holds scalars; a list/dict where a scalar belongs is shown as text
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    return orjson.dumps(v).decode()


# dtypes of the frame (Runs.to_frame); Int64 is nullable: iodepth is unknown for fio 2.x
DTYPES = {**{c: (INT if c in ("numjobs", "iodepth", "iodepth_total") else FLOAT) for c in FIO_COLUMNS
             if c not in ("fio_version", "rw", "bs")},
          **{c: FLOAT for c in HOST_COLUMNS if c != "host_other"}}


def _to_runs(rows: list[dict[str, Any]], with_meta: bool) -> Runs:
    # column-wise; float columns hold floats (NaN where unknown), as the frame's do
    n = len(rows)
    cols = {}
    for c in columns():
        if with_meta or c in _ALWAYS:
            values = [r.get(c) for r in rows]
            if DTYPES.get(c) == FLOAT:
                values = [v if type(v) is float else as_float(v) for v in values]
            cols[c] = values
        else:
            cols[c] = [math.nan] * n if DTYPES.get(c) == FLOAT else [None] * n
    return Runs(cols, DTYPES)
