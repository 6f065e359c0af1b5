"""A tiny writer for the kernel's initramfs format (cpio "newc"), pure Python.

Written here rather than piped through cpio(1) so that the archive is byte-for-byte
reproducible (fixed mtimes, owners, inode numbers) and can hold /dev/console without
root: the kernel needs that node to give /init a console before devtmpfs is mounted.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    path: str                   # inside the archive, without leading '/'
    mode: int                   # full st_mode (type + permission bits)
    data: bytes = b""           # file contents, or the target of a symlink
    rdev: tuple[int, int] = (0, 0)


def directory(path: str) -> Entry:
    return Entry(path, stat.S_IFDIR | 0o755)


def regular(path: str, data: bytes, executable: bool = False) -> Entry:
    return Entry(path, stat.S_IFREG | (0o755 if executable else 0o644), data)


def symlink(path: str, target: str) -> Entry:
    return Entry(path, stat.S_IFLNK | 0o777, target.encode())


def chardev(path: str, major: int, minor: int) -> Entry:
    return Entry(path, stat.S_IFCHR | 0o600, b"", (major, minor))


def _pad4(n: int) -> bytes:
    return b"\0" * (-n % 4)


def _header(ino: int, entry: Entry, name: bytes, size: int, nlink: int) -> bytes:
    fields = [ino, entry.mode, 0, 0, nlink, 0, size, 0, 0, entry.rdev[0], entry.rdev[1],
              len(name) + 1, 0]
    return b"070701" + b"".join(b"%08X" % f for f in fields)


def archive(entries: list[Entry]) -> bytes:
    """The newc archive of `entries` (parents must come before their children)."""
    out = bytearray()
    for ino, entry in enumerate(entries + [Entry("TRAILER!!!", 0)], start=1):
        name = entry.path.lstrip("/").encode()
        nlink = 2 if stat.S_ISDIR(entry.mode) else 1
        out += _header(ino if entry.mode else 0, entry, name, len(entry.data), nlink)
        out += name + b"\0"
        out += _pad4(110 + len(name) + 1)
        out += entry.data + _pad4(len(entry.data))
    return bytes(out)


def with_parents(entries: list[Entry]) -> list[Entry]:
    """`entries` with every missing parent directory inserted before its first child."""
    seen = {e.path.strip("/") for e in entries if stat.S_ISDIR(e.mode)}
    out: list[Entry] = []
    for entry in entries:
        parts = entry.path.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            parent = "/".join(parts[:i])
            if parent not in seen:
                seen.add(parent)
                out.append(directory(parent))
        out.append(entry)
    return out
