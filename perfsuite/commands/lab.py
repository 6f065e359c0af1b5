"""`perfsuite lab check|setup|run|nightly INVENTORY`: a lab of benchmark hosts through Ansible.

Each host runs `perfsuite run` itself (timing stays local); Ansible provisions the hosts,
hands out configurations and brings results home. Inventory, playbooks and the dispatch
loop live in perfsuite/lab/; docs/lab.md explains a real lab.
"""

from __future__ import annotations

import sys

import click

from perfsuite.commands.base import RunArgs, group, run_options

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
