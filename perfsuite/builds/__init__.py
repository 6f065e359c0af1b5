"""QEMU builds: a spec (system, a path, debian:..., git:REPO@REF) resolved to a runnable binary.

`resolve(spec) -> Build` is the one entry point every command uses: it fetches or builds what
the spec names into the shared cache (perfsuite/builds/cache.py) unless it is there already,
and returns the binary to run, the build's default label and its provenance (what goes into
every meta file). Resolved builds are remembered per process, so a matrix naming one spec
in many configurations resolves it once, and `provenance_of(binary)` finds the spec again.
"""

from __future__ import annotations

import functools
import os
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable

from perfsuite.builds import cache
from perfsuite.builds.common import BuildError
from perfsuite.fsutil import sha256_file
from perfsuite.builds.spec import SYSTEM_BINARY, BadSpec, Spec, is_build_spec, parse_spec

__all__ = ["Build", "BuildError", "BadSpec", "resolve", "parse_spec", "is_build_spec",
           "provenance_of", "default_label", "resolve_configs", "cached", "remove"]


@dataclass(frozen=True)
class Build:
    spec: str
    binary: Path                      # runnable qemu-system-x86_64 (a wrapper for cached builds)
    label: str                        # default run-name label: qemu-10.0, the tag, g<hash>
    provenance: dict[str, Any] = field(default_factory=dict, compare=False)
    entry: Path | None = None         # the cache directory (None: system / path)
    built_now: bool = False


_RESOLVED: dict[str, Build] = {}      # spec -> Build, this process
_BY_BINARY: dict[str, Build] = {}     # str(binary) -> Build


def _quiet(_msg: str) -> None:
    pass


def resolve(spec: str, *, jobs: int | None = None, log: Callable[[str], None] | None = None) -> Build:
    """Resolve a build spec to a runnable binary, fetching/building it into the cache if needed."""
    if spec in _RESOLVED:
        return _RESOLVED[spec]
    s = parse_spec(spec)
    log = log or _quiet
    root = cache.builds_root()
    if s.kind in ("system", "path"):
        b = _plain(s)
    elif s.kind == "debian":
        b = _debian(s, root, log)
    else:
        b = _git(s, root, jobs, log)
    _RESOLVED[spec] = b
    _BY_BINARY[str(b.binary)] = b
    return b


def _version_label(binary: str) -> tuple[str | None, str | None, str]:
    from perfsuite.qemu.features import QemuNotRunnable, default_label, probe
    try:
        info = probe(binary)
        return info.version, info.package, default_label(binary)
    except QemuNotRunnable:
        return None, None, "qemu"


def _plain(s: Spec) -> Build:
    from perfsuite.qemu.features import QemuNotRunnable
    path = shutil.which(s.value)
    if path is None:
        from perfsuite.qemu.features import _why_not_runnable
        raise QemuNotRunnable(_why_not_runnable(s.value))
    version, package, label = _version_label(path)
    prov = {"spec": s.text, "kind": s.kind, "qemu_version": version, "package_version": package or None,
            "commit": None, "dirty": None, "configure_flags": None,
            "binary_sha256": _sha_cached(os.path.realpath(path))}
    binary = Path(path) if s.kind == "system" else Path(s.value)
    return Build(spec=s.text, binary=binary, label=label, provenance=prov)


@functools.lru_cache(maxsize=None)
def _sha_cached(path: str) -> str | None:
    try:
        return sha256_file(Path(path))
    except OSError:
        return None


def _finish(s: Spec, entry: Path, rec: dict, built_now: bool, label: str | None) -> Build:
    binary = entry / rec["wrapper"]
    version, _pkg, vlabel = _version_label(str(binary))
    prov = {"spec": s.text, "kind": rec["kind"], "qemu_version": version,
            "package_version": rec.get("package_version"), "commit": rec.get("commit"),
            "dirty": rec.get("dirty"), "checkout_dirty": rec.get("checkout_dirty"),
            "tag": rec.get("tag"), "repo": rec.get("repo"),
            "configure_flags": rec.get("configure_flags"), "recipe": rec.get("recipe"),
            "binary_sha256": rec.get("binary_sha256"), "cache_entry": entry.name}
    return Build(spec=s.text, binary=binary, label=label or vlabel, provenance=prov,
                 entry=entry, built_now=built_now)


def _debian(s: Spec, root: Path, log: Callable[[str], None]) -> Build:
    from perfsuite.builds import debian
    apt = debian.PrivateApt(root / "apt", log)
    version = None
    if not s.suite:  # a version: a cache hit needs no apt at all
        for _entry, rec in cache.entries(root):
            if rec.get("kind") == "debian" and rec.get("package_version", "").split(":", 1)[-1] == s.value.split(":", 1)[-1]:
                version = rec["package_version"]
    version = version or apt.version_for(s.value, s.suite)
    entry = debian.entry_for(root, version)
    rec, built = cache.get_or_make(entry, lambda p: debian.make(p, apt, version, s.text))
    return _finish(s, entry, rec, built, None)


def _git(s: Spec, root: Path, jobs: int | None, log: Callable[[str], None]) -> Build:
    from perfsuite.builds import source
    info = source.resolve_commit(s, root)
    entry = source.entry_for(root, info["commit"])
    rec, built = cache.get_or_make(entry, lambda p: source.make(p, root, s, info, jobs, log))
    if info["checkout_dirty"]:
        log(f"{s.text}: the checkout has uncommitted changes; built commit {info['commit'][:12]} without them")
    b = _finish(s, entry, rec, built, source.label_for(info["commit"], info["tag"]))
    return replace(b, provenance={**b.provenance, "ref": s.ref, "checkout_dirty": info["checkout_dirty"]})


# ----------------------------------------------------------------------------- hooks for commands

def provenance_of(binary: str) -> dict[str, Any]:
    """The `build` block of a meta file for the binary a config runs."""
    b = _BY_BINARY.get(str(binary))
    if b is None:
        try:
            b = resolve(str(binary) if str(binary) != SYSTEM_BINARY else "system")
        except Exception as e:  # noqa: BLE001 - provenance must not stop a run that validated
            return {"spec": str(binary), "error": str(e)}
    return dict(b.provenance)


def default_label(qemu: str) -> str:
    """The label of a build when the matrix names none (matrix.config's default_label hook)."""
    if is_build_spec(qemu):
        return resolve(qemu).label
    from perfsuite.qemu.features import default_label as plain
    return plain(qemu)


def resolve_configs(configs: Iterable, jobs: int | None = None, log=None) -> list:
    """Configs whose `qemu` is a build spec get the resolved binary instead (names unchanged)."""
    out = []
    for c in configs:
        if is_build_spec(c.qemu):
            c = c.replace(qemu=str(resolve(c.qemu, jobs=jobs, log=log).binary))
        out.append(c)
    return out


def cached() -> list[tuple[Path, dict[str, Any]]]:
    return cache.entries(cache.builds_root())


def remove(spec: str) -> list[Path]:
    """Remove the cached builds a spec names (a debian: version/suite, a git: commit or ref)."""
    s = parse_spec(spec)
    if s.kind not in ("debian", "git"):
        raise BadSpec(f"{spec}: only debian: and git: builds are cached")
    gone = []
    for entry, rec in cached():
        if _matches(s, rec):
            cache.remove(entry)
            gone.append(entry)
    return gone


def _matches(s: Spec, rec: dict) -> bool:
    if s.kind == "debian":
        if rec.get("kind") != "debian":
            return False
        v = rec.get("package_version", "")
        return rec.get("spec") == s.text or v == s.value or v.split(":", 1)[-1] == s.value
    if rec.get("kind") != "git":
        return False
    if rec.get("spec") == s.text:
        return True
    commit = rec.get("commit") or ""
    return len(s.ref) >= 7 and commit.startswith(s.ref.lower()) or rec.get("tag") == s.ref
