"""Unit tests for the guest image and protocol: no QEMU, no apt, no downloads."""

from __future__ import annotations

import struct
import subprocess

import orjson
import pytest

from perfsuite.guest import (GuestPlan, finished_repetitions, guest_argv, guest_done,
                             read_guest_error, read_guest_info, repetition_status, write_plan)
from perfsuite.guest import cpio, image as img, kernel, modules as kmod
from perfsuite.guest.init_script import INIT_SCRIPT
from perfsuite.guest.protocol import count_cpu_list, plan_sh


# --- plan ---------------------------------------------------------------------------------

def test_write_plan_json_matches_contract(tmp_path):
    plan = GuestPlan(repetitions=[1, 2, 3], fio_args=["--runtime=5"])
    write_plan(tmp_path, plan)
    data = orjson.loads((tmp_path / "plan.json").read_bytes())
    assert data == {"repetitions": [1, 2, 3], "fio_job": "job.fio", "fio_args": ["--runtime=5"],
                    "device": "/dev/vda", "scheduler": "none", "poweroff": True, "ramp": 0.0,
                    "window_ack": False}


def test_plan_sh_round_trips_through_a_real_shell(tmp_path):
    nasty = ["--name=it's a \"job\"", "--runtime=5", "$HOME", "a b"]
    write_plan(tmp_path, GuestPlan(repetitions=[4, 7], fio_args=nasty, poweroff=False,
                                   scheduler=""))
    script = (f'. {tmp_path}/plan.sh; echo "$REPETITIONS|$FIO_JOB|$DEVICE|$SCHEDULER|$POWEROFF";'
              ' for a in "$@"; do echo "$a"; done')
    out = subprocess.run(["/bin/busybox", "sh", "-c", script], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[0] == "4 7|job.fio|/dev/vda||0"
    assert out[1:] == nasty


def test_plan_with_no_repetitions_and_no_args():
    text = plan_sh(GuestPlan(repetitions=[]))
    assert "REPETITIONS=''" in text and text.rstrip().endswith("set --")


@pytest.mark.parametrize("bad", [dict(repetitions=[1, 1]), dict(repetitions=[-1]),
                                 dict(device="vda"), dict(fio_job="/etc/job.fio")])
def test_plan_rejects_nonsense(bad):
    with pytest.raises(ValueError):
        GuestPlan(**bad)


# --- what the guest leaves behind ---------------------------------------------------------

def test_guest_info_and_results(tmp_path):
    assert read_guest_info(tmp_path) is None and not guest_done(tmp_path)
    (tmp_path / "guest-info.json").write_text(
        '{"cpus_online": "0-3,6", "queues": 4, "kernel": "6.1.0", "fio_version": "fio-3.33",'
        ' "scheduler": "none"}')
    info = read_guest_info(tmp_path)
    assert info["cpus_online"] == 5 and info["queues"] == 4
    for name in ("1.json", "10.json", "2.json.part", "3.status", "plan.json", "guest-info.json"):
        (tmp_path / name).write_text("{}")
    (tmp_path / "3.status").write_text("1\n")
    assert list(finished_repetitions(tmp_path)) == [1, 10]
    assert repetition_status(tmp_path, 3) == 1 and repetition_status(tmp_path, 4) is None
    (tmp_path / "done").write_text("ok\n")
    assert guest_done(tmp_path)
    assert read_guest_error(tmp_path) is None
    (tmp_path / "guest-error.txt").write_text("no block device /dev/vda\n")
    assert read_guest_error(tmp_path) == "no block device /dev/vda"


def test_broken_guest_info_is_a_clear_error(tmp_path):
    (tmp_path / "guest-info.json").write_text('{"cpus_online": 2,')
    with pytest.raises(ValueError, match="guest-info.json"):
        read_guest_info(tmp_path)


@pytest.mark.parametrize("text,n", [("0", 1), ("0-1", 2), ("0-3,5,7-8\n", 7), ("", 0)])
def test_count_cpu_list(text, n):
    assert count_cpu_list(text) == n


def test_guest_argv_shares_the_work_dir(tmp_path):
    image = img.GuestImage(kernel=tmp_path / "vmlinuz", initrd=tmp_path / "initrd.img",
                           kernel_version="6.1", key="k", directory=tmp_path)
    w = tmp_path / "a,b"
    argv = guest_argv(image, w)
    assert argv[argv.index("-kernel") + 1] == str(tmp_path / "vmlinuz")
    append = argv[argv.index("-append") + 1]
    assert "console=ttyS0" in append and "panic=-1" in append
    fsdev = argv[argv.index("-fsdev") + 1]
    assert f"path={str(w).replace(',', ',,')}," in fsdev  # QEMU escapes commas by doubling
    assert "mount_tag=perfsuite" in argv[argv.index("-device") + 1]
    assert "perfsuite-host" not in " ".join(argv)
    host = guest_argv(img.GuestImage(**{**image.__dict__, "fio_mode": "hostroot"}), w)
    assert "readonly=on" in " ".join(host) and "mount_tag=perfsuite-host" in " ".join(host)


# --- modules --------------------------------------------------------------------------------

def test_modules_dep_order_puts_dependencies_first():
    dep = ("kernel/fs/9p/9p.ko.xz: kernel/fs/netfs/netfs.ko.xz kernel/net/9p/9pnet.ko.xz "
           "kernel/fs/fscache/fscache.ko.xz\n"
           "kernel/net/9p/9pnet_virtio.ko.xz: kernel/net/9p/9pnet.ko.xz "
           "kernel/drivers/virtio/virtio_ring.ko.xz kernel/drivers/virtio/virtio.ko.xz\n"
           "kernel/drivers/block/virtio_blk.ko.xz: kernel/drivers/virtio/virtio.ko.xz "
           "kernel/drivers/virtio/virtio_ring.ko.xz\n"
           "kernel/drivers/virtio/virtio.ko.xz: kernel/drivers/virtio/virtio_ring.ko.xz\n"
           "kernel/net/9p/9pnet.ko.xz:\nkernel/fs/netfs/netfs.ko.xz: kernel/fs/fscache/fscache.ko.xz\n")
    deps = kmod.parse_modules_dep(dep)
    assert deps["9p"] == ["netfs", "9pnet", "fscache"]
    available = set(kmod.WANTED) | {"fscache"}
    order = kmod.load_order(kmod.WANTED, deps, available)
    assert order.index("virtio_ring") < order.index("virtio") < order.index("virtio_blk")
    assert order.index("fscache") < order.index("netfs") < order.index("9p")
    assert order.index("9pnet") < order.index("9pnet_virtio")
    assert sorted(order) == sorted(available)
    # the virtio order is kept where dependencies do not force another
    virtio = [m for m in order if m in kmod.VIRTIO_MODULES]
    assert virtio == list(kmod.VIRTIO_MODULES)


def test_built_in_modules_are_skipped_but_missing_dependencies_are_errors():
    assert kmod.load_order(["virtio", "virtio_blk"], {}, set()) == []
    with pytest.raises(kmod.ModuleError, match="needed by 9p"):
        kmod.load_order(["9p"], {"9p": ["netfs"]}, {"9p"})


def test_module_name_normalises():
    assert kmod.module_name("kernel/fs/9p/9p.ko.zst") == "9p"
    assert kmod.module_name("/x/virtio-blk.ko") == "virtio_blk"


def _fake_module(depends: str) -> bytes:
    """A minimal ELF64 file with a .modinfo section (what modinfo_depends reads)."""
    modinfo = b"license=GPL\0depends=" + depends.encode() + b"\0vermagic=6.1\0"
    shstr = b"\0.modinfo\0.shstrtab\0"
    data_off = 64
    shstr_off = data_off + len(modinfo)
    shoff = shstr_off + len(shstr)
    header = bytearray(64)
    header[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", header, 0x28, shoff)
    struct.pack_into("<HHH", header, 0x3A, 64, 3, 2)

    def sh(name, offset, size):
        s = bytearray(64)
        struct.pack_into("<I", s, 0, name)
        struct.pack_into("<QQ", s, 0x18, offset, size)
        return bytes(s)

    return (bytes(header) + modinfo + shstr + sh(0, 0, 0) + sh(1, data_off, len(modinfo))
            + sh(10, shstr_off, len(shstr)))


def test_modinfo_depends_reads_the_elf_section(tmp_path):
    assert kmod.modinfo_depends(_fake_module("netfs,9pnet,fscache")) == ["netfs", "9pnet", "fscache"]
    assert kmod.modinfo_depends(_fake_module("")) == []
    with pytest.raises(kmod.ModuleError):
        kmod.modinfo_depends(b"not elf at all, not elf at all")


def test_resolve_reads_compressed_modules_without_modules_dep(tmp_path):
    import lzma
    tree = tmp_path / "lib/modules/6.1.0-test"
    (tree / "kernel").mkdir(parents=True)
    deps = {"virtio_ring": "", "virtio": "virtio_ring", "virtio_blk": "virtio,virtio_ring"}
    for name, dep in deps.items():
        (tree / "kernel" / f"{name}.ko.xz").write_bytes(lzma.compress(_fake_module(dep)))
    chosen = kmod.resolve(tree)
    assert [n for n, _ in chosen] == ["virtio_ring", "virtio", "virtio_blk"]
    assert kmod.read_module(chosen[0][1]).startswith(b"\x7fELF")  # decompressed for insmod


# --- initramfs, conf, key -------------------------------------------------------------------

def test_cpio_archive_is_valid_newc(tmp_path):
    entries = cpio.with_parents([cpio.chardev("dev/console", 5, 1),
                                 cpio.regular("usr/bin/tool", b"#!x\n", executable=True),
                                 cpio.symlink("bin/sh", "busybox")])
    data = cpio.archive(entries)
    assert data.startswith(b"070701") and b"TRAILER!!!" in data
    names = [e.path for e in entries]
    assert names.index("usr") < names.index("usr/bin") < names.index("usr/bin/tool")
    out = tmp_path / "x"
    out.mkdir()
    listing = subprocess.run(["cpio", "-t"], input=data, capture_output=True, cwd=out)
    if listing.returncode == 0:  # cpio(1) is there: let it confirm the format
        assert set(listing.stdout.decode().split()) >= {"dev/console", "usr/bin/tool", "bin/sh"}


def test_perfsuite_conf_per_mode():
    conf = img.perfsuite_conf(["virtio", "9p"], "initramfs", ["/lib/x86_64-linux-gnu"],
                              fio_version="fio-3.33")
    assert "MODULES='virtio 9p'" in conf and "FIO_VERSION=fio-3.33" in conf
    assert "LD_LIBRARY_PATH=/lib/x86_64-linux-gnu" in conf
    host = img.perfsuite_conf([], "hostroot", ["/usr/lib"], loader="/usr/lib/ld.so")
    assert "/host/usr/lib/ld.so --library-path /host/usr/lib" in host


def test_init_script_is_valid_shell_and_always_ends_in_poweroff():
    subprocess.run(["/bin/busybox", "sh", "-n", "-c", INIT_SCRIPT], check=True)
    assert "poweroff -f" in INIT_SCRIPT and INIT_SCRIPT.rstrip().endswith("finish")
    assert "guest-error.txt" in INIT_SCRIPT and ".json.part" in INIT_SCRIPT


def test_cache_key_changes_with_each_input():
    base = {"kernel": "debian:linux-image-6.1.0-56-amd64=6.1.192-2", "init": "a", "busybox": "b",
            "fio": {"sha256": "c", "libs": []}, "fio_mode": "initramfs", "wanted_modules": ["x"]}
    key = img.cache_key(base)
    assert key == img.cache_key(dict(reversed(list(base.items()))))  # order does not matter
    for field, value in [("kernel", "debian:linux-image-6.1.0-57-amd64=6.1.200-1"), ("init", "z"),
                         ("busybox", "z"), ("fio", {"sha256": "d", "libs": []}),
                         ("fio_mode", "hostroot"), ("wanted_modules", ["x", "y"])]:
        assert img.cache_key({**base, field: value}) != key, field


def test_parse_ldd_and_apt_output():
    ldd = ("\tlinux-vdso.so.1 (0x00007f)\n\tlibaio.so.1 => /lib/x86_64-linux-gnu/libaio.so.1 (0x1)\n"
           "\t/lib64/ld-linux-x86-64.so.2 (0x2)\n")
    assert img.parse_ldd(ldd) == ["/lib/x86_64-linux-gnu/libaio.so.1", "/lib64/ld-linux-x86-64.so.2"]
    assert kernel.parse_depends("linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n") \
        == "linux-image-6.1.0-56-amd64"
    assert kernel.parse_depends("linux-image-amd64\n") is None
    assert kernel.parse_candidate("x:\n  Installed: (none)\n  Candidate: 6.1.192-2\n") == "6.1.192-2"
    assert kernel.parse_candidate("  Candidate: (none)\n") is None


def test_bzimage_version_from_setup_header():
    data = bytearray(0x1000)
    data[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", data, 0x20E, 0x300)
    data[0x500:0x520] = b"6.1.0-56-amd64 (debian@x) #1\0"
    assert img.bzimage_version(bytes(data)) == "6.1.0-56-amd64"
    assert img.bzimage_version(b"\0" * 0x1000) is None


def _fake_bzimage(fill: bytes) -> bytes:
    data = bytearray(fill * 4096)
    data[0x202:0x206] = b"HdrS"  # the x86 boot protocol's magic: enough to pass as a kernel
    return bytes(data)


@pytest.fixture
def user_kernel(tmp_path):
    """A user's --kernel for image builds (a fake one: nothing boots from it)."""
    if not (img.Path(img.BUSYBOX).exists() and img.Path(img.FIO).exists()):
        pytest.skip("needs busybox-static and fio")
    vmlinuz = tmp_path / "bzImage"
    vmlinuz.write_bytes(_fake_bzimage(b"\0"))
    return vmlinuz


def test_ensure_image_caches_by_inputs(tmp_path, user_kernel):
    """A user's kernel is built once, then found in the cache."""
    from perfsuite.guest import ensure_image
    vmlinuz = user_kernel
    cache = tmp_path / "cache"
    logs: list[str] = []
    first = ensure_image(kernel=vmlinuz, cache_dir=cache, fio_mode="hostroot", log=logs.append)
    assert first.initrd.exists() and first.kernel.read_bytes() == vmlinuz.read_bytes()
    assert first.modules == () and any("building" in m for m in logs)
    logs.clear()
    again = ensure_image(kernel=vmlinuz, cache_dir=cache, fio_mode="hostroot", log=logs.append)
    assert again.key == first.key and logs == []  # no rebuild
    vmlinuz.write_bytes(_fake_bzimage(b"\1"))
    other = ensure_image(kernel=vmlinuz, cache_dir=cache, fio_mode="hostroot", log=None)
    assert other.key != first.key
    assert not list((cache / "images").glob(".*"))  # no temp dirs left behind


def test_ensure_image_errors_are_one_line(tmp_path):
    from perfsuite.guest import ImageError, ensure_image
    with pytest.raises(ImageError, match="kernel file .* not found"):
        ensure_image(kernel=tmp_path / "nope", cache_dir=tmp_path, log=None)
    with pytest.raises(ImageError, match="--modules needs --kernel"):
        ensure_image(modules=tmp_path, cache_dir=tmp_path, log=None)
    # /etc/passwd as --kernel: refused before an image is built and cached (QEMU used to
    # fail on it once per configuration: "linux kernel too old to load a ram disk")
    if not img.Path(img.BUSYBOX).exists():
        pytest.skip("needs busybox-static")
    text = tmp_path / "notes.txt"
    text.write_text("not a kernel\n" * 100)
    with pytest.raises(ImageError, match="not a Linux kernel"):
        ensure_image(kernel=text, cache_dir=tmp_path / "cache", log=None)
    assert not (tmp_path / "cache" / "images").exists() or not any((tmp_path / "cache" / "images").iterdir())


def _elf_with_note(ntype: int) -> bytes:
    """ELF64 header + one PT_NOTE program header + one note (name "Xen", given type)."""
    note = struct.pack("<III", 4, 4, ntype) + b"Xen\0" + b"\0\0\0\1"
    ehdr = bytearray(64)
    ehdr[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", ehdr, 0x20, 64)            # e_phoff
    struct.pack_into("<HH", ehdr, 0x36, 56, 1)        # e_phentsize, e_phnum
    phdr = bytearray(56)
    struct.pack_into("<I", phdr, 0, 4)                # PT_NOTE
    struct.pack_into("<Q", phdr, 8, 120)              # p_offset
    struct.pack_into("<Q", phdr, 32, len(note))       # p_filesz
    return bytes(ehdr) + bytes(phdr) + note


def test_pvh_kernel_is_unpacked_from_a_bzimage():
    import lzma
    pvh, plain = _elf_with_note(18), _elf_with_note(5)
    assert img.has_pvh_note(pvh) and not img.has_pvh_note(plain)
    fake_bz = b"MZ setup code \xfd7zXZ\x00 not really" + lzma.compress(pvh) + b"\0trailer"
    assert img.unpack_vmlinux(fake_bz) == pvh
    assert img.unpack_vmlinux(b"MZ" + lzma.compress(plain)) is None   # no PVH: keep bzImage
    assert img.unpack_vmlinux(b"MZ nothing compressed here") is None


# --- stub libraries ---------------------------------------------------------------------------

READELF_V = """Version needs section '.gnu.version_r' contains 3 entries:
  000000: Version: 1  File: libgfapi.so.0  Cnt: 2
  0x0010:   Name: GFAPI_3.4.0  Flags: none  Version: 19
  0x0020:   Name: GFAPI_6.0  Flags: none  Version: 3
  0x0030: Version: 1  File: libc.so.6  Cnt: 1
  0x0040:   Name: GLIBC_2.2.5  Flags: none  Version: 2
"""
OBJDUMP_FIO = """
/usr/bin/fio:     file format elf64-x86-64

DYNAMIC SYMBOL TABLE:
0000000000000000      DF *UND*\t0000000000000000 (GFAPI_6.0)  glfs_pwrite_async
0000000000000000      DF *UND*\t0000000000000000 (GFAPI_3.4.0) glfs_new
0000000000000000      DF *UND*\t0000000000000000 (GLIBC_2.2.5) strdup
0000000000000000      DF *UND*\t0000000000000000  Base        rbd_open
0000000000000000      DF *UND*\t0000000000000000  Base        zlibVersion
00000000000c5000 g    DO .data\t0000000000000008  Base        fio_global
"""


def test_stub_plan_follows_versions_and_definitions():
    from perfsuite.guest import stubs
    needs = stubs.parse_version_needs(READELF_V)
    assert needs == {"GFAPI_3.4.0": "libgfapi.so.0", "GFAPI_6.0": "libgfapi.so.0",
                     "GLIBC_2.2.5": "libc.so.6"}
    syms = stubs.parse_dynsyms(OBJDUMP_FIO)
    assert ("glfs_new", "GFAPI_3.4.0", False) in syms and ("rbd_open", "", False) in syms
    assert ("fio_global", "", True) in syms
    plan = stubs.plan_stubs(syms, needs, {"libgfapi.so.0": set(), "librbd.so.1": {"rbd_open"}})
    assert plan == {"libgfapi.so.0": {"GFAPI_6.0": ["glfs_pwrite_async"], "GFAPI_3.4.0": ["glfs_new"]},
                    "librbd.so.1": {"": ["rbd_open"]}}  # libc and zlib are left alone
    asm, script = stubs.stub_source("libgfapi.so.0", plan["libgfapi.so.0"])
    assert "glfs_new:" in asm and "syscall" in asm
    assert script.splitlines() == ["GFAPI_3.4.0 { global: glfs_new; };",
                                   "GFAPI_6.0 { global: glfs_pwrite_async; } GFAPI_3.4.0;"]
    assert stubs.is_optional("librbd.so.1") and not stubs.is_optional("libaio.so.1")


def test_fio_runs_with_stub_libraries(tmp_path):
    """Real stubs for the real fio: it starts, runs a null job, and a stubbed engine says why."""
    from perfsuite.guest import stubs
    if not (stubs.available() and img.Path(img.FIO).exists()):
        pytest.skip("needs binutils and fio")
    built = stubs.build_stubs(img.FIO, img.fio_libraries(), tmp_path)
    assert "librbd.so.1" in built
    kept = img.fio_libraries(str(tmp_path))
    assert not any("ceph" in p or "librados" in p and not p.startswith(str(tmp_path)) for p in kept)
    env = {"LD_LIBRARY_PATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    ok = subprocess.run([img.FIO, "--name=n", "--ioengine=null", "--size=1m", "--output-format=json"],
                        capture_output=True, text=True, env=env, cwd=tmp_path)
    assert ok.returncode == 0 and orjson.loads(ok.stdout)["jobs"][0]["read"]["io_bytes"] > 0
    bad = subprocess.run([img.FIO, "--name=n", "--ioengine=rbd", "--size=1m", "--pool=p",
                          "--rbdname=r", "--clientname=c"], capture_output=True, text=True,
                         env=env, cwd=tmp_path)
    assert "librados.so.2 is a stub" in bad.stderr


def test_init_script_helpers_in_busybox_sh(tmp_path):
    """count_cpus / count_entries and the scheduler parsing, run by the guest's own shell."""
    import re as _re
    funcs = "\n".join(_re.findall(r"^(count_\w+\(\) \{.*?^\})", INIT_SCRIPT, _re.M | _re.S))
    sched = _re.search(r'^case "\$line" in.*?^esac', INIT_SCRIPT, _re.M | _re.S).group(0)
    (tmp_path / "mq" / "0").mkdir(parents=True)
    (tmp_path / "mq" / "1").mkdir()
    script = funcs + f"""
count_cpus "0-3,5,7-8"; echo $n
count_cpus "0"; echo $n
count_entries {tmp_path}/mq; echo $n
count_entries {tmp_path}/none; echo $n
for line in "[none] mq-deadline" "mq-deadline [kyber] none" "none"; do
{sched}
echo "$sched"; done
"""
    out = subprocess.run(["/bin/busybox", "sh", "-c", script], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["7", "1", "2", "0", "none", "kyber", "none"]


def test_prune_spares_recently_used_images(tmp_path):
    import os
    import time
    from perfsuite.guest.build import prune
    now = time.time()
    for i, age_days in enumerate([0, 0.1, 1, 3, 4, 5]):
        d = tmp_path / f"img{i}"
        d.mkdir()
        (d / "image.json").write_text("{}")
        os.utime(d, (now - age_days * 86400,) * 2)
    (tmp_path / ".img9.tmp").mkdir()  # a build in progress: not an image yet
    gone = prune(tmp_path, keep=3, protect="img5", log=None)
    assert sorted(d.name for d in gone) == ["img3", "img4"]   # old and beyond the 3 newest
    assert sorted(p.name for p in tmp_path.iterdir()) == [".img9.tmp", "img0", "img1", "img2", "img5"]


def test_broken_modules_tree_is_an_image_error(tmp_path, user_kernel):
    from perfsuite.guest import ImageError, ensure_image
    vmlinuz = user_kernel
    mods = tmp_path / "modules"
    mods.mkdir()
    (mods / "9p.ko").write_bytes(_fake_module("netfs,9pnet"))  # its dependencies are missing
    with pytest.raises(ImageError, match="needed by 9p"):
        ensure_image(kernel=vmlinuz, modules=mods, cache_dir=tmp_path / "c", log=None)
