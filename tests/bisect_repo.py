"""A generated git history whose "build" is a wrapper around the system QEMU.

Commit k of `make_repo(path, n, slow_at)` holds `qemu-wrapper` (and a changelog line);
from commit `slow_at` on, the wrapper gives the benchmark disk's null-co node a completion
latency (`latency-ns`, which QEMU 7.2's null-co supports) by rewriting the runner's -blockdev
argument: a real slowdown of the device path, planted by one commit. `RECIPE` is the
recipe the bisect runs: it installs the wrapper of the checked-out commit.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

WRAPPER = r'''#!/usr/bin/env python3
# qemu-wrapper: the system QEMU, with the benchmark disk's null-co given LATENCY_NS.
import os, shutil, sys
LATENCY_NS = {latency}
NODE = "node-name=disk0"
args = sys.argv[1:]
if LATENCY_NS:
    args = [a + ",latency-ns=%d" % LATENCY_NS
            if i and args[i - 1] == "-blockdev" and NODE in a.split(",") and "driver=null-co" in a
            else a for i, a in enumerate(args)]
exe = shutil.which("qemu-system-x86_64")
os.execv(exe, [exe] + args)
'''

RECIPE = r'''#!/bin/sh
# the bisect's recipe: "build" = install this commit's wrapper into its build dir
set -e
test -n "$PERFSUITE_BUILD_DIR"
cp qemu-wrapper "$PERFSUITE_BUILD_DIR/qemu-system-x86_64"
chmod +x "$PERFSUITE_BUILD_DIR/qemu-system-x86_64"
echo "installed $PERFSUITE_COMMIT"
echo "$PERFSUITE_BUILD_DIR/qemu-system-x86_64"
'''


def _git(repo: Path, *args: str) -> str:
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.invalid")
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=env).stdout.strip()


def make_repo(path: Path, n: int, slow_at: int, latency_ns: int = 2_000_000,
              broken: tuple[int, ...] = ()) -> list[str]:
    """n commits (0 = the good one); returns their hashes. `broken` commits fail to build."""
    path.mkdir(parents=True)
    _git(path, "init", "-q", "-b", "main")
    hashes = []
    for k in range(n):
        w = path / "qemu-wrapper"
        w.write_text(WRAPPER.format(latency=latency_ns if k >= slow_at else 0))
        w.chmod(w.stat().st_mode | stat.S_IXUSR)
        with open(path / "CHANGES", "a") as f:
            f.write(f"change {k}\n")
        if k in broken:
            w.unlink()  # this commit's "build" fails
        _git(path, "add", "-A")
        subject = f"commit {k}" + (": disk completion latency" if k == slow_at else "")
        _git(path, "commit", "-q", "-m", subject, "--date", f"2026-01-{k + 1:02d}T12:00:00+00:00")
        hashes.append(_git(path, "rev-parse", "HEAD"))
        if k in broken:
            (path / "qemu-wrapper").write_text("")  # restored by the next commit's write
    return hashes


def write_recipe(path: Path) -> Path:
    path.write_text(RECIPE)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path
