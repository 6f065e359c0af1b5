"""`perfsuite nightly` (baseline vs candidate QEMU, interleaved) and `perfsuite history`.

Exit status of nightly: 0 no regression, 1 regression, 2 error (one line, no traceback),
130 interrupted (runs already written are kept).
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import click

from perfsuite.commands.base import RunArgs, run_options
from perfsuite.errors import BadInput, fail, fail_unexpected

# The nightly's design: 5 boots per build and configuration, one repetition in each (the
# sequential test's calibration, docs/statistics.md); `perfsuite run`'s --boots / --repeat.
NIGHT_BOOTS, NIGHT_REPEAT = 5, 1


def night_design(boots: int, repeat: int, boots_given: bool, repeat_given: bool) -> tuple[int, int, str | None]:
    """(boots, repetitions per boot, warning) of the night (pure). `--repeat N` alone keeps
    its old meaning, N pairs of one-repetition boots, so that existing cron lines and
    `perfsuite lab nightly` (which passes --repeat) make the same night as before."""
    if repeat_given and not boots_given:
        return repeat, 1, (f"--repeat {repeat} without --boots: {repeat} pairs of boots of one "
                           f"repetition each (its old meaning); write --boots {repeat} "
                           "(--repeat R is now repetitions per boot, as for perfsuite run)")
    return boots, repeat, None


def night_run_args(run_args: RunArgs, command: str) -> RunArgs:
    """The night's RunArgs from the command line (`nightly` and `lab nightly`): the old
    meaning of a lone --repeat kept with a warning, and at least two pairs of boots."""
    ctx = click.get_current_context()
    given = {n: ctx.get_parameter_source(n) == click.core.ParameterSource.COMMANDLINE for n in ("boots", "repeat")}
    boots, reps, note = night_design(run_args.boots, run_args.repeat, given["boots"], given["repeat"])
    if note:
        click.echo(f"warning: {note}", err=True)
    if boots < 2:
        raise BadInput(f"{command} needs --boots 2 or more (pairs of boots per configuration)")
    return replace(run_args, boots=boots, repeat=reps)

_NIGHTLY_EPILOG = """\b
Outputs (RESULTS_DIR/nights/NIGHT/): summary.md, junit.xml, compare.json, report/index.html;
history: RESULTS_DIR/history.sqlite (one row per night x configuration).
\b
Example (cron, 02:00 every night):
  0 2 * * *  cd /srv/perfsuite && .venv/bin/perfsuite nightly --matrix jobs/matrix.toml \\
      --baseline-qemu debian:bookworm-backports \\
      --candidate-qemu git:https://gitlab.com/qemu-project/qemu.git@master --results-dir nightly
"""


def _fail(cmd: str, msg: str, code: int = 2) -> None:
    fail(msg, code, f"perfsuite {cmd}: error")


@click.command(epilog=_NIGHTLY_EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--baseline-qemu", required=True, metavar="SPEC",
              help="Reference build: a binary, system, debian:SUITE|VERSION or git:REPO@REF.")
@click.option("--candidate-qemu", required=True, metavar="SPEC",
              help="Build under test (same forms; git:REPO@HEAD builds your checkout's HEAD).")
@click.option("--baseline-label", default="baseline", show_default=True)
@click.option("--candidate-label", default="candidate", show_default=True)
@click.option("--matrix", default="jobs/matrix.toml", show_default=True, help="Matrix file (TOML).")
@click.option("--results-dir", default="nightly", show_default=True, help="History database and per-night outputs.")
@run_options(repeat_default=NIGHT_REPEAT, boots_default=NIGHT_BOOTS,
             runs_dir_help="Where runs go (baseline/ and candidate/ inside). Default: RESULTS_DIR/nights/NIGHT/runs.")
@click.option("--night", help="Night id (default: today's UTC date). Re-running a night replaces it in the history.")
@click.option("--sequential", is_flag=True, help="Add pairs of boots until the sequential mixture t-test decides (at least --boots, at most --max-boots; docs/statistics.md).")
@click.option("--max-boots", "--max-repeat", "max_boots", default=38, show_default=True, type=click.IntRange(2),
              help="Cap on the pairs of boots of --sequential (--max-repeat: its old name).")
@click.option("--retries", default=1, show_default=True, type=click.IntRange(0))
@click.option("--work-root", type=click.Path(file_okay=False), help="Where per-boot work dirs go (default: the temp dir).")
@click.option("--threshold", default="5%", show_default=True, help="Smallest change that counts (0.05 or 5%).")
@click.option("--test", type=click.Choice(["welch", "mannwhitney", "moderated"]), default="welch", show_default=True)
@click.option("--correction", type=click.Choice(["holm", "bh", "none"]), default="holm", show_default=True)
@click.option("--metric", default="iops", show_default=True)
@click.option("--throttle-iops", type=click.IntRange(1), metavar="N",
              help="Run the candidate behind a throttle-group limit of N IOPS (injects a known regression).")
@click.option("--summary", "summary_copy", type=click.Path(dir_okay=False), help="Also write the markdown summary here.")
@click.option("--junit", "junit_copy", type=click.Path(dir_okay=False), help="Also write the JUnit XML here.")
@click.option("--html/--no-html", default=True, show_default=True, help="HTML report via `perfsuite report`.")
def nightly(baseline_qemu, candidate_qemu, baseline_label, candidate_label, matrix, results_dir,
            run_args, night, sequential, max_boots, retries, work_root, threshold, test, correction,
            metric, throttle_iops, summary_copy, junit_copy, html) -> None:
    """Run the matrix for a baseline and a candidate QEMU, interleaved; compare; record."""
    try:
        code = _nightly(**locals())
    except BadInput as exc:
        _fail("nightly", str(exc))
    except KeyboardInterrupt:
        try:
            from perfsuite.qemu.machine import kill_all
            kill_all()  # only the guests this process started
        except Exception:  # noqa: BLE001
            pass
        _fail("nightly", "interrupted; completed repetitions are kept", 130)
    except Exception as exc:  # noqa: BLE001
        fail_unexpected(exc, 2, "perfsuite nightly: error")
    sys.exit(code)


def _nightly(baseline_qemu, candidate_qemu, baseline_label, candidate_label, matrix, results_dir,
             run_args, night, sequential, max_boots, retries, work_root, threshold, test, correction,
             metric, throttle_iops, summary_copy, junit_copy, html) -> int:

    from perfsuite.nightly import night as N
    from perfsuite.commands.base import parse_threshold
    from perfsuite.nightly.history import HistoryError

    thr = parse_threshold(threshold)
    run_args = night_run_args(run_args, "nightly")
    if baseline_label == candidate_label:
        raise BadInput("--baseline-label and --candidate-label must differ")
    night = night or N.night_id()
    results = Path(results_dir)
    runs = Path(run_args.runs_dir) if run_args.runs_dir else results / "nights" / night / "runs"
    from perfsuite.builds import resolve  # build specs (debian:, git:) -> binaries, before validation
    baseline_qemu, candidate_qemu = (str(resolve(q, log=lambda m: click.echo(m, err=True)).binary)
                                     for q in (baseline_qemu, candidate_qemu))
    if throttle_iops:
        candidate_qemu = str(N.throttle_wrapper(candidate_qemu, throttle_iops,
                                                results / "nights" / night / "qemu-throttled"))
    pairs = _pairs(matrix, run_args, ((baseline_qemu, baseline_label), (candidate_qemu, candidate_label)))

    from perfsuite.qemu.machine import install_signal_handlers
    from perfsuite.run.runner import RunOptions, Runner, RunnerError, run_config

    install_signal_handlers()
    runner = Runner(options=RunOptions(accel=run_args.accel, timeout=run_args.timeout, retries=retries,
                                       work_root=work_root),
                    on_event=lambda kind, **d: _event(kind, d))
    opts = N.NightlyOptions(boots=run_args.boots, repeat=run_args.repeat, sequential=sequential,
                            max_boots=max_boots, threshold=thr, test=test, correction=correction, metric=metric)
    cap = max(opts.max_boots, opts.boots) if sequential else opts.boots

    def run_one(c, d, reps, boot):  # one boot of `reps` repetitions, numbered as run's are
        return run_config(c, d, reps, runner, boot=boot, planned_boots=cap)

    try:
        res = N.run_night(pairs, results, runs, opts, run_one, night=night, html=html,
                          log=lambda m: click.echo(m, err=True))
    except (N.NightlyError, HistoryError, RunnerError) as exc:
        raise BadInput(str(exc)) from None
    _print_night(res, summary_copy, junit_copy)
    return res.exit_code


def _pairs(matrix: str, run_args: RunArgs, sides: tuple) -> list[tuple]:
    """(baseline, candidate) configurations of MATRIX for the (qemu, label) of each side."""
    from perfsuite.matrix.config import ConfigError, host_memory_mb, load_matrix, select, validate
    from perfsuite.nightly import night as N
    from perfsuite.qemu.features import probe

    try:
        configs = [select(load_matrix(matrix, {"runtime": run_args.runtime, "ramp": run_args.ramp,
                                               "qemu": qemu, "label": label}), run_args.only)
                   for qemu, label in sides]
        validate(configs[0] + configs[1], probe=probe, host_mem_mb=host_memory_mb())
        return N.pair_configs(*configs)
    except (ConfigError, N.NightlyError) as exc:
        raise BadInput(str(exc)) from None


def _print_night(res, summary_copy: str | None, junit_copy: str | None) -> None:
    """The night's table on stdout; warnings, change points and outputs on stderr; the copies."""
    from perfsuite.fsutil import atomic_write_text
    from perfsuite.report.verdicts import render_table

    click.echo(render_table(res.comparison), nl=False)
    for w in res.warnings + res.failures:
        click.echo(f"warning: {w}", err=True)
    if res.changes is not None and len(res.changes):
        for r in res.changes.itertuples():
            click.echo(f"change point: {r.config}: {r.kind} from night {r.night} ({r.change:+.1%})", err=True)
    for kind, copy in (("summary", summary_copy), ("junit", junit_copy)):
        if copy:
            atomic_write_text(copy, res.outputs[kind].read_text())
    click.echo("outputs: " + ", ".join(str(p) for p in res.outputs.values()), err=True)


def _event(kind: str, data: dict) -> None:
    if kind == "rep":
        click.echo(f"  {data.get('name')} #{data.get('rep')}: {data.get('status')}"
                   + (f" ({data['error']})" if data.get("error") else ""), err=True)
    elif kind == "note":
        click.echo(f"  {data.get('text')}", err=True)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--results-dir", default="nightly", show_default=True, help="Where history.sqlite lives.")
@click.option("--db", type=click.Path(dir_okay=False), help="The history database itself (overrides --results-dir).")
@click.option("--metric", default="iops", show_default=True,
              help="iops, read-iops, write-iops, disk-read-ios or a results column (lat_*).")
@click.option("--config", "configs", multiple=True, metavar="NAME",
              help="Also list this configuration's nights: ratio candidate/baseline, candidate mean, "
                   "verdict (repeatable; names as in the compare table, without the label).")
@click.option("--min-change", default="1%", show_default=True, help="Ignore change points smaller than this.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def history(results_dir, db, metric, configs, min_change, fmt) -> None:
    """List the stored nights and name change points (steps, and the first night of a creep)."""
    try:
        sys.exit(_history(results_dir, db, metric, configs, min_change, fmt))
    except BadInput as exc:
        _fail("history", str(exc))
    except Exception as exc:  # noqa: BLE001
        fail_unexpected(exc, 2, "perfsuite history: error")


def _history(results_dir, db, metric, configs, min_change, fmt) -> int:
    import json

    from perfsuite.nightly import history as H
    from perfsuite.commands.base import parse_threshold
    from perfsuite.analysis.comparison import resolve_metric

    path = Path(db) if db else Path(results_dir) / H.FILENAME
    if not path.is_file():
        raise BadInput(f"no history database at {path} (run `perfsuite nightly` first)")
    if path.stat().st_size == 0:
        # SQLite would take it as an empty database and open_history would write the schema
        # into it: a viewer must not turn a stray empty file into a history
        raise BadInput(f"{path}: empty file, not a history database (run `perfsuite nightly` first)")
    try:
        mc = parse_threshold(min_change)
    except BadInput as exc:
        raise BadInput(str(exc).replace("--threshold", "--min-change")) from None
    try:
        conn = H.open_history(path)
    except H.HistoryError as exc:
        raise BadInput(str(exc)) from None
    try:
        col = resolve_metric(metric)
    except Exception:  # noqa: BLE001 - a results column name given directly
        col = metric
    nights, res = H.nights(conn), H.results(conn, col)
    conn.close()
    changes = H.detect(res, min_change=mc)
    if fmt == "json":
        doc = {"nights": json.loads(nights.to_json(orient="records")),
               "change_points": json.loads(changes.to_json(orient="records"))}
        if configs:
            doc["results"] = json.loads(res[res["config"].isin(configs)].to_json(orient="records"))
        click.echo(json.dumps(doc, indent=2))
        return 0
    if nights.empty:
        click.echo("no nights recorded")
        return 0
    click.echo(f"{'Night':<12} {'Exit':>4} {'Regr':>4} {'Impr':>4} {'Same':>4} {'Inc':>4}  Candidate QEMU")
    for r in nights.itertuples():
        click.echo(f"{r.night:<12} {_i(r.exit_code):>4} {_i(r.regressions):>4} {_i(r.improvements):>4} "
                   f"{_i(r.no_change):>4} {_i(r.inconclusive):>4}  {r.candidate_qemu_version or '?'}")
    for name in configs:
        rows = res[res["config"] == name]
        click.echo(f"\n{name}:" if len(rows) else f"\n{name}: no stored nights")
        for r in rows.itertuples():
            click.echo(f"  {r.night}  ratio {_r(r.ratio)}  cand {_r(r.cand_mean, '.1f')}  {r.verdict}")
    click.echo("")
    if changes.empty:
        click.echo(f"no change points ({len(res['config'].unique())} configurations, metric {col})")
    for r in changes.itertuples():
        first = "first night of a creep" if r.kind == "creep" else "step"
        click.echo(f"change point: {r.config}: {first} {r.night}, {r.change:+.1%} "
                   f"({r.before:.3f} -> {r.after:.3f}, {r.series}, {r.nights} nights)")
    return 0


def _i(v) -> str:
    return "-" if v is None or v != v else str(int(v))


def _r(v, fmt: str = ".3f") -> str:
    return "n/a" if v is None or v != v else format(v, fmt)
