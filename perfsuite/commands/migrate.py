"""`perfsuite migrate [MATRIX]`: live-migrate guests while fio writes and verifies.

For each configuration and repetition: a source QEMU and destinations started with
`-incoming defer` on this host (unix sockets), migrations over QMP at --at seconds into the
write window (--migrations N > 1: ping-pong, every --every seconds), a read-back verify
after the last one. Exit status: 0 every repetition ok, 1 some failed (a migration that did
not complete, a destination that did not start, a fio or verify error), 2 bad input, 130
interrupted. docs/migrate.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from perfsuite.commands.base import RunArgs, command, run_options
from perfsuite.errors import BadInput

DEFAULT_MATRIX = "jobs/migrate.toml"

_EPILOG = """\b
Results per repetition in RUNS_DIR/NAME/: N.json (the write window's fio JSON), N.meta.json
(+ "migration": query-migrate's total-time, downtime, setup-time, bytes per migration, the
IOPS dip), N.log (every QEMU's console), N.iops.csv (IOPS per 100 ms), N.migrate/ (raw).
\b
Examples:
  perfsuite migrate --only '*-smp-1-*' --runtime 10 --at 4
  perfsuite migrate --migrations 3 --every 3 --runtime 15
  perfsuite migrate --max-bandwidth 1M --converge-timeout 10   # expect a cancelled migration"""


def _bytes(text: str | None) -> int | None:
    if text is None:
        return None
    t = text.strip().upper().removesuffix("B")
    mult = {"K": 1024, "M": 1024**2, "G": 1024**3}.get(t[-1:], 1)
    try:
        v = int(float(t[:-1] if mult > 1 else t) * mult)
    except ValueError:
        raise BadInput(f"--max-bandwidth {text!r}: give bytes per second (e.g. 65536, 64K, 10M)") from None
    if v <= 0:
        raise BadInput("--max-bandwidth must be positive")
    return v


@command(epilog=_EPILOG, error_prefix="perfsuite migrate: error")
@click.argument("matrix", required=False, default=DEFAULT_MATRIX, metavar="[MATRIX]")
@run_options(repeat_default=1)
@click.option("--at", type=click.FloatRange(0, min_open=True), default=5.0, show_default=True,
              help="Seconds into the write window at which the first migration starts.")
@click.option("--migrations", type=click.IntRange(1), default=1, show_default=True,
              help="Migrations per repetition (> 1: back and forth).")
@click.option("--every", type=click.FloatRange(0, min_open=True),
              help="Seconds between migrations (default: --at).")
@click.option("--converge-timeout", type=click.FloatRange(1), default=60.0, show_default=True,
              help="Cancel (migrate_cancel) a migration still running after this many seconds.")
@click.option("--max-bandwidth", metavar="BYTES/S", help="migrate-set-parameters max-bandwidth.")
@click.option("--downtime-limit", type=click.IntRange(1), metavar="MS",
              help="migrate-set-parameters downtime-limit, milliseconds.")
@click.option("--dest-arg", "dest_args", multiple=True, metavar="ARG",
              help="Extra QEMU argument for every destination (repeatable).")
@click.option("--disk-mb", type=click.IntRange(16), default=256, show_default=True,
              help="Size of the shared raw disk file.")
@click.option("--qemu", help="QEMU binary (overrides the matrix's `qemu`).")
@click.option("--label", help="Label for the QEMU build, the first part of every run name.")
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="Skip repetitions already ok in RUNS_DIR.")
@click.option("--work-root", type=click.Path(file_okay=False), help="Where per-repetition work dirs go.")
@click.option("--keep-workdirs", is_flag=True, help="Keep each repetition's work dir (debugging).")
def migrate(matrix: str, run_args: RunArgs, at: float, migrations: int, every: float | None,
            converge_timeout: float, max_bandwidth: str | None, downtime_limit: int | None,
            dest_args: tuple[str, ...], disk_mb: int, qemu: str | None, label: str | None,
            resume: bool, work_root: str | None, keep_workdirs: bool) -> None:
    """Live-migrate a guest between two QEMUs on this host while fio writes to a shared raw
    disk, for each configuration of MATRIX (default jobs/migrate.toml); verify every block
    after the last migration."""
    from perfsuite.matrix.config import load_matrix, select, validate
    from perfsuite.migrate.job import check_job, schedule
    from perfsuite.qemu.features import default_label, probe

    a = run_args
    if a.ramp:
        raise BadInput("--ramp: a migration window has no ramp (the fill phase precedes it)")
    configs = select(load_matrix(matrix, {"runtime": a.runtime, "ramp": 0, "qemu": qemu,
                                          "label": label}, default_label), a.only)
    validate(configs, probe=probe)
    for c in configs:
        check_job(Path(c.fio_job).read_text(), c.fio_job)
        schedule(at, every, migrations, c.runtime)
    _run(configs, a, at=at, every=every, migrations=migrations,
         converge_timeout=converge_timeout, max_bandwidth=_bytes(max_bandwidth),
         downtime_limit_ms=downtime_limit, dest_args=tuple(dest_args), disk_mb=disk_mb,
         resume=resume, work_root=work_root, keep_workdir=keep_workdirs)


def _run(configs, a: RunArgs, resume: bool, **opts) -> None:
    from perfsuite.guest import ensure_image
    from perfsuite.migrate.driver import migrate_matrix, pending
    from perfsuite.migrate.scenario import MigrateOptions
    from perfsuite.qemu.accel import resolve_accel
    from perfsuite.qemu.features import probe
    from perfsuite.qemu.machine import install_signal_handlers, kill_all
    from perfsuite.run.runner import runs_lock

    install_signal_handlers()
    image = ensure_image(log=lambda m: click.echo(m, err=True))
    choice = resolve_accel(a.accel, configs[0].qemu, image, log=lambda m: click.echo(m, err=True))
    reps = list(range(1, a.repeat * (a.boots or 1) + 1))
    lock = runs_lock(Path(a.runs_dir))
    try:
        lock.acquire(timeout=0)
    except Exception:  # noqa: BLE001 - filelock.Timeout
        raise BadInput(f"another perfsuite runner is writing {a.runs_dir}") from None
    try:
        done = []
        for c in configs:
            base = MigrateOptions(accel=choice.accel, vq_mapping=probe(c.qemu).vq_mapping,
                                  finish_timeout=a.timeout, **opts)
            todo = pending(Path(a.runs_dir) / c.name, reps) if resume else reps
            done += migrate_matrix([c], a.runs_dir, todo, image, base, choice.note,
                                   on_done=lambda d: click.echo(_line(d), err=True))
    except KeyboardInterrupt:
        kill_all()
        click.echo(f"interrupted: finished repetitions are kept in {a.runs_dir}/", err=True)
        sys.exit(130)
    finally:
        lock.release()
    click.echo(_table(done), nl=False)
    bad = [d for d in done if d.status != "ok"]
    for d in bad:
        click.echo(f"{d.name} #{d.rep}: {d.status}: {d.error} (see {a.runs_dir}/{d.name}/{d.rep}.log)",
                   err=True)
    sys.exit(1 if bad else 0)


def _fmt(v, scale: float = 1.0, digits: int = 0) -> str:
    return "-" if v is None else f"{v * scale:.{digits}f}"


def _line(d) -> str:
    s = d.summary
    return (f"{d.name} #{d.rep}: {d.status}: {s['completed']} migration(s), downtime "
            f"{_fmt(s['downtime_ms'])} ms, dip {_fmt(s['dip_depth'], 100)}%")


def _table(done) -> str:
    head = (f"{'Name':<38} {'rep':>3} {'status':<7} {'mig':>3} {'total ms':>8} {'down ms':>7} "
            f"{'setup ms':>8} {'MiB':>6} {'dip %':>5} {'recover ms':>10}\n")
    rows = []
    for d in done:
        s = d.summary
        rows.append(f"{d.name:<38} {d.rep:>3} {d.status:<7} {s['completed']:>3} "
                    f"{_fmt(s['total_time_ms']):>8} {_fmt(s['downtime_ms']):>7} "
                    f"{_fmt(s['setup_time_ms']):>8} {_fmt(s['bytes'], 1 / 2**20, 1):>6} "
                    f"{_fmt(s['dip_depth'], 100):>5} {_fmt(s['dip_recover_ms']):>10}\n")
    return head + "".join(rows)
