"""One boot: a work dir, the rendered fio job, a plan, a QEMU process, and what came out.

`render_job` and `boot_timeouts` are pure; `Boot` is the side-effecting edge the runner
drives (`start`, `poll_new`, `finish`). A fake with the same methods drives unit tests.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence

from perfsuite.errors import PerfsuiteError
from perfsuite.fsutil import owned_tempdir
from perfsuite.matrix.config import Config

GUEST_DEVICE = "/dev/vda"


# ----------------------------------------------------------------------------- pure parts

def render_job(text: str, c: Config, device: str = GUEST_DEVICE) -> str:
    """The job file the guest runs: `text` with the config's settings in its [global].

    fio lets a job file's [global] override the command line, so runtime/ramp cannot be
    passed as `--runtime`: they are written here (replacing the file's own values).
    """
    settings = {"filename": device, "numjobs": str(c.numjobs), "iodepth": str(c.iodepth),
                "runtime": str(c.runtime), "ramp_time": str(c.ramp)}
    out: list[str] = []
    in_global = False
    inserted = False
    for line in text.splitlines():
        section = re.match(r"^\s*\[([^\]]+)\]", line)
        if section:
            if in_global and not inserted:
                out += [f"{k}={v}" for k, v in settings.items()]
                inserted = True
            in_global = section.group(1).strip() == "global"
            out.append(line)
            continue
        key = re.match(r"^\s*([A-Za-z_]+)\s*(=|$)", line)
        if key and key.group(1) in settings and not line.lstrip().startswith(("#", ";")):
            continue  # every job gets the config's value, from [global]
        out.append(line)
    if in_global and not inserted:
        out += [f"{k}={v}" for k, v in settings.items()]
        inserted = True
    if not inserted:
        out = ["[global]"] + [f"{k}={v}" for k, v in settings.items()] + [""] + out
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class Timeouts:
    first: float   # seconds from launch until the first repetition must be finished
    each: float    # seconds allowed for every further repetition
    exit: float    # seconds for the guest to power off after its last repetition


def boot_timeouts(c: Config, accel: str, override: float | None = None) -> Timeouts:
    """Per-repetition deadlines from the job's length, the accelerator and a boot margin.

    TCG on a busy 2-core host: a 5 s fio run takes ~15 s wall and a boot ~5 s, so the
    margins are generous; `override` (--timeout) sets the per-repetition figure outright.
    """
    fio = c.runtime + c.ramp
    slow = 3.0 if accel == "tcg" else 1.5
    each = override if override else fio * slow + 30 + 5 * c.numjobs
    boot = 90.0 if accel == "tcg" else 30.0
    return Timeouts(first=each + boot, each=each, exit=60.0 if accel == "tcg" else 20.0)


def _hostview_enabled() -> bool:
    from perfsuite.hostview import sampler
    return sampler.ENABLED


# ----------------------------------------------------------------------------- the edge

@dataclass
class BootResult:
    status: str                  # "ok" | "timeout" | "failed"
    error: str | None
    exit_code: int | None
    device: dict[str, Any] = field(default_factory=dict)   # QMP: num-queues, iothread...
    pinned: dict[str, list[int]] | None = None


class BootLike(Protocol):
    workdir: Path
    argv: list[str]

    def start(self) -> None: ...
    def poll_new(self) -> dict[int, Path]: ...
    def failed_reps(self) -> dict[int, int]: ...
    def guest_info(self) -> dict | None: ...
    def exited(self) -> bool: ...
    def console(self) -> str: ...
    def finish(self, status: str, error: str | None) -> BootResult: ...
    def cleanup(self) -> None: ...


def _workdir(root: str | os.PathLike | None, name: str) -> Path:
    # owned: a perfsuite killed with SIGKILL leaves it, and the next run removes it
    return owned_tempdir(f"perfsuite-{name[:40]}-", root)


def read_job(path: str | os.PathLike) -> str:
    """A job file's text; bytes that are not UTF-8 (a Latin-1 comment) pass through unchanged
    (fio reads bytes), so the rendered job is the user's file byte for byte."""
    try:
        return Path(path).read_bytes().decode("utf-8", "surrogateescape")
    except OSError as e:
        raise BootError(f"cannot read the fio job {Path(path).absolute()}: {e.strerror or e}") from None


class BootError(PerfsuiteError):
    """A boot that cannot be prepared (unreadable job file): exit 2, nothing launched."""


class Boot:
    """A real QEMU boot of the guest image with one plan (repetitions of one config)."""

    def __init__(self, config: Config, reps: Sequence[int], image: Any, *, accel: str,
                 work_root: str | os.PathLike | None = None, vq_mapping: bool = False,
                 poweroff: bool = True, keep_workdir: bool = False, profile: str | None = None):
        from perfsuite import guest  # the guest package; imported only when booting
        self._guest = guest
        self.config = config
        self.reps = list(reps)
        self.accel = accel
        self.keep_workdir = keep_workdir
        self.profile = profile
        self.hostview = None   # perfsuite.hostview: samples each repetition's window
        job = render_job(read_job(config.fio_job), config)  # before any dir is made
        self._sockdir = None
        self.workdir = _workdir(work_root, config.name)
        try:
            self._prepare(job, poweroff, image, vq_mapping)
        except BaseException:
            self.cleanup()
            raise

    def _prepare(self, job: str, poweroff: bool, image: Any, vq_mapping: bool) -> None:
        guest, config = self._guest, self.config
        from perfsuite.qemu.argv import build_argv
        self._seen: set[int] = set()
        (self.workdir / "job.fio").write_bytes(job.encode("utf-8", "surrogateescape"))
        # json+ (the init script's --output-format=json, overridden: fio's last one wins):
        # the completion-latency histogram that `compare --metric p99` takes its interval from
        guest.write_plan(self.workdir, guest.GuestPlan(
            repetitions=self.reps, fio_job="job.fio", fio_args=["--output-format=json+"],
            device=GUEST_DEVICE, scheduler="none", poweroff=poweroff, ramp=config.ramp,
            window_ack=_hostview_enabled()))
        sock = self.workdir / "qmp.sock"
        if len(str(sock)) > 100:  # AF_UNIX path limit
            self._sockdir = owned_tempdir("psq-")
            sock = self._sockdir / "qmp.sock"
        self.qmp_socket = sock
        self.console_path = self.workdir / "console.log"
        self.argv = build_argv(config, guest.guest_argv(image, self.workdir), self.workdir,
                               accel=self.accel, qmp_socket=sock, console=self.console_path,
                               vq_mapping=vq_mapping)
        self.qemu = None
        self.device: dict[str, Any] = {}
        self.pinned = None
        self.started = time.monotonic()

    def start(self) -> None:
        from perfsuite.qemu.machine import QemuProcess
        self.qemu = QemuProcess(self.argv, self.qmp_socket, self.workdir / "qemu.stderr")
        self.started = time.monotonic()
        self.qemu.start()
        try:
            self.device = self.qemu.device_props()
            if self.config.pin:
                self.pinned = self.qemu.pin()
            from perfsuite.hostview.sampler import attach
            self.hostview = attach(self.qemu, self.workdir, self.reps, self.profile)
            self.qemu.cont()
        except BaseException:
            self.qemu.kill()
            raise

    def poll_new(self) -> dict[int, Path]:
        """Repetitions whose fio JSON appeared since the last call."""
        if self.hostview is not None:  # first: the guest closes a window before its N.json
            self.hostview.poll()
        new = {n: p for n, p in self._guest.finished_repetitions(self.workdir).items()
               if n not in self._seen and n in self.reps}
        self._seen.update(new)
        return new

    def take_host_view(self, n: int, run_dir: Path) -> dict:
        """host_threads/host_load (and a profile moved into run_dir) of repetition n."""
        return self.hostview.take(n, run_dir) if self.hostview is not None else {}

    def failed_reps(self) -> dict[int, int]:
        """{N: fio exit status} for repetitions that ended without a JSON."""
        out = {}
        for n in self.reps:
            st = self._guest.repetition_status(self.workdir, n)
            if st not in (None, 0) and n not in self._seen:
                out[n] = st
        return out

    def guest_info(self) -> dict | None:
        try:
            return self._guest.read_guest_info(self.workdir)
        except ValueError:
            return None

    def guest_error(self) -> str | None:
        return self._guest.read_guest_error(self.workdir)

    def done(self) -> bool:
        return self._guest.guest_done(self.workdir)

    def exited(self) -> bool:
        return self.qemu is None or self.qemu.poll() is not None

    def exit_code(self) -> int | None:
        """QEMU's exit status (negative: the signal that killed it), None while it runs."""
        return None if self.qemu is None else self.qemu.poll()

    def console(self) -> str:
        text = ""
        try:
            text = self.console_path.read_text(errors="replace")
        except OSError:
            pass
        if self.qemu is not None:
            err = self.qemu.stderr_text().strip()
            if err:
                text += f"\n--- qemu stderr ---\n{err}\n"
        return text

    def finish(self, status: str, error: str | None, grace: float = 15.0) -> BootResult:
        """ok: wait for the guest to power off (`grace` s), else QMP quit, else kill.
        timeout/interrupted: kill the process group at once."""
        code = None
        if self.qemu is not None:
            if status == "ok" and self.qemu.poll() is None:
                # the guest wrote `done`: it powers off within a second, or never (poweroff=false)
                self.qemu.wait(min(grace, 5.0) if self.done() else grace)
            if status in ("timeout", "interrupted"):
                self.qemu.kill()  # a hung guest (or an impatient user) gets no clean shutdown
                code = self.qemu.poll()
            else:
                code = self.qemu.stop(timeout=5.0)
        return BootResult(status, error, code, self.device, self.pinned)

    def cleanup(self) -> None:
        """Remove the work dir (after the runner has taken the results and the console)."""
        if not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        if self._sockdir is not None:
            shutil.rmtree(self._sockdir, ignore_errors=True)
