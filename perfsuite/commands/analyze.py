"""`perfsuite analyze RUNS_DIR` (== `./analyze.py RUNS_DIR`): mean ± error per run name.

Imports the parsers inside the command body, so `--help` stays cheap. The table, its
warnings and the default checks work on plain columns (perfsuite.analysis.runs): pandas is
imported only for --model (the model fit), scipy only for --error ci95 (the t quantile).
"""

from __future__ import annotations

import os
import sys

import click

from perfsuite.analysis.plainstats import ERROR_KINDS
from perfsuite.commands.base import PerfsuiteCommand
from perfsuite.errors import BadInput

_METRICS = ("iops", "read-iops", "write-iops", "disk-read-ios")
_FORMATS = ("table", "csv", "json", "markdown")


def _epilog() -> str:
    # perfsuite.analysis.stats holds the definitions (and imports numpy): only for --help
    from perfsuite.analysis.plainstats import ERROR_HELP

    return "\b\nError statistics (--error), over the runs of one name:\n" + "\n".join(
        f"  {k:<6} {v}" for k, v in ERROR_HELP.items()
    ) + "\n  A name with a single run prints n/a.\n\n\b\nExamples:\n  ./analyze.py runs/\n" \
        "  ./analyze.py runs/ --error ci95 --runs\n  ./analyze.py runs/ --metric disk-read-ios --filter 'v4-*'\n" \
        "  ./analyze.py runs/ --format csv > summary.csv" \
        "\n\n\b\nExit status: 0 table printed (skipped files are warnings), 2 bad input (no such directory,\n" \
        "no results, --filter matching nothing, a malformed file with --strict, an unexpected error)."


class _AnalyzeCommand(PerfsuiteCommand):
    """The envelope's command, its epilog written when help is printed."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self.epilog = _epilog()
        super().format_epilog(ctx, formatter)


@click.command(cls=_AnalyzeCommand)
@click.argument("runs_dir", metavar="RUNS_DIR", default="runs", required=False)
@click.option("--metric", type=click.Choice(_METRICS), default="iops", show_default=True,
              help="The number per run: total IOPS (read+write+trim over all fio jobs), read or "
                   "write IOPS, or disk-read-ios = the guest disk's completed reads (fio disk_util), "
                   "what the seed's script printed under 'IOPS'.")
@click.option("--error", "error_kind", type=click.Choice(ERROR_KINDS), default="range", show_default=True,
              help="How the Error column is computed, as % of the mean (see below).")
@click.option("--format", "fmt", type=click.Choice(_FORMATS), default="table", show_default=True,
              help="Output format; csv and json always include n.")
@click.option("--runs", "show_n", is_flag=True, help="Add an n column: the number of runs behind each row.")
@click.option("--filter", "filters", metavar="GLOB", multiple=True,
              help="Only run names matching this shell pattern (repeatable), e.g. 'v4-smp-4-*'.")
@click.option("--strict", is_flag=True, help="Fail on the first malformed file instead of skipping it with a warning.")
@click.option("--check/--no-check", default=True, show_default=True,
              help="Run the plausibility checks and print their warnings on stderr.")
@click.option("--model", "model_band", is_flag=True,
              help="Also hold every row against the reference model fitted to these runs "
                   "(the 'plausible band' check; costs a model fit, about a second per ten "
                   "configurations).")
@click.option("--verbose", "-v", is_flag=True,
              help="Name every row in a condensed warning (many rows with one finding are one line).")
def analyze(runs_dir: str, metric: str, error_kind: str, fmt: str, show_n: bool,
            filters: tuple[str, ...], strict: bool, check: bool, model_band: bool,
            verbose: bool) -> None:
    """Print the mean and error of each run name under RUNS_DIR (default runs/; runs/<NAME>/<N>.json).

    Every *.json in runs/<NAME>/ except *.meta.json is one repetition (fio
    --output-format=json or json+, fio 2.x or 3.x). Rows are sorted by name; warnings go
    to stderr, the table to stdout.
    """
    try:
        _run(runs_dir, metric, error_kind, fmt, show_n, filters, strict,
             check and (model_band, verbose))
    except BrokenPipeError:
        # `./analyze.py runs/ | head`: the reader left; not an error worth a traceback
        _quiet_stdout()


def _run(runs_dir: str, metric: str, error_kind: str, fmt: str, show_n: bool,
         filters: tuple[str, ...], strict: bool, check: tuple[bool, bool] | bool) -> None:
    from perfsuite.report.table import render
    from perfsuite.analysis.results import ResultsError, load_runs
    from perfsuite.analysis.summary import METRICS, missing_metric, one_boot_names, summary_runs

    try:
        loaded = load_runs(runs_dir, strict=strict, names=list(filters) or None)
    except ResultsError as exc:
        raise BadInput(str(exc)) from None
    for w in loaded.warnings:
        _warn(w)
    runs = loaded.runs
    missing = missing_metric(runs, metric)
    if len(missing):
        # one line, not one per name: a 500-name tree without disk_util would flood stderr
        listed = ", ".join(f"{n} ({c})" for n, c in list(missing.items())[:8])
        more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        why = " (no disk_util section in the fio output)" if metric == "disk-read-ios" else ""
        _warn(f"{sum(missing.values())} run(s) without {metric} data{why} left out: {listed}{more}")
    summary = summary_runs(runs, metric, error_kind)
    if error_kind in ("sem", "ci95"):
        one = one_boot_names(runs, metric)
        if one:
            _warn(f"{len(one)} name(s) ran all their repetitions in one boot; their {error_kind} is "
                  f"understated (no boot-to-boot variation in it): {', '.join(one[:8])}"
                  + (f" and {len(one) - 8} more" if len(one) > 8 else ""))
    if not len(summary):
        raise BadInput(f"no run under {runs_dir!r} has {metric} data")
    text = render(summary, fmt, label=METRICS[metric][1], show_n=show_n, metric=metric, error=error_kind)
    try:
        sys.stdout.write(text)
    except UnicodeEncodeError:
        # an ASCII-only terminal/pipe (PYTHONIOENCODING=ascii, odd locales): keep the table
        sys.stdout.write(text.replace("±", "+-").encode("ascii", "replace").decode("ascii"))
    sys.stdout.flush()
    if check:
        _run_checks(runs, *check)


def _run_checks(runs, model_band: bool, verbose: bool) -> None:
    from perfsuite.analysis.checks import check_runs, condense

    try:
        items = check_runs(runs, band=model_band)
    except Exception as exc:  # noqa: BLE001 - a broken check must not hide the table
        if os.environ.get("PERFSUITE_DEBUG"):
            raise
        _warn(f"checks could not run: {type(exc).__name__}: {exc}")
        return
    for line in condense(items, max_names=None if verbose else 8):
        click.echo(line, err=True)


def _warn(msg: str) -> None:
    click.echo(f"warning: {msg}", err=True)


def _quiet_stdout() -> None:
    # Python would complain again at exit when flushing the dead pipe.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
