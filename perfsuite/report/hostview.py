"""The report's host view: where QEMU's CPU went per configuration, the host's load per
repetition, a flame graph per configuration that was profiled, and `perf diff` between two
builds (docs/hostview.md).

`context` is pure (frame in, plain values and PNG data URIs out); `profiles` and
`profile_diffs` are the edges that run the flame graph tool and perf on the runs' perf.data.
"""

from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Any

ROLES = (("cpu_vcpus_total_pct", "vCPU threads", "#1f5f99"),
         ("cpu_iothreads_total_pct", "IOThreads", "#2e7d32"),
         ("cpu_main_pct", "main loop", "#c2561a"),
         ("cpu_other_pct", "other QEMU threads", "#9e9e9e"))
LOAD = (("host_busy_pct", "host busy (% of all cores)", "#1f5f99", "o"),
        ("steal_pct", "steal (% of all cores)", "#c62828", "s"),
        ("host_other_pct", "busiest other process (% of one core)", "#b08900", "^"))


def _mean(frame, name: str, col: str) -> float:
    if col not in frame.columns:
        return math.nan
    v = frame.loc[frame["name"] == name, col].astype(float)
    v = v[v.notna()]
    return float(v.mean()) if len(v) else math.nan


def cpu_rows(frame, order: list[str]) -> list[dict[str, Any]]:
    """Per configuration with a host view: mean % of one core per thread role (pure)."""
    rows = []
    for n in order:
        vals = {col: _mean(frame, n, col) for col, *_ in ROLES}
        if math.isnan(vals["cpu_vcpus_total_pct"]):
            continue
        rows.append({"name": n, **{k: (0.0 if math.isnan(v) else v) for k, v in vals.items()},
                     "vcpu_each": _mean(frame, n, "cpu_vcpu_pct"),
                     "iothread_max": _mean(frame, n, "cpu_iothread_pct")})
    return rows


def load_points(frame) -> list[dict[str, Any]]:
    """Every sampled repetition in the order it ran (by `started`), with its host load (pure)."""
    if "host_busy_pct" not in frame.columns:
        return []
    sub = frame[frame["host_busy_pct"].notna()]
    if "started" in sub.columns:
        sub = sub.sort_values(["started", "name", "rep"], kind="stable")
    return [{"label": f"{r['name']} #{r['rep']}", **{c: float(r[c]) if r[c] == r[c] else math.nan
                                                      for c, *_ in LOAD}}
            for _, r in sub.iterrows()]


def _uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def cpu_bars(rows: list[dict[str, Any]]) -> bytes:
    import matplotlib as mpl
    from perfsuite.report import plots

    with mpl.rc_context(plots.STYLE):
        fig = plots._figure(plots.WIDTH, plots._rows_height(len(rows), 0.42, 1.8))
        ax = fig.subplots()
        ys = list(range(len(rows)))[::-1]
        left = [0.0] * len(rows)
        for col, label, color in ROLES:
            w = [r[col] for r in rows]
            ax.barh(ys, w, left=left, color=color, label=label, height=0.62)
            left = [a + b for a, b in zip(left, w)]
        ax.set_yticks(ys, [plots.text(r["name"]) for r in rows])
        ax.set_xlabel("CPU in the measured window (% of one host core; mean over repetitions)")
        ax.set_title("Where QEMU's CPU went")
        ax.grid(axis="y", visible=False)
        fig.legend(loc="outside lower center", ncol=4)
        return plots._png(fig)


def host_load_plot(points: list[dict[str, Any]]) -> bytes:
    import matplotlib as mpl
    from perfsuite.report import plots

    with mpl.rc_context(plots.STYLE):
        fig = plots._figure(plots.WIDTH, 3.6)
        ax = fig.subplots()
        xs = list(range(1, len(points) + 1))
        for col, label, color, marker in LOAD:
            ax.plot(xs, [p[col] for p in points], marker=marker, color=color, label=label, lw=1.4, ms=5)
        ax.set_xlabel("repetition, in the order they ran")
        ax.set_ylabel("%")
        ax.set_ylim(bottom=0)
        ax.set_xticks(xs)
        ax.set_title("Host load while each repetition measured")
        fig.legend(loc="outside lower center", ncol=3)
        return plots._png(fig)


def context(frame, order: list[str], profiles: list[dict] | None = None,
            diffs: list[dict] | None = None) -> dict[str, Any] | None:
    """What the host-view section shows; None when no run was sampled and nothing profiled."""
    rows = cpu_rows(frame, order)
    points = load_points(frame)
    if not rows and not points and not profiles:
        return None
    table = [{"name": r["name"], **{k: _fmt(r[k]) for k in ("vcpu_each", "iothread_max", "cpu_main_pct",
                                                                "cpu_other_pct")}} for r in rows]
    from perfsuite.report.html import _uri as png_uri  # {src, width, height}: shown at CSS size
    return {"cpu": png_uri(cpu_bars(rows)) if rows else None,
            "load": png_uri(host_load_plot(points)) if points else None,
            "load_labels": [p["label"] for p in points],
            "table": table, "profiles": profiles or [], "diffs": diffs or []}


def _fmt(v: float) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.0f}%"


# ---------------------------------------------------------------- the edges

def _perf_file(runs: list) -> tuple[str, Path] | None:
    """(rep, path) of the first repetition whose meta names a profile that exists."""
    for run in runs:
        prof = (run.meta or {}).get("profile") or {}
        src = run.files.get("json") or run.files.get("meta")
        if prof.get("file") and src is not None and (src.parent / prof["file"]).exists():
            return run.rep, src.parent / prof["file"]
    return None


def profiles(files: dict[str, list], order: list[str]) -> list[dict[str, Any]]:
    """A flame graph (SVG data URI) per configuration that has a perf.data, or why not."""
    from perfsuite.hostview.profile import flamegraph_svg

    out = []
    for name in order:
        found = _perf_file(files.get(name, []))
        if found is None:
            continue
        rep, path = found
        entry: dict[str, Any] = {"name": name, "rep": rep, "file": path.name, "svg": None, "error": None}
        try:
            entry["svg"] = _uri(flamegraph_svg(path, f"{name} #{rep}: QEMU, perf cpu-clock"),
                                "image/svg+xml")
        except (RuntimeError, OSError) as e:
            entry["error"] = str(e)
        out.append(entry)
    return out


def profile_diffs(rows: list[dict], baseline: str, candidate: str) -> list[dict[str, Any]]:
    """`perf diff` of each compared configuration profiled on both sides."""
    from perfsuite.hostview.profile import parse_perf_diff, perf_diff

    def first_perf(d: str, name: str) -> Path | None:
        got = sorted((Path(d) / name).glob("*.perf.data"), key=lambda p: (len(p.name), p.name))
        return got[0] if got else None

    out = []
    for r in rows:
        a, b = first_perf(baseline, r.get("name_base", "")), first_perf(candidate, r.get("name_cand", ""))
        if a is None or b is None:
            continue
        entry: dict[str, Any] = {"config": r["label"], "base": str(a), "cand": str(b), "rows": [],
                                 "error": None}
        try:
            entry["rows"] = parse_perf_diff(perf_diff(a, b))
        except (RuntimeError, OSError) as e:
            entry["error"] = str(e)
        out.append(entry)
    return out
