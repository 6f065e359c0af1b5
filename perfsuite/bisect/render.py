"""A bisect's outcome as plain values (JSON) and as text or markdown tables. Pure."""

from __future__ import annotations

import math
from typing import Any



def _f(v: float | None, fmt: str) -> str:
    return "n/a" if v is None or not math.isfinite(v) else format(v, fmt)


def _c(c) -> dict | None:
    return None if c is None else {"hash": c.hash, "subject": c.subject, "author_date": c.author_date}


def _mean(rows: list[tuple], i: int) -> float | None:
    return sum(r[i] for r in rows) / len(rows) if rows else None


def to_dict(out) -> dict[str, Any]:
    """Everything the text shows, as JSON-ready values."""
    steps = []
    for info, s in out.steps:
        per = []
        for i, name in enumerate(out.configs):
            call = s.calls[i] if i < len(s.calls) else None
            per.append({"config": name, "mean": _mean(s.mid, i),
                        "ratio": call.ratio if call else None,
                        "ci": [call.ci_low, call.ci_high] if call else None,
                        "llr": call.llr if call else None,
                        "error_probability": call.error if call else None})
        steps.append({"commit": _c(info), "decision": s.decision, "reason": s.reason,
                      "boots": s.boots, "midpoint_boots": len(s.mid),
                      "endpoint_boots": s.endpoint_boots, "configs": per})
    conf = None
    if out.confirm is not None:
        conf = {"decision": out.confirm.decision, "boots": out.confirm.boots,
                "configs": [{"config": n, "ratio": c.ratio, "ci": [c.ci_low, c.ci_high],
                             "n_good": c.n_good, "n_bad": c.n_bad}
                            for n, c in zip(out.configs, out.confirm.calls)]}
    p = out.policy
    clean = lambda v: None if isinstance(v, float) and not math.isfinite(v) else v  # noqa: E731
    return _walk({
        "status": out.status, "first_bad": _c(out.first_bad),
        "could_be": [_c(c) for c in out.could_be], "good": _c(out.good), "bad": _c(out.bad),
        "candidates": out.candidates, "metric": out.metric, "configs": out.configs,
        "threshold": p.threshold, "bound": p.bound, "alpha_per_call": p.alpha,
        "stated_bound": out.bound, "step_max": p.step_max, "confirm": conf, "steps": steps,
        "totals": {"builds": out.builds, "boots": out.boots, "wall_s": round(out.wall_s, 1)},
        "levels": out.levels, "note": out.note}, clean)


def _walk(v: Any, f) -> Any:
    if isinstance(v, dict):
        return {k: _walk(x, f) for k, x in v.items()}
    if isinstance(v, list):
        return [_walk(x, f) for x in v]
    return f(v)


def _rows(d: dict) -> tuple[list[str], list[list[str]]]:
    head = ["step", "commit", "subject", "config", "boots", "mean", "ratio to good (95% CI)",
            "decision", "P(wrong)"]
    rows = []
    if d["confirm"]:
        for c in d["confirm"]["configs"]:
            rows.append(["confirm", d["bad"]["hash"][:12], "(bad endpoint)", c["config"],
                         f"{c['n_good']}+{c['n_bad']}", "", _ratio(c["ratio"], c["ci"]),
                         d["confirm"]["decision"], ""])
    for k, s in enumerate(d["steps"], 1):
        for c in s["configs"]:
            rows.append([str(k), s["commit"]["hash"][:12], s["commit"]["subject"][:40], c["config"],
                         f"{s['midpoint_boots']}+{s['endpoint_boots']}", _f(c["mean"], ".1f"),
                         _ratio(c["ratio"], c["ci"]), s["decision"],
                         _f(c["error_probability"], ".2g") if s["decision"] != "skip" else ""])
    return head, rows


def _ratio(r, ci) -> str:
    if r is None:
        return "n/a"
    lo, hi = ci or (None, None)
    return f"{r:.3f} [{_f(lo, '.3f')}, {_f(hi, '.3f')}]"


def headline(d: dict) -> str:
    if d["status"] == "found":
        c = d["first_bad"]
        return (f"first bad commit: {c['hash']} {c['subject']!r} ({c['author_date']}); "
                f"P(wrong commit) <= {d['stated_bound']:.1%} "
                f"({len([s for s in d['steps'] if s['decision'] in ('good', 'bad')])} calls at "
                f"<= {d['alpha_per_call']:.2%} each)")
    if d["status"] == "not reproduced":
        c = d["confirm"]["configs"] if d["confirm"] else []
        figs = "; ".join(f"{x['config']}: bad/good {_ratio(x['ratio'], x['ci'])}" for x in c)
        return (f"not reproduced: the bad commit is not significantly worse than the good one by "
                f"more than {d['threshold']:.0%} ({figs})")
    if d["status"] == "undecided":
        s = d["steps"][-1]
        return (f"undecided at {s['commit']['hash'][:12]} ({s['reason']}): rerun with "
                f"--assume {s['commit']['hash'][:12]}=good or =bad to choose, or raise --step-max")
    return "only skipped commits left; the first bad commit is one of: " + ", ".join(
        c["hash"][:12] for c in d["could_be"])


def _totals(d: dict) -> str:
    t = d["totals"]
    return f"totals: {t['builds']} builds, {t['boots']} boots, {t['wall_s']:.0f} s wall time"


def text(d: dict) -> str:
    head, rows = _rows(d)
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    out = [headline(d), ""] + [line(head)] + [line(r) for r in rows] + ["", _totals(d)]
    out.append("boots: midpoint+endpoint (confirm: good+bad); P(wrong): the call's error probability")
    return "\n".join(out) + "\n"


def markdown(d: dict) -> str:
    head, rows = _rows(d)
    out = [f"**{headline(d)}**", "", "| " + " | ".join(head) + " |",
           "|" + "---|" * len(head)]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(out + ["", _totals(d)]) + "\n"
