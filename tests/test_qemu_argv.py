"""QEMU argv building (pure), binary probing, job rendering, meta mismatches, the accel
choice, and QMP against a bare paused QEMU (no guest booted: -S, no kernel)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from perfsuite.run.boot import boot_timeouts, render_job
from perfsuite.matrix.config import Config
from perfsuite.qemu import accel as accel_mod
from perfsuite.qemu.argv import blockdev_arg, build_argv, device_arg, qemu_opt
from perfsuite.qemu.features import parse_device_props, parse_version
from perfsuite.run.meta import build_meta, mismatches

HAVE_QEMU = shutil.which("qemu-system-x86_64") is not None
IMAGE_ARGV = ["-kernel", "vmlinuz", "-initrd", "initrd", "-append", "console=ttyS0 quiet panic=-1"]


def argv_of(c: Config, **kw) -> list[str]:
    return build_argv(c, IMAGE_ARGV, "/w", **kw)


def opt(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_known_working_tcg_argv_pieces():
    a = argv_of(Config(label="v4", smp=2, memory_mb=1024))
    assert a[0] == "qemu-system-x86_64" and all(isinstance(x, str) for x in a)
    assert opt(a, "-accel") == ["tcg"] and opt(a, "-M") == ["q35"]
    assert opt(a, "-m") == ["1024"] and opt(a, "-smp") == ["2"]
    assert opt(a, "-object") == ["iothread,id=io0"]
    assert opt(a, "-blockdev") == ["driver=null-co,node-name=disk0,size=8589934592,read-zeroes=on"]
    assert opt(a, "-device") == ["virtio-blk-pci,id=vblk0,drive=disk0,num-queues=2,queue-size=256,iothread=io0"]
    assert "-S" in a and "-no-reboot" in a and "-nodefaults" in a
    assert a[-len(IMAGE_ARGV):] == IMAGE_ARGV
    assert any("socket,id=qmp0,path=/w/qmp.sock,server=on" in x for x in a)
    assert any("file,id=con0,path=/w/console.log" in x for x in a)


@pytest.mark.parametrize("smp, nq", [(1, 1), (4, 4), (4, 1), (8, 3)])
@pytest.mark.parametrize("dataplane", [True, False])
def test_num_queues_always_explicit(smp, nq, dataplane):
    dev = opt(argv_of(Config(smp=smp, num_queues=nq, dataplane=dataplane)), "-device")[0]
    assert f"num-queues={nq}" in dev
    assert ("iothread=io0" in dev) == dataplane


def test_no_dataplane_has_no_iothread_object():
    a = argv_of(Config(smp=4, dataplane=False))
    assert opt(a, "-object") == []


def test_null_aio_and_file_and_host_device_backends():
    assert blockdev_arg(Config(backend="null-aio")).startswith("driver=null-aio,")
    f = blockdev_arg(Config(backend="file", backend_path="/d/a,b.img", aio="native", cache="none"))
    assert "file.driver=file" in f and "file.filename=/d/a,,b.img" in f
    assert "file.aio=native" in f and "cache.direct=on" in f
    h = blockdev_arg(Config(backend="host_device", backend_path="/dev/sdz", cache="writeback"))
    assert "file.driver=host_device" in h and "cache.direct=off" in h
    assert "write-cache=off" in device_arg(Config(backend="file", backend_path="/x", cache="writethrough"))


def test_kvm_uses_host_cpu_and_bad_accel_is_refused():
    a = argv_of(Config(), accel="kvm")
    assert opt(a, "-accel") == ["kvm"] and opt(a, "-cpu") == ["host"]
    with pytest.raises(ValueError):
        argv_of(Config(), accel="hvf")


def test_iothread_vq_mapping_only_where_supported():
    c = Config(smp=4, iothreads=2)
    with pytest.raises(ValueError, match="iothread-vq-mapping"):
        device_arg(c, vq_mapping=False)
    a = argv_of(c, vq_mapping=True)
    dev = json.loads(opt(a, "-device")[0])
    assert dev["num-queues"] == 4
    assert dev["iothread-vq-mapping"] == [{"iothread": "io0"}, {"iothread": "io1"}]
    assert opt(a, "-object") == ["iothread,id=io0", "iothread,id=io1"]


def test_paths_with_commas_are_escaped_and_argv_is_pure():
    assert qemu_opt("a,b") == "a,,b"
    c = Config(smp=2)
    assert build_argv(c, IMAGE_ARGV, "/w,1") == build_argv(c, IMAGE_ARGV, "/w,1")
    assert any("path=/w,,1/qmp.sock" in x for x in build_argv(c, IMAGE_ARGV, "/w,1"))


def test_parse_version_and_props():
    assert parse_version("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7)\nCopyright") == \
        ("7.2.22", "Debian 1:7.2+dfsg-7")
    assert parse_version("QEMU emulator version 9.1.0\n") == ("9.1.0", "")
    props = parse_device_props("virtio-blk-pci options:\n  num-queues=<uint16>    -  (default: 65535)\n"
                               "  iothread-vq-mapping=<IOThreadVirtQueueMappingList>\n")
    assert props == {"num-queues", "iothread-vq-mapping"}


@pytest.mark.skipif(not HAVE_QEMU, reason="qemu-system-x86_64 not installed")
def test_probe_reads_the_real_binary():
    from perfsuite.qemu.features import default_label, probe
    info = probe("qemu-system-x86_64")
    assert "num-queues" in info.blk_props and "iothread" in info.blk_props
    assert info.vq_mapping == ("iothread-vq-mapping" in info.blk_props)
    if info.version_tuple < (9, 0):
        assert not info.vq_mapping
    assert default_label("qemu-system-x86_64").startswith("qemu-")


def test_probe_says_why_a_binary_cannot_run(tmp_path):
    # "not found" for a file that is there but not executable (or a directory) sends the
    # user looking for the wrong problem
    from perfsuite.qemu.features import QemuNotRunnable, probe
    plain = tmp_path / "qemu-system-x86_64"
    plain.write_text("not a program\n")
    plain.chmod(0o644)
    cases = [(str(plain), "not executable"), (str(tmp_path), "is a directory"),
             (str(tmp_path / "missing" / "qemu"), "no such file"),
             ("qemu-system-nonexistent-arch", "not found in PATH"), ("", "empty")]
    for qemu, why in cases:
        with pytest.raises(QemuNotRunnable, match=why):
            probe(qemu)


def test_render_job_sets_the_config_in_global():
    seed = "[global]\nioengine=libaio\nruntime=60\nramp_time=5\n\n[job1]\nrw=randread\niodepth=4\n"
    out = render_job(seed, Config(smp=4, iodepth=16, runtime=3, ramp=1))
    assert "runtime=60" not in out and "ramp_time=5" not in out and "iodepth=4" not in out
    g = out.split("[job1]")[0]
    for line in ("filename=/dev/vda", "numjobs=4", "iodepth=16", "runtime=3", "ramp_time=1"):
        assert line in g
    bare = render_job("[job1]\nrw=read\n", Config())
    assert bare.startswith("[global]\nfilename=/dev/vda")


def test_render_job_of_the_repository_jobs():
    for job in ("fio.job", "fio-latency.job"):
        text = (Path(__file__).resolve().parent.parent / "jobs" / job).read_text()
        out = render_job(text, Config(smp=2, runtime=2, ramp=0))
        assert "runtime=2" in out and "numjobs=2" in out and "rw=randread" in out
        assert ("gtod_reduce=1" in out) == (job == "fio.job")


def test_timeouts_grow_with_the_job_and_allow_a_boot():
    short, long_ = Config(runtime=2, ramp=0), Config(runtime=60, ramp=5)
    assert boot_timeouts(long_, "tcg").each > boot_timeouts(short, "tcg").each
    t = boot_timeouts(short, "tcg")
    assert t.first > t.each > 2
    assert boot_timeouts(short, "tcg", override=7).each == 7


def test_mismatches():
    c = Config(smp=4, num_queues=4)
    guest = {"cpus_online": 4, "queues": 4, "scheduler": "none"}
    dev = {"num-queues": 4, "queue-size": 256, "iothread": "io0"}
    assert mismatches(c, guest, dev) == []
    assert mismatches(c, {**guest, "queues": 1}, dev) == ["queues: asked 4, guest saw 1"]
    assert "device num-queues: asked 4, QEMU built 1" in mismatches(c, guest, {**dev, "num-queues": 1})
    assert "iothread" in mismatches(c, guest, {**dev, "iothread": None})[0]
    assert mismatches(Config(smp=2, num_queues=8), {"cpus_online": 2, "queues": 2}, {}) == []
    assert mismatches(c, None, dev) == ["guest info: the guest did not report what it saw"]


def test_meta_has_the_contract_shape():
    c = Config(label="v4", smp=4)
    m = build_meta(c, 3, boot=1, argv=["q"], accel="tcg", accel_note="n", versions={}, host={},
                   guest={"cpus_online": 4, "queues": 1}, device={}, started="s", finished="f",
                   status="ok", error=None)
    for key in ("schema", "name", "rep", "boot", "config", "qemu_argv", "accel", "accel_note",
                "versions", "host", "guest", "mismatch", "started", "finished", "status", "error",
                "synthetic", "true_iops"):
        assert key in m
    assert m["schema"] == 1 and m["name"] == "v4-smp-4-dataplane" and m["rep"] == 3
    assert m["mismatch"] == ["queues: asked 4, guest saw 1"]


def test_meta_assembly_is_pure(monkeypatch):
    """assemble_meta takes every fact as an argument: no subprocess, no build probe, no
    environment; build_meta gathers them at the edge and gives the same document."""
    import subprocess

    from perfsuite.run import meta as meta_mod

    def forbidden(*a, **k):
        raise AssertionError("assemble_meta probed something")

    c = Config(label="v4", smp=4, num_queues=2)
    facts = dict(boot=2, argv=["q"], accel="kvm", accel_note=None, versions={"qemu": "7.2.0"},
                 host={"cpus": 8}, guest={"cpus_online": 4, "queues": 2}, device={"num-queues": 2, "iothread": "io0"},
                 started="s", finished="f", status="ok", error=None)
    monkeypatch.setattr(subprocess, "run", forbidden)
    monkeypatch.setattr(subprocess, "Popen", forbidden)
    monkeypatch.setattr(meta_mod, "build_info", forbidden)
    monkeypatch.setenv("PERFSUITE_LAB_HOST", "must-not-be-read")
    m = meta_mod.assemble_meta(c, 1, build={"spec": "system"}, lab=None, **facts)
    assert m["build"] == {"spec": "system"} and "lab" not in m and m["mismatch"] == []
    assert m["config"]["num_queues"] == 2 and m["versions"] == {"qemu": "7.2.0"}
    assert meta_mod.assemble_meta(c, 1, build={}, lab={"host": "h1", "class": None}, **facts)["lab"] == \
        {"host": "h1", "class": None}

    monkeypatch.setattr(meta_mod, "build_info", lambda qemu: {"spec": "system"})
    monkeypatch.setenv("PERFSUITE_LAB_CLASS", "big")
    edge = meta_mod.build_meta(c, 1, **facts)
    assert edge == {**m, "lab": {"host": "must-not-be-read", "class": "big"}}
    assert meta_mod.lab_info({}) is None


def test_accel_auto_falls_back_once_and_caches(monkeypatch):
    monkeypatch.setattr(accel_mod, "_CACHE", {})
    monkeypatch.setattr(accel_mod, "kvm_usable", lambda: None)
    calls, notes = [], []

    def probe(qemu, image):
        calls.append(qemu)
        return "guest hung"
    for _ in range(3):
        ch = accel_mod.resolve_accel("auto", "q", None, probe=probe, log=notes.append)
    assert ch.accel == "tcg" and "guest hung" in ch.note and "using TCG" in ch.note
    assert calls == ["q"] and len(notes) == 1
    assert accel_mod.resolve_accel("tcg", "q").accel == "tcg"
    monkeypatch.setattr(accel_mod, "_CACHE", {})
    assert accel_mod.resolve_accel("auto", "q", None, probe=lambda q, i: None).accel == "kvm"
    monkeypatch.setattr(accel_mod, "_CACHE", {})
    monkeypatch.setattr(accel_mod, "kvm_usable", lambda: "/dev/kvm: No such file or directory")
    assert "No such file" in accel_mod.resolve_accel("auto", "q", None, probe=probe).note


# ----------------------------------------------------------------------------- QMP, bare VM

def _our_qemus(marker: str) -> list[int]:
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in cmd and "qemu-system" in cmd:
                out.append(int(pid))
    return out


@pytest.mark.skipif(not HAVE_QEMU, reason="qemu-system-x86_64 not installed")
@pytest.mark.parametrize("smp, nq, dataplane", [(4, 4, True), (4, 1, False), (2, 2, False)])
def test_qmp_sees_the_device_as_asked(tmp_path, smp, nq, dataplane):
    from perfsuite.qemu.machine import QemuProcess, live_processes
    c = Config(label="qmp", smp=smp, num_queues=nq, dataplane=dataplane, pin=True)
    argv = build_argv(c, [], tmp_path)  # paused, no kernel: nothing boots
    q = QemuProcess(argv, tmp_path / "qmp.sock", tmp_path / "stderr")
    try:
        q.start()
        dev = q.device_props()
        assert dev == {"num-queues": nq, "queue-size": 256, "iothread": "io0" if dataplane else None}
        tids = q.thread_ids()
        assert len(tids["vcpus"]) == smp and len(tids["iothreads"]) == (1 if dataplane else 0)
        plan = q.pin([0])
        assert plan["vcpus"] == [0] * smp
        assert os.sched_getaffinity(tids["vcpus"][0]) == {0}
    finally:
        assert q.stop() is not None
    assert q not in live_processes()
    assert _our_qemus(str(tmp_path)) == []


@pytest.mark.skipif(not HAVE_QEMU, reason="qemu-system-x86_64 not installed")
def test_qemu_that_refuses_its_argv_is_reported(tmp_path):
    from perfsuite.qemu.machine import QemuError, QemuProcess
    argv = build_argv(Config(), [], tmp_path) + ["-device", "no-such-device"]
    q = QemuProcess(argv, tmp_path / "qmp.sock", tmp_path / "stderr")
    with pytest.raises(QemuError, match="no-such-device"):
        q.start()
    q.kill()
    assert _our_qemus(str(tmp_path)) == []


@pytest.mark.skipif(not HAVE_QEMU, reason="qemu-system-x86_64 not installed")
def test_kill_all_leaves_nothing(tmp_path):
    from perfsuite.qemu.machine import QemuProcess, kill_all
    q = QemuProcess(build_argv(Config(), [], tmp_path), tmp_path / "qmp.sock", tmp_path / "stderr")
    q.start()
    assert _our_qemus(str(tmp_path))
    kill_all()
    assert _our_qemus(str(tmp_path)) == []


def test_pin_plan_round_robin():
    from perfsuite.qemu.machine import pin_plan
    assert pin_plan(4, 1, [0, 1]) == {"vcpus": [0, 1, 0, 1], "iothreads": [0]}
    assert pin_plan(1, 1, [2, 3]) == {"vcpus": [2], "iothreads": [3]}


