"""The `N.meta.json` of a repetition (CONTRACTS.md section 2).

Two layers: `assemble_meta` and `mismatches` are pure (every fact is an argument, nothing is
probed or read), and the edge below them gathers the facts: `build_meta` (the build's
provenance and the lab host from the environment, then assemble_meta), `versions` (runs
the QEMU probe and `fio --version`), `host_info` (/proc/cpuinfo, hostname), all cached.
"""

from __future__ import annotations

import functools
import os
import platform
import socket
import subprocess
from datetime import datetime, timezone
from typing import Any

from perfsuite.matrix import axes
from perfsuite.matrix.config import Config

SCHEMA = 1


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def mismatches(c: Config, guest: dict | None, device: dict | None) -> list[str]:
    """Human-readable differences between what was asked and what QEMU/the guest built (pure).

    Linux gives a virtio-blk disk at most one queue per possible CPU, so the guest is
    expected to see min(num_queues, smp) queues.
    """
    out: list[str] = []
    device = device or {}
    for axis in axes.device_axes():
        prop, want = axis.device_prop, axis.qemu(getattr(c, axis.name))
        if prop in device and device[prop] != want and device[prop] != getattr(c, axis.name):
            out.append(f"device {prop}: asked {want}, QEMU built {device[prop]}")
    if device and c.dataplane and c.iothreads == 1 and device.get("iothread") != "io0":
        out.append(f"iothread: asked io0, device has {device.get('iothread')}")
    if device and c.dataplane and c.iothreads > 1:
        want = [f"io{i}" for i in range(c.iothreads)]
        if device.get("iothread-vq-mapping") != want:
            out.append(f"iothread-vq-mapping: asked {','.join(want)}, QEMU built "
                       f"{','.join(device.get('iothread-vq-mapping') or []) or 'none'}")
    if device and not c.dataplane and device.get("iothread"):
        out.append(f"iothread: asked none, device has {device.get('iothread')}")
    if guest is None:
        return out + ["guest info: the guest did not report what it saw"]
    want_q = min(c.num_queues, c.smp)
    if guest.get("queues") != want_q:
        out.append(f"queues: asked {want_q}, guest saw {guest.get('queues')}")
    if guest.get("cpus_online") != c.smp:
        out.append(f"cpus: asked {c.smp}, guest saw {guest.get('cpus_online')}")
    if guest.get("scheduler") not in (None, "none"):
        out.append(f"scheduler: asked none, guest has {guest.get('scheduler')}")
    return out


def assemble_meta(c: Config, rep: int, *, boot: int, argv: list[str], accel: str,
                  accel_note: str | None, versions: dict, host: dict, build: dict,
                  guest: dict | None, device: dict | None, started: str, finished: str,
                  status: str, error: str | None, attempt: int = 1, pinned: dict | None = None,
                  lab: dict | None = None) -> dict[str, Any]:
    """The meta document from facts already gathered (pure: no probe, no file, no environment)."""
    g = guest or {}
    meta = {
        "schema": SCHEMA, "name": c.name, "rep": rep, "boot": boot, "attempt": attempt,
        "config": c.to_meta(),
        "qemu_argv": list(argv),
        "accel": accel, "accel_note": accel_note,
        "versions": versions, "host": host, "build": build,
        "guest": {k: g.get(k) for k in ("cpus_online", "queues", "kernel", "fio_version",
                                        "scheduler")},
        "device": device or {}, "pinned": pinned,
        "mismatch": mismatches(c, guest, device) if status == "ok" else [],
        "started": started, "finished": finished,
        "status": status, "error": error,
        "synthetic": False, "true_iops": None,
        # perfsuite.hostview fills these from the measured window (None: not sampled)
        "host_threads": None, "host_load": None,
    }
    if lab:
        meta["lab"] = lab
    return meta


def build_meta(c: Config, rep: int, *, boot: int, argv: list[str], accel: str,
               accel_note: str | None, versions: dict, host: dict, guest: dict | None,
               device: dict | None, started: str, finished: str, status: str,
               error: str | None, attempt: int = 1, pinned: dict | None = None) -> dict[str, Any]:
    """assemble_meta with the facts of this host gathered here, at the edge: the build's
    provenance (perfsuite.builds, which may hash the binary) and the lab host that
    `perfsuite lab run` names in the environment."""
    return assemble_meta(c, rep, boot=boot, argv=argv, accel=accel, accel_note=accel_note,
                         versions=versions, host=host, build=build_info(c.qemu), guest=guest,
                         device=device, started=started, finished=finished, status=status,
                         error=error, attempt=attempt, pinned=pinned, lab=lab_info(os.environ))


def lab_info(env: dict | os._Environ) -> dict[str, Any] | None:
    """The meta's `lab` block from the variables `perfsuite lab run` sets on each lab host."""
    if not env.get("PERFSUITE_LAB_HOST"):
        return None
    return {"host": env["PERFSUITE_LAB_HOST"], "class": env.get("PERFSUITE_LAB_CLASS")}


@functools.lru_cache(maxsize=None)
def host_info() -> dict[str, Any]:
    import os
    model = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"hostname": socket.gethostname(), "cpu_model": model or platform.processor(),
            "cpus": os.cpu_count(), "kernel": platform.release()}


def build_info(qemu: str) -> dict[str, Any]:
    """The `build` block: spec, QEMU version, package or commit (+ dirty), flags, sha256."""
    from perfsuite.builds import provenance_of
    return provenance_of(qemu)


@functools.lru_cache(maxsize=None)
def host_fio_version() -> str | None:
    try:
        out = subprocess.run(["fio", "--version"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def versions(qemu: str) -> dict[str, Any]:
    from perfsuite.qemu.features import QemuNotRunnable, probe
    try:
        info = probe(qemu)
        qv, pkg = info.version, info.package
    except QemuNotRunnable:
        qv, pkg = None, None
    return {"qemu": qv, "qemu_package": pkg, "host_fio": host_fio_version()}
