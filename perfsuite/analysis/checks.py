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
* Little's law: IOPS x mean latency is the mean number of I/Os in flight; more
  than numjobs x iodepth is impossible (a broken measurement), far less on a
  job meant to keep the device busy means the guest or fio is the bottleneck.

Pure: the frame in, a list of findings out; nothing is printed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SPREAD_LIMIT_PCT = 10.0     # half-range over mean above which a row is not trusted
LITTLE_TOLERANCE = 0.10     # in-flight estimate may exceed numjobs x iodepth by this much
LITTLE_FLOOR = 0.5          # below this share of numjobs x iodepth: the device is not the limit
BAND_K = 3.0                # plausible band: predicted x exp(+-BAND_K sigma)
MIN_GAIN_TOLERANCE = 0.10


def pair_keys() -> tuple[str, ...]:
    """What must be equal for two rows to be an mq / no-mq pair: every identity column of the
    registry but the queue count (and the binary's path: the version says which build), plus
    the QEMU version and the accelerator."""
    from perfsuite.matrix import axes
    return (*(c for c in axes.identity_columns() if c not in ("num_queues", "qemu")),
            "qemu_version", "accel")


VERSION_COLUMNS = (("qemu_version", "QEMU versions"), ("guest_kernel", "guest kernels"),
                   ("guest_fio_version", "guest fio versions"), ("fio_version", "fio versions"),
                   ("accel", "accelerators"))


@dataclass(frozen=True)
class Finding:
    name: str
    severity: str   # "warning" | "info"
    message: str

    def __str__(self) -> str:
        return f"{self.name}: {self.message}"


def _known(v) -> bool:
    import pandas as pd

    try:
        return not bool(pd.isna(v))
    except (TypeError, ValueError):  # a list-like value: present
        return True


def _int(v):
    if not _known(v):
        return None
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _col(group, col):
    return group[col] if col in group.columns else None


def _first(group, col):
    s = _col(group, col)
    if s is None:
        return None
    s = s[s.map(_known)]
    return s.iloc[0] if len(s) else None


def _fmt(x: float) -> str:
    return f"{x:,.0f}"


def check_runs(frame, model=None) -> list[Finding]:
    """Findings for every run name in ``frame`` (see the module docstring).

    ``model``: a ``perfsuite.model.fit.Model`` or ``FitResult``; None fits one
    on ``frame`` itself (robust fit, so one bad row stands out instead of
    bending the model).
    """
    if frame is None or len(frame) == 0 or "name" not in frame.columns:
        return []
    out: list[Finding] = []
    groups = {str(n): g for n, g in frame.groupby("name", sort=True)}
    for name, g in groups.items():
        out += _guest_view(name, g)
        out += _versions(name, g)
        out += _spread(name, g)
        out += _little(name, g)
    out += _band(frame, groups, model)
    out += _mq_gain(groups)
    rerun = sorted({f.name for f in out if f.severity == "warning" and "re-run" in f.message})
    if rerun:
        out.append(Finding("re-run", "warning", f"{len(rerun)} row(s) too noisy to trust: {', '.join(rerun)}"))
    order = {n: i for i, n in enumerate(groups)}
    out.sort(key=lambda f: (order.get(f.name, len(order)), f.severity != "warning"))
    return out


def _guest_view(name: str, g) -> list[Finding]:
    out = []
    smp, nq = _int(_first(g, "smp")), _int(_first(g, "num_queues"))
    seen_q = sorted({_int(v) for v in (_col(g, "queues_seen") if _col(g, "queues_seen") is not None else [])
                     if _int(v) is not None})
    seen_c = sorted({_int(v) for v in (_col(g, "cpus_seen") if _col(g, "cpus_seen") is not None else [])
                     if _int(v) is not None})
    if smp is not None and nq is not None:
        # Linux virtio_blk: min(num_queues, nr_cpu_ids); nr_cpu_ids = possible CPUs = -smp N.
        expected = min(nq, smp)
        bad = [q for q in seen_q if q != expected]
        if bad:
            out.append(Finding(name, "warning",
                               f"guest saw {'/'.join(map(str, seen_q))} queue(s), expected {expected} "
                               f"= min(num-queues {nq}, vCPUs {smp}); the numbers measure another device"))
        elif nq > smp:
            out.append(Finding(name, "info", f"num-queues {nq} > vCPUs {smp}: the guest driver uses "
                                             f"{smp}, {nq - smp} queue(s) stay idle"))
    if smp is not None:
        bad = [c for c in seen_c if c != smp]
        if bad:
            out.append(Finding(name, "warning", f"guest saw {'/'.join(map(str, seen_c))} CPU(s) online, "
                                                f"asked for {smp}"))
    return out


def _versions(name: str, g) -> list[Finding]:
    out = []
    for col, what in VERSION_COLUMNS:
        s = _col(g, col)
        if s is None:
            continue
        vals = s[s.map(_known)].astype(str)
        counts = vals.value_counts()
        if len(counts) > 1:
            parts = ", ".join(f"{v} ({n})" for v, n in counts.items())
            out.append(Finding(name, "warning", f"mixed {what} under one name: {parts}; "
                                                "split the runs or re-run on one build"))
    return out


def _iops(g) -> np.ndarray:
    x = g["iops"].astype(float).to_numpy()
    return x[np.isfinite(x)]


def _spread(name: str, g) -> list[Finding]:
    from perfsuite.analysis.stats import error_pct

    x = _iops(g)
    if x.size < 2:
        return [Finding(name, "info", f"{x.size} run: spread unknown; run it again to get an error")]
    err = error_pct(x, "range")
    if math.isfinite(err) and err > SPREAD_LIMIT_PCT:
        # "IOPS" and "half-range": the table beside it may show another --metric or --error
        return [Finding(name, "warning", f"IOPS spread ±{err:.1f}% (half-range) over {x.size} runs "
                                         f"(> {SPREAD_LIMIT_PCT:g}%) "
                                         "is too high to trust; re-run (pin vCPUs, quiet host)")]
    return []


def _little(name: str, g) -> list[Finding]:
    cols = ("iops", "lat_mean_us", "numjobs", "iodepth")
    if any(c not in g.columns for c in cols):
        return []
    sub = g[list(cols)].apply(lambda s: s.astype("float64"))
    sub = sub[np.isfinite(sub.to_numpy()).all(axis=1) & (sub["lat_mean_us"] > 0)]
    if sub.empty:
        return []
    inflight = float((sub["iops"] * sub["lat_mean_us"] * 1e-6).mean())
    cap = float((sub["numjobs"] * sub["iodepth"]).max())
    if cap <= 0:
        return []
    if inflight > cap * (1 + LITTLE_TOLERANCE):
        return [Finding(name, "warning",
                        f"broken measurement: IOPS x mean latency = {inflight:.1f} I/Os in flight, "
                        f"more than numjobs x iodepth = {cap:g} allows (Little's law)")]
    if cap >= 2 and inflight < cap * LITTLE_FLOOR:
        return [Finding(name, "info",
                        f"guest or fio is the bottleneck: only {inflight:.1f} of {cap:g} I/Os in flight "
                        "on average (IOPS x mean latency), the device is not kept busy")]
    return []


def _band(frame, groups, model) -> list[Finding]:
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
        pred, sigma, how = predicted[name]
        lo, hi = pred * math.exp(-BAND_K * sigma), pred * math.exp(BAND_K * sigma)
        mean = float(x.mean())
        if not lo <= mean <= hi:
            side = "above" if mean > hi else "below"
            out.append(Finding(name, "warning",
                               f"mean {_fmt(mean)} IOPS is {side} the model's plausible band "
                               f"[{_fmt(lo)}, {_fmt(hi)}] (expected {_fmt(pred)}, {how})"))
    return out


def _mq_gain(groups) -> list[Finding]:
    from perfsuite.model.perf import mq_gain_bound

    def key(g):
        return tuple(str(_first(g, k)) for k in keys if k in g.columns)

    keys = pair_keys()

    single = {}
    for name, g in groups.items():
        if _int(_first(g, "num_queues")) == 1:
            single.setdefault(key(g), (name, g))
    out = []
    for name, g in groups.items():
        nq, smp = _int(_first(g, "num_queues")), _int(_first(g, "smp"))
        if nq is None or smp is None or nq <= 1 or key(g) not in single:
            continue
        base_name, base = single[key(g)]
        a, b = _iops(g), _iops(base)
        if a.size == 0 or b.size == 0 or b.mean() <= 0:
            continue
        gain = a.mean() / b.mean()
        jobs = _int(_first(g, "numjobs"))
        bound = mq_gain_bound(smp, nq, jobs)
        # Noise of the ratio: relative SEMs of both means added in quadrature, x2.
        rel = [x.std(ddof=1) / x.mean() / math.sqrt(x.size) if x.size > 1 else 0.0 for x in (a, b)]
        tol = max(MIN_GAIN_TOLERANCE, 2 * math.hypot(*rel))
        if gain > bound * (1 + tol):
            out.append(Finding(name, "warning",
                               f"multiqueue gain {gain:.2f}x over {base_name} exceeds its bound "
                               f"{bound:g}x = min(num-queues {nq}, vCPUs {smp}, jobs {jobs or smp}); "
                               "one of the two rows is wrong"))
    return out
