"""perfsuite migrate with real TCG guests (short runs): a migration in the middle of a
verified fio write job for num-queues 1 and 4, a ping-pong of 3, a destination that cannot
start, a migration that cannot converge, QEMU's 9p blocker, and no QEMU left behind.

Only processes whose command line holds this test's own tmp path are looked at.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from qemu_procs import our_qemus

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parent.parent


def matrix(tmp: Path, *configs: str, runtime: int = 8) -> Path:
    p = tmp / "m.toml"
    p.write_text(f'[defaults]\nfio_job = "{REPO}/jobs/fio-migrate.job"\nmemory_mb = 512\n'
                 f'runtime = {runtime}\nramp = 0\nlabel = "it"\n'
                 + "".join(f"[[config]]\n{c}\n" for c in configs))
    return p


def migrate(tmp: Path, m: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, CI="true")
    p = subprocess.run([sys.executable, "-m", "perfsuite.cli", "migrate", str(m), "--accel", "tcg",
                        "--runs-dir", str(tmp / "runs"), "--work-root", str(tmp / "w"), *args],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=840)
    assert our_qemus(tmp) == [], "a QEMU outlived perfsuite migrate"
    return p


def meta(tmp: Path, name: str, rep: int = 1) -> dict:
    return orjson.loads((tmp / "runs" / name / f"{rep}.meta.json").read_bytes())


def _fio(path: Path) -> dict:
    data = path.read_bytes()
    return orjson.loads(data[data.index(b"{"):])  # fio may print warnings first


@pytest.fixture(scope="module")
def image():
    from perfsuite.guest import ensure_image
    return ensure_image(log=lambda m: None)


@pytest.fixture(scope="module")
def mid_job(tmp_path_factory, image):
    tmp = tmp_path_factory.mktemp("mig-mid")
    m = matrix(tmp, "smp = 1\nnum_queues = 1", "smp = 4\nnum_queues = 4")
    return tmp, migrate(tmp, m, "--at", "3")


@pytest.mark.parametrize("name, queues", [("it-smp-1-dataplane", 1), ("it-smp-4-dataplane", 4)])
def test_migration_mid_verified_write_job(mid_job, name, queues):
    tmp, proc = mid_job
    assert proc.returncode == 0, proc.stderr[-3000:]
    mt = meta(tmp, name)
    mig = mt["migration"]
    assert mt["status"] == "ok" and mt["error"] is None
    assert mt["device"]["num-queues"] == queues and mt["guest"]["queues"] == queues
    hop, = mig["hops"]
    assert hop["outcome"] == "completed" and mig["ran_on"] == 1
    assert hop["downtime_ms"] > 0 and hop["total_time_ms"] >= hop["downtime_ms"]
    assert hop["setup_time_ms"] is not None and hop["transferred_bytes"] > 0
    assert mig["phases"] == {"fill": 0, "write": 0, "verify": 0} and mig["verify_errors"] == 0
    d = tmp / "runs" / name
    fio = _fio(d / "1.json")
    assert [j["jobname"] for j in fio["jobs"]] == ["qd1", "qd4", "qd16", "qd32"]
    assert all(j["write"]["total_ios"] > 0 for j in fio["jobs"])
    verify = _fio(d / "1.migrate" / "verify.json")
    assert all(j["read"]["io_bytes"] == 8 * 2**20 and j["error"] == 0 for j in verify["jobs"])
    rows = (d / "1.iops.csv").read_text().splitlines()
    assert rows[0] == "t_ms,iops" and len(rows) > 50  # 8 s at 100 ms
    assert hop["dip"]["baseline_iops"] > 0 and 0 <= hop["dip"]["depth"] <= 1
    assert "destination of migration 1" in (d / "1.log").read_text()


def test_ping_pong_of_three(tmp_path, image):
    m = matrix(tmp_path, "smp = 1\nnum_queues = 1", runtime=10)
    p = migrate(tmp_path, m, "--migrations", "3", "--at", "2", "--every", "2")
    assert p.returncode == 0, p.stderr[-3000:]
    mig = meta(tmp_path, "it-smp-1-dataplane")["migration"]
    assert [h["outcome"] for h in mig["hops"]] == ["completed"] * 3
    assert all(h["downtime_ms"] > 0 for h in mig["hops"]) and mig["ran_on"] == 3
    starts = [h["started_s"] for h in mig["hops"]]
    assert starts == sorted(starts) and starts[0] >= 2
    assert len(mig["destination_argv"]) == 3 and mig["verify_errors"] == 0
    assert mig["summary"]["completed"] == 3


def test_destination_that_cannot_start(tmp_path, image):
    m = matrix(tmp_path, "smp = 1\nnum_queues = 1")
    p = migrate(tmp_path, m, "--at", "3", "--dest-arg=-device", "--dest-arg=no-such-device-model")
    assert p.returncode == 1
    mt = meta(tmp_path, "it-smp-1-dataplane")
    assert mt["status"] == "failed"
    assert "destination QEMU of migration 1 did not start" in mt["error"]
    assert "no-such-device-model" in mt["error"]
    mig = mt["migration"]
    # the source kept running: the guest finished all of its fio there
    assert mig["ran_on"] == 0 and mig["phases"] == {"fill": 0, "write": 0, "verify": 0}
    assert not (tmp_path / "runs" / "it-smp-1-dataplane" / "1.json").exists()
    assert "did not start" in p.stderr


def test_non_converging_migration_is_cancelled(tmp_path, image):
    m = matrix(tmp_path, "smp = 1\nnum_queues = 1")
    p = migrate(tmp_path, m, "--at", "2", "--max-bandwidth", "32K", "--converge-timeout", "3")
    assert p.returncode == 1
    mt = meta(tmp_path, "it-smp-1-dataplane")
    hop, = mt["migration"]["hops"]
    assert hop["outcome"] == "cancelled" and "did not converge within 3 s" in hop["error"]
    assert mt["status"] == "failed" and "cancelled" in mt["error"]
    assert hop["ended_s"] - hop["started_s"] >= 3
    mig = mt["migration"]
    assert mig["ran_on"] == 0 and mig["phases"] == {"fill": 0, "write": 0, "verify": 0}
    assert mig["verify_errors"] == 0


def test_qemu_refuses_to_migrate_while_9p_is_mounted(tmp_path, image):
    """Why the guest leaves the share: the normal path keeps W mounted, and QEMU says no."""
    from perfsuite import guest
    from perfsuite.matrix.config import Config
    from perfsuite.migrate import scenario
    from perfsuite.migrate.hop import migrate as hop
    c = Config(label="it", smp=1, memory_mb=512, fio_job=str(REPO / "jobs/fio-migrate.job"),
               runtime=8, ramp=0)
    opts = scenario.MigrateOptions(work_root=str(tmp_path / "w"))
    w, sockdir, cfg = scenario.prepare_workdir(c, 1, opts)
    guest.write_plan(w, guest.GuestPlan(repetitions=[], poweroff=False))  # the normal path
    inst = scenario._Instances(cfg, image, w, sockdir, opts)
    try:
        src = inst.start(0)
        src.cont()
        deadline = time.monotonic() + 120
        while not guest.guest_done(w) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert guest.guest_done(w)
        res = hop(src, inst.start(1), inst.uri(1), 1, clock=time.monotonic, converge_timeout=10)
        assert res.outcome == "failed"
        assert "VirtFS" in res.error and "mounted in the guest" in res.error
        assert src.cmd("query-status")["status"] == "running"
    finally:
        inst.kill_all()
    assert our_qemus(tmp_path) == []
