"""Finding the QEMU processes of one test, when other tests or people run guests too."""

from __future__ import annotations

import os
from pathlib import Path


def our_qemus(marker: Path) -> list[int]:
    """PIDs of qemu-system processes whose command line holds `marker` (a test's own path)."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "qemu-system" in cmd and str(marker) in cmd:
            out.append(int(pid))
    return out
