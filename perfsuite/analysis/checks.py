"""Plausibility checks on measured runs, backed by the reference model (docs/model.md).

``check_runs(frame)`` takes the results frame of ``perfsuite.analysis.results.load_runs``
(one row per repetition) and returns findings per run name:

* the guest saw a different number of queues than min(num_queues, vCPUs)
  (what Linux's virtio_blk uses) or a different number of CPUs than asked;
* the mean lies outside the fitted performance model's plausible band;
* a multiqueue gain (mq row over its num_queues=1 twin) exceeds
  min(num_queues, vCPUs, fio jobs), beyond the noise of the two means;
* the spread between runs is too high to trust (these rows need re-running);
* runs under one name come from different QEMU / guest kernel / fio versions
  or accelerators;
* the host view (perfsuite.hostview.findings): a saturated IOThread, a noisy host (steal,
  another busy process), and the model's bottleneck stage against the saturated thread;
* Little's law: IOPS x mean latency is the mean number of I/Os in flight; more
  than fio's jobs can hold (the sum over job sections of iodepth x jobs) is impossible (a broken measurement), far less on a
  job meant to keep the device busy means the guest or fio is the bottleneck.

Pure: the results in (plain columns, perfsuite.analysis.runs.Runs, or the same as a
DataFrame), a list of findings out; nothing is printed. pandas only for the model band.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from perfsuite.analysis import plainstats
from perfsuite.analysis.rowfacts import VERSION_COLUMNS, RowFacts, _int, _known, pair_keys, row_facts
from perfsuite.analysis.runs import as_runs

SPREAD_LIMIT_PCT = 10.0     # half-range over mean above which a row is not trusted
LITTLE_TOLERANCE = 0.10     # in-flight estimate may exceed numjobs x iodepth by this much
LITTLE_FLOOR = 0.5          # below this share of numjobs x iodepth: the device is not the limit
BAND_K = 3.0                # plausible band: predicted x exp(+-BAND_K sigma)
MIN_GAIN_TOLERANCE = 0.10


@dataclass(frozen=True)
class Finding:
    name: str
    severity: str   # "warning" | "info"
    message: str
    kind: str = ""    # what was found, for condensing many rows into one line (SUMMARIES)
    detail: str = ""  # the row's own figure, shown beside its name in a condensed line

    def __str__(self) -> str:
        return f"{self.name}: {self.message}"


# kind -> the line that stands for many rows with that finding
SUMMARIES = {
    "spread": f"IOPS spread (half-range) above {SPREAD_LIMIT_PCT:g}% is too high to trust; "
              "re-run (pin vCPUs, quiet host)",
    "single-run": "1 run: spread unknown; run them again to get an error",
    "queues-seen": "the guest saw another number of queues than min(num-queues, vCPUs): "
                   "the numbers measure another device",
    "cpus-seen": "the guest saw another number of CPUs than asked",
    "idle-queues": "num-queues > vCPUs: the guest driver leaves the extra queues idle",
    "mixed": "runs under one name come from different builds, kernels, fio or accelerators; "
             "split the runs or re-run on one build",
    "little-broken": "broken measurement: IOPS x mean latency exceeds numjobs x iodepth (Little's law)",
    "little-bottleneck": "guest or fio is the bottleneck: far fewer I/Os in flight than fio could keep",
    "band": "outside the model's plausible band",
    "mq-gain": "multiqueue gain exceeds its bound min(num-queues, vCPUs, jobs); one of the two rows is wrong",
}
CONDENSE_OVER = 3   # more rows than this with one kind of finding: one line for all of them


def condense(findings: list[Finding], max_names: int | None = 8) -> list[str]:
    """Lines to print: a finding alone as it is; more than CONDENSE_OVER rows with the same
    kind and severity as one line, `N rows: SUMMARY: name (detail), ...` naming at most
    `max_names` of them (None: all). Order: first appearance of each kind."""
    groups: dict[tuple[str, str], list[Finding]] = {}
    spread = sum(f.kind == "spread" for f in findings)
    if spread > CONDENSE_OVER:  # the condensed spread line names the rows to re-run already
        findings = [f for f in findings if f.name != "re-run"]
    for f in findings:
        groups.setdefault((f.kind or f"one:{id(f)}", f.severity), []).append(f)
    lines = []
    for (kind, severity), fs in groups.items():
        if len(fs) <= CONDENSE_OVER or kind not in SUMMARIES:
            lines += [f"{severity}: {f}" for f in fs]
            continue
        shown = fs if max_names is None else fs[:max_names]
        names = ", ".join(f"{f.name} ({f.detail})" if f.detail else f.name for f in shown)
        more = f" and {len(fs) - len(shown)} more (--verbose lists them all)" if len(shown) < len(fs) else ""
        lines.append(f"{severity}: {len(fs)} rows: {SUMMARIES[kind]}: {names}{more}")
    return lines


def _fmt(x: float) -> str:
    return f"{x:,.0f}"


def check_runs(frame, model=None, band: bool | None = None) -> list[Finding]:
    """Findings for every run name in ``frame`` (see the module docstring).

    ``band``: hold every row against the reference model. With ``model`` (a
    ``perfsuite.model.fit.Model`` or ``FitResult``) that costs nothing; without one it fits a
    model on ``frame`` itself (cross-validated, so one bad row stands out instead of bending
    the model), which costs about a second per ten configurations: the analyzer's table
    asks for it only with --model. Default: on when a model is given.
    """
    if frame is None or len(frame) == 0 or "name" not in frame.columns:
        return []
    runs = as_runs(frame)
    band = model is not None if band is None else band
    facts = row_facts(runs)
    out: list[Finding] = []
    for f in facts.values():
        out += _guest_view(f)
        out += _versions(f)
        out += _spread(f)
        out += _little(f)
    # the host view (perfsuite.hostview): only frames that carry it pay for the groups
    host_groups = ({n: runs.take(idx) for n, idx in runs.groups("name").items()}
                   if runs.any_known("cpu_vcpu_pct") else {})
    for name, g in host_groups.items():
        out += _host(name, g)
    if band:
        stages: dict[str, str] = {}
        frame = runs.to_frame()
        out += _band(frame, {str(n): g for n, g in frame.groupby("name", sort=True)}, model, stages)
        out += _model_vs_threads(host_groups, stages)
    out += _mq_gain(facts)
    rerun = sorted({f.name for f in out if f.severity == "warning" and "re-run" in f.message})
    if rerun:
        listed = ", ".join(rerun[:8]) + (f" and {len(rerun) - 8} more" if len(rerun) > 8 else "")
        out.append(Finding("re-run", "warning", f"{len(rerun)} row(s) too noisy to trust: {listed}"))
    order = {n: i for i, n in enumerate(facts)}
    out.sort(key=lambda f: (order.get(f.name, len(order)), f.severity != "warning"))
    return out


def _guest_view(f: RowFacts) -> list[Finding]:
    out, name = [], f.name
    smp, nq = _int(f.first.get("smp")), _int(f.first.get("num_queues"))
    seen_q = sorted({q for v in f.distinct.get("queues_seen", ()) if (q := _int(v)) is not None})
    seen_c = sorted({c for v in f.distinct.get("cpus_seen", ()) if (c := _int(v)) is not None})
    if smp is not None and nq is not None:
        # Linux virtio_blk: min(num_queues, nr_cpu_ids); nr_cpu_ids = possible CPUs = -smp N.
        expected = min(nq, smp)
        bad = [q for q in seen_q if q != expected]
        if bad:
            out.append(Finding(name, "warning",
                               f"guest saw {'/'.join(map(str, seen_q))} queue(s), expected {expected} "
                               f"= min(num-queues {nq}, vCPUs {smp}); the numbers measure another device",
                               "queues-seen", f"{'/'.join(map(str, seen_q))} of {expected}"))
        elif nq > smp:
            out.append(Finding(name, "info", f"num-queues {nq} > vCPUs {smp}: the guest driver uses "
                                             f"{smp}, {nq - smp} queue(s) stay idle",
                               "idle-queues", f"{nq - smp} idle"))
    if smp is not None:
        bad = [c for c in seen_c if c != smp]
        if bad:
            out.append(Finding(name, "warning", f"guest saw {'/'.join(map(str, seen_c))} CPU(s) online, "
                                                f"asked for {smp}", "cpus-seen",
                               f"{'/'.join(map(str, seen_c))} of {smp}"))
    return out


def _versions(f: RowFacts) -> list[Finding]:
    out = []
    for col, what in VERSION_COLUMNS:
        counts = f.distinct.get(col, {})
        if len(counts) > 1:
            parts = ", ".join(f"{v} ({n})" for v, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
            out.append(Finding(f.name, "warning", f"mixed {what} under one name: {parts}; "
                                                  "split the runs or re-run on one build", "mixed", what))
    return out


def _spread(f: RowFacts) -> list[Finding]:
    x, name = f.iops, f.name
    if len(x) < 2:
        return [Finding(name, "info", f"{len(x)} run: spread unknown; run it again to get an error",
                        "single-run")]
    err = plainstats.error_pct(x, "range")
    if math.isfinite(err) and err > SPREAD_LIMIT_PCT:
        # "IOPS" and "half-range": the table beside it may show another --metric or --error
        return [Finding(name, "warning", f"IOPS spread ±{err:.1f}% (half-range) over {len(x)} runs "
                                         f"(> {SPREAD_LIMIT_PCT:g}%) "
                                         "is too high to trust; re-run (pin vCPUs, quiet host)",
                         "spread", f"±{err:.1f}%")]
    return []


def _little(f: RowFacts) -> list[Finding]:
    inflight, cap, name = f.inflight, f.cap, f.name
    if inflight is None or cap is None or cap <= 0:
        return []
    if inflight > cap * (1 + LITTLE_TOLERANCE):
        return [Finding(name, "warning",
                        f"broken measurement: IOPS x mean latency = {inflight:.1f} I/Os in flight, "
                        f"more than numjobs x iodepth = {cap:g} allows (Little's law)",
                        "little-broken", f"{inflight:.1f} > {cap:g}")]
    if cap >= 2 and inflight < cap * LITTLE_FLOOR:
        return [Finding(name, "info",
                        f"guest or fio is the bottleneck: only {inflight:.1f} of {cap:g} I/Os in flight "
                        "on average (IOPS x mean latency), the device is not kept busy",
                        "little-bottleneck", f"{inflight:.1f} of {cap:g}")]
    return []


def _iops(g):
    import numpy as np

    x = g["iops"].astype(float).to_numpy()
    return x[np.isfinite(x)]


def _dataplane(g):
    """The first known dataplane value of a name's runs (a Runs view or a DataFrame group)."""
    values = g["dataplane"] if "dataplane" in g.columns else []
    return next((v for v in values if _known(v)), None)


def _host(name: str, g) -> list[Finding]:
    from perfsuite.hostview.findings import host_findings
    return [Finding(name, sev, msg) for sev, msg in host_findings(g, _dataplane(g))]


def _model_vs_threads(groups, stages: dict[str, str]) -> list[Finding]:
    from perfsuite.hostview.findings import bottleneck_finding
    return [Finding(name, sev, msg) for name, g in groups.items()
            for sev, msg in bottleneck_finding(g, _dataplane(g), stages.get(name))]


def _band(frame, groups, model, stages: dict[str, str] | None = None) -> list[Finding]:
    """Results the model cannot explain.

    With a given model: outside its band, predicted x exp(+-BAND_K sigma).
    Without one: each configuration is predicted by a fit on the others
    (cross-validation), and flagged when it is more than BAND_K robust
    standard errors away; accelerators with too few configurations for that
    fall back to the unfitted priors and their wide band.
    """
    from perfsuite.model.fit import (FitResult, Model, UNFITTED_SIGMA, config_of, cross_validate,
                                     rows_from_frame)

    if isinstance(model, FitResult):
        model = model.model
    predicted: dict[str, tuple[float, float, str]] = {}   # name -> (prediction, sigma, how)
    if model is None:
        rows, _ = rows_from_frame(frame)
        cv_rows, sigma = cross_validate(rows)
        for r in cv_rows:
            predicted[r.row.name] = (r.predicted, sigma[r.row.cfg.accel],
                                     f"predicted from the other {r.row.cfg.accel} configurations")
            if stages is not None:
                stages[r.row.name] = r.bottleneck
        model = Model()
    out = []
    for name, g in groups.items():
        cfg, _ = config_of(g)
        x = _iops(g)
        if cfg is None or x.size == 0:
            continue
        if name not in predicted:
            fitted = model.fitted.get(cfg.accel)
            predicted[name] = (model.predict(cfg), model.sigma.get(cfg.accel, UNFITTED_SIGMA),
                               f"{'fitted' if fitted else 'default, unfitted'} {cfg.accel} model")
            if stages is not None:
                from perfsuite.model.perf import predict as predict_stages
                stages[name] = predict_stages(cfg, model.params_for(cfg.accel)).bottleneck
        pred, sigma, how = predicted[name]
        lo, hi = pred * math.exp(-BAND_K * sigma), pred * math.exp(BAND_K * sigma)
        mean = float(x.mean())
        if not lo <= mean <= hi:
            side = "above" if mean > hi else "below"
            out.append(Finding(name, "warning",
                               f"mean {_fmt(mean)} IOPS is {side} the model's plausible band "
                               f"[{_fmt(lo)}, {_fmt(hi)}] (expected {_fmt(pred)}, {how})",
                               "band", f"{mean / pred:.2f}x expected"))
    return out


def _mq_gain(facts: dict[str, RowFacts]) -> list[Finding]:
    from perfsuite.model.perf import mq_gain_bound

    keys = pair_keys()

    def key(f: RowFacts):
        return tuple(str(f.first.get(k)) for k in keys if k in f.first)

    from perfsuite.matrix.axes import multiqueue

    single = {}   # the one-queue twins
    for f in facts.values():
        if multiqueue(f.first.get("num_queues")) is False:
            single.setdefault(key(f), f)
    out = []
    for f in facts.values():
        nq, smp = _int(f.first.get("num_queues")), _int(f.first.get("smp"))
        if nq is None or smp is None or not multiqueue(nq) or key(f) not in single:
            continue
        base = single[key(f)]
        a, b = f.iops, base.iops
        if not a or not b or plainstats.mean(b) <= 0:
            continue
        gain = plainstats.mean(a) / plainstats.mean(b)
        jobs = _int(f.first.get("numjobs"))
        bound = mq_gain_bound(smp, nq, jobs)
        # Noise of the ratio: relative SEMs of both means added in quadrature, x2.
        rel = [plainstats.std(x) / plainstats.mean(x) / math.sqrt(len(x)) if len(x) > 1 else 0.0
               for x in (a, b)]
        tol = max(MIN_GAIN_TOLERANCE, 2 * math.hypot(*rel))
        if gain > bound * (1 + tol):
            out.append(Finding(f.name, "warning",
                               f"multiqueue gain {gain:.2f}x over {base.name} exceeds its bound "
                               f"{bound:g}x = min(num-queues {nq}, vCPUs {smp}, jobs {jobs or smp}); "
                               "one of the two rows is wrong", "mq-gain", f"{gain:.2f}x > {bound:g}x"))
    return out
