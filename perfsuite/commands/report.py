"""`perfsuite report RUNS_DIR... -o reports/NAME/`: one self-contained HTML page.

The edge of the report: reads the runs trees (and optionally a baseline/candidate pair
and a nightly history database), calls the other modules, writes index.html atomically.
Everything between is perfsuite.report.html (context) and perfsuite.report.plots (figures).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path

import click


class BadInput(Exception):
    """Something the user can fix: printed as one line, exit status 2."""


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("runs_dirs", metavar="RUNS_DIR [MORE_RUNS_DIRS]...", nargs=-1, required=True)
@click.option("-o", "--output", "out", metavar="DIR", required=True,
              help="Report directory; index.html is written inside (created if missing).")
@click.option("--baseline", metavar="DIR", help="Runs tree of the baseline build (with --candidate): adds a compare section.")
@click.option("--candidate", metavar="DIR", help="Runs tree of the candidate build (with --baseline).")
@click.option("--history", "history_db", metavar="DB", help="Nightly history database (SQLite): adds trends and change points.")
@click.option("--check/--no-check", default=True, show_default=True,
              help="Show the plausibility checks (reference model) beside the table.")
def report(runs_dirs: tuple[str, ...], out: str, baseline: str | None, candidate: str | None,
           history_db: str | None, check: bool) -> None:
    """Write OUT/index.html: table, IOPS and speedup charts, every repetition, latency,
    optional compare and history sections, environment and links to the raw files.

    \b
    Examples:
      perfsuite report runs/ -o reports/example/
      perfsuite report runs/ --baseline runs-v3/ --candidate runs-v4/ -o reports/v3-v4/
      perfsuite report runs/ --history nightly.sqlite -o reports/nightly/
    """
    t0 = time.perf_counter()
    try:
        path, ctx = _build([Path(d) for d in runs_dirs], Path(out), baseline, candidate, history_db, check)
    except BadInput as exc:
        _fail(str(exc), 2)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as exc:  # noqa: BLE001 - the promise is: one line, never a traceback
        if os.environ.get("PERFSUITE_DEBUG"):
            raise
        _fail(f"unexpected {type(exc).__name__}: {exc} (set PERFSUITE_DEBUG=1 for a traceback)", 2)
    click.echo(f"{path}  ({ctx['n_configs']} configurations, {ctx['n_runs']} runs; built in {time.perf_counter() - t0:.2f} s)")


def _build(runs_dirs: list[Path], out: Path, baseline: str | None, candidate: str | None,
           history_db: str | None, check: bool):
    if (baseline is None) != (candidate is None):
        raise BadInput("--baseline and --candidate go together: give both or neither")
    if history_db is not None and not Path(history_db).is_file():
        raise BadInput(f"history database {history_db!r} does not exist")
    if out.exists() and not out.is_dir():
        raise BadInput(f"output {str(out)!r} exists and is not a directory")

    import pandas as pd

    from perfsuite.fsutil import atomic_write_text
    from perfsuite.report import html
    from perfsuite.results import ResultsError, load_runs

    frames, warnings = [], []
    labels = html.source_labels(runs_dirs)
    for label, d in zip(labels, runs_dirs):
        try:
            loaded = load_runs(d)
        except ResultsError as exc:
            raise BadInput(str(exc)) from None
        f = loaded.frame.copy()
        f["name"] = [html.display_name(label, n, len(runs_dirs)) for n in f["name"]]
        frames.append(f)
        warnings += loaded.warnings
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]

    comparison = history = None
    if baseline is not None:
        comparison = _comparison(Path(baseline), Path(candidate))
    if history_db is not None:
        history = _history(Path(history_db))
    findings = _findings(frame) if check else []

    ctx = html.build_context(
        frame, html.scan_files(runs_dirs), out, sources=[str(d) for d in runs_dirs],
        load_warnings=warnings, findings=findings, comparison=comparison, history=history,
    )
    out.mkdir(parents=True, exist_ok=True)
    path = out / "index.html"
    atomic_write_text(path, html.render(ctx))
    return path, ctx


# ---------------------------------------------------------------- adapters
# The compare, history and checks modules belong to other parts of perfsuite; these
# functions turn their values into the plain dicts perfsuite.report.html expects, so the
# page does not depend on their internals.

def _findings(frame) -> list:
    if importlib.util.find_spec("perfsuite.checks") is None:
        return []
    from perfsuite.checks import check_runs

    return list(check_runs(frame) or ())


def _comparison(baseline: Path, candidate: Path) -> dict:
    raise BadInput("the compare section needs perfsuite.compare, which is not installed yet")


def _history(db: Path) -> dict:
    raise BadInput("the history section needs perfsuite.history, which is not installed yet")


def _fail(msg: str, status: int) -> None:
    click.echo(f"error: {msg}", err=True)
    sys.exit(status)
