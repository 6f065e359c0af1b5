"""Faults with real TCG guests (2 s of fio, no ramp, one boot): signals at each phase, QEMU
killed, disk full, SIGKILL of perfsuite itself, fio that does no I/O, a Latin-1 job file.
Each asserts: a clear message, the exit code, the completed results all counted (and only
them), no QEMU and no temp dir left."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from faults.conftest import CI_MATRIX, FIO_JOB, SHORT, clear
from perfsuite import rundir
from perfsuite.analysis.results import ResultsError, load_runs
from qemu_procs import our_qemus

pytestmark = pytest.mark.qemu

ONE = ("--only", "*-dataplane-no-mq")
NAME = "f-smp-2-dataplane-no-mq"


@pytest.fixture(scope="module", autouse=True)
def image():
    from perfsuite.guest import ensure_image
    return ensure_image(log=lambda m: None)


def run_args(case, *extra):
    return ("run", CI_MATRIX, "--runs-dir", case.root / "runs", "--label", "f", *ONE, *SHORT,
            "--work-root", case.tmp, *extra)


def wait_for(proc, pred, timeout=240.0):
    """Read stderr lines until pred(line) is true; return the lines read."""
    lines, t0 = [], time.monotonic()
    while time.monotonic() - t0 < timeout:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if pred(line):
            return lines
    raise AssertionError("never saw the awaited line:\n" + "".join(lines))


def consistent(case) -> set[int]:
    """The runner's resume and the analyzer agree on what counts; returns it."""
    d = case.root / "runs" / NAME
    done = rundir.complete_reps(d)
    try:
        counted = {int(r) for r in load_runs(case.root / "runs").frame["rep"]}
    except ResultsError:
        counted = set()
    assert counted == done
    return done


@pytest.mark.parametrize("phase,sig", [
    ("start", signal.SIGINT),       # validation, probe, image check
    ("qmp", signal.SIGINT),         # defect 1: ~0.1 s after `boot ...`, during QMP connect
    ("qmp", signal.SIGINT),
    ("qmp", signal.SIGTERM),
    ("mid-rep", signal.SIGINT),     # one repetition recorded, the next running
    ("mid-rep", signal.SIGHUP),
])
def test_signal_at_each_phase(case, phase, sig):
    proc = case.popen(*run_args(case, "--repeat", "3"))
    if phase == "start":
        time.sleep(0.5)
    elif phase == "qmp":
        wait_for(proc, lambda s: s.startswith("boot "))
        time.sleep(0.1)
    else:
        wait_for(proc, lambda s: "#1: ok" in s)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    clear(err)
    assert proc.returncode in (130, 0) if phase == "start" else proc.returncode == 130, err
    done = consistent(case)
    if phase == "mid-rep":
        assert 1 in done
    assert case.leftovers() == []


def test_qemu_killed_by_a_signal_is_named(case):
    proc = case.popen(*run_args(case, "--repeat", "3"))
    wait_for(proc, lambda s: "#1: ok" in s)
    for pid in our_qemus(case.root):
        os.kill(pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=240)
    clear(err)
    assert proc.returncode == 1 and "QEMU was killed by SIGKILL before repetition 2" in err, err
    assert consistent(case) == {1, 3}  # 2 failed with it; 3 ran in a new boot
    assert case.leftovers() == []


def test_disk_full_mid_run(case):
    tiny = case.root / "runs"
    tiny.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(tiny)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        proc = case.run(*run_args(case, "--repeat", "6"), timeout=600)
        clear(proc.stderr)
        assert proc.returncode == 2 and "No space left on device" in proc.stderr, proc.stderr
        done = consistent(case)
        for n in done:
            assert (tiny / NAME / f"{n}.meta.json").exists()
        assert case.leftovers() == []
    finally:
        subprocess.run(["umount", "-l", str(tiny)], check=False)


def test_sigkill_of_perfsuite_is_cleaned_by_the_next_run(case):
    proc = case.popen(*run_args(case, "--repeat", "2"))
    wait_for(proc, lambda s: "#1: ok" in s)
    proc.kill()
    proc.communicate(timeout=60)
    deadline = time.monotonic() + 30
    while our_qemus(case.root) and time.monotonic() < deadline:  # PR_SET_PDEATHSIG
        time.sleep(0.2)
    assert our_qemus(case.root) == []
    assert case.leftovers(), "SIGKILL leaves the work dir (nothing can run after it)"
    again = case.run(*run_args(case, "--repeat", "2"), timeout=600)
    clear(again.stderr)
    assert again.returncode == 0, again.stderr
    assert "left by a perfsuite run that died" in again.stderr
    assert consistent(case) == {1, 2} and case.leftovers() == []


def test_latin1_job_file_runs(case):
    # defect 2: UnicodeDecodeError traceback in boot.py, an empty work dir left
    job = case.root / "latin1.job"
    job.write_bytes(FIO_JOB.read_bytes() + b"\n# r\xe9sum\xe9 in Latin-1\n")
    m = case.root / "m.toml"
    m.write_text(f'[defaults]\nfio_job = "{job}"\n[matrix]\nsmp = 1\n')
    proc = case.run("run", m, "--runs-dir", case.root / "runs", "--label", "l1", *SHORT,
                    "--repeat", "1", "--work-root", case.tmp, timeout=600)
    clear(proc.stderr)
    assert proc.returncode == 0, proc.stderr
    assert case.leftovers() == []


def test_fio_that_does_no_io_is_failed_with_its_words(case):
    # defect 6: iodepth 99999999999999999: fio says "failed setting up IO queues", exits 0
    # with 0 bytes; it was recorded ok and the table showed 0.0 IOPS
    job = case.root / "j.fio"
    job.write_text("\n".join(line for line in FIO_JOB.read_text().splitlines()
                             if not line.startswith("iodepth")) + "\n")
    m = case.root / "m.toml"
    m.write_text(f'[defaults]\nfio_job = "{job}"\niodepth = 99999999999999999\n[matrix]\nsmp = 1\n')
    proc = case.run("run", m, "--runs-dir", case.root / "runs", "--label", "io", *SHORT,
                    "--repeat", "1", "--work-root", case.tmp, timeout=600)
    clear(proc.stderr)
    assert proc.returncode == 1 and "fio did no I/O" in proc.stderr, proc.stderr
    assert "failed setting up IO queues" in proc.stderr
    d = case.root / "runs" / "io-smp-1-dataplane"
    assert not (d / "1.json").exists() and "failed setting up IO queues" in (d / "1.log").read_text()
    assert case.leftovers() == []
