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

import fnmatch
import itertools
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable

from perfsuite.matrix import axes as A
from perfsuite.matrix.axes import (AIO_MODES, BACKENDS, CACHE_MODES, MACHINES, MAX_CPUS_Q35,  # noqa: F401 - re-exported limits
                                   MIN_MEMORY_MB, VIRTIO_QUEUE_MAX, VIRTQUEUE_MAX_SIZE)

NULL_SIZE = 8 * 1024**3  # bytes of the null-co/null-aio disk


class ConfigError(PerfsuiteError, ValueError):
    """The matrix cannot run; the message says every reason, one per line."""


class Config:
    """One device configuration = one run name; its attributes are the registered axes.

    Immutable and hashable. Derived defaults: num_queues and numjobs default to smp (one
    queue and one fio job per vCPU), iothreads is 0 without dataplane, and an empty name is
    filled from the seed's scheme (`base_name`).
    """

    __slots__ = ("_values", "name")

    def __init__(self, name: str = "", **values: Any) -> None:
        unknown = sorted(set(values) - set(A.AXES))
        if unknown:
            raise TypeError(f"unknown axis(es): {', '.join(unknown)}")
        v = {a: values.get(a, axis.default) for a, axis in A.AXES.items()}
        if v["num_queues"] is None:
            v["num_queues"] = v["smp"]
        if v["numjobs"] is None:
            v["numjobs"] = v["smp"]
        if not v["dataplane"]:
            v["iothreads"] = 0
        object.__setattr__(self, "_values", v)
        object.__setattr__(self, "name", name or base_name(self))

    def __getattr__(self, key: str) -> Any:
        try:
            return object.__getattribute__(self, "_values")[key]
        except KeyError:
            raise AttributeError(f"Config has no axis {key!r}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("Config is immutable: use .replace()")

    def _key(self) -> tuple:
        return (self.name, tuple((k, repr(v)) for k, v in self._values.items()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Config) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._values.items())
        return f"Config(name={self.name!r}, {inner})"

    def replace(self, **changes: Any) -> Config:
        """A copy with some axes (or the name) changed; other values are kept as they are."""
        name = changes.pop("name", self.name)
        return Config(name=name, **{**self._values, **changes})

    def to_meta(self) -> dict[str, Any]:
        """The `config` object of meta.json (CONTRACTS.md section 2): every axis, not the name."""
        return dict(self._values)

    @property
    def mq(self) -> bool:
        """Multiqueue (perfsuite.matrix.axes.multiqueue: more than one queue)."""
        return bool(A.multiqueue(self.num_queues))


def fields() -> tuple[str, ...]:
    """The axes a Config has (matrix keys, meta `config` keys), in registry order."""
    return A.names()


def matrix_keys() -> frozenset[str]:
    return frozenset(A.names()) | {"mq", "name"}


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


_BASE_NAME = re.compile(r"^(?P<label>.+?)-smp-(?P<smp>\d+)-(?P<dp>dataplane|no-dataplane)"
                        r"(?:-(?P<nomq>no-mq)|-nq-(?P<nq>\d+))?(?:-(?P<variant>.+))?$")


def parse_name(name: str) -> dict[str, Any]:
    """A run name -> the axes its spelling fixes (label, smp, dataplane, num_queues) plus
    `variant`, the rest of the name (the spelled axes that varied). For runs without meta:
    a configuration's identity comes from its name. A name outside the seed's scheme is all
    variant."""
    m = _BASE_NAME.match(name)
    if not m:
        return {"variant": name}
    smp = int(m["smp"])
    nq = 1 if m["nomq"] else int(m["nq"]) if m["nq"] else smp
    return {"label": m["label"], "smp": smp, "dataplane": m["dp"] == "dataplane",
            "num_queues": nq, "variant": m["variant"] or ""}


def varying_axes(configs: Iterable[Config]) -> list[str]:
    """The spelled axes (beyond label, smp, dataplane, queues) that take more than one value."""
    configs = list(configs)
    return [a.name for a in A.spelled() if len({repr(getattr(c, a.name)) for c in configs}) > 1]


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
        values = c.to_meta()
        parts = [base_name(c)] + [p for a in axes if (p := A.AXES[a].spell(values[a], values))]
        out.append(c.replace(name="-".join(parts)))
    return out


# ----------------------------------------------------------------------------- expansion

def expand(entry: dict[str, Any], defaults: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Cartesian product of one table's list-valued keys, over `defaults`."""
    merged = {**(defaults or {}), **entry}
    unknown = sorted(set(merged) - matrix_keys())
    if unknown:
        raise ConfigError(f"unknown matrix key(s): {', '.join(unknown)} "
                          f"(known: {', '.join(sorted(matrix_keys()))})")
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
            e["label"] = default_label(e.get("qemu", A.AXES["qemu"].default)) if default_label else A.AXES["label"].default
        explicit.append(bool(e.get("name")))
        configs.append(config_from_dict(e))
    axes = [a.name for a in A.spelled() if len({repr(e.get(a.name)) for e in entries}) > 1]
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
    import tomllib   # here: the analyzer imports this module for parse_name alone

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

MAX_NAME_BYTES = 200  # NAME_MAX is 255; room left for the runner's temp-dir prefixes
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


def problems(c: Config, *, host_mem_mb: int | None = None, vq_mapping: bool | None = None,
             check_files: bool = True) -> list[str]:
    """Everything wrong with one config (pure but for `check_files`): each axis's own check
    from the registry, then the rules that tie axes together."""
    p: list[str] = []
    if not _SAFE_NAME.match(c.name) or not _SAFE_NAME.match(c.label):
        p.append(f"name {c.name!r}: label/name may use letters, digits and . _ + - only")
    elif len(c.name.encode()) > MAX_NAME_BYTES:  # a run name is a directory name (255 bytes)
        p.append(f"name {c.name[:40]}... is {len(c.name.encode())} bytes: a run name becomes a "
                 f"directory name, at most {MAX_NAME_BYTES} bytes (shorten the label)")
    smp_ok = A.AXES["smp"].check(c.smp) is None
    # num_queues and numjobs default to smp: a bad smp is one problem, not three
    derived = {k for k in ("num_queues", "numjobs") if not smp_ok and getattr(c, k) is c.smp}
    for axis in A.AXES.values():
        value = getattr(c, axis.name)
        why = axis.check(value) if axis.check and axis.name not in derived else None
        if why:
            p.append(f"{axis.name}={value!r}: {why}")
    if A.whole(c.memory_mb) and host_mem_mb and c.memory_mb > host_mem_mb:
        p.append(f"memory_mb={c.memory_mb}: more than the host's {host_mem_mb} MB")
    if c.dataplane:
        if not A.whole(c.iothreads) or c.iothreads < 1:
            p.append(f"iothreads={c.iothreads}: dataplane needs at least 1 IOThread")
        elif c.iothreads > 1:
            if vq_mapping is False:
                p.append(f"iothreads={c.iothreads}: needs iothread-vq-mapping (QEMU >= 9.0), "
                         f"which {c.qemu} does not have")
            if A.whole(c.num_queues) and c.iothreads > c.num_queues:
                p.append(f"iothreads={c.iothreads}: more IOThreads than queues ({c.num_queues})")
    if c.backend in ("file", "host_device") and c.aio == "native" and c.cache not in ("none", "directsync"):
        p.append(f"aio=native needs cache=none or directsync (O_DIRECT), not {c.cache}")
    if c.backend in ("file", "host_device"):
        if not c.backend_path:
            p.append(f"backend={c.backend} needs backend_path")
        elif check_files:
            bp = Path(c.backend_path)
            if not bp.exists():
                p.append(f"backend_path {os.path.abspath(bp)}: does not exist")
            elif c.backend == "host_device" and not bp.is_block_device():
                p.append(f"backend_path {os.path.abspath(bp)}: not a block device")
            elif c.backend == "file" and not bp.is_file():
                p.append(f"backend_path {os.path.abspath(bp)}: not a regular file")
    # messages name files absolutely: the recorded relative path means little to the reader
    if check_files and not Path(c.fio_job).is_file():
        p.append(f"fio_job {os.path.abspath(c.fio_job)}: no such file")
    elif check_files and (why := _not_a_fio_job(Path(c.fio_job))):
        p.append(f"fio_job {os.path.abspath(c.fio_job)}: {why}")
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
            diff = [k for k in fields() if getattr(other, k) != getattr(c, k)]
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
