"""Getting Debian's current kernel: resolve the metapackage, apt-get download, dpkg-deb -x.

Side effects only (subprocesses, files); the caller decides where and when.
"""

from __future__ import annotations

from perfsuite.errors import PerfsuiteError

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

META_PACKAGE = "linux-image-amd64"


class KernelError(PerfsuiteError, RuntimeError):
    pass


@dataclass(frozen=True)
class DebianKernel:
    package: str      # linux-image-6.1.0-56-amd64
    version: str      # 6.1.192-2 (the .deb version; a new one means a rebuild)


def _run(argv: list[str], what: str, cwd: Path | None = None) -> str:
    try:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise KernelError(f"{what}: {argv[0]} not found (is this Debian?)") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise KernelError(f"{what} failed: {last}")
    return proc.stdout


def parse_depends(text: str) -> str | None:
    """The linux-image-* package named by `apt-cache depends linux-image-amd64` (pure)."""
    for line in text.splitlines():
        m = re.match(r"\s*\|?Depends:\s*(linux-image-\S+)", line)
        if m and not m.group(1).endswith("-dbg"):
            return m.group(1)
    return None


def parse_candidate(text: str) -> str | None:
    """The Candidate: version from `apt-cache policy PKG` (pure)."""
    m = re.search(r"Candidate:\s*(\S+)", text)
    return m.group(1) if m and m.group(1) != "(none)" else None


def resolve_debian_kernel(log=print) -> DebianKernel:
    """The kernel package the metapackage points at now, updating apt's lists if needed."""
    def lookup() -> DebianKernel | None:
        deps = subprocess.run(["apt-cache", "depends", META_PACKAGE], capture_output=True, text=True)
        pkg = parse_depends(deps.stdout) if deps.returncode == 0 else None
        if pkg is None:
            return None
        version = parse_candidate(_run(["apt-cache", "policy", pkg], "apt-cache policy"))
        return DebianKernel(pkg, version) if version else None

    found = lookup()
    if found is None:
        log("apt knows no kernel package; running apt-get update ...")
        _run(["apt-get", "update"], "apt-get update")
        found = lookup()
    if found is None:
        raise KernelError(f"apt cannot resolve {META_PACKAGE}; pass --kernel PATH for your own kernel")
    return found


def download_and_extract(kernel: DebianKernel, dest: Path, log=print) -> tuple[Path, Path]:
    """Fetch the .deb into dest/ and unpack it; returns (vmlinuz, modules dir)."""
    dest.mkdir(parents=True, exist_ok=True)
    debs = list(dest.glob(f"{kernel.package}_*.deb"))
    if not debs:
        log(f"downloading {kernel.package} {kernel.version} with apt-get download ...")
        _run(["apt-get", "download", f"{kernel.package}={kernel.version}"], "apt-get download", cwd=dest)
        debs = list(dest.glob(f"{kernel.package}_*.deb"))
        if not debs:
            raise KernelError(f"apt-get download left no {kernel.package} .deb in {dest}")
    root = dest / "root"
    if not root.exists():
        log(f"extracting {debs[0].name} ...")
        tmp = dest / "root.tmp"
        subprocess.run(["rm", "-rf", str(tmp)], check=True)
        _run(["dpkg-deb", "-x", str(debs[0]), str(tmp)], "dpkg-deb -x")
        tmp.rename(root)
    vmlinuz = sorted((root / "boot").glob("vmlinuz-*"))
    moddirs = sorted((root / "lib/modules").glob("*")) or sorted((root / "usr/lib/modules").glob("*"))
    if not vmlinuz or not moddirs:
        raise KernelError(f"{debs[0].name} holds no boot/vmlinuz-* or lib/modules/*")
    return vmlinuz[0], moddirs[0]
