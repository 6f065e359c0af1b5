"""HTML report: results frame (+ optional comparison, history, findings) -> one static page.

Three steps, so each can be tested alone:
  perfsuite.commands.report        the file reading: results, meta.json, guest logs, job files
  build_context(frame, files, ...) pure: numbers, strings and PNG bytes for the template
  render(context)                  jinja2 with autoescape ON for every template

The page holds no script and fetches nothing: images are inline data: URIs and raw
files are relative links, so it reads the same from a mail attachment or a CI artifact.
Everything that comes from the runs (names, logs, argv, job text) reaches the page only
through autoescaped template variables, never `|safe`.
"""

from __future__ import annotations

import base64
import math
import os
import shlex
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote



@dataclass
class RunFiles:
    """Raw files of one repetition, by kind (json/meta/log), plus what its meta said."""
    rep: str
    files: dict[str, Path] = field(default_factory=dict)
    meta: dict[str, Any] | None = None
    log_tail: str | None = None  # end of the guest console, read for failed runs only


def _dict(v: Any) -> dict:
    return v if isinstance(v, dict) else {}


def _list(v: Any) -> list:
    return v if isinstance(v, list) else ([v] if v else [])


def source_labels(runs_dirs: list[Path]) -> list[str]:
    """A short, unique label per runs dir (its basename, numbered when two share one)."""
    names = [Path(d).resolve().name or str(d) for d in runs_dirs]
    return [f"{n}#{i + 1}" if names.count(n) > 1 else n for i, n in enumerate(names)]


def display_name(source: str, name: str, n_sources: int) -> str:
    # With several runs dirs the same config name can appear twice; the prefix keeps rows apart.
    return name if n_sources == 1 else f"{source}/{name}"


# ---------------------------------------------------------------- configuration axes

def axes_of(name: str, dataplane: Any = None, num_queues: Any = None) -> tuple[str, bool | None, bool | None]:
    """(group, dataplane, multiqueue) of a row: dataplane and num-queues from its config
    (meta.json, or the frame's columns the name filled in for runs without meta); the name's
    axes (perfsuite.matrix.config.parse_name) only where the config says nothing.
    Multiqueue is perfsuite.matrix.axes.multiqueue (more than one queue), so a `-nq-N` row
    and a `-no-mq` row are multiqueue and its one-queue twin. The group is the name without
    its dataplane and queue tokens (label, smp and any other axis stay), so rows that differ
    only in dataplane x queues share a group.
    """
    from perfsuite.matrix.axes import multiqueue
    from perfsuite.matrix.config import parse_name

    base = name.rsplit("/", 1)[-1]
    prefix = name[: len(name) - len(base)]
    spelled = parse_name(base)
    dp = dataplane if _known(dataplane) else spelled.get("dataplane")
    nq = num_queues if _known(num_queues) else spelled.get("num_queues")
    group = base
    if "label" in spelled:
        group = f"{spelled['label']}-smp-{spelled['smp']}" + (f"-{spelled['variant']}" if spelled["variant"] else "")
    return prefix + group, (None if dp is None else bool(dp)), multiqueue(nq)


def _known(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _variant_rank(dp: bool | None, mq: bool | None) -> int:
    return {(True, True): 0, (True, False): 1, (False, True): 2, (False, False): 3}.get((dp, mq), 4)


# ---------------------------------------------------------------- statistics for the figures

def mean_ci(values, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t confidence interval; the interval is NaN with fewer than two values."""
    import numpy as np

    from perfsuite.analysis.stats import t_quantile

    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.nan, math.nan, math.nan
    m = float(x.mean())
    if x.size < 2:
        return m, math.nan, math.nan
    half = t_quantile(0.5 + level / 2, x.size - 1) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return m, m - half, m + half


def ratio_ci(num, den, level: float = 0.95) -> tuple[float, float, float]:
    """Ratio of means num/den with its Fieller interval: perfsuite.analysis.stats.welch, the method
    behind `perfsuite compare`, so a speedup here and a ratio there mean the same thing.
    Bounds are infinite when den's mean is not clearly above zero."""
    import numpy as np

    from perfsuite.analysis.stats import welch

    a = np.asarray(den, dtype=float)
    b = np.asarray(num, dtype=float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0 or b.size == 0 or a.mean() == 0:
        return math.nan, math.nan, math.nan
    w = welch(a[None, :], b[None, :], conf=level)
    return float(w.ratio[0]), float(w.ci_low[0]), float(w.ci_high[0])


# ---------------------------------------------------------------- context

def build_context(frame, files: dict[str, list[RunFiles]], out_dir: Path, *, sources: list[str],
                  jobs: dict[str, dict[str, str]] | None = None,
                  load_warnings: list[str] = (), findings: list = (), comparison: dict | None = None,
                  history: dict | None = None, generated: datetime | None = None,
                  hostview: dict | None = None) -> dict[str, Any]:
    """Everything the template shows, as plain values. `comparison`/`history` are plain dicts
    made by perfsuite.commands.report from perfsuite.analysis.comparison / perfsuite.nightly.history;
    `hostview`: {"profiles": [...], "diffs": [...]} from perfsuite.report.hostview's edges."""
    from perfsuite.report import plots
    from perfsuite.analysis.summary import summarize

    summary = summarize(frame, "iops", "range")
    first = frame.groupby("name", sort=False).first()
    axes = {n: axes_of(n, first.at[n, "dataplane"] if "dataplane" in first else None,
                       first.at[n, "num_queues"] if "num_queues" in first else None) for n in summary["name"]}
    order = sorted(summary["name"], key=lambda n: (axes[n][0], _variant_rank(*axes[n][1:]), n))
    colors = {n: plots.variant_color(axes[n][1], axes[n][2]) for n in order}
    by_name = {n: frame.loc[frame["name"] == n, "iops"].to_numpy(dtype=float) for n in order}

    table, general_notes = _summary_table(summary, order, colors, findings)
    speedups = _speedups(order, axes, by_name)
    lat = _latency(frame, order)
    figures = _figures(frame, files, order, axes, colors, by_name, speedups, lat, comparison, history)

    return {
        "title": "perfsuite report: virtio-blk " + ", ".join(sources),
        "generated": (generated or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M UTC"),
        "sources": sources,
        "n_configs": len(order), "n_runs": int(len(frame)),
        "tcg": _tcg(frame, files),
        "table": table, "general_notes": general_notes, "load_warnings": list(load_warnings),
        "figures": figures, "speedups": [dict(s, text=_fmt_ratio(s)) for s in speedups],
        "latency": lat, "comparison": comparison, "history": history,
        "hostview": _hostview(frame, order, hostview or {}),
        "env": _environment(frame, files, jobs or {}, order),
        "raw": _raw_links(files, order, out_dir, {os.path.abspath(p) for p in frame["path"]} if "path" in frame else None),
    }


def _summary_table(summary, order: list[str], colors: dict, findings) -> tuple[list[dict], list[dict]]:
    """The table's rows (each with its findings) and the findings of no row."""
    notes: dict[str, list[dict[str, str]]] = {}
    for f in findings:
        row = str(getattr(f, "name", None) or getattr(f, "row", "") or "")
        sev = str(getattr(f, "severity", "warning")).lower().rsplit(".", 1)[-1]
        notes.setdefault(row, []).append({"severity": sev, "message": str(getattr(f, "message", f))})
    table = [{
        "name": r.name, "iops": f"{r.mean:,.1f}", "error": "± " + _fmt_err(r.error_pct), "n": int(r.n),
        "color": colors.get(r.name), "notes": notes.pop(str(r.name), []),
    } for r in summary.set_index("name").loc[order].reset_index().itertuples(index=False)]
    for row in table:  # a row is highlighted for warnings, not for informational notes
        row["flagged"] = any(n["severity"] not in ("info", "note") for n in row["notes"])
    return table, [dict(n, row=row) for row, ns in notes.items() for n in ns]


def _figures(frame, files, order, axes, colors, by_name, speedups, lat, comparison, history) -> dict[str, str]:
    """Every plot of the page, as data: URIs."""
    import pandas as pd

    from perfsuite.migrate import plot as migration_plot  # perfsuite migrate's timelines
    from perfsuite.report import plots

    figures: dict[str, str] = {}
    bars = []
    for n in order:
        m, lo, hi = mean_ci(by_name[n])
        bars.append({"group": axes[n][0], "dataplane": axes[n][1], "mq": axes[n][2], "mean": m, "lo": lo, "hi": hi})
    figures["bars"] = _uri(plots.iops_bars(pd.DataFrame(bars)))
    if speedups:
        figures["speedup"] = _uri(plots.speedup(pd.DataFrame(speedups)))
    figures["strip"] = _uri(plots.strip(frame[["name", "iops"]], order, colors))
    if lat["rows"]:
        figures["latency"] = _uri(plots.latency(pd.DataFrame(lat["rows"])))
    if comparison and comparison.get("rows"):
        figures["compare"] = _uri(plots.ratios(pd.DataFrame(comparison["rows"]),
                                               "ratio candidate / baseline (mean IOPS, ×, with CI)",
                                               "Candidate vs baseline"))
    if history and len(history.get("series", ())):
        figures["history"] = _uri(plots.history(history["series"], history["changes"]))
    mig_series = migration_plot.collect(files, order)
    if mig_series:
        figures["migration"] = _uri(migration_plot.timelines(mig_series))
    return figures


def _hostview(frame, order, given: dict) -> dict[str, Any] | None:
    from perfsuite.report import hostview
    return hostview.context(frame, order, given.get("profiles"), given.get("diffs"))


def _speedups(order, axes, by_name) -> list[dict[str, Any]]:
    """mq / no-mq per (group, dataplane): the pair that differs only in multiqueue."""
    rows = []
    for n in order:
        group, dp, mq = axes[n]
        if mq is not True:
            continue
        twin = next((o for o in order if axes[o] == (group, dp, False)), None)
        if twin is None:
            continue
        r, lo, hi = ratio_ci(by_name[n], by_name[twin])
        if math.isfinite(r):
            dp_txt = {True: "dataplane", False: "no dataplane", None: ""}[dp]
            rows.append({"label": f"{group} · {dp_txt}".rstrip(" ·"), "group": group, "dataplane": dp,
                         "mq": n, "no_mq": twin, "ratio": r, "lo": lo, "hi": hi})
    return rows


def _latency(frame, order) -> dict[str, Any]:
    cols = {"p50": "lat_p50_us", "p99": "lat_p99_us", "p999": "lat_p999_us"}
    rows, missing = [], []
    for n in order:
        sub = frame.loc[frame["name"] == n]
        vals = {k: float(sub[c].mean()) if c in sub else math.nan for k, c in cols.items()}
        if all(not math.isfinite(v) for v in vals.values()):
            missing.append(n)
        else:
            rows.append({"name": n, **vals, **{f"{k}_txt": _fmt_us(v) for k, v in vals.items()}})
    return {"rows": rows, "missing": missing}


def _tcg(frame, files) -> dict[str, Any] | None:
    if "accel" not in frame:
        return None
    names = sorted({str(n) for n, a in zip(frame["name"], frame["accel"]) if str(a).lower() == "tcg"})
    if not names:
        return None
    notes = sorted({str(r.meta.get("accel_note")) for n in names for r in files.get(n, ())
                    if r.meta and r.meta.get("accel_note")})
    return {"names": names, "all": len(names) == frame["name"].nunique(), "notes": notes}


# (frame columns, heading); two columns = "asked / seen". The axes' rows come from the
# registry (perfsuite.matrix.axes: `report`, `seen`), between the build facts and the host's.
_ENV_BEFORE = ((("accel",), "Accelerator"), (("qemu_version",), "QEMU"),
               (("guest_kernel",), "Guest kernel"), (("guest_fio_version",), "Guest fio"))
_ENV_AFTER = ((("host_cpu",), "Host CPU"), (("mismatch",), "Mismatch"))


def env_columns() -> tuple[tuple[tuple[str, ...], str], ...]:
    from perfsuite.matrix import axes
    rows = tuple(((a.frame_column, a.seen) if a.seen else (a.frame_column,), a.report)
                 for a in axes.report_axes())
    return (*_ENV_BEFORE, *rows, *_ENV_AFTER)


def _environment(frame, files, jobs, order) -> dict[str, Any]:
    """Facts shared by every config go in a short list; only what differs gets a table column."""
    common: dict[str, str] = {}
    cols: list[tuple[str, dict[str, str]]] = []
    for keys, heading in env_columns():
        if not all(k in frame for k in keys) or not frame[list(keys)].notna().any().any():
            continue
        per = {}
        for n in order:
            sub = frame.loc[frame["name"] == n]
            per[n] = " / ".join(", ".join(sorted({_cell(v) for v in sub[k]})) for k in keys)
        values = set(per.values())
        if keys == ("mismatch",) and values <= {"–"}:
            continue  # nothing asked differed from what the guest saw: no column, no noise
        if len(values) == 1:
            common[heading] = values.pop()
        else:
            cols.append((heading, per))
    host, argv, used = {}, [], []
    for n in order:
        meta = next((r.meta for r in files.get(n, ()) if r.meta), None)
        if meta:
            h = _dict(meta.get("host"))  # a meta of any shape: the report is as tolerant as analyze
            for k, v in (("Host", h.get("hostname")), ("Host CPUs", h.get("cpus")),
                         ("Host kernel", h.get("kernel")), ("Host fio", _dict(meta.get("versions")).get("host_fio"))):
                if v not in (None, ""):
                    host.setdefault(k, set()).add(str(v))
            if meta.get("qemu_argv") and isinstance(meta["qemu_argv"], list):
                argv.append({"name": n, "cmd": format_argv([str(a) for a in meta["qemu_argv"]])})
        if jobs.get(n):
            used.append({"name": n, **jobs[n]})
    # Identical job texts are shown once, with every config that used them.
    merged: dict[str, dict[str, Any]] = {}
    for j in used:
        merged.setdefault(j["text"], {"names": [], "text": j["text"], "source": j["source"]})["names"].append(j["name"])
    facts = [(k, v) for k, v in common.items()] + [(k, ", ".join(sorted(v))) for k, v in host.items()]
    has_meta = any(r.meta for rs in files.values() for r in rs)
    return {"facts": facts, "has_meta": has_meta, "headings": [h for h, _ in cols], "argv": argv, "jobs": list(merged.values()),
            "rows": [{"name": n, "cells": [per[n] for _, per in cols]} for n in order] if cols else []}


def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v) if str(v) != "" else "–"


def format_argv(argv: list[str]) -> str:
    """shlex-quoted, one option per line: copy-pasteable and readable."""
    out = shlex.quote(argv[0]) if argv else ""
    for a in argv[1:]:
        q = shlex.quote(a)
        out += (" \\\n    " + q) if a.startswith("-") else (" " + q)
    return out


def _raw_links(files, order, out_dir: Path, loaded: set[str] | None) -> list[dict[str, Any]]:
    """Per config, each repetition's files as relative links, with its status. A result the
    loader skipped or excluded (unreadable, fio error) is marked, not shown as ok."""
    names = [n for n in order if n in files] + sorted(n for n in files if n not in order)
    out = []
    for n in names:
        runs = []
        for r in files[n]:
            status = (r.meta or {}).get("status") or ("ok" if "json" in r.files else "no result")
            if status == "ok" and loaded is not None and os.path.abspath(r.files.get("json", "")) not in loaded:
                status = "not used"  # the reason is in the data warnings
            links = [{"label": p.name, "href": rel_href(p, out_dir)} for k, p in sorted(r.files.items(), key=lambda kv: ("json", "meta", "log").index(kv[0]))]
            runs.append({"rep": r.rep, "status": status, "links": links,
                         "error": (r.meta or {}).get("error"), "log_tail": r.log_tail,
                         "mismatch": "; ".join(map(str, _list((r.meta or {}).get("mismatch"))))})
        out.append({"name": n, "runs": runs, "failed": sum(r["status"] != "ok" for r in runs)})
    return out


def rel_href(path: Path, out_dir: Path) -> str:
    """Relative URL from the report to a file. Percent-encoding each segment means a name with
    ':' (javascript:), '#', '?' or spaces can never turn into a scheme, fragment or query."""
    rel = os.path.relpath(Path(path).resolve(), Path(out_dir).resolve())
    return "/".join(quote(part, safe="") for part in Path(rel).parts)


def _uri(png: bytes) -> dict[str, Any]:
    """An inline image with its CSS size (pixels / 1.5, see plots.DPI), so the page lays out
    before decoding and shows text at its point size."""
    w, h = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")  # PNG IHDR
    return {"src": "data:image/png;base64," + base64.b64encode(png).decode("ascii"),
            "width": round(w / 1.5), "height": round(h / 1.5)}


def _fmt_err(e: float) -> str:
    return "n/a" if e is None or not math.isfinite(e) else f"{e:.2f}%"


def _fmt_ratio(s: dict[str, Any]) -> str:
    ci = f"[{s['lo']:.2f}, {s['hi']:.2f}]" if math.isfinite(s["lo"]) else "(CI needs ≥ 2 runs each)"
    return f"{s['ratio']:.2f}× {ci}"


def _fmt_us(v: float) -> str:
    if not math.isfinite(v):
        return "–"
    return f"{v:,.0f}" if v >= 100 else f"{v:#.3g}"  # '#': 0.290, not 0.29, so columns align


# ---------------------------------------------------------------- rendering

def render(context: dict[str, Any]) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("perfsuite.report", "templates"),
        autoescape=True,  # everything, whatever the template's extension
        undefined=jinja2.StrictUndefined,  # a typo in a template fails the build, not the reader
        trim_blocks=True, lstrip_blocks=True,
    )
    return env.get_template("index.html.j2").render(**context)
