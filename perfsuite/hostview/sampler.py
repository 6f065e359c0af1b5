"""The side-effecting edge: read /proc and QMP at the edges of each measured window.

The guest marks the window in the 9p work dir (docs/CONTRACTS.md section 5): `N.window-start`
after fio's I/O has begun and its ramp has passed, `N.window-end` when fio has exited. The
runner polls the work dir every 0.1 s; `WindowSampler.poll` is called from there, so an edge
is seen within one poll interval of the guest writing it. Between the two edges nothing is
sampled: two reads of /proc per repetition is the whole cost.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

from perfsuite.hostview.procstat import (Snapshot, TaskTimes, host_load, parse_loadavg,
                                         parse_proc_stat, parse_task_stat, thread_cpu)

HZ = os.sysconf("SC_CLK_TCK")
# benchmarks/bench_hostview.py turns sampling off to measure what it costs (nothing else does)
ENABLED = True


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:  # the thread or process went away between listing and reading
        return None


def _times(path: str) -> TaskTimes | None:
    text = _read(path)
    if text is None:
        return None
    try:
        return parse_task_stat(text)
    except (ValueError, IndexError):
        return None


def _scan(base: str) -> dict[int, TaskTimes]:
    out = {}
    try:
        names = os.listdir(base)
    except OSError:
        return out
    for n in names:
        if n.isdigit() and (t := _times(f"{base}/{n}/stat")) is not None:
            out[int(n)] = t
    return out


def snapshot(pid: int) -> Snapshot:
    """QEMU's threads, the host's CPU line, every process and the load average, now."""
    return Snapshot(t=time.monotonic(), threads=_scan(f"/proc/{pid}/task"),
                    host=parse_proc_stat(_read("/proc/stat") or ""), procs=_scan("/proc"),
                    loadavg=parse_loadavg(_read("/proc/loadavg") or "0 0 0"))


def qemu_threads(qemu: Any) -> tuple[list[int], dict[int, str]]:
    """(vCPU tids by cpu index, {IOThread tid: id}) over QMP."""
    vcpus = sorted(qemu.cmd("query-cpus-fast"), key=lambda c: c["cpu-index"])
    iothreads = qemu.cmd("query-iothreads")
    return [c["thread-id"] for c in vcpus], {t["thread-id"]: t["id"] for t in iothreads}


class WindowSampler:
    """Per repetition: a snapshot at window-start, one at window-end, the shares from both.

    `on_start`/`on_end` (optional) run at the edges, after the snapshot: the perf profile
    hooks in there (perfsuite.hostview.profile).
    """

    def __init__(self, workdir: Path, reps: list[int], pid: int, vcpus: list[int],
                 iothreads: dict[int, str], on_start: Callable[[int], None] | None = None,
                 on_end: Callable[[int], None] | None = None):
        self.workdir = Path(workdir)
        self.reps = list(reps)
        self.pid = pid
        self.vcpus = vcpus
        self.iothreads = iothreads
        self.on_start, self.on_end = on_start, on_end
        self._open: dict[int, Snapshot] = {}
        self.results: dict[int, dict] = {}
        self.recorder: Any = None   # a PerfRecorder with `run --profile perf`

    @classmethod
    def for_qemu(cls, qemu: Any, workdir: Path, reps: list[int], **hooks: Any) -> "WindowSampler":
        vcpus, iothreads = qemu_threads(qemu)
        return cls(workdir, reps, qemu.pid, vcpus, iothreads, **hooks)

    def _pending(self) -> int | None:
        for n in self.reps:  # the guest runs them in plan order: one window open at a time
            if n not in self.results:
                return n
        return None

    def poll(self) -> None:
        n = self._pending()
        if n is None:
            return
        if n not in self._open:
            if (self.workdir / f"{n}.window-start").exists():
                self._open[n] = snapshot(self.pid)
                if self.on_start:
                    self.on_start(n)
            elif (self.workdir / f"{n}.status").exists():
                self.results[n] = {}   # fio ended without a window (it failed early)
            return
        marker = self.workdir / f"{n}.window-end"
        if marker.exists() or (self.workdir / f"{n}.status").exists():
            end = snapshot(self.pid)
            if self.on_end:
                self.on_end(n)
            self.results[n] = self.meta(self._open.pop(n), end)
            try:
                marker.unlink()   # the guest waits for this before it goes on (WINDOW_ACK)
            except OSError:
                pass

    def meta(self, a: Snapshot, b: Snapshot) -> dict:
        return {"host_threads": thread_cpu(a, b, self.pid, self.vcpus, self.iothreads, HZ),
                "host_load": host_load(a, b, HZ, exclude={self.pid})}

    def take(self, n: int, run_dir: Path | None = None) -> dict:
        """The meta keys for repetition n ({} when its window was not seen); with a
        profile, its perf.data moves into run_dir and the meta names it."""
        self.poll()
        out = dict(self.results.get(n) or {})
        if self.recorder is not None and run_dir is not None:
            name = self.recorder.take(n, run_dir)
            if name:
                out["profile"] = {"tool": "perf", "event": "cpu-clock", "file": name}
        return out


def attach(qemu: Any, workdir: Path, reps: list[int], profile: str | None = None) -> WindowSampler | None:
    """The sampler of one boot (None when QMP cannot name the threads: nothing is sampled,
    the run goes on). `profile="perf"` also records the boot's first repetition."""
    if not ENABLED:
        return None
    rec = None
    if profile == "perf" and reps:
        from perfsuite.hostview.profile import PerfRecorder
        rec = PerfRecorder(qemu.pid, workdir, reps[0])
    try:
        s = WindowSampler.for_qemu(qemu, workdir, reps, on_start=rec and rec.start,
                                   on_end=rec and rec.stop)
    except Exception:  # noqa: BLE001 - an older QEMU without these QMP commands
        return None
    s.recorder = rec
    return s
