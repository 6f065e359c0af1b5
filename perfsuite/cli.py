"""The `perfsuite` command line: a click group whose subcommands load lazily.

Each subcommand lives in its own module under perfsuite/commands/ and is imported
only when it is invoked, so `perfsuite --help` and `./analyze.py runs/` do not pay
for matplotlib, scipy or the QEMU machinery they do not use.
"""

from __future__ import annotations

import importlib
import sys

import click

# name -> (module, attribute, one-line help shown by `perfsuite --help`)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "run": ("perfsuite.commands.run", "run", "Boot QEMU guests over a matrix and run fio in them."),
    "image": ("perfsuite.commands.image", "image", "Build or inspect the cached guest image."),
    "analyze": ("perfsuite.commands.analyze", "analyze", "Print mean IOPS +- error per configuration."),
    "compare": ("perfsuite.commands.compare", "compare", "Compare a baseline and a candidate, row by row."),
    "nightly": ("perfsuite.commands.nightly", "nightly", "Baseline vs candidate, interleaved; record history."),
    "history": ("perfsuite.commands.nightly", "history", "Show stored nights and detect change points."),
    "report": ("perfsuite.commands.report", "report", "Write a self-contained HTML report."),
    "model": ("perfsuite.commands.model", "model", "Reference virtio-blk model: predict, fit, simulate."),
    "migrate": ("perfsuite.commands.migrate", "migrate", "Live-migrate guests under verified fio writes."),
    "bisect": ("perfsuite.commands.bisect", "bisect", "Bisect a performance regression to the commit that caused it."),
    "lab": ("perfsuite.commands.lab", "lab", "A lab of benchmark hosts through Ansible: check, setup, run, nightly."),
    "build": ("perfsuite.commands.build", "build", "Fetch or build a QEMU (debian:, git:) into the cache; list; rm."),
}


class LazyGroup(click.Group):
    def invoke(self, ctx: click.Context):
        # Ctrl-C while a command's module imports, before its own envelope: click would say
        # "Aborted!" and exit 1; every interruption is 130.
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module, attr, _ = entry
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Show help without importing every command module.
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="perfsuite")
def main() -> None:
    """Benchmark QEMU's virtio-blk device with real guests and real fio, and analyze the results."""


if __name__ == "__main__":
    main()
