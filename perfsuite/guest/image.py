"""What a guest image is made of: the GuestImage record, the cache key, and the pure
pieces of a build (kernel unpacking, ldd parsing, /etc/perfsuite.conf, the file list).

build.py does the side effects (download, lock, write, rename) around these.
"""

from __future__ import annotations

from perfsuite.errors import PerfsuiteError

import hashlib
import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import orjson
import platformdirs

from perfsuite.guest import cpio
from perfsuite.guest.init_script import INIT_SCRIPT
from perfsuite.fsutil import sha256_file

FORMAT = 1                 # bump when the image layout changes
BUSYBOX = "/bin/busybox"   # Debian busybox-static: no shared libraries to carry
FIO = "/usr/bin/fio"
DEFAULT_FIO_MODE = "initramfs"   # see docs/guest.md for the measurement behind this
FIO_MODES = ("initramfs", "hostroot")


class ImageError(PerfsuiteError, RuntimeError):
    pass


@dataclass(frozen=True)
class GuestImage:
    kernel: Path
    initrd: Path
    kernel_version: str
    key: str
    directory: Path
    fio_mode: str = DEFAULT_FIO_MODE
    modules: tuple[str, ...] = ()
    kernel_source: str = ""
    fio_version: str = ""
    pvh: bool = False           # kernel is an uncompressed ELF booted via PVH

    @classmethod
    def load(cls, directory: Path) -> "GuestImage":
        meta = orjson.loads((directory / "image.json").read_bytes())
        return cls(kernel=directory / meta.get("kernel_file", "vmlinuz"),
                   initrd=directory / "initrd.img", pvh=meta.get("pvh", False),
                   kernel_version=meta["kernel_version"], key=meta["key"], directory=directory,
                   fio_mode=meta["fio_mode"], modules=tuple(meta["modules"]),
                   kernel_source=meta["kernel_source"], fio_version=meta["fio_version"])


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get("PERFSUITE_CACHE") or platformdirs.user_cache_dir("perfsuite"))


def cache_key(inputs: dict) -> str:
    """A short stable hash of the build inputs (pure)."""
    blob = orjson.dumps({"format": FORMAT, **inputs}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(blob).hexdigest()[:16]


def parse_ldd(text: str) -> list[str]:
    """Library paths from `ldd` output, the dynamic loader included (pure)."""
    paths = []
    for line in text.splitlines():
        for word in line.split():
            if word.startswith("/"):
                paths.append(word)
                break
    return paths


def bzimage_version(data: bytes) -> str | None:
    """The version string a bzImage carries in its setup header ('6.1.0-56-amd64'), if any."""
    if len(data) < 0x210 or data[0x202:0x206] != b"HdrS":
        return None
    ptr = int.from_bytes(data[0x20E:0x210], "little")
    if not ptr:
        return None
    raw = data[0x200 + ptr: 0x200 + ptr + 256].split(b"\0")[0].decode(errors="replace")
    return raw.split()[0] if raw else None


STUB_DIR = "/usr/lib/perfsuite-stubs"   # in the initramfs; searched before everything else
XEN_ELFNOTE_PHYS32_ENTRY = 18  # the note QEMU looks for to boot an ELF kernel the PVH way


def has_pvh_note(elf: bytes) -> bool:
    """True if an ELF64 kernel carries the Xen PVH entry note in a PT_NOTE segment (pure)."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
        return False
    phoff = int.from_bytes(elf[0x20:0x28], "little")
    phentsize = int.from_bytes(elf[0x36:0x38], "little")
    phnum = int.from_bytes(elf[0x38:0x3A], "little")
    for i in range(phnum):
        ph = elf[phoff + i * phentsize: phoff + (i + 1) * phentsize]
        if int.from_bytes(ph[0:4], "little") != 4:  # PT_NOTE
            continue
        off, size = int.from_bytes(ph[8:16], "little"), int.from_bytes(ph[32:40], "little")
        pos, end = off, off + size
        while pos + 12 <= end:
            namesz, descsz, ntype = (int.from_bytes(elf[pos + k: pos + k + 4], "little")
                                     for k in (0, 4, 8))
            name = elf[pos + 12: pos + 12 + namesz].rstrip(b"\0")
            if name == b"Xen" and ntype == XEN_ELFNOTE_PHYS32_ENTRY:
                return True
            pos += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False


def unpack_vmlinux(bzimage: bytes) -> bytes | None:
    """The uncompressed ELF kernel inside a bzImage, if it is xz or gzip and PVH-bootable.

    Why: under TCG a bzImage spends seconds in firmware real-mode setup and in decompressing
    itself (Debian's is xz); QEMU boots an ELF kernel with a PVH note directly. Same kernel,
    same code once running, ~2x faster to reach /init here (see docs/guest.md).
    """
    import lzma
    import zlib
    for magic, make in ((b"\xfd7zXZ\x00", lambda: lzma.LZMADecompressor(format=lzma.FORMAT_XZ)),
                        (b"\x1f\x8b\x08\x00", lambda: zlib.decompressobj(16 + zlib.MAX_WBITS))):
        start = bzimage.find(magic)
        while start != -1:
            try:
                elf = make().decompress(bzimage[start:])
            except (lzma.LZMAError, zlib.error):
                elf = b""
            if elf[:4] == b"\x7fELF":
                return elf if has_pvh_note(elf) else None
            start = bzimage.find(magic, start + 1)
    return None


def fio_libraries(extra_lib_dir: str | None = None) -> list[str]:
    """What the loader maps for fio (ldd), optionally with stub libraries found first."""
    env = {**os.environ, "LD_LIBRARY_PATH": extra_lib_dir} if extra_lib_dir else None
    out = subprocess.run(["ldd", FIO], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise ImageError(f"ldd {FIO} failed: is fio installed? ({out.stderr.strip()})")
    return parse_ldd(out.stdout)


def _fio_fingerprint() -> dict:
    if not Path(FIO).exists():
        raise ImageError(f"{FIO} not found: install fio (apt-get install fio)")
    libs = []
    for lib in fio_libraries():
        real = Path(os.path.realpath(lib))
        st = real.stat()
        libs.append([lib, str(real), st.st_size, int(st.st_mtime)])
    return {"sha256": sha256_file(FIO), "libs": libs}


def perfsuite_conf(module_names: list[str], fio_mode: str, lib_dirs: list[str],
                   loader: str = "/lib64/ld-linux-x86-64.so.2", fio_version: str = "") -> str:
    """/etc/perfsuite.conf: what /init needs to know about this image (pure)."""
    lines = [f"MODULES='{' '.join(module_names)}'", f"FIO_MODE={fio_mode}",
             f"FIO_VERSION={shlex.quote(fio_version)}"]
    # Stubs live in the initramfs in either mode and must be found before the real ones.
    stub_dirs = [d for d in lib_dirs if d == STUB_DIR]
    other = [d for d in lib_dirs if d != STUB_DIR]
    if fio_mode == "hostroot":
        # Run the host's fio through the host's loader, no chroot: W stays at /w.
        # Host symlinks may be absolute (they would point into the guest's own root), so
        # the loader and library dirs are given by their real paths.
        libpath = ":".join(stub_dirs + ["/host" + os.path.realpath(d) for d in other])
        lines.append(f'run_fio() {{ /host{loader} --library-path {libpath} '
                     f'/host{os.path.realpath(FIO)} "$@"; }}')
    else:
        lines.append(f"export LD_LIBRARY_PATH={':'.join(stub_dirs + other)}")
        lines.append(f'run_fio() {{ {FIO} "$@"; }}')
    return "\n".join(lines) + "\n"


def initramfs_entries(busybox: bytes, module_files: list[tuple[str, bytes]], fio_mode: str,
                      fio_files: list[tuple[str, bytes]], lib_dirs: list[str],
                      loader: str = "/lib64/ld-linux-x86-64.so.2",
                      fio_version: str = "") -> list[cpio.Entry]:
    """Every file of the initramfs (pure: contents are passed in)."""
    entries = [
        cpio.directory("dev"), cpio.chardev("dev/console", 5, 1),
        cpio.regular("init", INIT_SCRIPT.encode(), executable=True),
        cpio.regular("bin/busybox", busybox, executable=True),
        cpio.regular("etc/perfsuite.conf",
                     perfsuite_conf([n for n, _ in module_files], fio_mode, lib_dirs,
                                    loader, fio_version).encode()),
    ]
    entries += [cpio.regular(f"lib/modules/{name}.ko", data) for name, data in module_files]
    entries += [cpio.regular(path.lstrip("/"), data, executable=True) for path, data in fio_files]
    return cpio.with_parents(entries)
