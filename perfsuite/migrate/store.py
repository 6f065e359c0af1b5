"""What a migration repetition leaves in RUNS_DIR/NAME/ (beside the runner's usual files):

    N.json          the write phase's fio JSON (the measured window), only when status is ok
    N.meta.json     the runner's meta (CONTRACTS.md section 2) plus a "migration" object
    N.log           every QEMU instance's console and stderr, in order
    N.iops.csv      the IOPS timeline (t_ms,iops: all jobs summed per 100 ms, fio's clock)
    N.migrate/      the guest's raw outputs: {fill,write,verify}.{json,err,status}, fio's IOPS logs

`migration_record` is pure; `store` writes (atomically, the meta last).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from statistics import mean
from typing import Any

import orjson

from perfsuite.fsutil import atomic_write_bytes, atomic_write_json, atomic_write_text
from perfsuite.migrate import timeline as tl
from perfsuite.migrate.hop import HopResult
from perfsuite.migrate.job import LOG_MS

SUMMARY_KEYS = ("completed", "total_time_ms", "downtime_ms", "setup_time_ms", "bytes",
                "dip_depth", "dip_recover_ms")


def hop_marks(hops: list[HopResult]) -> list[dict[str, Any]]:
    """Each migration's start/end on fio's clock (host ms minus earlier downtimes)."""
    out, downs = [], []
    for h in hops:
        if h.started_s is None:
            out.append({"start_ms": None, "end_ms": None})
            continue
        start = tl.to_fio_clock(h.started_s * 1000, downs)
        # the switch-over's own stop is invisible to the guest: its end is `downtime` earlier
        end = tl.to_fio_clock(h.ended_s * 1000, downs + [h.downtime_ms or 0])
        out.append({"start_ms": round(start), "end_ms": round(max(start, end))})
        if h.outcome == "completed":
            downs.append(h.downtime_ms or 0)
    return out


def summarize(hops: list[dict[str, Any]]) -> dict[str, Any]:
    """One repetition's figures over its completed migrations (pure): means of the times,
    total bytes, the worst dip (deepest; slowest recovery, None if any did not recover)."""
    done = [h for h in hops if h["outcome"] == "completed"]

    def avg(k: str) -> float | None:
        vals = [h[k] for h in done if h.get(k) is not None]
        return mean(vals) if vals else None
    dips = [h["dip"] for h in done if h.get("dip") and h["dip"].get("depth") is not None]
    recover = None
    if dips and all(d["recovered"] for d in dips):
        recover = max(d["recover_ms"] for d in dips)
    return {"completed": len(done), "total_time_ms": avg("total_time_ms"),
            "downtime_ms": avg("downtime_ms"), "setup_time_ms": avg("setup_time_ms"),
            "bytes": sum(h["transferred_bytes"] or 0 for h in done) if done else None,
            "dip_depth": max(d["depth"] for d in dips) if dips else None,
            "dip_recover_ms": recover}


def migration_record(hops: list[HopResult], timeline: list[tuple[int, float]],
                     times: list[float], ran_on: int, phases: dict, verify_errors: int | None,
                     options: dict[str, Any]) -> dict[str, Any]:
    marks = hop_marks(hops)
    rows = []
    prev_end = None
    for h, m in zip(hops, marks):
        row = h.as_dict() | m
        if m["start_ms"] is not None and h.outcome == "completed":
            row["dip"] = tl.dip(timeline, m["start_ms"], m["end_ms"],
                                baseline_from_ms=prev_end).as_dict()
            prev_end = m["end_ms"]
        rows.append(row)
    return {"asked": len(times), "at_s": times, "ran_on": ran_on, "hops": rows,
            "summary": summarize(rows), "phases": phases, "verify_errors": verify_errors,
            "timeline": {"file": None, "bin_ms": LOG_MS,
                         "clock": "guest (fio) ms since the write window's first I/O"},
            "options": options}


def read_timeline(rep_dir: Path) -> list[tuple[int, float]]:
    logs = [tl.parse_iops_log(p.read_text()) for p in sorted(rep_dir.glob("iops_iops.*.log"))]
    return tl.merge(logs, LOG_MS)


def verify_errors(rep_dir: Path) -> int | None:
    """Verify jobs that reported an error (fio's JSON; None when there is none)."""
    from perfsuite.analysis.fio import FioParseError, parse_file
    try:
        doc = parse_file(rep_dir / "verify.json")
    except (OSError, FioParseError):
        return None
    return sum(1 for j in doc.get("jobs", []) if j.get("error"))


def store(run_dir: Path, rep: int, meta: dict[str, Any], outcome: Any,
          timeline: list[tuple[int, float]]) -> None:
    """Write one repetition's files; the meta last (it is what marks the repetition)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    src = outcome.workdir / f"rep-{rep}"
    raw = run_dir / f"{rep}.migrate"
    if raw.exists():
        shutil.rmtree(raw)
    if src.is_dir():
        shutil.copytree(src, raw)
    atomic_write_text(run_dir / f"{rep}.log", outcome.console)
    if timeline:
        atomic_write_text(run_dir / f"{rep}.iops.csv", tl.timeline_csv(timeline))
        meta["migration"]["timeline"]["file"] = f"{rep}.iops.csv"
    result = run_dir / f"{rep}.json"
    if meta["status"] == "ok" and (src / "write.json").exists():
        atomic_write_bytes(result, (src / "write.json").read_bytes())
    elif result.exists():
        result.unlink()  # a failed repetition leaves no N.json (CONTRACTS.md section 1)
    atomic_write_json(run_dir / f"{rep}.meta.json", meta)


def load_meta(path: Path) -> dict[str, Any] | None:
    try:
        return orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
