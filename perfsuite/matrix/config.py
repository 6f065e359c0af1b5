"""Configurations: the `Config` value, matrix expansion from TOML, run naming, validation.

A matrix file (see docs/runner.md) holds:

    [defaults]            scalars shared by every configuration
    [matrix]              axes: a list multiplies (cartesian product), a scalar is fixed
    [[config]]            explicit entries (lists inside one entry multiply too)

Keys are `Config` fields plus `mq` (true: num_queues = smp, one queue per vCPU; false:
num_queues = 1). `num_queues`, when given, wins over `mq`. Everything here is pure except
`validate`, which may look at files and run the QEMU binary once (through `probe`).
"""

from __future__ import annotations

from perfsuite.errors import PerfsuiteError

import dataclasses
import fnmatch
import itertools
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

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
NULL_SIZE = 8 * 1024**3  # bytes of the null-co/null-aio disk


class ConfigError(PerfsuiteError, ValueError):
    """The matrix cannot run; the message says every reason, one per line."""


@dataclass(frozen=True)
class Config:
    """One device configuration = one run name. Fields are the meta.json `config` keys."""

    label: str = "qemu"
    qemu: str = "qemu-system-x86_64"
    smp: int = 1
    memory_mb: int = 1024
    num_queues: int | None = None  # None: one queue per vCPU (= smp); always passed to QEMU
    dataplane: bool = True
    iothreads: int = 1  # IOThreads serving the device; forced to 0 without dataplane
    queue_size: int = 256
    backend: str = "null-co"
    backend_path: str | None = None
    aio: str = "threads"
    cache: str = "none"
    fio_job: str = "jobs/fio.job"
    numjobs: int | None = None  # None: one fio job per vCPU
    iodepth: int = 32
    runtime: int = 60
    ramp: int = 5
    pin: bool = False
    machine: str = "q35"
    name: str = field(default="", compare=True)  # filled from the seed's scheme when empty

    def __post_init__(self) -> None:
        setter = object.__setattr__.__get__(self)
        if self.num_queues is None:
            setter("num_queues", self.smp)
        if self.numjobs is None:
            setter("numjobs", self.smp)
        if not self.dataplane:
            setter("iothreads", 0)
        if not self.name:
            setter("name", base_name(self))

    def to_meta(self) -> dict[str, Any]:
        """The `config` object of meta.json (CONTRACTS.md section 2): every field but the name."""
        d = dataclasses.asdict(self)
        d.pop("name")
        return d

    @property
    def mq(self) -> bool:
        return self.num_queues == self.smp


FIELDS = tuple(f.name for f in dataclasses.fields(Config) if f.name != "name")
MATRIX_KEYS = frozenset(FIELDS) | {"mq", "name"}


# ----------------------------------------------------------------------------- naming

def base_name(c: Config) -> str:
    """`{label}-smp-{N}-{dataplane|no-dataplane}[-no-mq]`: the seed's scheme.

    `-no-mq` means num-queues=1 on a multi-vCPU guest; a queue count that is neither 1 nor
    the vCPU count is spelled `-nq-{N}`; one vCPU with one queue has no suffix.
    """
    name = f"{c.label}-smp-{c.smp}-{'dataplane' if c.dataplane else 'no-dataplane'}"
    if c.num_queues == c.smp:
        return name
    if c.num_queues == 1:
        return name + "-no-mq"
    return f"{name}-nq-{c.num_queues}"


# axis -> how it is spelled in a name when it varies within a matrix
_AXIS_SPELLING: dict[str, Callable[[Config], str | None]] = {
    "memory_mb": lambda c: f"mem-{c.memory_mb}",
    "iothreads": lambda c: f"iothreads-{c.iothreads}" if c.dataplane else None,
    "queue_size": lambda c: f"qs-{c.queue_size}",
    "backend": lambda c: c.backend.replace("_", "-"),
    "backend_path": lambda c: Path(c.backend_path).name if c.backend_path else None,
    "aio": lambda c: f"aio-{c.aio}",
    "cache": lambda c: f"cache-{c.cache}",
    "fio_job": lambda c: Path(c.fio_job).stem.replace(".", "-"),
    "numjobs": lambda c: f"jobs-{c.numjobs}",
    "iodepth": lambda c: f"qd-{c.iodepth}",
    "runtime": lambda c: f"rt-{c.runtime}",
    "ramp": lambda c: f"ramp-{c.ramp}",
    "pin": lambda c: "pin" if c.pin else "no-pin",
    "machine": lambda c: c.machine,
}


def varying_axes(configs: Iterable[Config]) -> list[str]:
    """The axes (beyond label, smp, dataplane, queues) that take more than one value."""
    configs = list(configs)
    return [axis for axis in _AXIS_SPELLING
            if len({getattr(c, axis) for c in configs}) > 1]


def name_configs(configs: list[Config], explicit: Iterable[bool] | None = None,
                 axes: list[str] | None = None) -> list[Config]:
    """Give each config its name: the seed's base plus `-{axis}` for axes that vary.

    `axes` defaults to `varying_axes(configs)`; a matrix passes the axes that vary *as
    written* so that derived values (numjobs = smp by default) do not lengthen names.
    """
    axes = varying_axes(configs) if axes is None else axes
    explicit = list(explicit) if explicit is not None else [False] * len(configs)
    out = []
    for c, keep in zip(configs, explicit):
        if keep:
            out.append(c)
            continue
        parts = [base_name(c)] + [p for a in axes if (p := _AXIS_SPELLING[a](c))]
        out.append(dataclasses.replace(c, name="-".join(parts)))
    return out


# ----------------------------------------------------------------------------- expansion

def expand(entry: dict[str, Any], defaults: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Cartesian product of one table's list-valued keys, over `defaults`."""
    merged = {**(defaults or {}), **entry}
    unknown = sorted(set(merged) - MATRIX_KEYS)
    if unknown:
        raise ConfigError(f"unknown matrix key(s): {', '.join(unknown)} "
                          f"(known: {', '.join(sorted(MATRIX_KEYS))})")
    axes = {k: (v if isinstance(v, list) else [v]) for k, v in merged.items()}
    for k, v in axes.items():
        if not v:
            raise ConfigError(f"matrix axis {k!r} is an empty list")
    keys = list(axes)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(axes[k] for k in keys))]


def config_from_dict(d: dict[str, Any]) -> Config:
    d = dict(d)
    mq = d.pop("mq", None)
    if mq is not None and not isinstance(mq, bool):
        # "no" or 0 would otherwise be read by truthiness ("no" = multiqueue on)
        raise ConfigError(f"mq={mq!r}: must be true or false")
    if mq is not None and d.get("num_queues") is None:
        # num_queues = smp as given; a bad smp is reported once, by problems()
        d["num_queues"] = d.get("smp", 1) if mq else 1
    try:
        return Config(**d)
    except TypeError as e:  # pragma: no cover - keys are checked in expand()
        raise ConfigError(str(e)) from None


def parse_matrix(doc: dict[str, Any], base_dir: Path | None = None,
                 overrides: dict[str, Any] | None = None,
                 default_label: Callable[[str], str] | None = None) -> list[Config]:
    """A parsed matrix document -> named, de-duplicated configs (pure but for `default_label`).

    `overrides` (from the command line: runtime, ramp, label, qemu) replace matrix values.
    Relative `fio_job` / `backend_path` are taken relative to `base_dir` (the matrix's folder).
    """
    unknown = sorted(set(doc) - {"defaults", "matrix", "config"})
    if unknown:
        raise ConfigError(f"unknown matrix table(s): {', '.join(unknown)} "
                          "(expected [defaults], [matrix], [[config]])")
    defaults = doc.get("defaults", {})
    for k, v in defaults.items():
        if isinstance(v, list):
            raise ConfigError(f"[defaults] {k} is a list; put axes in [matrix]")
    entries: list[dict[str, Any]] = []
    if "matrix" in doc:
        entries += expand(doc["matrix"], defaults)
    for extra in doc.get("config", []):
        entries += expand(extra, defaults)
    if not entries:
        raise ConfigError("the matrix has no [matrix] table and no [[config]] entry")
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    configs, explicit = [], []
    for e in entries:
        e = {**e, **overrides}
        for key in ("fio_job", "backend_path"):
            if e.get(key) and base_dir is not None:
                e[key] = _resolve(e[key], base_dir)
        if not e.get("label"):
            e["label"] = default_label(e.get("qemu", Config.qemu)) if default_label else Config.label
        explicit.append(bool(e.get("name")))
        configs.append(config_from_dict(e))
    axes = [a for a in _AXIS_SPELLING if len({repr(e.get(a)) for e in entries}) > 1]
    named = name_configs(configs, explicit, axes)
    seen: dict[Config, None] = {}
    for c in named:  # identical configs (e.g. smp 1 with mq on and off) collapse into one
        seen.setdefault(c, None)
    return list(seen)


def _resolve(p: str, base_dir: Path) -> str:
    path = Path(os.path.expanduser(p))
    if not path.is_absolute():
        path = base_dir / path
    try:
        return os.path.relpath(path)
    except ValueError:  # pragma: no cover - other drive on Windows
        return str(path)


def load_matrix(path: str | os.PathLike, overrides: dict[str, Any] | None = None,
                default_label: Callable[[str], str] | None = None) -> list[Config]:
    """Read a TOML matrix file and expand it (see the module docstring)."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"matrix file not found: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    try:
        return parse_matrix(doc, path.parent, overrides, default_label)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def select(configs: list[Config], patterns: Iterable[str] | None) -> list[Config]:
    """Configs whose name matches any glob (`--only`); all when no pattern."""
    patterns = list(patterns or [])
    if not patterns:
        return list(configs)
    return [c for c in configs if any(fnmatch.fnmatchcase(c.name, p) for p in patterns)]


# ----------------------------------------------------------------------------- validation

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


def _whole(v: Any) -> bool:
    """An integer, and not a TOML boolean (Python's True is an int: `smp = true` is not 1)."""
    return isinstance(v, int) and not isinstance(v, bool)


def problems(c: Config, *, host_mem_mb: int | None = None, vq_mapping: bool | None = None,
             check_files: bool = True) -> list[str]:
    """Everything wrong with one config (pure but for `check_files`)."""
    p: list[str] = []
    if not _SAFE_NAME.match(c.name) or not _SAFE_NAME.match(c.label):
        p.append(f"name {c.name!r}: label/name may use letters, digits and . _ + - only")
    smp_ok = _whole(c.smp) and 1 <= c.smp <= MAX_CPUS_Q35
    if not smp_ok:
        p.append(f"smp={c.smp!r}: must be a whole number 1..{MAX_CPUS_Q35}")
    # num_queues and numjobs default to smp: a bad smp is one problem, not three
    derived = {k for k in ("num_queues", "numjobs") if not smp_ok and getattr(c, k) is c.smp}
    nq = c.num_queues
    if "num_queues" not in derived and (not _whole(nq) or not 1 <= nq <= VIRTIO_QUEUE_MAX):
        p.append(f"num_queues={nq!r}: must be 1..{VIRTIO_QUEUE_MAX} (VIRTIO_QUEUE_MAX)")
    qs = c.queue_size
    if not _whole(qs) or qs <= 2 or qs > VIRTQUEUE_MAX_SIZE or qs & (qs - 1):
        p.append(f"queue_size={qs!r}: must be a power of 2, 4..{VIRTQUEUE_MAX_SIZE}")
    for key in ("dataplane", "pin"):
        if not isinstance(getattr(c, key), bool):
            # pin = "false" would be truthy: refuse rather than guess
            p.append(f"{key}={getattr(c, key)!r}: must be true or false")
    if not _whole(c.memory_mb) or c.memory_mb < MIN_MEMORY_MB:
        p.append(f"memory_mb={c.memory_mb}: the guest needs at least {MIN_MEMORY_MB}")
    elif host_mem_mb and c.memory_mb > host_mem_mb:
        p.append(f"memory_mb={c.memory_mb}: more than the host's {host_mem_mb} MB")
    if c.dataplane:
        if not _whole(c.iothreads) or c.iothreads < 1:
            p.append(f"iothreads={c.iothreads}: dataplane needs at least 1 IOThread")
        elif c.iothreads > 1:
            if vq_mapping is False:
                p.append(f"iothreads={c.iothreads}: needs iothread-vq-mapping (QEMU >= 9.0), "
                         f"which {c.qemu} does not have")
            if _whole(c.num_queues) and c.iothreads > c.num_queues:
                p.append(f"iothreads={c.iothreads}: more IOThreads than queues ({c.num_queues})")
    for key in ("numjobs", "iodepth", "runtime"):
        v = getattr(c, key)
        if key not in derived and (not _whole(v) or v < 1):
            p.append(f"{key}={v!r}: must be a whole number >= 1")
    if not _whole(c.ramp) or c.ramp < 0:
        p.append(f"ramp={c.ramp!r}: must be a whole number >= 0")
    if c.backend not in BACKENDS:
        p.append(f"backend={c.backend!r}: one of {', '.join(BACKENDS)}")
    if c.aio not in AIO_MODES:
        p.append(f"aio={c.aio!r}: one of {', '.join(AIO_MODES)}")
    if c.cache not in CACHE_MODES:
        p.append(f"cache={c.cache!r}: one of {', '.join(CACHE_MODES)}")
    if c.backend in ("file", "host_device") and c.aio == "native" and c.cache not in ("none", "directsync"):
        p.append(f"aio=native needs cache=none or directsync (O_DIRECT), not {c.cache}")
    if c.machine not in MACHINES:
        p.append(f"machine={c.machine!r}: one of {', '.join(MACHINES)}")
    if c.backend in ("file", "host_device"):
        if not c.backend_path:
            p.append(f"backend={c.backend} needs backend_path")
        elif check_files:
            bp = Path(c.backend_path)
            if not bp.exists():
                p.append(f"backend_path {bp}: does not exist")
            elif c.backend == "host_device" and not bp.is_block_device():
                p.append(f"backend_path {bp}: not a block device")
            elif c.backend == "file" and not bp.is_file():
                p.append(f"backend_path {bp}: not a regular file")
    if check_files and not Path(c.fio_job).is_file():
        p.append(f"fio_job {c.fio_job}: no such file")
    elif check_files and (why := _not_a_fio_job(Path(c.fio_job))):
        p.append(f"fio_job {c.fio_job}: {why}")
    return p


_JOB_SECTION = re.compile(r"^\s*\[([^\]]+)\]", re.MULTILINE)


def _not_a_fio_job(path: Path) -> str | None:
    """Why fio would run nothing from this file (each boot would fail), or None."""
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        return f"cannot read: {e.strerror or e}"
    if not any(m.group(1).strip() != "global" for m in _JOB_SECTION.finditer(text)):
        return "no job section ([name] other than [global]): fio would run nothing"
    return None


def validate(configs: list[Config], *, probe: Callable[[str], Any] | None = None,
             host_mem_mb: int | None = None, check_files: bool = True) -> None:
    """Raise one `ConfigError` naming every problem of the whole matrix, before any launch.

    `probe(qemu)` returns an object with `.vq_mapping` (bool) or raises (binary does not run);
    `perfsuite.qemu.features.probe` is the real one.
    """
    errors: list[str] = []
    if not configs:
        raise ConfigError("no configuration to run (check --only)")
    vq: dict[str, bool | None] = {}
    if probe is not None:
        for q in sorted({c.qemu for c in configs}):
            try:
                vq[q] = bool(probe(q).vq_mapping)
            except Exception as e:  # noqa: BLE001 - any failure means "does not run"
                errors.append(f"QEMU binary {q}: does not run ({e})")
    by_name: dict[str, Config] = {}
    for c in configs:
        for msg in problems(c, host_mem_mb=host_mem_mb, vq_mapping=vq.get(c.qemu),
                            check_files=check_files):
            errors.append(f"{c.name}: {msg}")
        other = by_name.setdefault(c.name, c)
        if other is not c and other != c:
            diff = [k for k in FIELDS if getattr(other, k) != getattr(c, k)]
            hint = ("give each QEMU build its own label" if "qemu" in diff else
                    "an explicit `name` must not cover a list; give each config its own name")
            errors.append(f"{c.name}: duplicate name for different configs (differ in "
                          f"{', '.join(diff)}; {hint})")
    if errors:
        uniq = list(dict.fromkeys(errors))
        if len(uniq) == 1:  # the common case stays one line
            raise ConfigError(f"{uniq[0]} (nothing launched)")
        raise ConfigError(f"{len(uniq)} problem(s) in the matrix, nothing launched:\n  "
                          + "\n  ".join(uniq))


def host_memory_mb() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None
