"""Which kernel modules the guest loads, and in which order (pure functions + file reads).

Debian's kernel package ships no modules.dep (depmod writes it at install time), so the
dependencies come from each module's own `.modinfo` ELF section (`depends=a,b`). A
user's --modules tree may carry a modules.dep instead; both feed the same resolver.
"""

from __future__ import annotations

from perfsuite.errors import PerfsuiteError

import lzma
import shutil
import struct
import subprocess
from pathlib import Path

# The order virtio needs (issue 4), then what the 9p work-dir share needs.
VIRTIO_MODULES = ("virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev",
                  "virtio_pci", "virtio_blk")
NINEP_MODULES = ("netfs", "9pnet", "9pnet_virtio", "9p")
WANTED = VIRTIO_MODULES + NINEP_MODULES

KO_SUFFIXES = (".ko", ".ko.xz", ".ko.zst", ".ko.gz")


class ModuleError(PerfsuiteError, RuntimeError):
    pass


def module_name(path: str | Path) -> str:
    """`kernel/fs/9p/9p.ko.xz` -> `9p`; the kernel treats '-' and '_' alike, so normalise."""
    name = Path(path).name
    for suffix in KO_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return name.replace("-", "_")


def parse_modules_dep(text: str) -> dict[str, list[str]]:
    """modules.dep (`path: dep1 dep2`) -> {name: [dep names]}."""
    deps: dict[str, list[str]] = {}
    for line in text.splitlines():
        if ":" not in line:
            continue
        mod, _, rest = line.partition(":")
        deps[module_name(mod.strip())] = [module_name(d) for d in rest.split()]
    return deps


def modinfo_depends(ko: bytes) -> list[str]:
    """The `depends=` field of an ELF64 module's .modinfo section ([] if empty or absent)."""
    if ko[:4] != b"\x7fELF" or ko[4] != 2:
        raise ModuleError("not an ELF64 kernel module")
    endian = "<" if ko[5] == 1 else ">"
    shoff, = struct.unpack_from(endian + "Q", ko, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from(endian + "HHH", ko, 0x3A)

    def section(i: int) -> tuple[int, int, int]:  # (name offset, file offset, size)
        base = shoff + i * shentsize
        name, = struct.unpack_from(endian + "I", ko, base)
        offset, size = struct.unpack_from(endian + "QQ", ko, base + 0x18)
        return name, offset, size

    _, stroff, _ = section(shstrndx)
    for i in range(shnum):
        name_off, offset, size = section(i)
        name = ko[stroff + name_off: ko.index(b"\0", stroff + name_off)]
        if name == b".modinfo":
            for field in ko[offset: offset + size].split(b"\0"):
                if field.startswith(b"depends="):
                    value = field[len(b"depends="):].decode()
                    return [module_name(d) for d in value.split(",") if d]
            return []
    return []


def load_order(wanted: tuple[str, ...] | list[str], deps: dict[str, list[str]],
               available: set[str]) -> list[str]:
    """Modules to insmod, dependencies first, keeping `wanted`'s order otherwise.

    A wanted module absent from `available` is taken as built into the kernel and skipped;
    a missing *dependency* of a present module is an error (insmod would fail in the guest).
    """
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str, needed_by: str | None) -> None:
        if name in order:
            return
        if name not in available:
            if needed_by is not None:
                raise ModuleError(f"module {name} (needed by {needed_by}) not found")
            return
        if name in visiting:
            raise ModuleError(f"dependency cycle at module {name}")
        visiting.add(name)
        for dep in deps.get(name, []):
            visit(dep, name)
        visiting.discard(name)
        order.append(name)

    for name in wanted:
        visit(module_name(name), None)
    return order


def index_modules(moddir: Path) -> dict[str, Path]:
    """{module name: path} for every .ko[.xz|.zst|.gz] under moddir."""
    found: dict[str, Path] = {}
    for path in sorted(moddir.rglob("*.ko*")):
        if path.name.endswith(KO_SUFFIXES):
            found.setdefault(module_name(path), path)
    return found


def read_module(path: Path) -> bytes:
    """A module's bytes, decompressed: busybox's insmod only takes plain .ko files."""
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".gz"):
        import gzip
        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        if shutil.which("zstd") is None:
            raise ModuleError(f"{path.name} is zstd-compressed and the zstd tool is missing")
        return subprocess.run(["zstd", "-dc", str(path)], check=True, capture_output=True).stdout
    return data


def resolve(moddir: Path, wanted=WANTED) -> list[tuple[str, Path]]:
    """[(name, path)] to load in order, from a modules tree (uses modules.dep when present)."""
    index = index_modules(moddir)
    dep_files = list(moddir.rglob("modules.dep"))
    if dep_files:
        deps = parse_modules_dep(dep_files[0].read_text())
    else:
        deps = {}
        todo = [module_name(w) for w in wanted]
        while todo:  # read .modinfo only for the modules we may need
            name = todo.pop()
            if name in deps or name not in index:
                continue
            deps[name] = modinfo_depends(read_module(index[name]))
            todo.extend(deps[name])
    return [(name, index[name]) for name in load_order(list(wanted), deps, set(index))]
