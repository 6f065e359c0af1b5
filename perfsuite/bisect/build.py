"""Builds of the commits under test: the recipe plug-in and a cache under the results dir.

`--recipe SCRIPT` runs SCRIPT in the bisect's checkout of the commit, with PERFSUITE_COMMIT
(the hash), PERFSUITE_SRC (the user's repository) and PERFSUITE_BUILD_DIR (a directory of
this commit's own, outside the checkout: install there, since the checkout moves on). The
last line SCRIPT prints is the binary's path; a binary inside the checkout is copied into
PERFSUITE_BUILD_DIR. Without a recipe, `perfsuite.builds.resolve("git:SRC@HASH")` builds.

results/builds/HASH.json is written (atomically) only once a build is complete: a build
that was interrupted has none, so it looks unfinished and is redone; one that failed has
status "failed" and is not retried (the bisect skips that commit).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from perfsuite.errors import PerfsuiteError
from perfsuite.fsutil import atomic_write_bytes, atomic_write_json


class BuildError(PerfsuiteError):
    """A build failed (the commit is skipped) or cannot be attempted at all."""


@dataclass(frozen=True)
class Build:
    commit: str
    status: str            # ok | failed
    binary: str | None
    error: str | None = None
    seconds: float = 0.0
    cached: bool = False


class Builder:
    def __init__(self, src: Path, checkout: Path, results: Path, recipe: str | None) -> None:
        self.src, self.checkout, self.dir, self.recipe = src, checkout, results / "builds", recipe
        self.made = 0  # builds run by this process (not cached)

    def record(self, commit: str) -> Build | None:
        p = self.dir / f"{commit}.json"
        try:
            d = orjson.loads(p.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None
        if d.get("status") == "ok" and not Path(d.get("binary") or "").exists():
            return None  # the binary went away: build again
        return Build(commit, d["status"], d.get("binary"), d.get("error"), d.get("seconds", 0.0), True)

    def build(self, commit: str) -> Build:
        """The cached build of `commit`, or a new one. The checkout must be at `commit`."""
        got = self.record(commit)
        if got is not None:
            return got
        t0 = time.monotonic()
        out = self.dir / commit
        if out.exists():
            shutil.rmtree(out)  # what an interrupted build left
        out.mkdir(parents=True)
        try:
            binary = self._recipe(commit, out) if self.recipe else self._default(commit)
            b = Build(commit, "ok", binary, seconds=time.monotonic() - t0)
        except BuildError as e:
            b = Build(commit, "failed", None, str(e), time.monotonic() - t0)
        self.made += 1
        atomic_write_json(self.dir / f"{commit}.json", {
            "commit": commit, "status": b.status, "binary": b.binary, "error": b.error,
            "seconds": round(b.seconds, 3), "recipe": self.recipe or "perfsuite.builds"})
        return b

    def _default(self, commit: str) -> str:
        from perfsuite import builds

        try:
            return str(builds.resolve(f"git:{self.src.resolve()}@{commit}").binary)
        except PerfsuiteError as e:
            raise BuildError(f"git:{self.src}@{commit[:12]}: {e}") from None

    def _recipe(self, commit: str, out: Path) -> str:
        env = dict(os.environ, PERFSUITE_COMMIT=commit, PERFSUITE_SRC=str(self.src.resolve()),
                   PERFSUITE_BUILD_DIR=str(out.resolve()))
        log = self.dir / f"{commit}.log"
        proc = subprocess.Popen([str(Path(self.recipe).resolve())], cwd=self.checkout, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            text, _ = proc.communicate()
        except BaseException:  # Ctrl-C / SIGTERM: the recipe's whole process group goes too
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        atomic_write_bytes(log, text)
        lines = [ln.strip() for ln in text.decode(errors="replace").splitlines() if ln.strip()]
        if proc.returncode != 0:
            raise BuildError(f"recipe exited with status {proc.returncode} (log: {log})")
        if not lines:
            raise BuildError(f"recipe printed no binary path (log: {log})")
        binary = Path(lines[-1])
        binary = binary if binary.is_absolute() else self.checkout / binary
        if not (binary.is_file() and os.access(binary, os.X_OK)):
            raise BuildError(f"recipe's last line {lines[-1]!r} is not an executable file (log: {log})")
        if binary.resolve().is_relative_to(self.checkout.resolve()):
            kept = out / binary.name
            shutil.copy2(binary, kept)  # the checkout moves to the next commit
            binary = kept
        return str(binary.resolve())

