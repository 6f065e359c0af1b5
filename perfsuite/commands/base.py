"""The one failure envelope of every command, and the options several commands share.

Every perfsuite command is a `PerfsuiteCommand` (groups: `PerfsuiteGroup`, whose subcommands
are `PerfsuiteCommand`s by default). Its `invoke` is the single place where a
`PerfsuiteError` becomes one line on stderr plus its exit code, an unexpected exception
becomes one line plus how to get the traceback (PERFSUITE_DEBUG=1), and Ctrl-C becomes
exit 130. Commands raise; they do not print-and-exit on their own.

`run_options` is the set of options of every command that boots guests (`run`, `nightly`,
`bisect`, `migrate`, `lab run`): defined here once, collected into a `RunArgs`.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from typing import Any, Callable

import click

from perfsuite.errors import EXIT_INTERRUPTED, BadInput, report_error

CONTEXT = {"help_option_names": ["-h", "--help"]}


class PerfsuiteCommand(click.Command):
    """A click command whose failures all go through `perfsuite.errors.report_error`."""

    #: the prefix of this command's error lines (e.g. "perfsuite nightly: error")
    error_prefix: str | None = None

    def __init__(self, *args: Any, error_prefix: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("context_settings", CONTEXT)
        super().__init__(*args, **kwargs)
        if error_prefix:
            self.error_prefix = error_prefix

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except Exception as exc:  # noqa: BLE001 - the envelope: every failure is one line
            sys.exit(report_error(exc, self.error_prefix))


class PerfsuiteGroup(click.Group):
    command_class = PerfsuiteCommand

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("context_settings", CONTEXT)
        super().__init__(*args, **kwargs)


def command(**kwargs: Any) -> Callable[[Callable], PerfsuiteCommand]:
    """`@click.command` with the envelope: `@command(error_prefix=...)`."""
    return click.command(cls=PerfsuiteCommand, **kwargs)


def group(**kwargs: Any) -> Callable[[Callable], PerfsuiteGroup]:
    return click.group(cls=PerfsuiteGroup, **kwargs)


# ----------------------------------------------------------------------------- shared options

@dataclass(frozen=True)
class RunArgs:
    """The run options of every command that boots guests, as one value."""

    runs_dir: str = "runs"
    only: tuple[str, ...] = ()
    repeat: int = 5        # repetitions per boot
    boots: int | None = None  # boots per configuration (None: the command's default)
    runtime: int | None = None
    ramp: int | None = None
    accel: str = "auto"
    timeout: float | None = None

    @property
    def reps_per_config(self) -> int:
        """Repetitions each configuration gets: boots x repetitions per boot."""
        return self.repeat * (self.boots or 1)


_RUN_OPTIONS = (
    click.option("--runs-dir", default="runs", show_default=True,
                 help="Where results go: RUNS_DIR/NAME/N.json (+ .meta.json, .log)."),
    click.option("--only", multiple=True, metavar="GLOB",
                 help="Only configurations whose name matches this pattern (repeatable)."),
    click.option("--repeat", type=click.IntRange(1), default=None,
                 help="fio repetitions per guest boot."),
    click.option("--boots", type=click.IntRange(1), default=None,
                 help="Guest boots per configuration (the unit of replication; boots of "
                      "different configurations are interleaved)."),
    click.option("--runtime", type=click.IntRange(1), help="fio runtime in seconds (overrides matrix and job)."),
    click.option("--ramp", type=click.IntRange(0), help="fio ramp_time in seconds (overrides matrix and job)."),
    click.option("--accel", type=click.Choice(["auto", "kvm", "tcg"]), default="auto", show_default=True,
                 help="auto boots a probe guest under KVM and falls back to TCG, saying so."),
    click.option("--timeout", type=click.FloatRange(1),
                 help="Seconds allowed for each repetition's fio; the first repetition of a boot "
                      "also gets the boot's margin on top (90 s under TCG, 30 s under KVM). "
                      "Default: 3x (TCG) or 1.5x (KVM) runtime + ramp, plus 30 s + 5 s per job."),
)


def run_options(repeat_default: int = 5, boots_default: int | None = None,
                runs_dir_help: str | None = None) -> Callable:
    """Add the shared run options to a command; its callback receives `run_args: RunArgs`.

    `repeat_default` / `boots_default` are the command's own defaults (shown in --help).
    `runs_dir_help`: a command whose --runs-dir has no fixed default (RunArgs.runs_dir is
    then "" unless given) and this help text.
    """
    options = _RUN_OPTIONS if runs_dir_help is None else (
        click.option("--runs-dir", default="", help=runs_dir_help),) + _RUN_OPTIONS[1:]

    def decorate(f: Callable) -> Callable:
        @functools.wraps(f)
        def wrapper(*args: Any, runs_dir: str, only: tuple[str, ...], repeat: int | None,
                    boots: int | None, runtime: int | None, ramp: int | None, accel: str,
                    timeout: float | None, **kwargs: Any) -> Any:
            run_args = RunArgs(runs_dir=runs_dir, only=tuple(only),
                               repeat=repeat if repeat is not None else repeat_default,
                               boots=boots if boots is not None else boots_default,
                               runtime=runtime, ramp=ramp, accel=accel, timeout=timeout)
            return f(*args, run_args=run_args, **kwargs)
        for opt in reversed(options):
            wrapper = opt(wrapper)
        for p in wrapper.__click_params__:  # show the command's own defaults
            if p.name == "repeat":
                p.help = f"{p.help} [default: {repeat_default}]"
            if p.name == "boots" and boots_default is not None:
                p.help = f"{p.help} [default: {boots_default}]"
        return wrapper
    return decorate


def boot_numbers_option() -> Callable:
    """Hidden `--boot-numbers [NAME=]N[,N...]` (repeatable): run only those boots of each
    configuration (NAME=: of that one). `lab run --spread` hands each host its boots this way;
    boot N holds repetitions (N-1)*repeat+1 .. N*repeat, so shares never collide."""
    return click.option("--boot-numbers", "boot_numbers", multiple=True, hidden=True,
                        metavar="[NAME=]N[,N...]",
                        help="Only these boots (of configuration NAME); the others are left alone.")


def parse_boot_numbers(values: tuple[str, ...], boots: int) -> dict[str | None, tuple[int, ...]] | None:
    """--boot-numbers values -> {NAME or None: numbers}; None when none was given (pure)."""
    if not values:
        return None
    out: dict[str | None, tuple[int, ...]] = {}
    for v in values:
        name, sep, nums = v.rpartition("=")
        key = name if sep else None
        if sep and not name:
            raise BadInput(f"--boot-numbers {v!r}: give NAME=N[,N...] or N[,N...]")
        try:
            got = tuple(sorted({int(x) for x in nums.split(",")}))
        except ValueError:
            raise BadInput(f"--boot-numbers {v!r}: boot numbers are integers, e.g. 1,3") from None
        if not got or got[0] < 1 or got[-1] > boots:
            raise BadInput(f"--boot-numbers {v!r}: boot numbers go from 1 to --boots ({boots})")
        if key in out:
            raise BadInput(f"--boot-numbers {v!r}: {name or 'the default'} given twice")
        out[key] = got
    return out


def parse_threshold(text: str) -> float:
    """'5%' or '0.05' -> 0.05; a clear error for anything else."""
    t = str(text).strip()
    try:
        v = float(t[:-1]) / 100.0 if t.endswith("%") else float(t)
    except ValueError:
        raise BadInput(f"--threshold {text!r}: give a fraction (0.05) or a percentage (5%)") from None
    if not 0 < v < 1:
        raise BadInput(f"--threshold {text!r}: must be between 0 and 100% (e.g. 0.05 or 5%)")
    return v


def metric_option(default: str = "iops", **kw: Any) -> Callable:
    return click.option("--metric", default=default, show_default=True, **kw)


def threshold_option(**kw: Any) -> Callable:
    kw.setdefault("help", "Smallest change that counts (0.05 or 5%).")
    return click.option("--threshold", default="5%", show_default=True, **kw)


def test_option() -> Callable:
    return click.option("--test", type=click.Choice(["welch", "mannwhitney"]), default="welch",
                        show_default=True, help="Per-row test.")


def correction_option() -> Callable:
    return click.option("--correction", type=click.Choice(["holm", "bh", "none"]), default="holm",
                        show_default=True, help="Correction across configurations.")


def format_option(choices: tuple[str, ...], default: str = "table") -> Callable:
    return click.option("--format", "fmt", type=click.Choice(list(choices)), default=default,
                        show_default=True, help="Output format.")
