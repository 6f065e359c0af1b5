"""`run --profile perf`: `perf record` of the QEMU process over one measured window, and
perf's own folding of the recording into stacks for a flame graph.

Recording and folding are perf's (Debian's linux-perf): `perf record -g -e cpu-clock`
(a software event: works in a VM without PMU access) and `perf script report
stackcollapse` (perf's bundled folding script). `parse_folded` is pure.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

PERF_EVENT = "cpu-clock"
PERF_MISSING = ("--profile perf: perf is not installed (Debian package linux-perf); "
                "the run goes on without profiles")


def perf_available() -> str | None:
    """None when perf records here, else the one line that says why not."""
    perf = shutil.which("perf")
    if perf is None:
        return PERF_MISSING
    try:
        out = subprocess.run([perf, "--version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"--profile perf: perf does not run ({e}); the run goes on without profiles"
    if out.returncode != 0:  # Debian's wrapper when no perf matches the running kernel
        why = " ".join((out.stderr or out.stdout).split())[:200]
        return f"--profile perf: perf does not run ({why}); the run goes on without profiles"
    return None


def _pdeathsig() -> None:
    from perfsuite.qemu.machine import _pdeathsig as qemu_pdeathsig
    qemu_pdeathsig()  # perf dies with perfsuite, like QEMU


class PerfRecorder:
    """Records repetition `rep` of one boot into WORKDIR/N.perf.data (start/stop at its edges)."""

    def __init__(self, pid: int, workdir: Path, rep: int):
        self.pid, self.workdir, self.rep = pid, Path(workdir), rep
        self.proc: subprocess.Popen | None = None

    def path(self, n: int) -> Path:
        return self.workdir / f"{n}.perf.data"

    def start(self, n: int) -> None:
        if n != self.rep or self.proc is not None:
            return
        argv = ["perf", "record", "-g", "-e", PERF_EVENT, "-p", str(self.pid), "-q",
                "-o", str(self.path(n))]
        with open(self.workdir / f"{n}.perf.log", "wb") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, preexec_fn=_pdeathsig)

    def stop(self, n: int, timeout: float = 60.0) -> None:
        if n != self.rep or self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # perf writes its header and exits
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def take(self, n: int, run_dir: Path) -> str | None:
        """Move N.perf.data beside the run's results; its file name, or None."""
        self.stop(n)
        src = self.path(n)
        if not src.exists() or src.stat().st_size == 0:
            return None
        dst = Path(run_dir) / src.name
        shutil.move(str(src), str(dst))
        return dst.name


def fold(perf_data: str | os.PathLike, timeout: float = 300.0) -> str:
    """perf.data -> folded stacks ('a;b;c COUNT' lines), by perf's stackcollapse script."""
    out = subprocess.run(["perf", "script", "-i", str(perf_data), "report", "stackcollapse"],
                         capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"perf script on {perf_data} failed: {' '.join(out.stderr.split())[:300]}")
    return out.stdout


def parse_folded(text: str) -> dict[tuple[str, ...], int]:
    """Folded stack lines -> {(frame, ...): samples} (root first), pure."""
    stacks: dict[tuple[str, ...], int] = {}
    for line in text.splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        key = tuple(stack.split(";"))
        stacks[key] = stacks.get(key, 0) + int(count)
    return stacks
