"""The report's migration timelines: IOPS per 100 ms with each migration marked (one panel
per configuration, its first repetition that has a timeline). Used by perfsuite.report.html."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from perfsuite.migrate.timeline import read_timeline_csv


def collect(files: dict[str, list[Any]], order: list[str]) -> list[dict[str, Any]]:
    """[{name, rep, timeline, marks}] from the report's RunFiles (reads N.iops.csv)."""
    out = []
    for name in order:
        for rf in files.get(name, []):
            mig = (rf.meta or {}).get("migration")
            meta_path = rf.files.get("meta")
            if not mig or not meta_path or not (mig.get("timeline") or {}).get("file"):
                continue
            csv = Path(meta_path).parent / mig["timeline"]["file"]
            try:
                tline = read_timeline_csv(csv.read_text())
            except (OSError, ValueError):
                continue
            marks = [(h["start_ms"], h["end_ms"], h["outcome"], h.get("downtime_ms"))
                     for h in mig.get("hops", []) if h.get("start_ms") is not None]
            out.append({"name": name, "rep": rf.rep, "timeline": tline, "marks": marks})
            break
    return out


def timelines(series: list[dict[str, Any]]) -> bytes:
    from perfsuite.report import plots
    fig = plots._figure(9.0, min(1.0 + 1.6 * len(series), 30.0))
    axes = fig.subplots(len(series), 1, sharex=True, squeeze=False)[:, 0]
    for ax, s in zip(axes, series):
        t = [x / 1000 for x, _ in s["timeline"]]
        ax.plot(t, [v for _, v in s["timeline"]], color="#1f77b4", linewidth=0.9)
        for start, end, outcome, down in s["marks"]:
            color = "#d62728" if outcome == "completed" else "#7f7f7f"
            ax.axvspan(start / 1000, max(end, start + 50) / 1000, color=color, alpha=0.25, linewidth=0)
            ax.axvline(end / 1000, color=color, linewidth=0.8)
            if down is not None:
                ax.annotate(f"{down} ms", (end / 1000, 1), xycoords=("data", "axes fraction"),
                            fontsize=7, va="top", ha="left", color=color)
        ax.set_title(plots.text(f"{s['name']} #{s['rep']}"), fontsize=8, loc="left")
        ax.yaxis.set_major_formatter(plots.FuncFormatter(plots.si))
        ax.set_ylim(bottom=0)
        ax.tick_params(labelsize=7)
    axes[-1].set_xlabel("seconds into the write window (guest clock)", fontsize=8)
    fig.supylabel("write IOPS (100 ms bins)", fontsize=8)
    return plots._png(fig)
