"""Which accelerator to use: `--accel auto` proves KVM with a real boot, else TCG.

/dev/kvm existing proves nothing on these hosts (`-cpu host` aborts on an MSR, other CPU
models hang after the firmware), so `auto` boots the probe guest (the guest image with a
zero-repetition plan) under KVM with a short timeout; if it does not write `done` and
power off, TCG is used and the reason is kept as `accel_note` for every meta file.
The answer is cached per process and QEMU binary.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable

PROBE_TIMEOUT = 25.0


@dataclass(frozen=True)
class AccelChoice:
    accel: str            # "kvm" | "tcg"
    note: str | None      # why, when it is not what was asked / when auto fell back


_CACHE: dict[tuple[str, str], AccelChoice] = {}


def kvm_usable() -> str | None:
    """None if /dev/kvm can be opened read-write, else the reason."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        return f"/dev/kvm: {e.strerror}"
    os.close(fd)
    return None


def probe_kvm_boot(qemu: str, image: Any, timeout: float = PROBE_TIMEOUT,
                   work_root: str | None = None) -> str | None:
    """Boot the probe guest under KVM; None on success, else what went wrong."""
    from perfsuite.run.boot import Boot
    from perfsuite.matrix.config import Config
    cfg = Config(label="kvm-probe", qemu=qemu, smp=1, memory_mb=512, dataplane=False,
                 runtime=1, ramp=0, fio_job=os.devnull)
    boot = Boot(cfg, [], image, accel="kvm", work_root=work_root)
    reason: str | None = None
    try:
        boot.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not boot.exited():
            time.sleep(0.1)
        if not boot.exited():
            reason = f"the KVM probe guest did not finish within {timeout:.0f} s"
        elif not boot.done():
            tail = boot.console().strip().splitlines()[-1:] or ["no console output"]
            reason = f"the KVM probe guest exited early ({tail[0][:160]})"
    except Exception as e:  # noqa: BLE001 - any failure means no KVM
        lines = [ln for ln in str(e).splitlines() if ln.strip()]
        first = " ".join(lines[0].split())[:200] if lines else type(e).__name__
        reason = f"the KVM probe guest failed to start: {first}"
    finally:
        boot.finish("ok" if reason is None else "failed", reason, grace=2.0)
        boot.cleanup()
    return reason


def resolve_accel(requested: str, qemu: str, image: Any = None, *,
                  probe: Callable[[str, Any], str | None] = probe_kvm_boot,
                  log: Callable[[str], None] | None = None) -> AccelChoice:
    """kvm|tcg are taken as asked; auto probes once per (process, binary) and says so once."""
    if requested == "tcg":
        return AccelChoice("tcg", None)
    if requested == "kvm":
        return AccelChoice("kvm", None)
    if requested != "auto":
        raise ValueError(f"--accel must be auto, kvm or tcg, not {requested!r}")
    key = (requested, qemu)
    if key in _CACHE:
        return _CACHE[key]
    reason = kvm_usable()
    if reason is None:
        reason = probe(qemu, image)
    if reason is None:
        choice = AccelChoice("kvm", "KVM probe boot succeeded")
    else:
        choice = AccelChoice("tcg", f"KVM probe failed ({reason}); using TCG")
        if log:
            log(choice.note)
    _CACHE[key] = choice
    return choice
