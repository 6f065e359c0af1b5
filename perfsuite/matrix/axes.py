"""The axis registry: one declaration per axis of a matrix, everything else derives from it.

An axis is one knob of a configuration (smp, num_queues, dataplane, backend, ...). Its
`Axis` entry says, once:

- its name, default and one-line doc (the matrix key, the `Config` attribute, the meta.json
  `config` key);
- `check`: what values are valid on their own (cross-axis rules live in `matrix.validate`);
- `spell`: how it is appended to a run name when it varies within a matrix (None: never;
  label, smp, dataplane and num_queues make the seed's base name instead);
- `identity`: whether it identifies a configuration (compare's matching key, the checks'
  pair finder, resume's "same settings" test); `build`: it names the build under test
  (label, qemu), which compare matches *across*;
- `column`: the results-frame column that holds its value; `from_meta`: whether that
  column comes from meta.json (numjobs and iodepth come from fio's own output instead);
- `report`: its heading in the report's environment table (`seen`: the frame column of what
  the guest saw, shown as "asked / seen");
- `device_prop`: the virtio-blk-pci property it sets, for the argv and for reading back what
  QEMU built over QMP.

Adding an axis is its entry here plus, where it reaches QEMU in a way `device_prop` cannot
say, its clause in `perfsuite.qemu.argv`. The derived views are functions, not tuples frozen
at import time, so an axis registered later (a plug-in, a test) flows everywhere.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

# QEMU's hard limits for virtio-blk-pci (hw/virtio: VIRTIO_QUEUE_MAX and VIRTQUEUE_MAX_SIZE).
# The num-queues property is a uint16 and 7.2 does not check it at realize time: a value
# above VIRTIO_QUEUE_MAX aborts QEMU when the device is set up, so it is refused here.
VIRTIO_QUEUE_MAX = 1024
VIRTQUEUE_MAX_SIZE = 1024
MAX_CPUS_Q35 = 288  # q35's max_cpus in QEMU 7.x
MIN_MEMORY_MB = 256  # the guest's kernel + initramfs (with fio) need this much

BACKENDS = ("null-co", "null-aio", "file", "host_device")
AIO_MODES = ("threads", "native", "io_uring")
CACHE_MODES = ("none", "writeback", "writethrough", "directsync", "unsafe")
MACHINES = ("q35", "pc")

Check = Callable[[Any], "str | None"]


@dataclass(frozen=True)
class Axis:
    name: str
    default: Any
    doc: str
    check: Check | None = None
    spell: Callable[[Any, Mapping[str, Any]], str | None] | None = None
    identity: bool = True
    build: bool = False
    column: str | None = ""          # "" = same as name; None = not a frame column
    from_meta: bool = True
    report: str | None = None
    seen: str | None = None
    device_prop: str | None = None
    # value -> the QEMU property's spelling (bool -> on/off by default)
    qemu_value: Callable[[Any], Any] | None = None

    @property
    def frame_column(self) -> str | None:
        return self.name if self.column == "" else self.column

    def qemu(self, value: Any) -> Any:
        if self.qemu_value is not None:
            return self.qemu_value(value)
        if isinstance(value, bool):
            return "on" if value else "off"
        return value


# ----------------------------------------------------------------------------- value checks

def whole(v: Any) -> bool:
    """An integer, and not a TOML boolean (Python's True is an int: `smp = true` is not 1)."""
    return isinstance(v, int) and not isinstance(v, bool)


def int_range(lo: int, hi: int | None = None, why: str = "") -> Check:
    def check(v: Any) -> str | None:
        if whole(v) and v >= lo and (hi is None or v <= hi):
            return None
        span = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        return f"must be a whole number {span}{why}"
    return check


def boolean(v: Any) -> str | None:
    # pin = "false" would be truthy: refuse rather than guess
    return None if isinstance(v, bool) else "must be true or false"


def one_of(choices: tuple[str, ...]) -> Check:
    def check(v: Any) -> str | None:
        return None if v in choices else f"one of {', '.join(choices)}"
    return check


def _power_of_two(v: Any) -> str | None:
    if whole(v) and 2 < v <= VIRTQUEUE_MAX_SIZE and not v & (v - 1):
        return None
    return f"must be a power of 2, 4..{VIRTQUEUE_MAX_SIZE}"


def _memory(v: Any) -> str | None:
    return None if whole(v) and v >= MIN_MEMORY_MB else f"the guest needs at least {MIN_MEMORY_MB}"


# ----------------------------------------------------------------------------- the registry

_BUILTIN = (
    Axis("label", "qemu", "the build under test: the first part of every run name", build=True),
    Axis("qemu", "qemu-system-x86_64", "QEMU binary or build spec", build=True),
    Axis("smp", 1, "guest vCPUs (-smp)", check=int_range(1, MAX_CPUS_Q35),
         report="vCPUs asked / seen", seen="cpus_seen"),
    Axis("memory_mb", 1024, "guest memory, MiB (-m)", check=_memory,
         spell=lambda v, c: f"mem-{v}"),
    Axis("num_queues", None, "virtio-blk num-queues (default: one per vCPU); always passed to QEMU",
         check=int_range(1, VIRTIO_QUEUE_MAX, " (VIRTIO_QUEUE_MAX)"),
         report="Queues asked / seen", seen="queues_seen", device_prop="num-queues"),
    Axis("dataplane", True, "serve the device from an IOThread (dataplane)", check=boolean),
    Axis("iothreads", 1, "IOThreads serving the device (0 without dataplane; >1 needs "
         "iothread-vq-mapping)", spell=lambda v, c: f"iothreads-{v}" if c["dataplane"] else None,
         report="IOThreads"),
    Axis("queue_size", 256, "virtqueue size", check=_power_of_two,
         spell=lambda v, c: f"qs-{v}", device_prop="queue-size"),
    Axis("backend", "null-co", "block backend", check=one_of(BACKENDS),
         spell=lambda v, c: v.replace("_", "-"), report="Backend"),
    Axis("backend_path", None, "file or block device for the file/host_device backends",
         spell=lambda v, c: Path(v).name if v else None, column=None),
    Axis("aio", "threads", "file.aio of the file backends", check=one_of(AIO_MODES),
         spell=lambda v, c: f"aio-{v}", report="AIO"),
    Axis("cache", "none", "cache mode of the file backends", check=one_of(CACHE_MODES),
         spell=lambda v, c: f"cache-{v}", report="Cache"),
    Axis("fio_job", "jobs/fio.job", "fio job file", spell=lambda v, c: Path(v).stem.replace(".", "-")),
    Axis("numjobs", None, "fio jobs (default: one per vCPU)", check=int_range(1),
         spell=lambda v, c: f"jobs-{v}", from_meta=False),
    Axis("iodepth", 32, "fio iodepth per job", check=int_range(1), spell=lambda v, c: f"qd-{v}",
         from_meta=False),
    Axis("runtime", 60, "fio runtime, seconds", check=int_range(1), spell=lambda v, c: f"rt-{v}",
         identity=False, column=None),
    Axis("ramp", 5, "fio ramp_time, seconds", check=int_range(0), spell=lambda v, c: f"ramp-{v}",
         identity=False, column=None),
    Axis("pin", False, "pin vCPU and IOThread threads to host CPUs", check=boolean,
         spell=lambda v, c: "pin" if v else "no-pin", report="Pinned vCPUs"),
    Axis("machine", "q35", "QEMU machine type", check=one_of(MACHINES), spell=lambda v, c: v,
         report="Machine"),
)

AXES: dict[str, Axis] = {a.name: a for a in _BUILTIN}

# Columns from fio's output that identify a job shape beside the axes.
FIO_IDENTITY = ("rw", "bs")
# The base name's axes (the seed's `{label}-smp-{N}-{dataplane|no-dataplane}[-no-mq]`).
BASE_AXES = ("label", "smp", "dataplane", "num_queues")


def multiqueue(num_queues: Any) -> bool | None:
    """The one definition of multiqueue: more than one virtqueue (num-queues > 1). Its twin,
    against which a multiqueue gain is measured (the checks' bound, the report's speedup),
    is the same configuration with one queue. None when the queue count is unknown.
    (`-no-mq` in a name and the matrix key `mq = false` spell num-queues 1.)"""
    try:
        nq = float(num_queues)
    except (TypeError, ValueError):
        return None
    return None if nq != nq else nq > 1


def register(axis: Axis) -> None:
    if axis.name in AXES or axis.name in ("name", "mq"):
        raise ValueError(f"axis {axis.name!r} is already registered")
    AXES[axis.name] = axis


def unregister(name: str) -> None:
    if any(a.name == name for a in _BUILTIN):
        raise ValueError(f"axis {name!r} is built in")
    AXES.pop(name, None)


@contextlib.contextmanager
def registered(axis: Axis) -> Iterator[Axis]:
    """Register `axis` for the duration of a block (plug-ins, tests)."""
    register(axis)
    try:
        yield axis
    finally:
        unregister(axis.name)


# ----------------------------------------------------------------------------- derived views

def names() -> tuple[str, ...]:
    return tuple(AXES)


def spelled() -> tuple[Axis, ...]:
    """Axes appended to a run name when they vary, in registry order."""
    return tuple(a for a in AXES.values() if a.spell is not None)


def meta_columns() -> tuple[str, ...]:
    """meta.json `config` keys that become results-frame columns (unprefixed)."""
    return tuple(a.frame_column for a in AXES.values() if a.frame_column and a.from_meta)


def identity_columns(include_build: bool = True) -> tuple[str, ...]:
    """Frame columns that identify a configuration (plus fio's job shape)."""
    cols = [a.frame_column for a in AXES.values()
            if a.identity and a.frame_column and (include_build or not a.build)]
    return (*cols, *FIO_IDENTITY)


def build_columns() -> tuple[str, ...]:
    return tuple(a.frame_column for a in AXES.values() if a.build and a.frame_column)


def device_axes() -> tuple[Axis, ...]:
    """Axes that set a virtio-blk-pci property (argv, QMP read-back, mismatch check)."""
    return tuple(a for a in AXES.values() if a.device_prop)


def report_axes() -> tuple[Axis, ...]:
    return tuple(a for a in AXES.values() if a.report and a.frame_column)


def defaults() -> dict[str, Any]:
    return {a.name: a.default for a in AXES.values()}
