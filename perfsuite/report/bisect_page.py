"""The bisect page: the level of every tested commit in commit order, with the good and bad
bands, and the step table. Its own page (bisect.html), beside the main report, from the
`result.json` values of `perfsuite bisect` (perfsuite.bisect.render.to_dict)."""

from __future__ import annotations

import math
from typing import Any

GOOD, BAD, MID = "#2e7d32", "#c62828", "#1f4e9a"


def _band(values: list[float]) -> tuple[float, float, float] | None:
    """Geometric mean and the range holding ~95% of boots at that level (normal on logs)."""
    logs = [math.log(v) for v in values if v and v > 0]
    if not logs:
        return None
    m = sum(logs) / len(logs)
    sd = math.sqrt(sum((x - m) ** 2 for x in logs) / (len(logs) - 1)) if len(logs) > 1 else 0.0
    return math.exp(m), math.exp(m - 1.96 * sd), math.exp(m + 1.96 * sd)


def levels_png(d: dict[str, Any]) -> bytes:
    from perfsuite.report import plots

    levels = d["levels"]
    configs = d["configs"]
    fig = plots._figure(8.0, 2.6 * len(configs) + 0.6)
    last = max((lv["index"] for lv in levels), default=1)
    ends = {d["good"]["hash"]: GOOD, d["bad"]["hash"]: BAD}
    decided = {s["commit"]["hash"]: s["decision"] for s in d["steps"]}
    for i, name in enumerate(configs):
        ax = fig.add_subplot(len(configs), 1, i + 1)
        for commit, color in ends.items():
            vals = [v[i] for lv in levels if lv["commit"] == commit for v in lv["values"]]
            band = _band(vals)
            if band:
                ax.axhspan(band[1], band[2], color=color, alpha=0.12, lw=0)
                ax.axhline(band[0], color=color, lw=1, alpha=0.7,
                           label=("good" if color == GOOD else "bad") + " level (95% of boots)")
        for lv in levels:
            color = ends.get(lv["commit"]) or {"good": GOOD, "bad": BAD}.get(decided.get(lv["commit"]), MID)
            ys = [v[i] for v in lv["values"]]
            ax.plot([lv["index"]] * len(ys), ys, "o", ms=3.5, color=color, alpha=0.6)
            if ys:
                ax.plot([lv["index"]], [math.exp(sum(map(math.log, ys)) / len(ys))], "_", ms=14,
                        mew=2, color=color)
        ax.set_xlim(-0.5, last + 0.5)
        ax.set_title(plots.text(name), fontsize=10, loc="left")
        ax.set_ylabel(plots.text(d["metric"]))
        ax.yaxis.set_major_formatter(plots.FuncFormatter(plots.si))
        ax.set_xticks([lv["index"] for lv in levels])
        ax.set_xticklabels([lv["commit"][:7] for lv in levels], rotation=45, fontsize=7, ha="right")
        if d.get("first_bad"):
            fb = [lv["index"] for lv in levels if lv["commit"] == d["first_bad"]["hash"]]
            if fb:
                ax.axvline(fb[0] - 0.5, color=BAD, ls="--", lw=1)
        if i == 0:
            ax.legend(fontsize=8, loc="best")
    ax.set_xlabel("commit (in history order from the good one)")
    return plots._png(fig)


def render_page(d: dict[str, Any]) -> str:
    import jinja2

    from perfsuite.bisect import render as R
    from perfsuite.report.html import _uri

    head, rows = R._rows(d)
    env = jinja2.Environment(loader=jinja2.PackageLoader("perfsuite.report", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    img = _uri(levels_png(d)) if d["levels"] else None
    return env.get_template("bisect.html.j2").render(
        headline=R.headline(d), head=head, rows=rows, totals=R._totals(d), image=img,
        good=d["good"], bad=d["bad"], status=d["status"])
