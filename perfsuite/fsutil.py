"""Writing files so that a reader never sees half of one: temp file + fsync + rename.
And temp dirs that say who owns them, so that the next run removes those of a dead process.

tempfile, shutil and hashlib are imported where they are used: the analyzer imports this
module (through perfsuite.rundir) only to read, and pays its start-up on every table."""

from __future__ import annotations

import os
from pathlib import Path

import orjson


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically: a crash leaves the old file or the new one, never a mix."""
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file 0600; results are meant to be read by others too, so give
        # it the mode a plain open() would have under the current umask.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: object) -> None:
    """Pretty, sorted JSON (numpy scalars and dataclasses allowed), written atomically."""
    data = orjson.dumps(
        obj,
        option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY
        | orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE,
        default=str,
    )
    atomic_write_bytes(path, data)


OWNER = ".perfsuite-owner"


def _start_time(pid: int) -> str | None:
    """The kernel's start time of `pid` (clock ticks since boot), or None if it is gone:
    with the pid it names one process, even after the pid is reused."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return stat.rsplit(b")", 1)[-1].split()[19].decode()


def owned_tempdir(prefix: str, root: str | os.PathLike | None = None) -> Path:
    """mkdtemp, plus an owner file (pid + start time) that `remove_stale_dirs` reads."""
    import shutil
    import tempfile

    root_p = Path(root) if root else Path(tempfile.gettempdir())
    root_p.mkdir(parents=True, exist_ok=True)
    d = Path(tempfile.mkdtemp(prefix=prefix, dir=root_p))
    try:
        (d / OWNER).write_text(f"{os.getpid()} {_start_time(os.getpid())}\n")
    except BaseException:
        shutil.rmtree(d, ignore_errors=True)
        raise
    return d


def owner_alive(d: str | os.PathLike) -> bool | None:
    """True/False for a dir made by `owned_tempdir`; None when it has no readable owner file."""
    try:
        pid_s, start = Path(d, OWNER).read_text().split()
        pid = int(pid_s)
    except (OSError, ValueError):
        return None
    return _start_time(pid) == start


def remove_stale_dirs(root: str | os.PathLike, prefixes: tuple[str, ...]) -> list[Path]:
    """Remove the dirs under root named prefix* whose owner process is dead; return them.
    Dirs without an owner file (other tools, older versions) are left alone."""
    import shutil

    removed = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    for e in entries:
        if not e.name.startswith(prefixes) or e.is_symlink() or not e.is_dir():
            continue
        if owner_alive(e.path) is False:
            shutil.rmtree(e.path, ignore_errors=True)
            removed.append(Path(e.path))
    return removed


def sha256_file(path: str | os.PathLike) -> str:
    """The hex sha256 of a file's bytes, read in chunks (binaries, kernels, wheels)."""
    import hashlib

    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
