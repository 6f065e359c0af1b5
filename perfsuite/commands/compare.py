"""`perfsuite compare BASELINE [CANDIDATE]`: verdict per configuration, exit 0/1/2.

Exit status: 0 no regression, 1 at least one regression, 2 error (one line on stderr,
never a traceback; PERFSUITE_DEBUG=1 shows one).
"""

from __future__ import annotations

import os
import sys

import click

from perfsuite.commands.base import command, parse_threshold
from perfsuite.errors import BadInput

_PREFIX = "perfsuite compare: error"

_EPILOG = """\b
Verdicts (a change needs BOTH a corrected p < alpha AND |change| > threshold):
  regression    significant and worse by more than the threshold
  improvement   significant and better by more than the threshold
  no change     the ratio's whole 95% CI lies within 1 +- threshold
  inconclusive  too noisy to tell; also any row with a single run on a side
\b
Examples:
  perfsuite compare runs-v3/ runs-v4/
  perfsuite compare runs/ --label v3 --label v4 --format markdown
  perfsuite compare base/ cand/ --threshold 3% --correction bh --format junit -o compare.xml
"""


def load_side(path: str, label: str | None, side: str):
    """Results frame of one side (perfsuite.analysis.results.load_runs), optionally one label of it."""
    from perfsuite.analysis.comparison import CompareError, select_label
    from perfsuite.analysis.results import ResultsError, load_runs

    try:
        loaded = load_runs(path)
    except ResultsError as exc:
        raise BadInput(f"{side}: {exc}") from None
    for w in loaded.warnings:
        click.echo(f"warning: {side}: {w}", err=True)
    frame = loaded.frame
    if label is not None:
        try:
            frame = select_label(frame, label, side)
        except CompareError as exc:
            raise BadInput(str(exc)) from None
    return frame


@command(epilog=_EPILOG, error_prefix=_PREFIX)
@click.argument("baseline", metavar="BASELINE")
@click.argument("candidate", metavar="[CANDIDATE]", required=False)
@click.option("--label", "labels", multiple=True, metavar="LABEL",
              help="Given twice: the baseline's and the candidate's label (build) inside the "
                   "directories; CANDIDATE may then be omitted (both labels in BASELINE).")
@click.option("--threshold", default="5%", show_default=True,
              help="Smallest relative change that counts, as 0.05 or 5%.")
@click.option("--test", type=click.Choice(["welch", "mannwhitney", "moderated"]), default="welch", show_default=True)
@click.option("--correction", type=click.Choice(["holm", "bh", "none"]), default="holm", show_default=True,
              help="Multiple-comparison correction over rows: Holm (family-wise) or Benjamini-Hochberg (FDR).")
@click.option("--alpha", type=float, default=0.05, show_default=True, help="Significance level after correction.")
@click.option("--metric", default="iops", show_default=True,
              help="iops, read-iops, write-iops, disk-read-ios, p50/p99/p99.9 (completion latency, log scale) or a results column (lat_* = lower is better).")
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "json", "junit"]), default="table",
              show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here instead of stdout.")
@click.option("--strict-hosts", is_flag=True,
              help="A difference of host (CPU model, cores, kernel, accelerator) between the sides "
                   "is an error (exit 2) instead of a warning and [host] marks.")
def compare(baseline: str, candidate: str | None, labels: tuple[str, ...], threshold: str, test: str,
            correction: str, alpha: float, metric: str, fmt: str, output: str | None,
            strict_hosts: bool) -> None:
    """Compare BASELINE and CANDIDATE runs directories configuration by configuration."""
    sys.exit(_run(baseline, candidate, labels, threshold, test, correction, alpha, metric, fmt, output,
                  strict_hosts))


def _run(baseline, candidate, labels, threshold, test, correction, alpha, metric, fmt, output,
         strict_hosts=False) -> int:
    from perfsuite.analysis.comparison import CompareError, compare as do_compare
    from perfsuite.report.verdicts import RENDERERS
    from perfsuite.analysis.hosts import HostsDiffer

    if len(labels) not in (0, 2):
        raise BadInput("--label: give it twice (baseline label, then candidate label) or not at all")
    if candidate is None:
        if not labels:
            raise BadInput("only one directory given: add CANDIDATE, or --label BASE --label CAND")
        candidate = baseline
    if not 0 < alpha < 1:
        raise BadInput(f"--alpha {alpha}: must be between 0 and 1")
    thr = parse_threshold(threshold)
    lb, lc = labels if labels else (None, None)
    if lb == lc and _same_dir(baseline, candidate):
        # every row would compare a set of runs with itself: ratio 1.000, never a verdict
        click.echo(f"warning: baseline and candidate are the same runs ({baseline}"
                   + (f", label {lb}" if lb else "") + "): nothing is compared", err=True)
    base = load_side(baseline, lb, "baseline")
    cand = load_side(candidate, lc, "candidate")
    try:
        result = do_compare(base, cand, threshold=thr, test=test, correction=correction,
                            metric=metric, alpha=alpha, strict_hosts=strict_hosts)
    except (CompareError, HostsDiffer) as exc:
        raise BadInput(str(exc)) from None
    if not len(result.rows):  # nothing was compared: that is no answer, so not exit 0
        raise BadInput("no configuration appears on both sides (baseline only: "
                       f"{', '.join(result.only_baseline) or 'none'}; candidate only: "
                       f"{', '.join(result.only_candidate) or 'none'}): nothing to compare")
    text = RENDERERS[fmt](result)
    if output:
        from perfsuite.fsutil import atomic_write_text

        atomic_write_text(output, text)  # an OSError is one line through the envelope
    else:
        click.echo(text, nl=False)
    for w in result.warnings:
        click.echo(f"warning: {w}", err=True)
    return result.exit_code


def _same_dir(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # a missing side is reported by load_side
        return False

