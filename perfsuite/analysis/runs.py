"""The results as plain columns: one list per column, one entry per repetition (no pandas).

``perfsuite.analysis.results.load_runs`` builds a :class:`Runs`; the summary
(perfsuite.analysis.summary), the checks (perfsuite.analysis.checks) and the table renderers
(perfsuite.report.table) work on it, so `./analyze.py DIR` never imports pandas. Callers
that want a DataFrame (report, compare, model fit, nightly) get one from ``to_frame()``
(``LoadResult.frame`` builds it on first use); the functions above also take a DataFrame,
through :func:`as_runs`.

A :class:`Runs` reads like the part of a DataFrame the checks use: ``columns``,
``runs[col]`` (a list), ``runs.get(col, default)``, ``len(runs)``. A missing value is None
or a float NaN (:func:`missing`).
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

FLOAT, INT = "float", "Int64"   # the DataFrame dtype a column gets in to_frame()


def missing(v: Any) -> bool:
    """None, a float NaN, or pandas' NA/NaT (a frame's values, without importing pandas)."""
    if v is None:
        return True
    t = type(v)
    if t is str or t is int or t is bool:  # the common cells first: this is called per cell
        return False
    if isinstance(v, float):
        return v != v
    return t.__name__ in ("NAType", "NaTType")


def as_float(v: Any) -> float:
    """A numeric cell -> float; missing -> NaN (what DataFrame.astype(float) makes of it)."""
    return v if type(v) is float else math.nan if missing(v) else float(v)


def group_mean(values: Iterable[float]) -> float:
    """The mean of the known values (NaN if none), from their correctly rounded sum
    (math.fsum): the same figure whatever the order the rows came in."""
    known = [float(v) for v in values if not missing(v)]
    return math.fsum(known) / len(known) if known else math.nan


class Runs:
    """Named columns of equal length; optionally a view of some rows of another Runs."""

    __slots__ = ("_cols", "_rows", "_dtypes", "_frame")

    def __init__(self, cols: Mapping[str, list], dtypes: Mapping[str, str] | None = None,
                 rows: list[int] | None = None, frame: Any = None) -> None:
        self._cols = dict(cols)
        self._rows = rows
        self._dtypes = dict(dtypes or {})
        self._frame = frame

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self._cols)

    def __len__(self) -> int:
        if self._rows is not None:
            return len(self._rows)
        return len(next(iter(self._cols.values()), ()))

    def __getitem__(self, col: str) -> list:
        values = self._cols[col]
        return values if self._rows is None else [values[i] for i in self._rows]

    def get(self, col: str, default: Any = None) -> Any:
        return self[col] if col in self._cols else default

    def take(self, rows: Iterable[int]) -> Runs:
        """A view of these rows (indices into this Runs), in this order."""
        rows = list(rows)
        if self._rows is not None:
            rows = [self._rows[i] for i in rows]
        return Runs(self._cols, self._dtypes, rows)

    def groups(self, col: str = "name") -> dict[str, list[int]]:
        """str(value) -> its row indices (in row order), keys sorted as DataFrame.groupby sorts
        strings; rows where the value is missing are in no group."""
        out: dict[str, list[int]] = {}
        for i, v in enumerate(self[col]):
            if not missing(v):
                out.setdefault(str(v), []).append(i)
        return {k: out[k] for k in sorted(out)}

    def any_known(self, col: str) -> bool:
        if col not in self._cols:
            return False
        for v in self[col]:
            if v is None or (type(v) is float and v != v):  # the common misses, without a call
                continue
            if not missing(v):
                return True
        return False

    def to_frame(self):
        """The pandas DataFrame of these columns, with the dtypes they were declared with."""
        if self._frame is not None and self._rows is None:
            return self._frame
        import pandas as pd

        frame = pd.DataFrame({c: self[c] for c in self._cols})
        for c, dtype in self._dtypes.items():
            if c in frame.columns:
                frame[c] = frame[c].astype(dtype)
        if self._rows is None:
            self._frame = frame
        return frame


def from_frame(frame) -> Runs:
    """A DataFrame's columns as a Runs (pandas' NA becomes None); keeps the frame for to_frame."""
    cols = {}
    for c in frame.columns:
        values = frame[c].tolist()
        dtype = frame[c].dtype
        if not (type(dtype).__module__.startswith("numpy") and dtype.kind in "fiub"):
            # object columns and pandas' own dtypes (Int64, ...) may hold pd.NA
            values = [None if missing(v) else v for v in values]
        cols[str(c)] = values
    return Runs(cols, frame=frame)


def as_runs(data) -> Runs:
    """A Runs as it is; a DataFrame (or anything with .columns and column access) as a Runs."""
    return data if isinstance(data, Runs) else from_frame(data)
