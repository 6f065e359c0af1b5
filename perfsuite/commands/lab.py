"""`perfsuite lab check|setup|run|nightly INVENTORY`: a lab of benchmark hosts through Ansible.

Each host runs `perfsuite run` itself (timing stays local); Ansible provisions the hosts,
hands out configurations and brings results home. Inventory, playbooks and the dispatch
loop live in perfsuite/lab/; docs/lab.md explains a real lab.
"""

from __future__ import annotations

import sys

import click

from perfsuite.commands.base import RunArgs, group, run_options
from perfsuite.commands.nightly import NIGHT_BOOTS, NIGHT_REPEAT, night_run_args
from perfsuite.commands.run import DEFAULT_BOOTS, DEFAULT_REPEAT
from perfsuite.errors import BadInput

_INV = click.argument("inventory", type=click.Path(exists=True, dir_okay=False))
_FORKS = click.option("--forks", default=50, show_default=True, type=click.IntRange(1),
                      help="Hosts Ansible talks to at once.")


@group()
def lab() -> None:
    """Run the matrix across many hosts through Ansible (an inventory of benchmark hosts)."""


@lab.command(error_prefix="perfsuite lab check: error")
@_INV
@_FORKS
@click.option("--probe/--no-probe", default=True, show_default=True,
              help="Boot the KVM probe guest on hosts set up by `lab setup` (as `run --accel auto`).")
def check(inventory: str, forks: int, probe: bool) -> None:
    """Reach every host, gather its facts, probe KVM there; one table. Exit 1 if a host fails."""
    from perfsuite.lab.ansible import Ansible
    from perfsuite.lab.check import row, table
    from perfsuite.lab.inventory import load_inventory

    hosts = load_inventory(inventory)
    outcomes = Ansible(inventory, forks=forks).play("check", {"perfsuite_probe_boot": probe})
    rows = [row(h, outcomes.get(h.name)) for h in hosts]
    click.echo(table(rows), nl=False)
    bad = [r for r in rows if r.status != "ok"]
    if bad:
        click.echo(f"{len(bad)} of {len(rows)} host(s) not usable: "
                   + ", ".join(f"{r.host} ({r.status})" for r in bad), err=True)
        sys.exit(1)


@lab.command(error_prefix="perfsuite lab setup: error")
@_INV
@_FORKS
@click.option("--apt/--no-apt", default=True, show_default=True,
              help="Install missing Debian packages on the hosts (apt-get, as the ssh user).")
@click.option("--matrix", type=click.Path(exists=True, dir_okay=False),
              help="Install the QEMU builds this matrix's `qemu` names (debian:, git: specs).")
@click.option("--build", "builds", multiple=True, metavar="SPEC",
              help="Also install this QEMU build (debian:SUITE|VERSION, git:REPO@REF; repeatable).")
def setup(inventory: str, forks: int, apt: bool, matrix: str | None, builds: tuple[str, ...]) -> None:
    """Install packages, a venv with this checkout's perfsuite (as a wheel) at this machine's
    dependency versions, the guest image and the QEMU builds named by --matrix / --build on
    every host (each host builds or fetches them itself). A second setup changes nothing."""
    import tempfile
    from pathlib import Path

    from perfsuite.lab.ansible import Ansible
    from perfsuite.lab.inventory import load_inventory
    from perfsuite.lab.provision import build_specs, setup_vars, summarize

    hosts = load_inventory(inventory)
    specs = build_specs(matrix, builds)
    with tempfile.TemporaryDirectory(prefix="perfsuite-lab-setup-") as tmp:
        extra = setup_vars(Path(tmp), apt, log=lambda m: click.echo(m, err=True), builds=specs)
        outcomes = Ansible(inventory, forks=forks).play("setup", extra)
    lines, ok = summarize(outcomes, hosts)
    click.echo("\n".join(lines))
    if ok and not any(outcomes[h.name].changed for h in hosts):
        click.echo(f"all {len(hosts)} host(s) already set up: nothing changed")
    sys.exit(0 if ok else 1)


_RUN_EPILOG = """\b
Each host runs `perfsuite run` on its share (all repetitions of a configuration on one host,
or with --spread its boots on different hosts; shares balanced by expected wall time); results come home as they complete, every meta
naming its host and class ("lab": {"host", "class"}). A host lost in the middle (ssh gone,
perfsuite killed) has its unfinished configurations moved to another host of its class;
repetitions already home are kept and resumed from, none is counted twice. With several
classes, results go to RUNS_DIR/CLASS/NAME. Ctrl-C stops every remote run.
\b
Exit status: 0 all complete, 1 some failed or not run, 2 bad input, 130 interrupted."""


@lab.command("run", epilog=_RUN_EPILOG, error_prefix="perfsuite lab run: error")
@_INV
@click.argument("matrix", required=False, default="jobs/matrix.toml", metavar="[MATRIX]")
@run_options(repeat_default=DEFAULT_REPEAT, boots_default=DEFAULT_BOOTS)  # as `perfsuite run`
@_FORKS
@click.option("--qemu", help="QEMU binary on the hosts (overrides the matrix's `qemu`).")
@click.option("--label", help="Label of the QEMU build, first part of every run name "
                              "(default: the matrix's, else qemu-MAJOR.MINOR of this machine's QEMU).")
@click.option("--retries", default=0, show_default=True, type=click.IntRange(0),
              help="Extra attempts for a failed repetition (on its host).")
@click.option("--poll", default=5.0, show_default=True, type=click.FloatRange(0.2),
              help="Seconds between collections.")
@click.option("--spread", is_flag=True,
              help="Spread each configuration's boots over the hosts of its class (host-level "
                   "replication) instead of running all of them on one host.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines.")
def run_cmd(inventory: str, matrix: str, run_args: RunArgs, forks: int, qemu: str | None,
            label: str | None, retries: int, poll: float, spread: bool, quiet: bool) -> None:
    """Run MATRIX (default jobs/matrix.toml) across the hosts of INVENTORY into RUNS_DIR."""
    from pathlib import Path

    from perfsuite.lab.ansible import Ansible
    from perfsuite.lab.dispatch import LabOptions, LabRun
    from perfsuite.lab.inventory import by_class, load_inventory
    from perfsuite.matrix.config import load_matrix, select
    from perfsuite.qemu.features import default_label
    from perfsuite.run.progress import Progress

    hosts = load_inventory(inventory)
    overrides = {"runtime": run_args.runtime, "ramp": run_args.ramp, "qemu": qemu, "label": label}
    configs = select(load_matrix(matrix, overrides, _label_here(default_label)), run_args.only)
    if not configs:
        raise BadInput(f"no configuration of {matrix} matches --only {' '.join(run_args.only)}")
    labels = {c.label for c in configs}
    extra = ["--retries", str(retries)] + (["--qemu", qemu] if qemu else [])
    if len(labels) == 1:  # the same names on every host, whatever QEMU version it has
        extra += ["--label", labels.pop()]
    progress = Progress(total=len(configs) * run_args.reps_per_config * len(by_class(hosts)), quiet=quiet)
    opts = LabOptions(Path(matrix), run_args, tuple(extra), poll=poll, spread=spread)
    job = LabRun(hosts, configs, opts, Ansible(inventory, forks=forks), on_event=progress.event)
    _drive(job, progress)
    _report(job, [c.name for c in configs])


def _label_here(plain):
    """The controller's default label of a matrix's `qemu`: a build spec (debian:, git:) is
    only built on the hosts, so its label (qemu-10.0, a tag) is unknown here, and the names
    the hosts write would not be the names the controller waits for: ask for a label."""
    from perfsuite.builds.spec import SYSTEM_BINARY, is_build_spec

    def label(q: str) -> str:
        if q == "system":
            return plain(SYSTEM_BINARY)
        if is_build_spec(q):
            raise BadInput(f"qemu {q!r} is a build spec: give the matrix a `label` (or --label) "
                           "so that the hosts' run names are known here")
        return plain(q)
    return label


def _drive(job, progress) -> None:
    """Run a lab job under the progress display; Ctrl-C stops every host's share."""
    try:
        with progress:
            job.run()
    except KeyboardInterrupt:
        _interrupted(job)
    finally:
        job.cleanup()


def _interrupted(job) -> None:
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the stop short
    click.echo("interrupted: stopping the runs on every host ...", err=True)
    job.stop()
    click.echo(f"interrupted: completed repetitions are kept in {job.runs_dir}/", err=True)
    job.cleanup()
    sys.exit(130)


def _report(job, names: list[str]) -> None:
    from perfsuite.commands.run import _print_table
    for cls in job.classes:
        if len(job.classes) > 1:
            click.echo(f"class {cls}:")
        _print_table(str(job.local_dir(cls)), names)
    for host, why in job.lost.items():
        click.echo(f"host {host} lost: {why}", err=True)
    for key in sorted(job.failed):
        click.echo(f"{job.describe(key)}: repetitions failed on its host (see its .meta.json/.log)", err=True)
    for key in job.not_run:
        click.echo(f"{job.describe(key)}: not run (no host of class {key[0]} left)", err=True)
    if job.duplicates:
        click.echo(f"{job.duplicates} repetition(s) arrived twice (moved off a lost host); "
                   "the first copy counts", err=True)
    sys.exit(1 if (job.failed or job.not_run) else 0)


@lab.command("nightly", error_prefix="perfsuite lab nightly: error")
@_INV
@run_options(repeat_default=NIGHT_REPEAT, boots_default=NIGHT_BOOTS)
@_FORKS
@click.option("--baseline-qemu", required=True, metavar="PATH", help="QEMU of the reference build on the hosts.")
@click.option("--candidate-qemu", required=True, metavar="PATH", help="QEMU of the build under test on the hosts.")
@click.option("--baseline-label", default="baseline", show_default=True)
@click.option("--candidate-label", default="candidate", show_default=True)
@click.option("--matrix", default="jobs/matrix.toml", show_default=True, help="Matrix file (TOML).")
@click.option("--results-dir", default="nightly", show_default=True,
              help="History and per-night outputs (RESULTS_DIR/CLASS/ for each class when there are several).")
@click.option("--night", help="Night id (default: today's UTC date).")
@click.option("--threshold", default="5%", show_default=True, help="Smallest change that counts (0.05 or 5%).")
@click.option("--poll", default=5.0, show_default=True, type=click.FloatRange(0.2))
def nightly_cmd(inventory, run_args: RunArgs, forks, baseline_qemu, candidate_qemu, baseline_label,
                candidate_label, matrix, results_dir, night, threshold, poll) -> None:
    """Baseline vs candidate on every host (interleaved there), compared per class.

    RUNS are kept under RESULTS_DIR/nights/NIGHT/runs/ (--runs-dir is not used). Exit 0 no
    regression, 1 a regression (or configurations not run), 2 bad input, 130 interrupted.
    """
    from dataclasses import replace
    from datetime import datetime, timezone
    from pathlib import Path

    from perfsuite.report.verdicts import render_table
    from perfsuite.commands.base import parse_threshold
    from perfsuite.lab.ansible import Ansible
    from perfsuite.lab.dispatch import LabOptions, LabRun
    from perfsuite.lab.inventory import by_class, load_inventory
    from perfsuite.lab.night import NightPlan, compare_class
    from perfsuite.matrix.config import load_matrix, select
    from perfsuite.nightly import night as N
    from perfsuite.run.progress import Progress

    run_args = night_run_args(run_args, "lab nightly")
    if baseline_label == candidate_label:
        raise BadInput("--baseline-label and --candidate-label must differ")
    thr = parse_threshold(threshold)
    hosts = load_inventory(inventory)
    sides = [select(load_matrix(matrix, {"runtime": run_args.runtime, "ramp": run_args.ramp,
                                         "qemu": q, "label": lab_}), run_args.only)
             for q, lab_ in ((baseline_qemu, baseline_label), (candidate_qemu, candidate_label))]
    plan = NightPlan(N.pair_configs(*sides), baseline_qemu, candidate_qemu, night or N.night_id())
    results = Path(results_dir)
    runs = results / "nights" / plan.night / "runs"
    args = replace(run_args, runs_dir=str(runs))
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    classes = by_class(hosts)
    progress = Progress(total=2 * len(plan.pairs) * args.repeat * len(classes))
    job = LabRun(hosts, [a for a, _ in plan.pairs], LabOptions(Path(matrix), args, poll=poll),
                 Ansible(inventory, forks=forks), on_event=progress.event,
                 units=plan.units(), argv_for=plan.argv)
    _drive(job, progress)
    worst = 0
    opts = N.NightlyOptions(repeat=args.repeat, threshold=thr)
    for cls in sorted(classes):
        out = results if len(classes) == 1 else results / cls
        comp, info = compare_class(job.local_dir(cls), out, plan, opts, started)
        click.echo(f"class {cls} (hosts {info['host']}):")
        click.echo(render_table(comp), nl=False)
        worst = max(worst, comp.exit_code)
    for host, why in job.lost.items():
        click.echo(f"host {host} lost: {why}", err=True)
    for key in job.not_run + sorted(job.failed):
        click.echo(f"{job.describe(key)}: not complete", err=True)
    sys.exit(max(worst, 1 if (job.failed or job.not_run) else 0))
