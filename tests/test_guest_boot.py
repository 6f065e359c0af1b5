"""Boot the real guest image under TCG: two fio repetitions in one boot, then poweroff.

Needs qemu-system-x86, fio, busybox-static and apt access to Debian's kernel (the image
build downloads linux-image-*-amd64 once into the cache).
"""

from __future__ import annotations

import shutil
import subprocess
import time

import orjson
import pytest

from perfsuite.guest import (GuestPlan, ensure_image, finished_repetitions, guest_argv,
                             guest_done, read_guest_error, read_guest_info, repetition_status,
                             write_plan)

pytestmark = pytest.mark.qemu

QEMU = "qemu-system-x86_64"
JOB = """[global]
ioengine=libaio
direct=1
filename=${PERFSUITE_DEVICE}
time_based=1
runtime=2
numjobs=2
iodepth=8
[job1]
rw=randread
bs=4k
"""


def _qemu_argv(image, workdir):
    return [QEMU, "-accel", "tcg", "-M", "q35", "-m", "1024", "-smp", "2", "-nographic",
            "-no-reboot", "-nodefaults", "-serial", f"file:{workdir}/console.log",
            "-object", "iothread,id=io0",
            "-blockdev", "driver=null-co,node-name=null0,size=8589934592,read-zeroes=on",
            "-device", "virtio-blk-pci,drive=null0,num-queues=2,iothread=io0",
            *guest_argv(image, workdir)]


def _boot(image, workdir, timeout):
    """Run QEMU until it exits by itself; kill it (and fail) if it does not."""
    proc = subprocess.Popen(_qemu_argv(image, workdir), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _, err = proc.communicate(timeout=timeout)
        return proc.returncode, err.decode(errors="replace")
    except subprocess.TimeoutExpired:
        pytest.fail(f"guest did not power off within {timeout} s; console:\n"
                    + (workdir / "console.log").read_text(errors="replace")[-2000:])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.poll() is not None
        # no qemu of ours left behind (the work dir path is unique to this test's QEMU)
        if shutil.which("pgrep"):
            left = subprocess.run(["pgrep", "-f", f"path={workdir},"], capture_output=True,
                                  text=True)
            assert left.stdout.strip() == "", f"qemu still running: {left.stdout}"


@pytest.fixture(scope="module")
def image():
    if shutil.which(QEMU) is None or shutil.which("fio") is None:
        pytest.skip("needs qemu-system-x86 and fio")
    return ensure_image(log=None)


def test_two_repetitions_in_one_boot(image, tmp_path):
    (tmp_path / "job.fio").write_text(JOB)
    write_plan(tmp_path, GuestPlan(repetitions=[1, 2], fio_job="job.fio"))
    (tmp_path / "guest-error.txt").write_text("stale, from an earlier boot\n")  # must go
    start = time.monotonic()
    rc, err = _boot(image, tmp_path, timeout=120)
    console = (tmp_path / "console.log").read_text(errors="replace")
    assert rc == 0, f"qemu exited {rc}: {err}\n{console[-2000:]}"
    assert read_guest_error(tmp_path) is None, console[-2000:]
    assert guest_done(tmp_path), console[-2000:]
    reps = finished_repetitions(tmp_path)
    assert sorted(reps) == [1, 2]
    for n, path in reps.items():
        data = orjson.loads(path.read_bytes())
        iops = sum(j["read"]["iops"] for j in data["jobs"])
        assert iops > 0 and data["fio version"].startswith("fio-")
        assert repetition_status(tmp_path, n) == 0
    info = read_guest_info(tmp_path)
    assert info["queues"] == 2 and info["cpus_online"] == 2
    assert info["scheduler"] == "none" and info["kernel"] == image.kernel_version
    assert info["fio_version"].startswith("fio-")
    assert time.monotonic() - start < 120


def test_a_guest_that_cannot_work_still_powers_off(image, tmp_path):
    # No plan.sh: the init script must say why and power off, never hang.
    rc, _ = _boot(image, tmp_path, timeout=60)
    assert rc == 0
    assert "plan.sh" in (read_guest_error(tmp_path) or "")
    assert not guest_done(tmp_path)
