"""The QEMU command line of one boot, as a pure function of a `Config` (no shell involved)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

from perfsuite.matrix import axes
from perfsuite.matrix.config import NULL_SIZE, Config

DEVICE_ID = "vblk0"   # the benchmark disk's device id (QOM: /machine/peripheral/vblk0)
NODE = "disk0"        # its block node


def qemu_opt(value: str | os.PathLike) -> str:
    """Escape a value for QEMU's `key=value,...` syntax: a comma is written twice."""
    return str(value).replace(",", ",,")


def accel_args(accel: str) -> list[str]:
    if accel == "kvm":
        return ["-accel", "kvm", "-cpu", "host"]
    if accel == "tcg":
        return ["-accel", "tcg"]
    raise ValueError(f"accel must be kvm or tcg, not {accel!r}")


_CACHE = {  # cache mode -> (cache.direct, cache.no-flush, device write-cache)
    "none": ("on", "off", None),
    "writeback": ("off", "off", None),
    "writethrough": ("off", "off", "off"),
    "directsync": ("on", "off", "off"),
    "unsafe": ("off", "on", None),
}


def blockdev_arg(c: Config) -> str:
    if c.backend in ("null-co", "null-aio"):
        return f"driver={c.backend},node-name={NODE},size={NULL_SIZE},read-zeroes=on"
    if c.backend in ("file", "host_device"):
        direct, no_flush, _ = _CACHE[c.cache]
        return (f"driver=raw,node-name={NODE},file.driver={c.backend},"
                f"file.filename={qemu_opt(c.backend_path)},file.aio={c.aio},"
                f"cache.direct={direct},cache.no-flush={no_flush}")
    raise ValueError(f"unknown backend {c.backend!r}")


def device_arg(c: Config, vq_mapping: bool = False) -> str:
    """virtio-blk-pci with num-queues always explicit (QEMU >= 5.2 defaults it to the vCPUs)."""
    wce = _CACHE[c.cache][2] if c.backend in ("file", "host_device") else None
    # every axis that sets a device property (the registry's device_prop), in registry order
    props: dict[str, object] = {a.device_prop: a.qemu(getattr(c, a.name)) for a in axes.device_axes()}
    if c.dataplane and c.iothreads > 1:
        if not vq_mapping:
            raise ValueError("iothreads > 1 needs iothread-vq-mapping, which this QEMU lacks")
        dev: dict[str, object] = {"driver": "virtio-blk-pci", "id": DEVICE_ID, "drive": NODE, **props,
                                  "iothread-vq-mapping": [{"iothread": f"io{i}"} for i in range(c.iothreads)]}
        if wce:
            dev["write-cache"] = wce
        return json.dumps(dev, separators=(",", ":"))
    arg = ",".join([f"virtio-blk-pci,id={DEVICE_ID},drive={NODE}",
                    *(f"{k}={qemu_opt(v)}" for k, v in props.items())])
    if c.dataplane:
        arg += ",iothread=io0"
    if wce:
        arg += f",write-cache={wce}"
    return arg


def build_argv(config: Config, image_argv: Sequence[str], workdir: str | os.PathLike, *,
               accel: str = "tcg", qmp_socket: str | os.PathLike | None = None,
               console: str | os.PathLike | None = None, vq_mapping: bool = False,
               qemu: str | None = None, paused: bool = True) -> list[str]:
    """The full argv of one boot.

    - `image_argv`: the guest's -kernel/-initrd/-append and 9p share (`perfsuite.guest.guest_argv`).
    - QMP: QEMU listens on `qmp_socket` (default W/qmp.sock; keep it < 108 bytes).
    - The serial console goes to `console` (default W/console.log).
    - `paused`: start with -S so that the host can check the device and pin threads first.
    """
    c = config
    w = Path(workdir)
    qmp_socket = qmp_socket or w / "qmp.sock"
    console = console or w / "console.log"
    argv = [qemu or c.qemu, "-name", f"perfsuite-{c.name}", "-nodefaults", "-no-user-config",
            "-display", "none", "-no-reboot"]
    argv += accel_args(accel)
    argv += ["-M", c.machine, "-m", str(c.memory_mb), "-smp", str(c.smp)]
    argv += ["-chardev", f"file,id=con0,path={qemu_opt(console)}", "-serial", "chardev:con0"]
    argv += ["-chardev", f"socket,id=qmp0,path={qemu_opt(qmp_socket)},server=on,wait=off",
             "-mon", "chardev=qmp0,mode=control"]
    for i in range(c.iothreads if c.dataplane else 0):
        argv += ["-object", f"iothread,id=io{i}"]
    argv += ["-blockdev", blockdev_arg(c), "-device", device_arg(c, vq_mapping)]
    if paused:
        argv.append("-S")
    argv += list(image_argv)
    return argv
