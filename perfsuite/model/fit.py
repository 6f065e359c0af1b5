"""Fit the performance model's stage costs to measured runs.

Input: the results frame of ``perfsuite.analysis.results.load_runs`` (one row per
repetition).  Each run name is one configuration; its mean IOPS is what the
model has to explain.  The fit is a least-squares problem in log space (an
error of 10% counts the same at 10k and at 1M IOPS), one parameter set per
accelerator, with two safeguards:

* priors pulling every log-parameter toward the defaults: a weak one
  (``prior_weight`` per unit of log) on the four costs a matrix like the
  seed's can tell apart (FREE_PARAMS: guest CPU per request, handler
  emulation, the contended queue-lock section, the BQL share), a strong one
  (``HELD_WEIGHT``) on the other six (exit, interrupt and notify costs, EVENT_IDX
  batching, backend latency, the IOThread hand-off), which ~6 configurations
  at one queue depth cannot separate from the first four: ten free
  parameters on six points fit noise, and their held-out error shows it;
* a robust loss (soft L1), so that one broken configuration does not bend
  the model toward itself and hide from the plausibility check.

The result reports per configuration predicted vs measured and, overall, the
RMS of log(predicted / measured) ("typical error"), the mean absolute
percentage error and R^2 of log IOPS.  ``sigma`` (the RMS log error, floored)
gives the plausible band the checks use: predicted x exp(+-k sigma).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from perfsuite.analysis.stats import error_pct

from .perf import DEFAULTS, FRACTIONS, PARAM_NAMES, Params, PerfConfig, params_from_vector, \
    params_to_vector, predict

# Fitted with a weak prior; the others are held near the priors (strong prior).
FREE_PARAMS = ("guest_us", "emul_us", "lock_us", "bql_share")
HELD_WEIGHT = 3.0
MIN_SIGMA = 0.10       # no band narrower than +-10% per sigma: run-to-run noise alone is ~5%
UNFITTED_SIGMA = 0.7   # defaults only (nothing fitted): a factor of ~2 per sigma
TIME_BOUNDS = (math.log(1e-3), math.log(1e5))
FRACTION_BOUNDS = (math.log(1e-3), 0.0)


@dataclass
class ConfigRow:
    name: str
    cfg: PerfConfig
    measured: float     # mean IOPS over the repetitions
    n: int
    sem_rel: float = math.nan   # standard error of that mean / the mean (noise floor)


@dataclass
class RowFit:
    row: ConfigRow
    predicted: float
    bottleneck: str

    @property
    def error_pct(self) -> float:
        return 100.0 * (self.predicted - self.row.measured) / self.row.measured


@dataclass
class Model:
    """Fitted parameters per accelerator plus how far off the fit typically is."""

    params: dict[str, Params] = field(default_factory=lambda: dict(DEFAULTS))
    sigma: dict[str, float] = field(default_factory=dict)
    fitted: dict[str, bool] = field(default_factory=dict)

    def params_for(self, accel: str) -> Params:
        return self.params.get(accel) or DEFAULTS.get(accel) or DEFAULTS["kvm"]

    def predict(self, cfg: PerfConfig) -> float:
        return predict(cfg, self.params_for(cfg.accel)).iops

    def band(self, cfg: PerfConfig, k: float = 3.0) -> tuple[float, float]:
        """The plausible range for a measured mean: predicted x exp(+-k sigma)."""
        s = self.sigma.get(cfg.accel, UNFITTED_SIGMA)
        x = self.predict(cfg)
        return x * math.exp(-k * s), x * math.exp(k * s)


@dataclass
class FitResult:
    model: Model
    rows: list[RowFit]
    notes: list[str]

    def _logs(self) -> np.ndarray:
        return np.array([math.log(r.predicted / r.row.measured) for r in self.rows])

    @property
    def rms_log(self) -> float:
        d = self._logs()
        return float(np.sqrt(np.mean(d ** 2))) if d.size else math.nan

    @property
    def mape(self) -> float:
        return float(np.mean([abs(r.error_pct) for r in self.rows])) if self.rows else math.nan

    @property
    def noise_floor(self) -> float:
        """RMS over configurations of the relative SEM of the measured means:
        an error the model cannot (and should not) go below."""
        v = [r.row.sem_rel for r in self.rows if math.isfinite(r.row.sem_rel)]
        return float(np.sqrt(np.mean(np.square(v)))) if v else math.nan

    @property
    def r2_log(self) -> float:
        y = np.log([r.row.measured for r in self.rows])
        if y.size < 2 or np.var(y) == 0:
            return math.nan
        return float(1.0 - np.mean(self._logs() ** 2) / np.var(y))


def _bool(v) -> bool | None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, str):
        return v.strip().lower() in ("1", "true", "yes", "on")
    return bool(v)


def _int(v) -> int | None:
    try:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return None
        return int(v)
    except (TypeError, ValueError):
        return None


def config_of(group, host_cpus: int | None = None) -> tuple[PerfConfig | None, str]:
    """The PerfConfig of one run name's rows, or None and why not."""
    first = group.iloc[0]
    smp = _int(first.get("smp"))
    nq = _int(first.get("num_queues"))
    if smp is None or nq is None:
        return None, "no meta.json with smp and num_queues"
    dp = _bool(first.get("dataplane"))
    accel = first.get("accel") if isinstance(first.get("accel"), str) else "kvm"
    hc = host_cpus if host_cpus is not None else _int(first.get("host_cpus"))
    try:
        cfg = PerfConfig(
            smp=smp, num_queues=nq, dataplane=bool(dp), accel=accel,
            numjobs=_int(first.get("numjobs")) or smp,
            iodepth=_int(first.get("iodepth")) or 1,
            iothreads=_int(first.get("iothreads")) or 1,
            queue_size=_int(first.get("queue_size")) or 256,
            host_cpus=hc,
        )
    except ValueError as e:
        return None, str(e)
    return cfg, ""


def rows_from_frame(frame, host_cpus: int | None = None) -> tuple[list[ConfigRow], list[str]]:
    """One ConfigRow per run name with a usable config and a positive mean IOPS."""
    rows: list[ConfigRow] = []
    notes: list[str] = []
    if frame is None or len(frame) == 0:
        return rows, ["no runs"]
    for name, group in frame.groupby("name", sort=True):
        iops = group["iops"].astype(float)
        iops = iops[np.isfinite(iops) & (iops > 0)]
        if iops.empty:
            notes.append(f"{name}: skipped (no positive IOPS)")
            continue
        cfg, why = config_of(group, host_cpus)
        if cfg is None:
            notes.append(f"{name}: skipped ({why})")
            continue
        sem = error_pct(iops.to_numpy(), "sem") / 100.0  # relative; NaN with one run
        rows.append(ConfigRow(str(name), cfg, float(iops.mean()), int(iops.size), sem))
    return rows, notes


def fit(rows: list[ConfigRow], prior: dict[str, Params] | None = None,
        prior_weight: float = 0.1) -> FitResult:
    """Fit one Params per accelerator present in ``rows`` (see the module docstring)."""
    from scipy.optimize import least_squares

    prior = prior or DEFAULTS
    model = Model(params=dict(prior))
    notes: list[str] = []
    by_accel: dict[str, list[ConfigRow]] = {}
    for r in rows:
        by_accel.setdefault(r.cfg.accel, []).append(r)
    for accel, group in sorted(by_accel.items()):
        p0 = prior.get(accel) or prior.get("kvm") or DEFAULTS["kvm"]
        theta0 = np.array(params_to_vector(p0))
        lo = np.array([FRACTION_BOUNDS[0] if k in FRACTIONS else TIME_BOUNDS[0] for k in PARAM_NAMES])
        hi = np.array([FRACTION_BOUNDS[1] if k in FRACTIONS else TIME_BOUNDS[1] for k in PARAM_NAMES])
        theta0 = np.clip(theta0, lo, hi)
        y = np.log([r.measured for r in group])
        w = np.sqrt([r.n for r in group]) / math.sqrt(max(r.n for r in group))
        pw = np.array([prior_weight if k in FREE_PARAMS else max(prior_weight, HELD_WEIGHT)
                       for k in PARAM_NAMES])

        def residuals(theta, group=group, y=y, w=w, pw=pw, theta0=theta0):
            p = params_from_vector(theta)
            pred = np.log([predict(r.cfg, p).iops for r in group])
            return np.concatenate([(pred - y) * w, pw * (theta - theta0)])

        sol = least_squares(residuals, theta0, bounds=(lo, hi), loss="soft_l1", f_scale=0.1,
                            max_nfev=2000)
        model.params[accel] = params_from_vector(sol.x)
        model.fitted[accel] = True
        d = np.log([predict(r.cfg, model.params[accel]).iops for r in group]) - y
        # With fewer than two configurations per free parameter the in-sample
        # error flatters the model; widen it by sqrt(n / (n - k_eff)), k_eff ~ n/2.
        inflate = math.sqrt(2.0) if len(group) < 2 * len(FREE_PARAMS) else 1.0
        model.sigma[accel] = max(MIN_SIGMA, float(np.sqrt(np.mean(d ** 2))) * inflate)
        if len(group) < 3:
            notes.append(f"{accel}: only {len(group)} configuration(s); parameters stay near the priors")
    fitted_rows = []
    for r in rows:
        pr = predict(r.cfg, model.params_for(r.cfg.accel))
        fitted_rows.append(RowFit(r, pr.iops, pr.bottleneck))
    return FitResult(model, fitted_rows, notes)


def fit_frame(frame, host_cpus: int | None = None, **kw) -> FitResult:
    rows, notes = rows_from_frame(frame, host_cpus)
    res = fit(rows, **kw)
    res.notes = notes + res.notes
    return res


MIN_CROSS_CONFIGS = 4   # fewer configurations per accelerator: no cross-validation
MAX_FOLDS = 8


def cross_validate(rows: list[ConfigRow], prior_weight: float = 0.1) -> tuple[list[RowFit], dict[str, float]]:
    """Predict every configuration from a fit on the *other* configurations.

    An in-sample fit of a 4-parameter model to ~6 configurations can absorb
    one wrong result entirely; predicting each configuration without it (k-fold,
    k = min(n, 8), folds taken round-robin) cannot.  Returns the out-of-fold
    predictions and, per accelerator, a robust scale of their log errors
    (1.4826 x median |log ratio|, floored at MIN_SIGMA) that one outlier
    does not inflate.  Accelerators with fewer than MIN_CROSS_CONFIGS
    configurations are left out.
    """
    out: list[RowFit] = []
    sigma: dict[str, float] = {}
    by_accel: dict[str, list[ConfigRow]] = {}
    for r in rows:
        by_accel.setdefault(r.cfg.accel, []).append(r)
    for accel, group in sorted(by_accel.items()):
        if len(group) < MIN_CROSS_CONFIGS:
            continue
        k = min(len(group), MAX_FOLDS)
        logs = []
        for f in range(k):
            held = group[f::k]
            rest = [r for i, r in enumerate(group) if i % k != f]
            params = fit(rest, prior_weight=prior_weight).model.params_for(accel)
            for r in held:
                pr = predict(r.cfg, params)
                out.append(RowFit(r, pr.iops, pr.bottleneck))
                logs.append(abs(math.log(pr.iops / r.measured)))
        sigma[accel] = max(MIN_SIGMA, 1.4826 * float(np.median(logs)))
    return out, sigma
