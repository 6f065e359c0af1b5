"""Real builds booting real guests under TCG: Debian's QEMU 10.0 from bookworm-backports
(a ~13 MB download into the build cache the first time), its provenance in every meta.

Only processes whose command line holds this test's own tmp path are looked at.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from qemu_procs import our_qemus

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parent.parent
CI_MATRIX = REPO / "jobs" / "ci.toml"
BACKPORTS = "debian:bookworm-backports"


def perfsuite(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CI": "true"}
    return subprocess.run([sys.executable, "-m", "perfsuite.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=840)


@pytest.fixture(scope="module")
def backports_run(tmp_path_factory):
    from perfsuite.guest import ensure_image
    ensure_image(log=lambda m: None)
    tmp = tmp_path_factory.mktemp("backports")
    proc = perfsuite("run", str(CI_MATRIX), "--qemu", BACKPORTS, "--only", "*-dataplane",
                     "--runs-dir", str(tmp / "runs"), "--repeat", "1", "--runtime", "2",
                     "--ramp", "0", "--accel", "tcg", "--work-root", str(tmp / "w"))
    return tmp, proc


def test_debian_backports_build_boots_and_meta_names_10_0(backports_run):
    tmp, proc = backports_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = orjson.loads((tmp / "runs" / "qemu-10.0-smp-2-dataplane" / "1.meta.json").read_bytes())
    assert meta["status"] == "ok" and meta["versions"]["qemu"].startswith("10.0.")
    b = meta["build"]
    assert b["spec"] == BACKPORTS and b["kind"] == "debian"
    assert b["package_version"].startswith("1:10.0.") and b["qemu_version"].startswith("10.0.")
    assert len(b["binary_sha256"]) == 64
    assert meta["qemu_argv"][0].endswith("/qemu-system-x86_64") and "/builds/debian/" in meta["qemu_argv"][0]
    assert not our_qemus(str(tmp))


def test_build_command_prints_the_cached_backports_build(backports_run):
    proc = perfsuite("build", BACKPORTS, "--json")
    assert proc.returncode == 0, proc.stderr
    info = orjson.loads(proc.stdout)
    assert info["label"] == "qemu-10.0" and info["qemu_version"].startswith("10.0.")
    out = subprocess.run([info["binary"], "-nodefaults", "-device", "virtio-blk-pci,help"],
                         capture_output=True, text=True, timeout=30)
    assert "iothread-vq-mapping" in out.stdout


IOTHREADS_MATRIX = """
[defaults]
fio_job = "{job}"
backend = "null-co"
memory_mb = 1024
dataplane = true
mq = true
smp = 2
runtime = 2
ramp = 0

[matrix]
iothreads = [1, 2]
"""


def _iothreads_matrix(tmp: Path) -> Path:
    m = tmp / "iothreads.toml"
    m.write_text(IOTHREADS_MATRIX.format(job=REPO / "jobs" / "fio.job"))
    return m


def test_iothread_vq_mapping_for_real_on_qemu_10(tmp_path, backports_run):
    proc = perfsuite("run", str(_iothreads_matrix(tmp_path)), "--qemu", BACKPORTS, "--only", "*-iothreads-2",
                     "--runs-dir", str(tmp_path / "runs"), "--repeat", "1", "--accel", "tcg",
                     "--work-root", str(tmp_path / "w"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = orjson.loads((tmp_path / "runs/qemu-10.0-smp-2-dataplane-iothreads-2/1.meta.json").read_bytes())
    assert meta["status"] == "ok" and meta["mismatch"] == []
    assert meta["device"]["iothread-vq-mapping"] == ["io0", "io1"]  # QMP: what QEMU built
    assert meta["guest"]["queues"] == 2 and meta["guest"]["cpus_online"] == 2  # what the guest saw
    dev = next(a for a in meta["qemu_argv"] if "iothread-vq-mapping" in a)
    assert orjson.loads(dev)["num-queues"] == 2
    assert not our_qemus(str(tmp_path))


def test_iothreads_refused_before_launch_for_a_build_without_the_mapping(tmp_path):
    proc = perfsuite("run", str(_iothreads_matrix(tmp_path)), "--qemu", "system",
                     "--runs-dir", str(tmp_path / "runs"), "--repeat", "1", "--accel", "tcg")
    assert proc.returncode == 2
    assert ("qemu-7.2-smp-2-dataplane-iothreads-2: iothreads=2: needs iothread-vq-mapping (QEMU >= 9.0), "
            "which /usr/bin/qemu-system-x86_64 does not have (nothing launched)") in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_compare_across_two_real_builds(tmp_path, backports_run):
    tmp, _ = backports_run
    proc = perfsuite("run", str(CI_MATRIX), "--qemu", "system", "--only", "*-dataplane",
                     "--runs-dir", str(tmp_path / "runs"), "--repeat", "2", "--runtime", "2",
                     "--ramp", "0", "--accel", "tcg", "--work-root", str(tmp_path / "w"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = perfsuite("compare", str(tmp_path / "runs"), str(tmp / "runs"), "--format", "json", "--strict-hosts")
    assert res.returncode in (0, 1), res.stderr
    doc = orjson.loads(res.stdout)
    assert [r["config"] for r in doc["rows"]] == ["smp-2-dataplane"]
    assert doc["rows"][0]["name_base"] == "qemu-7.2-smp-2-dataplane"
    assert doc["rows"][0]["name_cand"] == "qemu-10.0-smp-2-dataplane"
    assert doc["params"]["hosts"] == {}


def test_nightly_debian_baseline_against_git_candidate(tmp_path, backports_run):
    """The README's CI example, small: --baseline-qemu debian:... --candidate-qemu git:...@HEAD
    (the git: repository is CI's stand-in, whose build wraps the system QEMU)."""
    from test_builds import make_standin
    repo = make_standin(tmp_path)
    res = perfsuite("nightly", "--matrix", str(CI_MATRIX), "--only", "*-dataplane",
                    "--baseline-qemu", BACKPORTS, "--candidate-qemu", f"git:{repo}@HEAD",
                    "--boots", "2", "--runtime", "2", "--ramp", "0", "--accel", "tcg", "--no-html",
                    "--results-dir", str(tmp_path / "res"), "--night", "n1", "--work-root", str(tmp_path / "w"))
    assert res.returncode in (0, 1), res.stderr[-3000:]
    night = tmp_path / "res" / "nights" / "n1"
    assert (night / "summary.md").exists() and (night / "junit.xml").exists()
    specs = {orjson.loads(p.read_bytes())["build"]["spec"] for p in night.glob("runs/*/*/1.meta.json")}
    assert specs == {BACKPORTS, f"git:{repo}@HEAD"}
    assert not our_qemus(str(tmp_path))
