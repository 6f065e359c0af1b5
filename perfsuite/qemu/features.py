"""What a QEMU binary is and can do, asked from the binary itself (cached per process)."""

from __future__ import annotations

from perfsuite.errors import PerfsuiteError

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class QemuInfo:
    path: str                      # resolved absolute path
    version: str                   # "7.2.22"
    version_tuple: tuple[int, ...]
    package: str                   # "Debian 1:7.2+dfsg-7+deb12u18+b3" or ""
    blk_props: frozenset[str]      # virtio-blk-pci property names
    vq_mapping: bool               # iothread-vq-mapping supported (QEMU >= 9.0)


class QemuNotRunnable(PerfsuiteError, RuntimeError):
    pass


def parse_version(text: str) -> tuple[str, str]:
    """`QEMU emulator version 7.2.22 (Debian ...)` -> ("7.2.22", "Debian ...")."""
    m = re.search(r"version\s+(\d+(?:\.\d+)+)\s*(?:\(([^)]*)\))?", text)
    if not m:
        raise QemuNotRunnable(f"cannot read a version from {text.strip()[:80]!r}")
    return m.group(1), m.group(2) or ""


def parse_device_props(text: str) -> frozenset[str]:
    """Property names from `-device virtio-blk-pci,help` output."""
    return frozenset(m.group(1) for m in re.finditer(r"^\s+([A-Za-z0-9_.-]+)=<", text, re.M))


@functools.lru_cache(maxsize=None)
def probe(qemu: str) -> QemuInfo:
    """Run the binary twice (`--version`, `-device virtio-blk-pci,help`); raise if it won't."""
    path = shutil.which(qemu)
    if path is None:
        raise QemuNotRunnable(_why_not_runnable(qemu))
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=20)
        props = subprocess.run([path, "-nodefaults", "-device", "virtio-blk-pci,help"],
                               capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise QemuNotRunnable(f"{qemu}: {e}") from None
    if out.returncode != 0:
        raise QemuNotRunnable(f"{qemu} --version exited {out.returncode}: {out.stderr.strip()[:200]}")
    version, package = parse_version(out.stdout)
    blk = parse_device_props(props.stdout)
    if "num-queues" not in blk:
        raise QemuNotRunnable(f"{qemu}: virtio-blk-pci has no num-queues property")
    return QemuInfo(path=path, version=version,
                    version_tuple=tuple(int(x) for x in version.split(".")),
                    package=package, blk_props=blk, vq_mapping="iothread-vq-mapping" in blk)


def _why_not_runnable(qemu: str) -> str:
    """Why shutil.which() found nothing: "not found" only when nothing is there."""
    if not qemu:
        return "empty QEMU binary name"
    if os.sep not in qemu:
        return f"{qemu}: not found in PATH (Debian package qemu-system-x86)"
    if os.path.isdir(qemu):
        return f"{qemu}: is a directory, not a QEMU binary"
    if os.path.exists(qemu):
        return f"{qemu}: not executable"
    return f"{qemu}: no such file"


def default_label(qemu: str) -> str:
    """The label for a build when the matrix names none: `qemu-MAJOR.MINOR`."""
    try:
        v = probe(qemu).version_tuple
    except QemuNotRunnable:
        return "qemu"
    return f"qemu-{v[0]}.{v[1] if len(v) > 1 else 0}"
