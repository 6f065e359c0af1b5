"""The build cache: one directory per finished build, found by what defines it.

    CACHE/builds/<kind>/<key>/            a finished build (its build.json is written last)
    CACHE/builds/<kind>/<key>.lock        held while that build is made (filelock)
    CACHE/builds/<kind>/.<key>.partial-*  an unfinished attempt: never looks finished, removed
                                          by the next attempt

A build is made in a `.partial` directory and renamed into place only when complete, so an
interrupted build leaves nothing a reader takes for a result, and two commands asking for
the same spec at once build it once (the second waits on the lock, then finds it).
"""

from __future__ import annotations

import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import orjson
from filelock import FileLock

from perfsuite.fsutil import atomic_write_json

RECORD = "build.json"
LAST_USED = "last-used"


def builds_root(cache_dir: str | os.PathLike | None = None) -> Path:
    from perfsuite.guest.image import cache_root
    return cache_root(cache_dir) / "builds"


def read_record(entry: Path) -> dict[str, Any] | None:
    """The record of a finished build, or None (missing or unfinished)."""
    try:
        return orjson.loads((entry / RECORD).read_bytes())
    except (OSError, ValueError):
        return None


def touch_used(entry: Path) -> None:
    try:
        (entry / LAST_USED).touch()
    except OSError:
        pass


@contextmanager
def locked(entry: Path, timeout: float = -1) -> Iterator[None]:
    entry.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(entry) + ".lock", timeout=timeout):
        yield


def get_or_make(entry: Path, make: Callable[[Path], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
    """The record of `entry`, building it with `make(partial_dir) -> record` when missing.

    Returns (record, built_now). `make` fills the partial directory; the record it returns is
    written as build.json, then the directory is renamed into place (the finishing step).
    """
    rec = read_record(entry)
    if rec is not None:
        touch_used(entry)
        return rec, False
    with locked(entry):
        rec = read_record(entry)  # someone else finished it while we waited
        if rec is not None:
            touch_used(entry)
            return rec, False
        for old in entry.parent.glob(f".{entry.name}.partial-*"):
            shutil.rmtree(old, ignore_errors=True)
        if entry.exists():  # a finished-looking dir without a record: not ours to trust
            shutil.rmtree(entry)
        partial = entry.parent / f".{entry.name}.partial-{os.getpid()}"
        partial.mkdir(parents=True)
        try:
            t0 = time.monotonic()
            rec = make(partial)
            rec = {**rec, "build_seconds": round(time.monotonic() - t0, 2),
                   "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            atomic_write_json(partial / RECORD, rec)
            os.replace(partial, entry)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        touch_used(entry)
        return rec, True


def entries(root: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every finished build under `root` with its record."""
    out = []
    for rec_path in sorted(root.glob(f"*/*/{RECORD}")):
        if rec_path.parent.name.startswith("."):
            continue
        rec = read_record(rec_path.parent)
        if rec is not None:
            out.append((rec_path.parent, rec))
    return out


def last_used(entry: Path) -> float | None:
    try:
        return (entry / LAST_USED).stat().st_mtime
    except OSError:
        return None


def dir_size(path: Path) -> int:
    total = 0
    for p in path.rglob("*"):
        try:
            if p.is_file() and not p.is_symlink():
                total += p.stat().st_size
        except OSError:
            pass
    return total


def remove(entry: Path) -> None:
    """Remove a finished build (under its lock, so no one is halfway through making it)."""
    with locked(entry):
        if entry.exists():
            # rename first: a reader never sees a half-deleted build with its record
            gone = entry.parent / f".{entry.name}.partial-rm-{os.getpid()}"
            os.replace(entry, gone)
            shutil.rmtree(gone, ignore_errors=True)
