"""What every build recipe shares: its error, the wrapper script, hashing."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from perfsuite.errors import PerfsuiteError
from perfsuite.fsutil import atomic_write_text

# System firmware directories a build falls back on after its own (SeaBIOS is Debian's
# package, not part of QEMU's; the system QEMU's data has the option ROMs a tree without
# blobs lacks). Only those that exist when the wrapper runs are passed.
FALLBACK_FIRMWARE = ("/usr/share/seabios", "/usr/share/qemu")


class BuildError(PerfsuiteError):
    prefix = "error: build"


def wrapper_text(binary: str, firmware: list[str], module_dir: str | None, note: str) -> str:
    """A /bin/sh wrapper that runs `binary` (relative to the wrapper's own directory, so the
    build directory can be renamed into place) with -L for each firmware dir (pure)."""
    lines = ["#!/bin/sh", f"# perfsuite build: {note}",
             'D=$(dirname "$(readlink -f "$0")")', 'L=""']
    for fw in firmware:
        lines.append(f'L="$L -L $D/{fw}"')
    for fw in FALLBACK_FIRMWARE:
        lines.append(f'[ -d {shlex.quote(fw)} ] && L="$L -L {fw}"')
    if module_dir:
        lines.append(f'export QEMU_MODULE_DIR="$D/{module_dir}"')
    # $L is split on purpose: the paths are the cache's own, without spaces (checked below)
    lines.append(f'exec "$D/{binary}" $L "$@"')
    return "\n".join(lines) + "\n"


def write_wrapper(path: Path, binary: str, firmware: list[str], module_dir: str | None,
                  note: str) -> None:
    if any(c.isspace() for c in str(path.parent)):
        raise BuildError(f"the build cache path {path.parent} has whitespace; set PERFSUITE_CACHE")
    atomic_write_text(path, wrapper_text(binary, firmware, module_dir, note))
    os.chmod(path, 0o755)
