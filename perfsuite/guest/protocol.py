"""The host side of the guest protocol (docs/CONTRACTS.md section 5).

The host writes W/plan.json (the contract) and W/plan.sh (the same values, shell-quoted,
because the guest only has busybox sh); the guest answers with guest-info.json, N.json,
N.status, done and, when it fails, guest-error.txt; N.window-start / N.window-end mark the
measured window of repetition N (after fio's start-up and ramp) for perfsuite.hostview.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from perfsuite.fsutil import atomic_write_json, atomic_write_text

MOUNT_TAG = "perfsuite"
HOST_ROOT_TAG = "perfsuite-host"
# no_timer_check: under TCG on a loaded host the IO-APIC timer check can fail and panic
# the kernel ("IO-APIC + timer doesn't work!"); seen here with two guests on 2 cores.
# cryptomgr.notests: the crypto self-tests are the slowest initcall under TCG (~0.25 s,
# ~15% of the kernel's boot) and the guest does no cryptography.
BASE_APPEND = "console=ttyS0 quiet panic=-1 no_timer_check cryptomgr.notests"


@dataclass
class GuestPlan:
    repetitions: list[int] = field(default_factory=lambda: [1])
    fio_job: str = "job.fio"                 # relative to W
    fio_args: list[str] = field(default_factory=list)
    device: str = "/dev/vda"
    scheduler: str = "none"                  # "" leaves the kernel's default
    poweroff: bool = True
    # A shell fragment in W that replaces the repetition loop (the init script's mode
    # branch); "" (the default) is the normal path, whose plan.sh does not mention it.
    mode_script: str = ""
    ramp: float = 0.0                        # fio's ramp_time: the window opens after it
    window_ack: bool = False                 # wait for the host to take N.window-end away

    def __post_init__(self) -> None:
        reps = [int(r) for r in self.repetitions]
        if any(r < 0 for r in reps) or len(set(reps)) != len(reps):
            raise ValueError(f"repetitions must be distinct non-negative integers: {reps}")
        self.repetitions = reps
        if not self.device.startswith("/dev/"):
            raise ValueError(f"device must be a /dev path: {self.device}")
        if Path(self.fio_job).is_absolute():
            raise ValueError("fio_job is a path relative to the work dir")
        if self.mode_script and ("/" in self.mode_script or self.mode_script.startswith(".")):
            raise ValueError("mode_script is a file name in the work dir")


def plan_sh(plan: GuestPlan) -> str:
    """The plan as a busybox-sh fragment (pure). `set --` carries the fio args verbatim."""
    q = shlex.quote
    lines = [
        "# written by perfsuite.guest.write_plan from plan.json; sourced by the guest's /init",
        f"REPETITIONS={q(' '.join(str(r) for r in plan.repetitions))}",
        f"FIO_JOB={q(plan.fio_job)}",
        f"DEVICE={q(plan.device)}",
        f"SCHEDULER={q(plan.scheduler)}",
        f"POWEROFF={1 if plan.poweroff else 0}",
        f"RAMP={plan.ramp:g}",
        f"WINDOW_ACK={1 if plan.window_ack else 0}",
        "set -- " + " ".join(q(a) for a in plan.fio_args),
    ]
    if plan.mode_script:
        lines.insert(-1, f"MODE_SCRIPT={q(plan.mode_script)}")
    return "\n".join(lines) + "\n"


def write_plan(workdir: str | os.PathLike, plan: GuestPlan) -> None:
    """Write W/plan.json and W/plan.sh (atomically; plan.sh last, it is what the guest reads)."""
    w = Path(workdir)
    data = dataclasses.asdict(plan)
    if not data["mode_script"]:  # the normal path's plan.json stays as the contract has it
        del data["mode_script"]
    atomic_write_json(w / "plan.json", data)
    atomic_write_text(w / "plan.sh", plan_sh(plan))


def count_cpu_list(text: str) -> int:
    """'0-3,5' -> 5: the format of /sys/devices/system/cpu/online."""
    n = 0
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        n += int(hi) - int(lo) + 1 if hi else 1
    return n


def read_guest_info(workdir: str | os.PathLike) -> dict | None:
    """W/guest-info.json as a dict (None if the guest has not written it yet)."""
    path = Path(workdir) / "guest-info.json"
    try:
        info = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except orjson.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if isinstance(info.get("cpus_online"), str):  # tolerate a raw cpu list
        info["cpus_online"] = count_cpu_list(info["cpus_online"])
    return info


def read_guest_error(workdir: str | os.PathLike) -> str | None:
    """The guest's own account of why it gave up (W/guest-error.txt), if any."""
    try:
        return (Path(workdir) / "guest-error.txt").read_text().strip() or "unknown guest error"
    except FileNotFoundError:
        return None


_REP = re.compile(r"^(\d+)\.json$")


def finished_repetitions(workdir: str | os.PathLike) -> dict[int, Path]:
    """{N: W/N.json} for each repetition whose fio exited 0 (N.json appears only then)."""
    w = Path(workdir)
    found = {}
    for entry in os.scandir(w):
        m = _REP.match(entry.name)
        if m:
            found[int(m.group(1))] = w / entry.name
    return dict(sorted(found.items()))


def repetition_status(workdir: str | os.PathLike, rep: int) -> int | None:
    """fio's exit status for repetition `rep` (None if it has not finished)."""
    try:
        return int((Path(workdir) / f"{rep}.status").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def guest_done(workdir: str | os.PathLike) -> bool:
    return (Path(workdir) / "done").exists()


def guest_argv(image, workdir: str | os.PathLike, append: str = "") -> list[str]:
    """-kernel/-initrd/-append plus the 9p share(s) for one boot (pure)."""
    w = os.path.abspath(workdir).replace(",", ",,")  # QEMU option syntax doubles commas
    argv = [
        "-kernel", str(image.kernel), "-initrd", str(image.initrd),
        "-append", f"{BASE_APPEND} {append}".strip(),
        "-fsdev", f"local,id=psw,path={w},security_model=none",
        "-device", f"virtio-9p-pci,fsdev=psw,mount_tag={MOUNT_TAG}",
    ]
    if getattr(image, "fio_mode", "initramfs") == "hostroot":
        argv += ["-fsdev", "local,id=psroot,path=/,security_model=none,readonly=on",
                 "-device", f"virtio-9p-pci,fsdev=psroot,mount_tag={HOST_ROOT_TAG}"]
    return argv
