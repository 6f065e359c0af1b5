"""`perfsuite model`: the reference model of virtio-blk from the command line.

    perfsuite model predict --smp 4 --num-queues 4 --dataplane --accel kvm
    perfsuite model fit runs/ [--save params.json]
    perfsuite model simulate jobs/matrix.toml -o /tmp/sim --repeat 5 --cv 0.05 --seed 1

Errors are one line on stderr and exit status 2 (perfsuite.commands.base's envelope).
"""

from __future__ import annotations

import math

import click

from perfsuite.commands.base import group
from perfsuite.errors import BadInput

ACCELS = ("kvm", "tcg")


def _load_params(path: str | None):
    from perfsuite.model.fit import Model
    from perfsuite.model.perf import DEFAULTS, PARAM_NAMES, Params

    model = Model()
    if not path:
        return model
    import orjson

    try:
        with open(path, "rb") as f:
            doc = orjson.loads(f.read())
    except OSError as e:
        raise BadInput(f"cannot read {path}: {e.strerror}") from None
    except orjson.JSONDecodeError as e:
        raise BadInput(f"{path}: not JSON ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("params"), dict):
        raise BadInput(f"{path}: not a parameter file written by `perfsuite model fit --save`")
    for accel, p in doc["params"].items():
        if not isinstance(p, dict) or set(p) != set(PARAM_NAMES):
            raise BadInput(f"{path}: parameters for {accel!r} must be exactly {', '.join(PARAM_NAMES)}")
        vals = {k: float(v) for k, v in p.items()}
        if not all(math.isfinite(v) and v > 0 for v in vals.values()):
            raise BadInput(f"{path}: parameters for {accel!r} must be positive numbers")
        model.params[accel] = Params(**vals)
        model.fitted[accel] = True
    for accel, s in (doc.get("sigma") or {}).items():
        model.sigma[accel] = float(s)
    for accel in DEFAULTS:
        model.params.setdefault(accel, DEFAULTS[accel])
    return model


@group()
def model() -> None:
    """Reference virtio-blk model: predict IOPS, fit it to runs, write synthetic runs."""


@model.command()
@click.option("--smp", type=click.IntRange(1, 1024), required=True, help="Guest vCPUs.")
@click.option("--num-queues", type=click.IntRange(1, 1024), default=None,
              help="virtio-blk num-queues [default: one per vCPU].")
@click.option("--dataplane/--no-dataplane", default=True, show_default=True,
              help="IOThread (dataplane) or the main loop as the handler.")
@click.option("--iodepth", type=click.IntRange(1, 65536), default=32, show_default=True)
@click.option("--numjobs", type=click.IntRange(1, 4096), default=None,
              help="fio jobs [default: one per vCPU].")
@click.option("--accel", type=click.Choice(ACCELS), default="kvm", show_default=True)
@click.option("--iothreads", type=click.IntRange(1, 1024), default=1, show_default=True)
@click.option("--vq-mapping", is_flag=True, help="iothread-vq-mapping: queue i -> IOThread i mod K.")
@click.option("--host-cpus", type=click.IntRange(1, 4096), default=None,
              help="Host CPUs the threads share [default: unlimited].")
@click.option("--params", "params_file", type=click.Path(dir_okay=False), default=None,
              help="Fitted parameters from `model fit --save`.")
def predict(smp, num_queues, dataplane, iodepth, numjobs, accel, iothreads, vq_mapping, host_cpus,
            params_file) -> None:
    """Expected IOPS of one configuration (the number alone on the last line)."""
    from perfsuite.model.perf import PerfConfig, predict as run

    m = _load_params(params_file)
    try:
        cfg = PerfConfig(smp=smp, num_queues=num_queues or smp, dataplane=dataplane, numjobs=numjobs,
                         iodepth=iodepth, accel=accel, iothreads=iothreads, vq_mapping=vq_mapping,
                         host_cpus=host_cpus)
    except ValueError as e:  # the model refuses the configuration: the user's to fix
        raise BadInput(str(e)) from None
    p = run(cfg, m.params_for(accel))
    src = "fitted" if m.fitted.get(accel) else "default"
    click.echo(f"config: smp={smp} num-queues={cfg.num_queues} (guest uses {p.queues_used}) "
               f"{'dataplane' if dataplane else 'no-dataplane'} numjobs={cfg.jobs} iodepth={iodepth} "
               f"accel={accel} ({src} parameters)")
    bounds = ", ".join(f"{k} {v:,.0f}" for k, v in sorted(p.bounds.items(), key=lambda kv: kv[1]))
    click.echo(f"bounds (IOPS): {bounds}; bottleneck: {p.bottleneck}")
    click.echo(f"{p.iops:.0f}")


@model.command()
@click.argument("runs_dir", type=click.Path())
@click.option("--host-cpus", type=click.IntRange(1, 4096), default=None,
              help="Host CPUs [default: host.cpus of each run's meta.json, else unlimited].")
@click.option("--save", type=click.Path(dir_okay=False), default=None,
              help="Write the fitted parameters (JSON) for `predict --params`.")
def fit(runs_dir, host_cpus, save) -> None:
    """Fit the model's stage costs to RUNS_DIR; print predicted vs measured per config."""
    from perfsuite.model.fit import MIN_CROSS_CONFIGS, cross_validate, fit_frame
    from perfsuite.analysis.results import load_runs

    lr = load_runs(runs_dir)
    for w in lr.warnings:
        click.echo(f"warning: {w}", err=True)
    res = fit_frame(lr.frame, host_cpus=host_cpus)
    for n in res.notes:
        click.echo(f"note: {n}", err=True)
    if not res.rows:
        raise BadInput(f"no run in {runs_dir} has the meta.json (smp, num_queues) the model needs")
    # Out-of-sample: each configuration predicted by a fit on the others (the
    # in-sample error of 9 parameters on a handful of configurations flatters).
    held, _ = cross_validate([r.row for r in res.rows])
    cv = {r.row.name: r for r in held}
    w = max(len("Name"), *(len(r.row.name) for r in res.rows))
    click.echo(f"{'Name':<{w}}  smp  nq  dp  jobs   qd accel  n     measured    predicted    error"
               "  held-out  bottleneck")
    for r in res.rows:
        c = r.row.cfg
        h = cv.get(r.row.name)
        held_txt = f"{h.error_pct:>+8.1f}%" if h else f"{'n/a':>9}"
        click.echo(f"{r.row.name:<{w}}  {c.smp:>3} {c.num_queues:>3}  {'y' if c.dataplane else 'n':>2}  "
                   f"{c.jobs:>4} {c.iodepth:>4} {c.accel:<5} {r.row.n:>2} {r.row.measured:>12,.0f} "
                   f"{r.predicted:>12,.0f} {r.error_pct:>+7.1f}% {held_txt}  {r.bottleneck}")
    click.echo(f"fit: {len(res.rows)} configuration(s); typical error (RMS of log ratio) "
               f"{100 * res.rms_log:.1f}%, mean |error| {res.mape:.1f}%, R^2 of log IOPS "
               f"{'n/a' if math.isnan(res.r2_log) else f'{res.r2_log:.3f}'}")
    if math.isfinite(res.noise_floor):
        click.echo(f"noise floor: the measured means are known to ±{100 * res.noise_floor:.1f}% "
                   "(RMS of their standard errors)")
    if held:
        logs = [math.log(h.predicted / h.row.measured) for h in held]
        rms = math.sqrt(sum(x * x for x in logs) / len(logs))
        click.echo(f"held-out: each configuration predicted from a fit on the others: typical error "
                   f"{100 * rms:.1f}%, mean |error| {sum(abs(h.error_pct) for h in held) / len(held):.1f}%")
    else:
        click.echo(f"held-out: n/a (needs >= {MIN_CROSS_CONFIGS} configurations per accelerator)")
    for accel, p in sorted(res.model.params.items()):
        if res.model.fitted.get(accel):
            vals = ", ".join(f"{k}={v:.3g}" for k, v in p.as_dict().items())
            click.echo(f"params[{accel}]: {vals}; band sigma {res.model.sigma[accel]:.3f}")
    if save:
        from perfsuite.fsutil import atomic_write_json

        atomic_write_json(save, {
            "params": {a: p.as_dict() for a, p in res.model.params.items() if res.model.fitted.get(a)},
            "sigma": res.model.sigma, "configs": len(res.rows), "rms_log": res.rms_log})
        click.echo(f"saved parameters to {save}", err=True)


@model.command()
@click.argument("matrix")
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False), required=True,
              help="Directory to write runs/NAME/N.json (+ meta) into.")
@click.option("--repeat", type=click.IntRange(1, 10000), default=5, show_default=True)
@click.option("--cv", type=click.FloatRange(0, 1, max_open=True), default=0.05, show_default=True,
              help="Run-to-run coefficient of variation.")
@click.option("--boots", type=click.IntRange(1, 10000), default=None,
              help="Boots per configuration, --repeat repetitions in each (default: one boot per repetition).")
@click.option("--boot-cv", type=click.FloatRange(0, 1, max_open=True), default=0.0, show_default=True,
              help="Boot-to-boot coefficient of variation (each boot's level).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--accel", type=click.Choice(ACCELS), default="kvm", show_default=True)
@click.option("--host-cpus", type=click.IntRange(1, 4096), default=None)
@click.option("--label", default=None, help="Label (first part of every run name).")
@click.option("--params", "params_file", type=click.Path(dir_okay=False), default=None,
              help="Fitted parameters from `model fit --save` (the truth to draw around).")
def simulate(matrix, out_dir, repeat, cv, boots, boot_cv, seed, accel, host_cpus, label,
             params_file) -> None:
    """Write synthetic runs for MATRIX (a jobs/*.toml file, or `seed` for the built-in seed matrix)."""
    from perfsuite.model import simulate as sim

    m = _load_params(params_file)
    if matrix == "seed":
        configs = sim.seed_matrix(label or "v4")
    else:
        from perfsuite.matrix.config import load_matrix, validate

        loaded = load_matrix(matrix, overrides={"label": label})
        # the runner's own checks (smp = true, queue_size 3, ...); no QEMU or files needed
        validate(loaded, check_files=False)
        configs = [sim.from_config(c) for c in loaded]
    truth = sim.simulate(configs, out_dir, repeat, cv, seed=seed, accel=accel, host_cpus=host_cpus,
                         model=m, boots=boots, boot_cv=boot_cv)
    for name, iops in truth.items():
        click.echo(f"{name}  true {iops:,.0f} IOPS")
    total = repeat * (boots or 1)
    click.echo(f"wrote {total} synthetic run(s) x {len(truth)} configuration(s) to {out_dir}")
