"""ensure_image: find the cached guest image for the current inputs, building it if needed.

The key hashes everything that changes the image: the kernel (.deb version or file hash),
the modules chosen, the init script, the builder's code, busybox, fio and its libraries,
the fio delivery mode, PVH and stubs. Same inputs -> same directory -> no rebuild. Builders
take a file lock and build in a temp dir renamed into place, so two runners never see half
an image.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import orjson
from filelock import FileLock

from perfsuite.guest import cpio, image as image_mod, kernel as debian, modules as kmod, stubs
from perfsuite.guest.image import (BUSYBOX, DEFAULT_FIO_MODE, FIO, FIO_MODES, STUB_DIR, GuestImage,
                                   ImageError, _fio_fingerprint, bzimage_version,
                                   cache_key, cache_root, fio_libraries, initramfs_entries,
                                   unpack_vmlinux)
from perfsuite.guest.init_script import INIT_SCRIPT
from perfsuite.fsutil import sha256_file


def _say(log, msg: str) -> None:
    if log is not None:
        log(msg)


def _builder_hash() -> str:
    """Hash of the code that lays out the image, so a changed builder means a new image."""
    h = hashlib.sha256()
    for source in (cpio.__file__, kmod.__file__, image_mod.__file__, stubs.__file__, __file__):
        h.update(Path(source).read_bytes())
    return h.hexdigest()


def plan_build(kernel: str | os.PathLike | None, modules: str | os.PathLike | None,
               cache: Path, fio_mode: str, log, pvh: bool = True,
               stub_libs: bool = True) -> tuple[dict, dict]:
    """(inputs that key the image, how to get the kernel). Cheap: no download, no build."""
    if fio_mode not in FIO_MODES:
        raise ImageError(f"unknown fio delivery mode {fio_mode!r} (one of {', '.join(FIO_MODES)})")
    if not Path(BUSYBOX).exists():
        raise ImageError(f"{BUSYBOX} not found: install busybox-static")
    inputs = {
        "wanted_modules": list(kmod.WANTED),
        "init": hashlib.sha256(INIT_SCRIPT.encode()).hexdigest(),
        "builder": _builder_hash(),
        "busybox": sha256_file(Path(BUSYBOX)),
        "fio": _fio_fingerprint(),
        "fio_mode": fio_mode,
        "pvh": pvh,
        # binutils present now or not changes the image, so it is part of the key
        "stub_libs": bool(stub_libs and stubs.available()),
    }
    if kernel is None:
        if modules is not None:
            raise ImageError("--modules needs --kernel (Debian's kernel brings its own modules)")
        deb = debian.resolve_debian_kernel(log=lambda m: _say(log, m))
        inputs["kernel"] = f"debian:{deb.package}={deb.version}"
        return inputs, {"debian": deb}
    kpath = Path(kernel)
    if not kpath.is_file():
        raise ImageError(f"kernel file {kpath} not found")
    if not _looks_like_a_kernel(kpath):
        # caught here, not by QEMU once per configuration after an image was built and cached
        raise ImageError(f"kernel file {kpath}: not a Linux kernel (no bzImage 'HdrS' setup header, "
                         "not an ELF vmlinux)")
    inputs["kernel"] = f"file:{sha256_file(kpath)}"
    how = {"file": kpath, "moddir": None}
    if modules is not None:
        moddir = Path(modules)
        if not moddir.is_dir():
            raise ImageError(f"modules directory {moddir} not found")
        chosen = kmod.resolve(moddir)
        inputs["modules"] = [[n, sha256_file(p)] for n, p in chosen]
        how["moddir"] = moddir
    return inputs, how


def _looks_like_a_kernel(path: Path) -> bool:
    """A bzImage (x86 boot protocol: "HdrS" at 0x202) or an ELF vmlinux (booted via PVH)."""
    try:
        with open(path, "rb") as f:
            head = f.read(0x206)
    except OSError:
        return False
    return head[:4] == b"\x7fELF" or head[0x202:0x206] == b"HdrS"


def current_key(kernel=None, modules=None, fio_mode: str = DEFAULT_FIO_MODE, log=None,
                pvh: bool = True, stub_libs: bool = True) -> str:
    """The key ensure_image would use now, without building anything."""
    inputs, _ = plan_build(kernel, modules, cache_root(), fio_mode, log, pvh, stub_libs)
    return cache_key(inputs)


def ensure_image(kernel=None, modules=None, cache_dir=None, force: bool = False,
                 log=print, fio_mode: str = DEFAULT_FIO_MODE, pvh: bool = True,
                 stub_libs: bool = True) -> GuestImage:
    """The guest image for these inputs, from the cache or freshly built.

    pvh: boot the kernel as an uncompressed ELF via PVH when it allows (much faster under
    TCG); False keeps the bzImage as given.
    stub_libs: replace the libraries only fio's rbd/gluster/nbd/rdma/pmem engines use by
    stubs (perfsuite.guest.stubs; needs gcc, else all libraries are carried).
    """
    try:
        return _ensure_image(kernel, modules, cache_dir, force, log, fio_mode, pvh, stub_libs)
    except (debian.KernelError, kmod.ModuleError) as e:  # one error type for callers
        raise ImageError(str(e)) from None


def _ensure_image(kernel, modules, cache_dir, force, log, fio_mode, pvh, stub_libs) -> GuestImage:
    cache = cache_root(cache_dir)
    images = cache / "images"
    images.mkdir(parents=True, exist_ok=True)
    inputs, how = plan_build(kernel, modules, cache, fio_mode, log, pvh, stub_libs)
    key = cache_key(inputs)
    final = images / key
    if (final / "image.json").exists() and not force:
        _touch(final)
        return GuestImage.load(final)
    with FileLock(str(cache / "build.lock")):
        if (final / "image.json").exists() and not force:  # another builder finished first
            return GuestImage.load(final)
        _say(log, f"building guest image {key} in {images} ...")
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=images))
        try:
            _build(tmp, key, inputs, how, cache, fio_mode, log)
            if final.exists():  # --force: move the old one aside, then drop it
                old = Path(tempfile.mkdtemp(prefix=f".old.{key}.", dir=images))
                final.rename(old / "img")
                shutil.rmtree(old, ignore_errors=True)
            tmp.rename(final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        prune(images, keep=KEEP_IMAGES, protect=key, log=log)
    _say(log, f"guest image ready: {final}")
    return GuestImage.load(final)


KEEP_IMAGES = 3            # each is ~75 MB
KEEP_UNUSED_S = 2 * 86400  # a runner may hold an image for a long matrix: keep recent ones


def _touch(directory: Path) -> None:
    """Mark an image as used now (its directory's mtime), so pruning spares it."""
    try:
        os.utime(directory)
    except OSError:
        pass


def prune(images: Path, keep: int, protect: str, log=None,
          max_unused_s: float = KEEP_UNUSED_S) -> list[Path]:
    """Remove images beyond the `keep` most recently used that nobody used for max_unused_s.

    Never by count alone: another runner (or another engineer's) may be in the middle of a
    long matrix with an older image, and QEMU reads the files at each boot.
    """
    now = time.time()
    built = sorted((d for d in images.iterdir() if (d / "image.json").exists()),
                   key=lambda d: d.stat().st_mtime, reverse=True)
    gone = [d for d in built[keep:]
            if d.name != protect and now - d.stat().st_mtime > max_unused_s]
    for d in gone:
        _say(log, f"removing old guest image {d.name}")
        shutil.rmtree(d, ignore_errors=True)
    return gone


def _build(out: Path, key: str, inputs: dict, how: dict, cache: Path, fio_mode: str, log) -> None:
    if "debian" in how:
        deb = how["debian"]
        workdir = cache / "debs" / f"{deb.package}_{deb.version}"
        try:
            vmlinuz, moddir = debian.download_and_extract(deb, workdir, log=lambda m: _say(log, m))
        except debian.KernelError as e:
            raise ImageError(str(e)) from None
        source = inputs["kernel"]
        extracted = workdir / "root"
    else:
        vmlinuz, moddir = how["file"], how["moddir"]
        extracted = None
        source = f"{vmlinuz} ({inputs['kernel']})"
    kdata = vmlinuz.read_bytes()
    kversion = bzimage_version(kdata) or (moddir.name if moddir else "unknown")
    elf = unpack_vmlinux(kdata) if inputs.get("pvh") else None
    _say(log, "kernel boots via PVH (uncompressed ELF)" if elf else "kernel boots as bzImage")

    chosen = kmod.resolve(moddir) if moddir else []  # no modules dir: drivers built in
    module_files = [(name, kmod.read_module(path)) for name, path in chosen]
    _say(log, f"kernel {kversion}; modules: {' '.join(n for n, _ in chosen) or '(built in)'}")

    libs, fio_files = fio_libraries(), []
    if inputs.get("stub_libs"):
        try:
            with tempfile.TemporaryDirectory(prefix="perfsuite-stubs-") as stubdir:
                built = stubs.build_stubs(FIO, libs, Path(stubdir))
                stubbed = fio_libraries(stubdir)  # what fio maps once the stubs stand in
                fio_files += [(f"{STUB_DIR}/{so}", p.read_bytes()) for so, p in built.items()]
            libs = [p for p in stubbed if not p.startswith(stubdir)]
            _say(log, f"fio: {len(built)} optional libraries replaced by stubs, "
                      f"{len(libs)} real ones kept")
        except (subprocess.CalledProcessError, ImageError, OSError) as e:
            # Slower fio start-up, same results: not worth failing the build for.
            fio_files = []
            _say(log, f"fio: stub libraries failed ({e}); carrying all {len(libs)} libraries")
    lib_dirs = sorted({os.path.dirname(p) for p in libs if not p.startswith("/lib64")}
                      | ({STUB_DIR} if fio_files else set()))
    if fio_mode == "initramfs":
        # Each library at the path ldd printed, as a plain file (symlinks resolved).
        fio_files += [(FIO, Path(FIO).read_bytes())]
        fio_files += [(p, Path(os.path.realpath(p)).read_bytes()) for p in libs]
    loader = next((os.path.realpath(p) for p in libs if "ld-linux" in p), "/lib64/ld-linux-x86-64.so.2")
    fio_version = subprocess.run([FIO, "--version"], capture_output=True, text=True).stdout.strip()
    entries = initramfs_entries(Path(BUSYBOX).read_bytes(), module_files, fio_mode,
                                fio_files, lib_dirs, loader, fio_version)
    (out / "initrd.img").write_bytes(cpio.archive(entries))
    kernel_file = "vmlinux" if elf else "vmlinuz"
    (out / kernel_file).write_bytes(elf or kdata)
    meta = {"key": key, "kernel_version": kversion, "kernel_source": source, "pvh": bool(elf),
            "stubbed": sorted(Path(p).name for p, _ in fio_files if p.startswith(STUB_DIR)),
            "kernel_file": kernel_file,
            "modules": [n for n, _ in chosen], "fio_mode": fio_mode, "fio_version": fio_version,
            "inputs": inputs}
    (out / "image.json").write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2))
    if extracted is not None:
        # The unpacked .deb is 400 MB; the .deb itself (70 MB) stays for the next rebuild.
        shutil.rmtree(extracted, ignore_errors=True)
    _say(log, f"initramfs {(out / 'initrd.img').stat().st_size / 1e6:.1f} MB, "
              f"kernel {len(elf or kdata) / 1e6:.1f} MB")
