"""The fault suite's harness: run perfsuite as a user would (a subprocess, its own TMPDIR) and
check what every fault case must leave: one clear message (no traceback), the exit code, no
QEMU and no temp dir behind it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from qemu_procs import our_qemus

REPO = Path(__file__).resolve().parents[2]
CI_MATRIX = REPO / "jobs" / "ci.toml"
FIO_JOB = REPO / "jobs" / "fio.job"
# Short guests: 2 s of fio, no ramp, TCG, one boot.
SHORT = ("--runtime", "2", "--ramp", "0", "--accel", "tcg", "--boots", "1")
TRACEBACK_MARKS = ("Traceback (most recent call last)", "Task exception was never retrieved",
                   "PERFSUITE_DEBUG=1 for a traceback")


class Case:
    """One perfsuite invocation inside a test's own directory and TMPDIR."""

    def __init__(self, root: Path):
        self.root = root
        self.tmp = root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "CI": "true", "TMPDIR": str(self.tmp)}
        self.env.pop("PERFSUITE_DEBUG", None)

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "perfsuite.cli", *map(str, args)]

    def run(self, *args: str, cwd: Path = REPO, timeout: float = 600,
            env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(*args), cwd=cwd, env=env or self.env, text=True,
                              capture_output=True, timeout=timeout)

    def popen(self, *args: str, cwd: Path = REPO) -> subprocess.Popen:
        return subprocess.Popen(self.argv(*args), cwd=cwd, env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def leftovers(self) -> list[str]:
        """QEMUs of this case still running, and perfsuite temp dirs left in its TMPDIR."""
        qemus = [f"qemu pid {p}" for p in our_qemus(self.root)]
        dirs = [str(p) for p in self.tmp.iterdir() if p.name.startswith(("perfsuite-", "psq-"))]
        return qemus + dirs


def clear(stderr: str) -> None:
    """A fault is reported in words: never a traceback or an 'unexpected' error."""
    for mark in TRACEBACK_MARKS:
        assert mark not in stderr, stderr[-3000:]


@pytest.fixture
def case(tmp_path) -> Case:
    c = Case(tmp_path)
    yield c
    for p in our_qemus(tmp_path):  # never let a failing test leave a guest running
        try:
            os.kill(p, 9)
        except ProcessLookupError:
            pass
