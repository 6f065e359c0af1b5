"""Progress of a run: a rich bar with ETA on a terminal, plain lines otherwise (CI, pipes)."""

from __future__ import annotations

import os
import sys
import time
from typing import Any


class Progress:
    """Receives the runner's events (`event(kind, **data)`); a context manager."""

    def __init__(self, total: int, quiet: bool = False, stream=None):
        self.total = total
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.fancy = (not quiet and self.stream.isatty() and not os.environ.get("CI")
                      and os.environ.get("TERM") != "dumb")
        self._bar = None
        self._task = None
        self.done = 0
        self.t0 = time.monotonic()

    def __enter__(self) -> "Progress":
        if self.fancy:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress,
                                       TextColumn, TimeElapsedColumn, TimeRemainingColumn)
            self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(),
                                     MofNCompleteColumn(), TimeElapsedColumn(),
                                     TextColumn("ETA"), TimeRemainingColumn(),
                                     console=Console(file=self.stream), transient=False)
            self._bar.__enter__()
            self._task = self._bar.add_task("starting", total=self.total)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def _line(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=self.stream, flush=True)

    def event(self, kind: str, **d: Any) -> None:
        if kind == "note":
            self._line(d["text"])
        elif kind == "more":  # --until-precision added repetitions
            self.total += d["n"]
            if self._bar is not None:
                self._bar.update(self._task, total=self.total)
            elif not self.quiet:
                self._line(f"{d['name']}: {d['n']} more repetition(s) for the requested precision")
        elif kind == "boot":
            if self._bar is not None:
                self._bar.update(self._task, description=f"{d['name']} ({d['accel']})")
            elif not self.quiet:
                reps = ",".join(str(r) for r in d["reps"])
                self._line(f"boot {d['name']} [{d['accel']}] repetitions {reps}")
        elif kind == "rep":
            self.done += 1
            if self._bar is not None:
                self._bar.update(self._task, advance=1)
                if d["status"] not in ("ok", "skipped"):
                    self._line(f"{d['name']} #{d['rep']}: {d['status']}: {d.get('error')}")
            elif not self.quiet or d["status"] not in ("ok", "skipped"):
                el = time.monotonic() - self.t0
                self._line(f"[{self.done}/{self.total} {el:.0f}s] {d['name']} #{d['rep']}: {d['status']}"
                           + (f": {d['error']}" if d.get("error") else ""))
