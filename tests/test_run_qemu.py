"""Real QEMU guests under TCG (short fio runs): `perfsuite run` end to end, resume, dry run,
a forced timeout, a guest that never powers off, and no QEMU process left behind.

Only processes whose command line holds this test's own tmp path are looked at: other
people's guests may be running on the same machine.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from qemu_procs import our_qemus

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parent.parent
CI_MATRIX = REPO / "jobs" / "ci.toml"


def perfsuite_run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()}
    env["CI"] = "true"  # plain progress lines
    return subprocess.run([sys.executable, "-m", "perfsuite.cli", "run", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=840)


@pytest.fixture(scope="module")
def image():
    from perfsuite.guest import ensure_image
    return ensure_image(log=lambda m: None)


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory, image):
    """One real `perfsuite run jobs/ci.toml` (2 configs x 2 repetitions), shared by tests."""
    tmp = tmp_path_factory.mktemp("ci-run")
    t0 = time.monotonic()
    proc = perfsuite_run(str(CI_MATRIX), "--runs-dir", str(tmp / "runs"), "--boots", "1", "--repeat", "2",
                         "--runtime", "2", "--ramp", "0", "--accel", "tcg", "--label", "it",
                         "--work-root", str(tmp / "w"))
    return tmp, proc, time.monotonic() - t0


def test_run_writes_fio_json_and_meta(ci_run):
    tmp, proc, _ = ci_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = ["it-smp-2-dataplane", "it-smp-2-dataplane-no-mq"]
    for name in names:
        assert name in proc.stdout  # the analyzer's table
        d = tmp / "runs" / name
        for n in (1, 2):
            fio = orjson.loads((d / f"{n}.json").read_bytes())
            assert fio["jobs"] and sum(j["read"]["iops"] for j in fio["jobs"]) > 0
            assert len(fio["jobs"]) == 2  # numjobs = smp
            meta = orjson.loads((d / f"{n}.meta.json").read_bytes())
            assert meta["status"] == "ok" and meta["accel"] == "tcg"
            assert meta["guest"]["queues"] == meta["config"]["num_queues"]
            assert meta["device"]["num-queues"] == meta["config"]["num_queues"]
            assert meta["guest"]["cpus_online"] == 2 and meta["mismatch"] == []
            assert meta["config"]["runtime"] == 2 and meta["boot"] == 1
            assert "perfsuite-guest" in (d / f"{n}.log").read_text()
    assert our_qemus(tmp) == []
    assert not any((tmp / "w").iterdir())  # work dirs cleaned


def test_resume_skips_done_repetitions(ci_run):
    tmp, _, first = ci_run
    d = tmp / "runs" / "it-smp-2-dataplane"
    before = {p.name: p.stat().st_mtime_ns for p in d.iterdir()}
    t0 = time.monotonic()
    proc = perfsuite_run(str(CI_MATRIX), "--runs-dir", str(tmp / "runs"), "--boots", "1", "--repeat", "2",
                         "--runtime", "2", "--ramp", "0", "--accel", "tcg", "--label", "it",
                         "--work-root", str(tmp / "w"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "boot " not in proc.stderr and proc.stderr.count("skipped") == 4
    assert {p.name: p.stat().st_mtime_ns for p in d.iterdir()} == before
    assert time.monotonic() - t0 < first / 2
    assert our_qemus(tmp) == []


def test_dry_run_launches_nothing(tmp_path):
    proc = perfsuite_run(str(CI_MATRIX), "--dry-run", "--runs-dir", str(tmp_path / "runs"),
                         "--work-root", str(tmp_path / "w"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("qemu-system-x86_64 ") == 2 and "num-queues=1" in proc.stdout
    # pasteable: the work dir is a shell variable, every line parses as shell words
    assert 'W="$(mktemp -d)"' in proc.stdout and 'path="$W",' in proc.stdout
    assert "<" not in proc.stdout
    for line in proc.stdout.splitlines():
        if not line.startswith("#"):
            shlex.split(line)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "w").exists()
    assert our_qemus(tmp_path) == []


def test_bad_matrix_launches_nothing(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[matrix]\nsmp = 2\nnum_queues = 2000\nfio_job = "%s"\n' % (REPO / "jobs" / "fio.job"))
    proc = perfsuite_run(str(bad), "--runs-dir", str(tmp_path / "runs"), "--accel", "tcg")
    assert proc.returncode == 2 and "VIRTIO_QUEUE_MAX" in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_forced_timeout_is_killed_and_marked(tmp_path, image, monkeypatch):
    from perfsuite.run import oneboot as runner_mod
    from perfsuite.run.boot import Timeouts
    from perfsuite.matrix.config import Config
    from perfsuite.run.runner import RunOptions, Runner, run_config
    # a repetition that cannot finish in time: fio would run 120 s; 30 s allowed from launch
    monkeypatch.setattr(runner_mod, "boot_timeouts", lambda c, a, o=None: Timeouts(30, 30, 5))
    c = Config(label="to", smp=1, runtime=120, ramp=0, fio_job=str(REPO / "jobs" / "fio.job"))
    r = Runner(options=RunOptions(accel="tcg", work_root=str(tmp_path / "w")), image=image)
    t0 = time.monotonic()
    out = run_config(c, tmp_path / "runs", 1, r)
    assert time.monotonic() - t0 < 75
    assert [(o.rep, o.status) for o in out] == [(1, "timeout")]
    d = tmp_path / "runs" / c.name
    meta = orjson.loads((d / "1.meta.json").read_bytes())
    assert meta["status"] == "timeout" and "guest killed" in meta["error"]
    assert not (d / "1.json").exists()
    assert "perfsuite-guest" in (d / "1.log").read_text()  # the console is kept
    assert our_qemus(tmp_path) == []


def test_guest_that_never_powers_off_is_stopped(tmp_path, image):
    from perfsuite.matrix.config import Config
    from perfsuite.run.runner import RunOptions, Runner, run_config
    c = Config(label="nopoff", smp=1, runtime=1, ramp=0, fio_job=str(REPO / "jobs" / "fio.job"))
    r = Runner(options=RunOptions(accel="tcg", work_root=str(tmp_path / "w"), poweroff=False),
               image=image)
    out = run_config(c, tmp_path / "runs", 1, r)
    assert [(o.rep, o.status) for o in out] == [(1, "ok")]
    assert our_qemus(tmp_path) == []


def test_sigterm_stops_guests_and_keeps_completed(tmp_path, image):
    env = {**os.environ, "CI": "true"}
    proc = subprocess.Popen([sys.executable, "-m", "perfsuite.cli", "run", str(CI_MATRIX),
                             "--runs-dir", str(tmp_path / "runs"), "--boots", "1", "--repeat", "3", "--runtime", "2",
                             "--ramp", "0", "--accel", "tcg", "--label", "term", "--only", "*-no-mq",
                             "--work-root", str(tmp_path / "w")], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = tmp_path / "runs" / "term-smp-2-dataplane-no-mq" / "1.json"
    deadline = time.monotonic() + 240
    while not first.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert first.exists(), proc.stderr.read() if proc.poll() is not None else "no result in time"
    assert our_qemus(tmp_path)  # the guest is still running repetitions 2 and 3
    proc.terminate()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert orjson.loads(first.read_bytes())["jobs"]
    assert our_qemus(tmp_path) == []
