"""Summary frame -> text: the seed's table, CSV, JSON, Markdown. Pure functions, no I/O.

The table layout is the contract of `./analyze.py runs/` (DESIGN.md):

    Name                                   IOPS   Error
    v4-smp-4-dataplane               13326598.0 ± 6.31%

name left-aligned in 30 columns, a space, the mean with one decimal right-aligned in
12, " ± ", the error with two decimals and "%" ("n/a" for a single run). Longer names
or numbers widen their column for every row, so the table stays aligned.

The summary is perfsuite.analysis.summary.summary_runs' plain columns or the same as a
DataFrame (summarize); no pandas is imported here.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

from perfsuite.analysis.runs import Runs, as_runs

FORMATS = ("table", "csv", "json", "markdown")
NAME_WIDTH = 30
VALUE_WIDTH = 12


def render(summary, fmt: str = "table", *, label: str = "IOPS", show_n: bool = False,
           metric: str = "iops", error: str = "range") -> str:
    """Dispatch on fmt. CSV and JSON always carry n (machine readers want it)."""
    summary = as_runs(summary)
    if fmt == "table":
        return render_table(summary, label=label, show_n=show_n)
    if fmt == "markdown":
        return render_markdown(summary, label=label, show_n=show_n)
    if fmt == "csv":
        return render_csv(summary)
    if fmt == "json":
        return render_json(summary, metric=metric, error=error)
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def format_mean(mean: float) -> str:
    return f"{mean:.1f}"


def format_error(err: float) -> str:
    return "n/a" if err is None or not math.isfinite(err) else f"{err:.2f}%"


def _rows(summary: Runs, cols: list[str]) -> list[tuple]:
    return list(zip(*(summary[c] for c in cols))) if len(summary) else []


def render_table(summary, *, label: str = "IOPS", show_n: bool = False) -> str:
    summary = as_runs(summary)
    names = [str(n) for n in summary["name"]]
    means = [format_mean(m) for m in summary["mean"]]
    errors = [format_error(e) for e in summary["error_pct"]]
    nw = max([NAME_WIDTH, *map(len, names)])
    vw = max([VALUE_WIDTH, len(label), *map(len, means)])
    if not show_n:
        lines = [f"{'Name':<{nw}} {label:>{vw}}   Error"]
        lines += [f"{n:<{nw}} {m:>{vw}} ± {e}" for n, m, e in zip(names, means, errors)]
        return "\n".join(lines) + "\n"
    # With n, the error column is padded so that n lines up.
    counts = [str(int(c)) for c in summary["n"]]
    ew = max([len("Error"), *map(len, errors)])
    cw = max([1, *map(len, counts)])
    lines = [f"{'Name':<{nw}} {label:>{vw}}   {'Error':>{ew}}  {'n':>{cw}}"]
    lines += [f"{n:<{nw}} {m:>{vw}} ± {e:>{ew}}  {c:>{cw}}" for n, m, e, c in zip(names, means, errors, counts)]
    return "\n".join(lines) + "\n"


def render_markdown(summary, *, label: str = "IOPS", show_n: bool = False) -> str:
    head = ["Name", label, "Error"] + (["n"] if show_n else [])
    align = ["---", "---:", "---:"] + (["---:"] if show_n else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    for name, mean, err, n in _rows(as_runs(summary), ["name", "mean", "error_pct", "n"]):
        cells = [_md_escape(str(name)), format_mean(mean), "± " + format_error(err)]
        if show_n:
            cells.append(str(int(n)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render_csv(summary) -> str:
    summary = as_runs(summary)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    host = _host_columns(summary)
    w.writerow(["name", "mean", "error_pct", "n", *host])
    for name, mean, err, n, *hv in _rows(summary, ["name", "mean", "error_pct", "n", *host]):
        w.writerow([name, repr(float(mean)), "" if not math.isfinite(err) else repr(float(err)), int(n),
                    *("" if (v := _num(x)) is None else v for x in hv)])
    return buf.getvalue()


def _host_columns(summary: Runs) -> list[str]:
    """The host-view columns (perfsuite.hostview) the summary has: only runs sampled so."""
    from perfsuite.analysis.summary import HOST_SUMMARY_COLUMNS
    return [c for c in HOST_SUMMARY_COLUMNS if c in summary.columns]


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return round(f, 2) if math.isfinite(f) else None


def render_json(summary, *, metric: str = "iops", error: str = "range") -> str:
    import orjson

    summary = as_runs(summary)
    host = _host_columns(summary)
    rows: list[dict[str, Any]] = [
        {
            "name": str(name),
            "mean": float(mean),
            "error_pct": float(err) if math.isfinite(err) else None,
            "n": int(n),
            **{c: _num(x) for c, x in zip(host, hv)},
        }
        for name, mean, err, n, *hv in _rows(summary, ["name", "mean", "error_pct", "n", *host])
    ]
    doc = {"metric": metric, "error": error, "rows": rows}
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE).decode()


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|")
