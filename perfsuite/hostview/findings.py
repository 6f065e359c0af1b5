"""What the host view says about a run name's repetitions (pure; perfsuite.analysis.checks
turns these into Findings).

* an IOThread (or, without dataplane, the main loop) at >= SATURATED % of a core: the
  handler is the bottleneck, and a multiqueue gain is bounded by it;
* host steal >= STEAL_PCT or another process at >= OTHER_PCT of a core: a noisy host,
  re-run;
* the reference model's bottleneck stage against the measured saturated thread.
"""

from __future__ import annotations

import math
from typing import Any

SATURATED = 95.0     # % of one core: the thread had no time left
STEAL_PCT = 5.0      # % of all host cores stolen by the hypervisor
OTHER_PCT = 20.0     # % of one core used by a process other than QEMU

Raw = tuple[str, str]   # (severity, message)


def _vals(g, col: str) -> list[float]:
    if col not in g.columns:
        return []
    out = []
    for v in g[col]:
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            out.append(f)
    return out


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def measured_bottleneck(g, dataplane: Any) -> tuple[str, float] | None:
    """("handler"|"vcpu", mean % of a core) of the saturated thread role, or None."""
    io, main, vcpu = (_mean(_vals(g, c)) for c in ("cpu_iothread_pct", "cpu_main_pct", "cpu_vcpu_pct"))
    if io is not None and io >= SATURATED:
        return "handler", io
    if not dataplane and main is not None and main >= SATURATED:
        return "handler", main
    if vcpu is not None and vcpu >= SATURATED:
        return "vcpu", vcpu
    return None


def host_findings(g, dataplane: Any) -> list[Raw]:
    out: list[Raw] = []
    io = _mean(_vals(g, "cpu_iothread_pct"))
    if io is not None and io >= SATURATED:
        out.append(("info", f"IOThread saturated: {io:.0f}% of a core on average in the measured "
                            "window; the handler is the bottleneck, and a multiqueue gain is "
                            "bounded by it (more IOThreads, iothread-vq-mapping, would lift it)"))
    main = _mean(_vals(g, "cpu_main_pct"))
    if not dataplane and main is not None and main >= SATURATED:
        out.append(("info", f"main loop saturated: {main:.0f}% of a core on average; without an "
                            "IOThread it is the handler, and the bottleneck"))
    steal = _vals(g, "steal_pct")
    if steal and max(steal) >= STEAL_PCT:
        out.append(("warning", f"noisy host: steal up to {max(steal):.1f}% of the host's CPU "
                               f"(>= {STEAL_PCT:g}%) while it measured; re-run on a quiet host"))
    if "host_other_pct" in g.columns:
        worst = None
        for rep, pct, who in zip(g["rep"], g["host_other_pct"], g.get("host_other", g["rep"])):
            try:
                pct = float(pct)
            except (TypeError, ValueError):
                continue
            if math.isfinite(pct) and pct >= OTHER_PCT and (worst is None or pct > worst[1]):
                worst = (rep, pct, who)
        if worst:
            out.append(("warning", f"noisy host: another process, {worst[2]}, used {worst[1]:.0f}% "
                                   f"of a core during repetition {worst[0]} (>= {OTHER_PCT:g}%); "
                                   "re-run on a quiet host"))
    return out


def bottleneck_finding(g, dataplane: Any, model_stage: str | None) -> list[Raw]:
    """The model's bottleneck stage vs the measured saturated thread (when both are known)."""
    if model_stage is None or "cpu_vcpu_pct" not in g.columns or not _vals(g, "cpu_vcpu_pct"):
        return []
    got = measured_bottleneck(g, dataplane)
    seen = f"{got[0]} thread at {got[1]:.0f}% of a core" if got else "no QEMU thread saturated"
    if got is None and model_stage in ("latency", "host_cpus", "virtqueue"):
        return []   # stages that saturate no single thread: nothing to hold against
    busy = _mean(_vals(g, "host_busy_pct"))
    if got is None and busy is not None and busy >= SATURATED:
        # every host core was busy: the scheduler, not the workload, set the threads' shares
        return [("info", f"model's bottleneck stage is '{model_stage}'; not held against the "
                         f"threads: the host's CPUs were {busy:.0f}% busy, no thread could saturate")]
    if got is not None and got[0] == model_stage:
        return [("info", f"model's bottleneck stage and measurement agree: the {model_stage} "
                         f"({seen})")]
    return [("info", f"model's bottleneck stage is '{model_stage}', measured: {seen}; "
                     "one of the two is wrong for this configuration")]




BUSY_DIFF = 20.0     # points of host busy % between the two sides of a comparison


def _load_of(df, name: str) -> dict[str, float | None]:
    g = df[df["name"].astype(str) == name]
    return {c: _mean(_vals(g, c)) for c in ("host_busy_pct", "steal_pct", "host_other_pct")}


def _noisy(load: dict[str, float | None]) -> bool:
    return ((load["steal_pct"] or 0.0) >= STEAL_PCT) or ((load["host_other_pct"] or 0.0) >= OTHER_PCT)


def _describe(load: dict[str, float | None]) -> str:
    def f(v):
        return "?" if v is None else f"{v:.0f}%"
    return (f"host {f(load['host_busy_pct'])} busy, steal {f(load['steal_pct'])}, "
            f"busiest other process {f(load['host_other_pct'])} of a core")


def host_load_differs(rows, base, cand) -> list[str]:
    """compare's warnings: a configuration whose baseline and candidate ran under different
    host load (one side noisy and the other not, or host busy % apart by >= BUSY_DIFF)."""
    if rows is None or not len(rows) or "host_busy_pct" not in base.columns \
            or "host_busy_pct" not in cand.columns:
        return []
    out = []
    for r in rows.itertuples(index=False):
        a, b = _load_of(base, str(r.name_base)), _load_of(cand, str(r.name_cand))
        if a["host_busy_pct"] is None or b["host_busy_pct"] is None:
            continue
        if _noisy(a) != _noisy(b) or abs(a["host_busy_pct"] - b["host_busy_pct"]) >= BUSY_DIFF:
            out.append(f"{r.config}: baseline and candidate ran under different host load "
                       f"(baseline: {_describe(a)}; candidate: {_describe(b)}); "
                       "the ratio may measure the host, not the builds")
    return out
