"""One migration repetition: a source QEMU, destinations started with `-incoming defer`,
migrations at fixed points of the measured window, and what came out (the edge).

Every repetition boots its own guest: instance 0 is the source; instance k (k >= 1) is the
destination of migration k and, once that completed, the source of migration k + 1, so N
migrations ping-pong the guest between two "sides" of the same host. Each instance has its
own QMP socket and console file; all share the work dir (9p, unmounted during the window)
and the raw disk file (shared storage).

Nothing here raises for a migration or a guest that goes wrong: `RepOutcome.status` and
`.error` say so. Every QEMU started here is stopped or killed before `run_repetition` returns.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perfsuite.matrix.config import Config
from perfsuite.migrate import guest_script as gs
from perfsuite.migrate.hop import HopResult, migrate
from perfsuite.migrate.job import render_phases, schedule

GUEST_DEVICE = "/dev/vda"


@dataclass(frozen=True)
class MigrateOptions:
    at: float = 5.0                    # seconds into the write window of the first migration
    every: float | None = None         # seconds between migrations (default: `at`)
    migrations: int = 1
    converge_timeout: float = 60.0     # cancel a migration still running after this long
    max_bandwidth: int | None = None   # bytes/s (migrate-set-parameters max-bandwidth)
    downtime_limit_ms: int | None = None
    dest_args: tuple[str, ...] = ()    # extra QEMU arguments for every destination
    accel: str = "tcg"
    vq_mapping: bool = False
    disk_mb: int = 256
    boot_timeout: float = 120.0        # launch -> the write window opens
    finish_timeout: float | None = None  # window opens -> guest off (default runtime x 4 + 120 s)
    work_root: str | None = None
    keep_workdir: bool = False


@dataclass
class RepOutcome:
    status: str                        # ok | failed | timeout
    error: str | None
    workdir: Path
    argv: list[list[str]] = field(default_factory=list)      # per instance
    hops: list[HopResult] = field(default_factory=list)
    ran_on: int = 0                    # the instance the guest finished on
    device: dict[str, Any] = field(default_factory=dict)
    guest: dict | None = None
    phases: dict[str, int | None] = field(default_factory=dict)   # fio exit status per phase
    console: str = ""


class _Instances:
    """The QEMUs of one repetition: argv per instance, start, and a guaranteed kill."""

    def __init__(self, c: Config, image: Any, w: Path, sockdir: Path, opts: MigrateOptions):
        from perfsuite import guest
        from perfsuite.qemu.argv import build_argv
        self._build = lambda k: build_argv(
            c, guest.guest_argv(image, w), w, accel=opts.accel,
            qmp_socket=sockdir / f"q{k}.sock", console=w / f"console-{k}.log",
            vq_mapping=opts.vq_mapping, paused=(k == 0))
        self.w, self.sockdir, self.opts = w, sockdir, opts
        self.live: list[Any] = []
        self.argv: list[list[str]] = []

    def start(self, k: int) -> Any:
        from perfsuite.qemu.machine import QemuProcess
        argv = self._build(k)
        if k > 0:
            argv += ["-incoming", "defer", *self.opts.dest_args]
        self.argv.append(argv)
        q = QemuProcess(argv, self.sockdir / f"q{k}.sock", self.w / f"qemu-{k}.stderr")
        self.live.append(q)
        q.start()
        return q

    def uri(self, k: int) -> str:
        return f"unix:{self.sockdir / f'mig{k}.sock'}"

    def kill_all(self) -> None:
        for q in self.live:
            q.kill()

    def console(self) -> str:
        parts = []
        for k in range(len(self.argv)):
            role = "source" if k == 0 else f"destination of migration {k}"
            text = _read(self.w / f"console-{k}.log")
            err = _read(self.w / f"qemu-{k}.stderr").strip()
            parts.append(f"--- QEMU instance {k} ({role}) ---\n{text}")
            if err:
                parts.append(f"--- QEMU instance {k} stderr ---\n{err}\n")
        return "\n".join(parts)


def _read(p: Path) -> str:
    try:
        return p.read_text(errors="replace")
    except OSError:
        return ""


def _last_line(p: Path) -> str:
    lines = [x for x in _read(p).splitlines() if x.strip()]
    return repr(lines[-1][:160]) if lines else "none"


def prepare_workdir(c: Config, rep: int, opts: MigrateOptions) -> tuple[Path, Path, Config]:
    """Work dir with the disk, the three fio phases, the guest script and the plan."""
    from perfsuite import guest
    root = Path(opts.work_root) if opts.work_root else Path(tempfile.gettempdir())
    root.mkdir(parents=True, exist_ok=True)
    w = Path(tempfile.mkdtemp(prefix=f"perfsuite-mig-{c.name[:36]}-", dir=root))
    sockdir = Path(tempfile.mkdtemp(prefix="psm-"))  # AF_UNIX paths must stay short
    disk = w / "disk.raw"
    with open(disk, "wb") as f:
        f.truncate(opts.disk_mb * 1024 * 1024)
    phases = render_phases(Path(c.fio_job).read_text(), c.runtime, GUEST_DEVICE, c.fio_job)
    for name, text in phases.items():
        (w / f"{name}.fio").write_text(text)
    (w / gs.SCRIPT_NAME).write_text(gs.GUEST_SCRIPT)
    guest.write_plan(w, guest.GuestPlan(repetitions=[rep], fio_job="write.fio",
                                        device=GUEST_DEVICE, scheduler="none",
                                        mode_script=gs.SCRIPT_NAME))
    cfg = c.replace(backend="file", backend_path=str(disk))  # the name stays
    return w, sockdir, cfg


def _wait_console(path: Path, marker: str, q: Any, timeout: float) -> str | None:
    """None once `marker` is on the console; else why not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if marker in _read(path):
            return None
        if q.poll() is not None:
            return f"the guest stopped (QEMU exited {q.poll()}) before '{marker}'"
        time.sleep(0.05)
    return f"timeout: no '{marker}' on the console within {timeout:g} s"


def _writes(q: Any) -> int:
    return sum(d.get("stats", {}).get("wr_operations", 0) for d in q.cmd("query-blockstats"))


def _first_write(q: Any, timeout: float) -> float | None:
    """Host monotonic time of the window's first write (fio's log clock starts there)."""
    base = _writes(q)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and q.poll() is None:
        if _writes(q) > base:
            return time.monotonic()
        time.sleep(0.01)
    return None


def _migrations(inst: _Instances, src: Any, times: list[float], t0: float,
                opts: MigrateOptions) -> tuple[list[HopResult], int, Any]:
    """Run the scheduled migrations; (results, index of the instance now running, it)."""
    def clock() -> float:
        return time.monotonic() - t0

    hops: list[HopResult] = []
    cur_k, cur = 0, src
    for i, at in enumerate(times, start=1):
        try:  # started ahead of its time: QEMU's start-up must not shift the schedule
            dst = inst.start(i)
        except Exception as e:  # noqa: BLE001 - QemuError: exited before QMP, no socket...
            hops.append(HopResult(i, "not-started", error=(
                f"destination QEMU of migration {i} did not start: {' '.join(str(e).split())[:400]}"
                f"; the guest kept running on instance {cur_k}")))
            break
        while clock() < at and cur.poll() is None:
            time.sleep(0.01)
        if cur.poll() is not None:
            dst.kill()
            hops.append(HopResult(i, "not-started", error=(
                f"the guest stopped before migration {i} (at {at:g} s)")))
            break
        hop = migrate(cur, dst, inst.uri(i), i, clock=clock,
                      converge_timeout=opts.converge_timeout,
                      max_bandwidth=opts.max_bandwidth, downtime_limit_ms=opts.downtime_limit_ms)
        hops.append(hop)
        if hop.outcome != "completed":
            dst.kill()
            break
        cur.stop(timeout=5.0)  # the old source is in "postmigrate": its part is done
        cur_k, cur = i, dst
    return hops, cur_k, cur


def _read_phases(w: Path, rep: int) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for p in gs.PHASES:
        try:
            out[p] = int((w / f"rep-{rep}" / f"{p}.status").read_text().strip())
        except (OSError, ValueError):
            out[p] = None
    return out


_KERNEL_TROUBLE = re.compile(r"\] (BUG: .*|Oops: .*|Kernel panic - .*|general protection fault.*)$", re.M)


def kernel_trouble(console: str) -> str | None:
    """The guest kernel's first BUG/Oops/panic line on a console, if any (pure)."""
    m = _KERNEL_TROUBLE.search(console)
    return " ".join(m.group(1).split())[:200] if m else None


def verdict(hops: list[HopResult], phases: dict[str, int | None], guest_error: str | None,
            ran_on: int, console: str = "") -> tuple[str, str | None]:
    """ok only if every migration completed and every fio phase exited 0 (pure)."""
    errors = [h.error for h in hops if h.outcome != "completed" and h.error]
    if guest_error:
        errors.append(f"guest: {guest_error}")
    after = f" (after migration {ran_on})" if ran_on else " (no migration had completed)"
    trouble = kernel_trouble(console)
    if trouble:
        errors.append(f"the guest kernel failed{after}: {trouble}")
    for p in gs.PHASES:
        st = phases.get(p)
        if st is None:
            errors.append(f"fio {p} phase: no result{after}")
        elif st != 0:
            what = "verify failed" if p == "verify" else f"fio {p} phase failed"
            errors.append(f"{what}: exit status {st}{after}")
    return ("ok", None) if not errors else ("failed", "; ".join(errors))


def run_repetition(c: Config, rep: int, image: Any, opts: MigrateOptions) -> RepOutcome:
    """Boot, migrate per the schedule while fio writes, let the guest finish, collect."""
    from perfsuite import guest
    times = schedule(opts.at, opts.every, opts.migrations, c.runtime)
    w, sockdir, cfg = prepare_workdir(c, rep, opts)
    inst = _Instances(cfg, image, w, sockdir, opts)
    out = RepOutcome("failed", None, w)
    try:
        src = inst.start(0)
        out.device = src.device_props()
        src.cont()
        why = _wait_console(w / "console-0.log", gs.MARK_WRITE.format(rep=rep), src,
                            opts.boot_timeout)
        t0 = None if why else _first_write(src, 30.0)
        if why or t0 is None:
            out.status = "timeout" if why and why.startswith("timeout") else "failed"
            out.error = why or "no write reached the disk after the write phase started"
            return out
        out.hops, out.ran_on, cur = _migrations(inst, src, times, t0, opts)
        limit = opts.finish_timeout or (c.runtime * 4 + 120)
        if cur.wait(max(1.0, t0 + limit - time.monotonic())) is None:
            where = f"after migration {out.ran_on}" if out.ran_on else "on the source"
            out.status, out.error = "timeout", (f"the guest did not finish within {limit:g} s "
                                                f"({where}; its last console line: "
                                                f"{_last_line(w / f'console-{out.ran_on}.log')})")
            return out
        out.guest = guest.read_guest_info(w)
        out.phases = _read_phases(w, rep)
        out.status, out.error = verdict(out.hops, out.phases, guest.read_guest_error(w), out.ran_on,
                                        _read(w / f"console-{out.ran_on}.log"))
        return out
    except BaseException:  # interrupted: nothing of this repetition is kept
        if not opts.keep_workdir:
            shutil.rmtree(w, ignore_errors=True)
        raise
    finally:
        inst.kill_all()
        out.argv = inst.argv
        out.console = inst.console()
        shutil.rmtree(sockdir, ignore_errors=True)


def cleanup(out: RepOutcome, keep: bool = False) -> None:
    if not keep:
        shutil.rmtree(out.workdir, ignore_errors=True)
