"""`perfsuite run [MATRIX]`: boot QEMU guests over a matrix, run fio, keep every result.

Validates the whole matrix first (one error, nothing launched), builds the guest image when
missing, probes KVM (`--accel auto`), then runs configs x repetitions into RUNS_DIR and
prints the analyzer's table. Exit status: 0 all repetitions ok, 1 some failed, 2 bad
input, 130 interrupted.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from types import SimpleNamespace

import click

from perfsuite.commands.base import RunArgs, boot_numbers_option, command, parse_boot_numbers, run_options

DEFAULT_MATRIX = "jobs/matrix.toml"
# Boots are the unit of replication (repetitions in one boot share its placement, caches,
# timer luck): 3 boots x 2 repetitions gives every configuration three independent samples
# and keeps the README's main command (5 configs, 10 s + 2 s ramp, TCG) near 8 minutes.
DEFAULT_BOOTS = 3
DEFAULT_REPEAT = 2


_EPILOG = """\b
Results: RUNS_DIR/NAME/N.json (fio's JSON as written), N.meta.json (config, QEMU argv,
versions, accelerator, what the guest saw), N.log (guest console). The analyzer's table
(== ./analyze.py RUNS_DIR) is printed at the end.
\b
Exit status: 0 every repetition ok, 1 some failed or timed out, 2 bad matrix / runs dir
busy (the whole matrix is checked first; nothing is launched), 130 interrupted.
\b
Examples:
  perfsuite run --dry-run                          # the QEMU command lines only
  perfsuite run jobs/ci.toml --boots 1 --repeat 2  # two configs, 2 s each, one boot
  perfsuite run --only '*-smp-4-*' --runtime 10 --ramp 2
  perfsuite run --label v4 --qemu ~/qemu/build/qemu-system-x86_64
  perfsuite run --qemu debian:bookworm-backports     # QEMU 10.0, fetched into the cache
  perfsuite run --qemu git:~/src/qemu@HEAD           # built from source (docs/builds.md)
Matrix keys and names: docs/runner.md."""


@command(epilog=_EPILOG)
@click.argument("matrix", required=False, default=DEFAULT_MATRIX, metavar="[MATRIX]")
@run_options(repeat_default=DEFAULT_REPEAT, boots_default=DEFAULT_BOOTS)
@click.option("--dry-run", is_flag=True, help="Print the QEMU command lines; launch nothing.")
@click.option("--retries", default=0, show_default=True, type=click.IntRange(0), help="Extra attempts for a failed repetition.")
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="Skip repetitions already complete in RUNS_DIR (--no-resume runs and overwrites them).")
@click.option("--fresh-guest", is_flag=True, help="Boot once per repetition instead of once per configuration.")
@click.option("--qemu", metavar="SPEC", help="QEMU build: a binary, system, debian:SUITE|VERSION or "
              "git:REPO@REF (docs/builds.md; overrides the matrix's `qemu`; default qemu-system-x86_64 from PATH).")
@click.option("--label", help="Label for the QEMU build, the first part of every run name "
                              "(overrides the matrix's `label`; default qemu-MAJOR.MINOR of the binary).")
@click.option("--kernel", type=click.Path(exists=True, dir_okay=False), help="Guest kernel (default: Debian's).")
@click.option("--work-root", type=click.Path(file_okay=False), help="Where per-boot work dirs go (default: the temp dir).")
@click.option("--keep-workdirs", is_flag=True, help="Keep each boot's work dir (debugging).")
@click.option("--until-precision", type=click.FloatRange(0, min_open=True), metavar="P",
              help="After --repeat, add repetitions to each configuration until the 95% confidence "
                   "half-width of its mean IOPS is at most P% of the mean (or --max-repeat is reached).")
@click.option("--max-repeat", default=20, show_default=True, type=click.IntRange(2),
              help="Cap on repetitions per configuration for --until-precision.")
@click.option("--profile", type=click.Choice(["perf"]), default=None,
              help="Record `perf record -g -e cpu-clock` of QEMU over the measured window of the first "
                   "repetition of each boot (N.perf.data beside N.json; flame graphs in the report).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@boot_numbers_option()
def run(matrix: str, run_args: RunArgs, dry_run: bool, retries: int,
        resume: bool, fresh_guest: bool, qemu: str | None, label: str | None, kernel: str | None,
        work_root: str | None, keep_workdirs: bool, until_precision: float | None, max_repeat: int,
        profile: str | None, quiet: bool, boot_numbers: tuple[str, ...]) -> None:
    """Boot one QEMU guest per configuration of MATRIX (default jobs/matrix.toml) and run fio
    in it: --boots boots of --repeat repetitions each, the boots of different configurations
    interleaved, keeping every raw result in RUNS_DIR.

    Repetitions already complete in RUNS_DIR are skipped (--no-resume reruns them).
    """
    a = run_args
    numbers = parse_boot_numbers(boot_numbers, a.boots)
    configs = _configs(matrix, a, qemu, label)
    if dry_run:
        _dry_run(configs, a.accel, a.repeat, a.boots)
        return

    from perfsuite.qemu.machine import install_signal_handlers, kill_all
    from perfsuite.run.runner import RunOptions, RunnerError, run_matrix

    install_signal_handlers()
    opts = RunOptions(repeat=a.repeat, boots=a.boots, accel=a.accel, timeout=a.timeout, retries=retries,
                      resume=resume, fresh_guest=fresh_guest, work_root=work_root, keep_workdir=keep_workdirs,
                      profile=_profile(profile), boot_numbers=numbers)
    runner, progress = _runner(configs, opts, kernel, quiet)
    try:
        with progress:
            outcomes = run_matrix(configs, a.runs_dir, runner)
            if until_precision:
                from perfsuite.run.precision import run_until_precision
                outcomes += run_until_precision(configs, a.runs_dir, runner, until_precision, max_repeat)
    except KeyboardInterrupt:
        kill_all()
        click.echo(f"interrupted: completed repetitions are kept in {Path(a.runs_dir).absolute()}/", err=True)
        sys.exit(130)
    except RunnerError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    bad = [o for o in outcomes if o.status not in ("ok", "skipped")]
    for o in bad:
        click.echo(f"{o.name} #{o.rep}: {o.status}: {o.error} (see {Path(a.runs_dir).absolute() / o.name / (str(o.rep) + '.log')})", err=True)
    _print_table(a.runs_dir, [c.name for c in configs])
    sys.exit(1 if bad else 0)


def _configs(matrix: str, a: RunArgs, qemu: str | None, label: str | None) -> list:
    """The selected configurations of MATRIX, their builds resolved, validated (exit 2 if not)."""
    from perfsuite.builds import default_label, resolve_configs
    from perfsuite.matrix.config import ConfigError, host_memory_mb, load_matrix, select, validate
    from perfsuite.qemu.features import probe

    overrides = {"runtime": a.runtime, "ramp": a.ramp, "qemu": qemu, "label": label}
    try:
        # build specs (debian:, git:, system) become binaries before validation; a spec's
        # build is fetched or built here, once, and labels default from it
        configs = select(load_matrix(matrix, overrides, default_label), a.only)
        configs = resolve_configs(configs, log=lambda m: click.echo(m, err=True))
        validate(configs, probe=probe, host_mem_mb=host_memory_mb())
    except ConfigError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    return configs


def _profile(profile: str | None) -> str | None:
    """--profile, or None with a warning when perf cannot record here."""
    if profile == "perf":
        from perfsuite.hostview.profile import perf_available
        if (why := perf_available()) is not None:
            click.echo(f"warning: {why}", err=True)
            return None
    return profile


def _runner(configs: list, opts, kernel: str | None, quiet: bool):
    """(Runner, Progress) of the run; --kernel's image built or found first (exit 2 if not)."""
    from perfsuite.run.progress import Progress
    from perfsuite.run.runner import Runner, boot_plan

    progress = Progress(total=len(boot_plan(configs, opts.boots, opts.repeat, opts.boot_numbers)) * opts.repeat,
                        quiet=quiet)
    runner = Runner(options=opts, on_event=progress.event)
    if kernel:
        from perfsuite.guest import ImageError, ensure_image
        try:
            runner.image = ensure_image(kernel=kernel, log=lambda m: progress.event("note", text=str(m)))
        except ImageError as e:
            click.echo(f"error: guest image: {e} (nothing launched)", err=True)
            sys.exit(2)
    return runner, progress


_W = "/PERFSUITE-WORKDIR"  # stands for the work dir until the line is quoted


def _dry_run(configs, accel: str, repeat: int, boots: int) -> None:
    """Shell lines that can be pasted: the work dir and the image are shell variables."""
    from perfsuite.guest import guest_argv
    from perfsuite.qemu import build_argv, probe
    kernel, initrd = _cached_image()
    image = SimpleNamespace(kernel=Path(kernel), initrd=Path(initrd), fio_mode="initramfs")
    shown = "tcg" if accel != "kvm" else "kvm"
    if accel == "auto":
        click.echo("# accel auto: a KVM probe boot decides at run time; shown with tcg")
    click.echo("# W is a boot's work dir; the runner writes its plan (plan.sh, job.fio) there "
               "first (see --keep-workdirs); QEMU starts paused (-S) until it sends `cont` over QMP")
    click.echo('W="$(mktemp -d)"')
    for c in configs:
        argv = build_argv(c, guest_argv(image, Path(_W)), Path(_W), accel=shown,
                          vq_mapping=probe(c.qemu).vq_mapping)
        click.echo(f"# {c.name}: {boots} boot(s) x {repeat} repetition(s), fio {c.fio_job} "
                   f"numjobs={c.numjobs} iodepth={c.iodepth} runtime={c.runtime} ramp={c.ramp}")
        click.echo(shell_line(argv))


def shell_line(argv: list[str]) -> str:
    """shlex.join, with the work-dir stand-in turned into "$W" (also inside quoted words)."""
    out = []
    for word in argv:
        q = shlex.quote(word)
        if _W in word:
            q = q.replace(_W, "'\"$W\"'" if q.startswith("'") else '"$W"')
        out.append(q)
    return " ".join(out)


def _cached_image() -> tuple[str, str]:
    """The newest cached guest image's kernel + initrd, or where `perfsuite image` puts them."""
    from perfsuite.guest.image import GuestImage, cache_root
    root = cache_root() / "images"
    try:
        dirs = sorted((d for d in root.iterdir() if (d / "image.json").is_file()),
                      key=lambda d: d.stat().st_mtime, reverse=True)
        img = GuestImage.load(dirs[0])
        return str(img.kernel), str(img.initrd)
    except (OSError, IndexError, ValueError, KeyError):
        return str(root / "IMAGE" / "vmlinuz"), str(root / "IMAGE" / "initrd.img")


def _print_table(runs_dir: str, names: list[str]) -> None:
    """The analyzer's table for the names just run (skipped with a note if not available)."""
    try:
        from perfsuite.report.table import render
        from perfsuite.analysis.results import load_runs
        from perfsuite.analysis.summary import summarize
    except ImportError as e:
        click.echo(f"(summary table skipped: {e})", err=True)
        return
    from perfsuite.analysis.results import ResultsError
    try:
        loaded = load_runs(runs_dir, names=names)
    except ResultsError:  # every repetition failed: said above, with where its log is
        click.echo("(no successful run to summarize)", err=True)
        return
    try:
        summary = summarize(loaded.frame, "iops", "range")
        if summary.empty:
            click.echo("(no successful run to summarize)", err=True)
            return
        click.echo(render(summary, "table", label="IOPS"), nl=False)
    except Exception as e:  # noqa: BLE001 - the results are on disk; the table is a courtesy
        if os.environ.get("PERFSUITE_DEBUG"):
            raise
        click.echo(f"(summary table failed: {type(e).__name__}: {e})", err=True)
