"""A Comparison (perfsuite.analysis.comparison) as text: the terminal table, markdown, JSON
and JUnit XML. Pure functions of the Comparison; `compare`, `nightly` and `lab nightly`
print or write them."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET

import numpy as np

from perfsuite.analysis.comparison import Comparison


def _f(v, fmt: str, none: str = "n/a") -> str:
    return none if v is None or not np.isfinite(v) else format(v, fmt)


def _n(units, runs) -> str:
    # "15/3b": 15 runs in 3 boots, the test's n being the 3 boot means.
    units = int(units)
    return f"{int(runs)}/{units}b" if runs is not None and int(runs) > units else str(units)


def _ci(r) -> str:
    if getattr(r, "ci_rays", False):
        return f"<={r.ci_low:.3f} or >={r.ci_high:.3f}"
    if not np.isfinite(r.ci_low) or not np.isfinite(r.ci_high):
        return "unbounded" if np.isinf(r.ci_low) or np.isinf(r.ci_high) else "n/a"
    return f"[{r.ci_low:.3f}, {r.ci_high:.3f}]"


def _cells(c: Comparison) -> tuple[list[str], list[list[str]]]:
    m = c.params.get("metric", "iops")
    level = 1.0 - float(c.params.get("alpha", 0.05))
    head = ["Configuration", f"Base {m}", "n", f"Cand {m}", "n", "Ratio", f"{level:.0%} CI",
            f"p({c.params.get('correction', 'holm')})", "Verdict", "Outliers", "Runs needed"]
    body = []
    for r in c.rows.itertuples():
        body.append([r.config + (" [host]" if getattr(r, "host_diff", "") else ""), _f(r.mean_base, ".1f"), _n(r.n_base, getattr(r, "runs_base", None)),
                     _f(r.mean_cand, ".1f"), _n(r.n_cand, getattr(r, "runs_cand", None)), _f(r.ratio, ".3f"), _ci(r), _f(r.p_adj, ".3g"), r.verdict,
                     f"{int(r.outliers_base)}/{int(r.outliers_cand)}", _f(r.reps_needed, ".0f")])
    return head, body


def _footer(c: Comparison) -> list[str]:
    lines = [f"only in baseline: {n}" for n in c.only_baseline]
    lines += [f"only in candidate: {n}" for n in c.only_candidate]
    k = c.counts
    p = c.params
    lines += [f"warning: {w}" for w in c.warnings if w.startswith(("hosts differ", "runs were not"))]
    lines.append(
        f"{k['regression']} regression, {k['improvement']} improvement, {k['no change']} no change, "
        f"{k['inconclusive']} inconclusive (threshold {p.get('threshold', 0.05):.1%}, {p.get('test')} "
        f"test, {p.get('correction')} correction, alpha {p.get('alpha')})")
    return lines


def render_table(c: Comparison) -> str:
    head, body = _cells(c)
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    fmt = lambda cells: "  ".join(  # noqa: E731 - left-align the name, right-align numbers
        x.ljust(w) if i in (0, 8) else x.rjust(w) for i, (x, w) in enumerate(zip(cells, widths))).rstrip()
    return "\n".join([fmt(head)] + [fmt(b) for b in body] + _footer(c)) + "\n"


def render_markdown(c: Comparison) -> str:
    head, body = _cells(c)
    esc = lambda s: s.replace("|", "\\|")  # noqa: E731
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * 7 + ["---"] * 3) + "|"]
    for b in body:
        b = list(b)
        if b[8] in ("regression", "improvement"):
            b[8] = f"**{b[8]}**"
        out.append("| " + " | ".join(esc(x) for x in b) + " |")
    return "\n".join(out) + "\n\n" + "\n".join(f"- {x}" for x in _footer(c)) + "\n"


def _jsonable(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    return v


def to_dict(c: Comparison) -> dict:
    rows = [{k: _jsonable(v) for k, v in r.items()} for r in c.rows.to_dict(orient="records")]
    return {"params": c.params, "rows": rows, "only_baseline": c.only_baseline,
            "only_candidate": c.only_candidate, "counts": c.counts, "exit_code": c.exit_code,
            "warnings": c.warnings}


def render_json(c: Comparison) -> str:
    return json.dumps(to_dict(c), indent=2, sort_keys=True) + "\n"


def render_junit(c: Comparison) -> str:
    """JUnit XML: a regression is a failure, inconclusive / one-sided rows are skipped."""
    m = c.params.get("metric", "iops")
    suite = ET.Element("testsuite", name=f"perfsuite compare ({m})")
    fails = skips = 0
    for r in c.rows.itertuples():
        tc = ET.SubElement(suite, "testcase", classname=f"perfsuite.compare.{m}", name=r.config)
        msg = (f"{r.verdict}: ratio {_f(r.ratio, '.3f')} CI {_ci(r)} p_adj {_f(r.p_adj, '.3g')} "
               f"(base {_f(r.mean_base, '.1f')} n={int(r.n_base)}, cand {_f(r.mean_cand, '.1f')} "
               f"n={int(r.n_cand)})" + (f"; hosts differ: {r.host_diff}" if getattr(r, "host_diff", "") else ""))
        if r.verdict == "regression":
            fails += 1
            ET.SubElement(tc, "failure", message=msg, type="regression").text = msg
        elif r.verdict == "inconclusive":
            skips += 1
            ET.SubElement(tc, "skipped", message=msg)
        else:
            ET.SubElement(tc, "system-out").text = msg
    for side, names in (("baseline", c.only_baseline), ("candidate", c.only_candidate)):
        for n in names:
            skips += 1
            tc = ET.SubElement(suite, "testcase", classname=f"perfsuite.compare.{m}", name=n)
            ET.SubElement(tc, "skipped", message=f"only in {side}")
    if c.params.get("hosts") or c.params.get("interleaved") is False:
        ET.SubElement(suite, "system-err").text = "\n".join(
            w for w in c.warnings if w.startswith(("hosts differ", "runs were not")))
    suite.set("tests", str(len(c.rows) + len(c.only_baseline) + len(c.only_candidate)))
    suite.set("failures", str(fails))
    suite.set("skipped", str(skips))
    suite.set("errors", "0")
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


RENDERERS = {"table": render_table, "markdown": render_markdown, "json": render_json,
             "junit": render_junit}
