"""Hosts are part of what is compared: name every difference of host between two sides.

Two runs of one build on an AMD EPYC and an Intel Xeon host differ by a factor of two under
TCG; a comparison that does not say so reads as a regression of the build. For each side the
host facts of its runs are read from their meta files (CONTRACTS.md section 2):

    cpu_model   host.cpu_model        cpus     host.cpus (cores the host had)
    kernel      host.kernel           accel    accel (kvm / tcg, after the probe)

A fact that takes different values on the two sides is a host difference: it is named in
the comparison's warnings (so in every output format), every row whose own runs differ in it
is marked, and `strict` makes it an error. Runs whose time ranges do not overlap were not
interleaved, which is said too (a host that changed in between looks like a build change).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from perfsuite.errors import PerfsuiteError

FACTS: dict[str, tuple[str, ...]] = {
    "cpu_model": ("host", "cpu_model"),
    "cpus": ("host", "cpus"),
    "kernel": ("host", "kernel"),
    "accel": ("accel",),
}
COLUMN = "host_diff"


class HostsDiffer(PerfsuiteError, ValueError):
    """--strict-hosts: the two sides ran on different hosts."""


@functools.lru_cache(maxsize=4096)
def _meta(fio_path: str) -> dict[str, Any] | None:
    p = Path(fio_path)
    try:
        return orjson.loads(p.with_name(p.name[: -len(".json")] + ".meta.json").read_bytes())
    except (OSError, ValueError):
        return None


def run_facts(fio_path: str) -> dict[str, Any]:
    """The host facts of one run (from its meta file; {} without one)."""
    meta = _meta(str(fio_path))
    if meta is None:
        return {}
    out = {}
    for fact, path in FACTS.items():
        v: Any = meta
        for k in path:
            v = v.get(k) if isinstance(v, dict) else None
        if v not in (None, ""):
            out[fact] = v
    return out


def side_facts(df: pd.DataFrame) -> dict[str, set]:
    """fact -> the set of values over a side's runs."""
    out: dict[str, set] = {}
    for path in (df["path"] if "path" in df.columns else []):
        for fact, v in run_facts(path).items():
            out.setdefault(fact, set()).add(v)
    return out


def differences(base: dict[str, set], cand: dict[str, set]) -> dict[str, tuple[list, list]]:
    """fact -> (baseline values, candidate values) where the sides differ (pure)."""
    out = {}
    for fact in FACTS:
        a, b = base.get(fact, set()), cand.get(fact, set())
        if a and b and a != b:
            out[fact] = (sorted(map(str, a)), sorted(map(str, b)))
    return out


def describe(diff: dict[str, tuple[list, list]]) -> str:
    return "; ".join(f"{f}: baseline {'/'.join(a)}, candidate {'/'.join(b)}" for f, (a, b) in diff.items())


def interleaving_note(base: pd.DataFrame, cand: pd.DataFrame) -> str | None:
    """A sentence when the two sides' runs did not overlap in time, else None."""
    def span(df):
        if "started" not in df.columns or "finished" not in df.columns:
            return None
        s, f = pd.to_datetime(df["started"], errors="coerce", utc=True), pd.to_datetime(df["finished"], errors="coerce", utc=True)
        return (s.min(), f.max()) if s.notna().any() and f.notna().any() else None

    a, b = span(base), span(cand)
    if a is None or b is None or (a[0] < b[1] and b[0] < a[1]):
        return None
    fmt = lambda t: t.strftime("%Y-%m-%d %H:%M")  # noqa: E731
    return (f"runs were not interleaved: baseline ran {fmt(a[0])}..{fmt(a[1])}, candidate "
            f"{fmt(b[0])}..{fmt(b[1])} (UTC); a change of the host between them reads as a change of build")


def annotate(comparison, base: pd.DataFrame, cand: pd.DataFrame, strict: bool = False) -> None:
    """Mark rows whose runs' hosts differ, add the warnings and params["hosts"]; raise if strict."""
    diff = differences(side_facts(base), side_facts(cand))
    rows = comparison.rows
    marks = []
    for r in rows.itertuples():
        d = differences(side_facts(base[base["name"] == r.name_base]),
                        side_facts(cand[cand["name"] == r.name_cand]))
        marks.append(", ".join(d))
    if len(rows):
        rows[COLUMN] = marks
    elif COLUMN not in rows.columns:
        rows[COLUMN] = pd.Series(dtype=str)
    comparison.params["hosts"] = {f: {"baseline": a, "candidate": b} for f, (a, b) in diff.items()}
    note = interleaving_note(base, cand)
    comparison.params["interleaved"] = note is None
    if diff:
        comparison.warnings.append(f"hosts differ ({describe(diff)}): rows marked [host] compare "
                                   "hosts as well as builds")
    if note:
        comparison.warnings.append(note)
    if diff and strict:
        raise HostsDiffer(f"hosts differ ({describe(diff)}); the comparison would measure the "
                          "hosts, not the builds (--strict-hosts)")
