"""`perfsuite build SPEC | list | rm SPEC`: get a QEMU build into the cache, show, remove.

SPEC is what `run --qemu`, a matrix's `qemu` and `nightly --baseline-qemu/--candidate-qemu`
accept: `system`, a path, `debian:SUITE` / `debian:VERSION`, `git:REPO@REF` (docs/builds.md).
"""

from __future__ import annotations

import time

import click
import orjson

from perfsuite.commands.base import command

_EPILOG = """\b
Examples:
  perfsuite build debian:bookworm-backports      # QEMU 10.0 from Debian, ~13 MB, unpacked
  perfsuite build git:~/src/qemu@v10.0.2 -j 2    # configure + ninja into the cache
  perfsuite build list
  perfsuite build rm debian:bookworm-backports
Prints LABEL and BINARY (tab-separated); --json prints the provenance that goes into meta files.
Exit status: 0 ok, 2 bad spec / failed build (one line naming the build log)."""


@command(epilog=_EPILOG, error_prefix="perfsuite build: error")
@click.argument("args", nargs=-1, required=True, metavar="SPEC | list | rm SPEC...")
@click.option("--jobs", "-j", type=click.IntRange(1), help="Parallel build jobs (default: all cores).")
@click.option("--json", "as_json", is_flag=True, help="Print the build's provenance (or the list) as JSON.")
def build(args: tuple[str, ...], jobs: int | None, as_json: bool) -> None:
    """Resolve a QEMU build spec (fetching or building it when not cached); list or remove builds."""
    from perfsuite import builds
    from perfsuite.errors import BadInput

    if args[0] == "list":
        if len(args) > 1:
            raise BadInput("build list takes no argument")
        _list(builds.cached(), as_json)
        return
    if args[0] == "rm":
        if len(args) < 2:
            raise BadInput("build rm SPEC...: name the build(s) to remove")
        for spec in args[1:]:
            gone = builds.remove(spec)
            if not gone:
                raise BadInput(f"{spec}: no cached build matches (see perfsuite build list)")
            for g in gone:
                click.echo(f"removed {g}")
        return
    if len(args) > 1:
        raise BadInput(f"one SPEC at a time (got {len(args)}); or: list, rm SPEC...")
    b = builds.resolve(args[0], jobs=jobs, log=lambda m: click.echo(m, err=True))
    if as_json:
        click.echo(orjson.dumps({"label": b.label, "binary": str(b.binary), **b.provenance,
                                 "built_now": b.built_now},
                                option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(f"{b.label}\t{b.binary}")


def list_rows(found) -> list[dict]:
    """One row per cached build (pure but for the entries' sizes and use times)."""
    from perfsuite.builds import cache
    rows = []
    for entry, rec in found:
        rows.append({"spec": rec.get("spec"), "kind": rec.get("kind"),
                     "version": rec.get("package_version") or rec.get("tag") or "",
                     "commit": rec.get("commit"), "size_mb": round(cache.dir_size(entry) / 2**20, 1),
                     "build_s": rec.get("build_seconds"), "built": rec.get("built"),
                     "last_used": _iso(cache.last_used(entry)), "path": str(entry)})
    return rows


def _iso(t: float | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t)) if t else None


def _list(found, as_json: bool) -> None:
    rows = list_rows(found)
    if as_json:
        click.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    if not rows:
        click.echo("no cached builds (perfsuite build SPEC makes one)")
        return
    click.echo(f"{'SPEC':<44} {'VERSION':<32} {'COMMIT':<12} {'SIZE':>8} {'BUILD':>8}  LAST USED")
    for r in rows:
        click.echo(f"{(r['spec'] or '?'):<44} {r['version']:<32} {(r['commit'] or '-')[:12]:<12} "
                   f"{r['size_mb']:>6.1f}MB {r['build_s'] or 0:>7.1f}s  {r['last_used'] or '-'}")
