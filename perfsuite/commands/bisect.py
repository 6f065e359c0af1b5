"""`perfsuite bisect`: the commit that made a configuration slower, with a stated error bound.

Confirms the regression first (good and bad endpoints, boots interleaved), then runs a real
`git bisect` in a private clone, classifying each midpoint with a sequential test between
the two measured levels. Exit status: 0 found, 1 not reproduced / undecided / only skipped
commits left, 2 error, 130 interrupted (rerun the same command to resume).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from perfsuite.commands.base import (RunArgs, command, format_option, metric_option, parse_threshold,
                                     run_options, threshold_option)
from perfsuite.errors import BadInput

MAX_CONFIGS = 4

_EPILOG = """\b
Results (RESULTS_DIR): state.json, repo/ (the private clone), builds/, runs/HASH12/NAME/N.*,
bisect.log (git bisect log), result.json|md|txt, bisect.html. Rerunning the same command resumes.
\b
Recipe: SCRIPT runs in the clone at the commit under test with PERFSUITE_COMMIT,
PERFSUITE_SRC and PERFSUITE_BUILD_DIR set; its last output line is the QEMU binary's path.
Exit 0 found, 1 not reproduced / undecided, 2 error, 130 interrupted. See docs/bisect.md.
\b
Example:
  perfsuite bisect --src ~/qemu --good v9.2.0 --bad master jobs/ci.toml \\
      --only '*-no-mq' --recipe ./build-qemu.sh --runtime 5 --ramp 1"""


@command(epilog=_EPILOG, error_prefix="perfsuite bisect: error")
@click.argument("matrix", required=False, default="jobs/matrix.toml", metavar="[MATRIX]")
@click.option("--src", required=True, type=click.Path(file_okay=False), help="The git repository to bisect.")
@click.option("--good", required=True, metavar="REF", help="A commit without the regression.")
@click.option("--bad", required=True, metavar="REF", help="A later commit with it.")
@run_options(repeat_default=1)
@metric_option()
@threshold_option(help="Smallest slowdown that counts as reproduced (0.05 or 5%).")
@click.option("--bound", default="5%", show_default=True,
              help="Bound on the probability of naming a wrong commit (whole bisection).")
@click.option("--recipe", type=click.Path(exists=True, dir_okay=False), metavar="SCRIPT",
              help="Build script (default: perfsuite.builds' git: build).")
@click.option("--results-dir", default="bisect-results", show_default=True)
@click.option("--assume", multiple=True, metavar="HASH=good|bad",
              help="Your call for a commit (e.g. one left undecided); repeatable.")
@format_option(("text", "markdown", "json"), default="text")
def bisect(matrix: str, src: str, good: str, bad: str, run_args: RunArgs, metric: str,
           threshold: str, bound: str, recipe: str | None, results_dir: str,
           assume: tuple[str, ...], fmt: str) -> None:
    """Find the first commit between --good and --bad that makes the selected
    configuration(s) of MATRIX slower. --boots caps the midpoint boots per step (default 16)."""
    import orjson

    from perfsuite.bisect import render
    from perfsuite.fsutil import atomic_write_bytes, atomic_write_text

    req, runner = _request(matrix, src, good, bad, run_args, metric, threshold, bound, recipe,
                           results_dir, assume)
    from perfsuite.bisect.driver import run_bisect
    from perfsuite.qemu.machine import install_signal_handlers, kill_all
    from perfsuite.run.runner import run_config

    install_signal_handlers()
    log = lambda m: click.echo(m, err=True)  # noqa: E731
    try:
        out = run_bisect(req, runner, run_config, log)
    except KeyboardInterrupt:
        kill_all()
        click.echo(f"interrupted: rerun the same command to resume ({results_dir}/)", err=True)
        sys.exit(130)
    d = render.to_dict(out)
    res = Path(results_dir)
    atomic_write_bytes(res / "result.json", orjson.dumps(d, option=orjson.OPT_INDENT_2))
    atomic_write_text(res / "result.md", render.markdown(d))
    atomic_write_text(res / "result.txt", render.text(d))
    _page(d, res / "bisect.html", log)
    if fmt == "json":
        click.echo(orjson.dumps(d, option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(render.markdown(d) if fmt == "markdown" else render.text(d), nl=False)
    sys.exit(out.exit_code)


def _page(d: dict, path: Path, log) -> None:
    """The HTML page: a courtesy beside the results, never a reason to fail the bisect."""
    import os

    from perfsuite.fsutil import atomic_write_text
    try:
        from perfsuite.report.bisect_page import render_page
        atomic_write_text(path, render_page(d))
    except Exception as e:  # noqa: BLE001 - the outcome is already written and printed
        if os.environ.get("PERFSUITE_DEBUG"):
            raise
        log(f"(bisect page skipped: {type(e).__name__}: {e})")


def _request(matrix, src, good, bad, a: RunArgs, metric, threshold, bound, recipe, results_dir, assume):
    from perfsuite.analysis.fio import FIELDS
    from perfsuite.bisect.driver import Request
    from perfsuite.matrix.config import ConfigError, host_memory_mb, load_matrix, select, validate
    from perfsuite.qemu.features import probe
    from perfsuite.run.runner import RunOptions, Runner

    numeric = [f for f in FIELDS if f not in ("fio_version", "rw", "bs", "error", "numjobs", "iodepth")]
    if metric not in numeric:
        raise BadInput(f"--metric {metric!r}: one of {', '.join(numeric)}")
    calls = []
    for a_ in assume:
        h, _, v = a_.partition("=")
        if v not in ("good", "bad") or len(h) < 4:
            raise BadInput(f"--assume {a_!r}: give HASH=good or HASH=bad (at least 4 hex digits)")
        calls.append((h, v))
    over = {"runtime": a.runtime, "ramp": a.ramp, "label": "bisect"}
    try:
        configs = select(load_matrix(matrix, over), a.only)
        if not configs:
            raise BadInput(f"--only {' '.join(a.only)}: no configuration of {matrix} matches")
        if len(configs) > MAX_CONFIGS:
            raise BadInput(f"{matrix} selects {len(configs)} configurations; bisect measures one "
                           f"(or up to {MAX_CONFIGS}): choose with --only GLOB")
        validate(configs, probe=probe, host_mem_mb=host_memory_mb())
    except ConfigError as e:
        raise BadInput(str(e)) from None
    ctx = click.get_current_context()
    runs = None
    if ctx.get_parameter_source("runs_dir") == click.core.ParameterSource.COMMANDLINE:
        runs = Path(a.runs_dir)
    req = Request(src=Path(src), good=good, bad=bad, configs=tuple(configs), results=Path(results_dir),
                  metric=metric, threshold=parse_threshold(threshold),
                  bound=parse_threshold(bound).__float__(), recipe=recipe, repeat=a.repeat,
                  step_max=a.boots or 16, runs=runs, assume=tuple(calls))
    runner = Runner(options=RunOptions(repeat=a.repeat, accel=a.accel, timeout=a.timeout, retries=0))
    return req, runner
