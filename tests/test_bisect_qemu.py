"""`perfsuite bisect` on real TCG guests: a generated history whose one commit slows the disk.

The "build" of each commit is a wrapper around the system QEMU (tests/bisect_repo.py); from
the planted commit on it gives null-co a 50 ms completion latency, which caps a queue depth
of 16 at ~320 IOPS, far below what the TCG guest does without it (thousands): a step no host
noise can hide, so the test checks the mechanics (the right commit, the builds, the skip,
resume, no QEMU left), not statistical power (that is benchmarks/bench_bisect.py).
"""

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from bisect_repo import make_repo, write_recipe  # noqa: E402
from qemu_procs import our_qemus  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.qemu

MATRIX = f"""[defaults]
fio_job = "{REPO / 'jobs' / 'fio.job'}"
backend = "null-co"
memory_mb = 512
iodepth = 16
runtime = 2
ramp = 1

[matrix]
smp = 1
dataplane = true
"""


def setup(tmp_path, broken=()):
    hashes = make_repo(tmp_path / "src", 8, 5, latency_ns=50_000_000, broken=broken)
    (tmp_path / "m.toml").write_text(MATRIX)
    (tmp_path / "tmp").mkdir()
    args = [sys.executable, "-m", "perfsuite.cli", "bisect", str(tmp_path / "m.toml"),
            "--src", str(tmp_path / "src"), "--good", hashes[0], "--bad", hashes[-1],
            "--recipe", str(write_recipe(tmp_path / "recipe.sh")), "--accel", "tcg",
            "--results-dir", str(tmp_path / "res"), "--format", "json"]
    # every guest's work dir (and so its command line) lives under tmp_path: our_qemus finds them
    env = {**os.environ, "CI": "true", "TMPDIR": str(tmp_path / "tmp")}
    return hashes, args, env


def test_bisect_names_the_commit_that_slows_the_disk(tmp_path):
    hashes, args, env = setup(tmp_path)
    p = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=1200)
    assert p.returncode == 0, p.stderr
    d = orjson.loads(p.stdout)
    assert d["status"] == "found"
    assert d["first_bad"]["hash"] == hashes[5]
    assert d["first_bad"]["subject"] == "commit 5: disk completion latency"
    assert d["first_bad"]["author_date"].startswith("2026-01-06")
    assert d["totals"]["builds"] <= math.ceil(math.log2(8)) + 2
    assert d["confirm"]["decision"] == "reproduced" and d["confirm"]["configs"][0]["ratio"] < 0.5
    for s in d["steps"]:
        assert s["decision"] in ("good", "bad")
        assert s["configs"][0]["error_probability"] <= d["alpha_per_call"]
        want = "bad" if hashes.index(s["commit"]["hash"]) >= 5 else "good"
        assert s["decision"] == want
    assert d["stated_bound"] <= 0.05 + 1e-9
    res = tmp_path / "res"
    assert (res / "result.md").read_text().startswith("**first bad commit: " + hashes[5])
    assert "git bisect bad " + hashes[5] in (res / "bisect.log").read_text()
    assert our_qemus(tmp_path) == []


def test_interrupted_bisect_resumes_and_skips_a_commit_that_does_not_build(tmp_path):
    hashes, args, env = setup(tmp_path, broken=(3,))
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=tmp_path)
    runs = tmp_path / "res" / "runs"
    deadline = time.monotonic() + 300
    results = lambda: sorted(runs.glob("*/*/*[0-9].json"))  # noqa: E731
    while time.monotonic() < deadline and proc.poll() is None and len(results()) < 2:
        time.sleep(0.2)
    done = results()
    assert len(done) >= 2, proc.communicate()[1]
    # in the middle of the confirmation; SIGTERM unwinds as Ctrl-C does (a test run in the
    # background may have SIGINT ignored, so Ctrl-C itself cannot be sent reliably)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "rerun the same command to resume" in err
    assert our_qemus(tmp_path) == []
    stamps = {f: f.stat().st_mtime_ns for f in done}
    builds = {f: f.stat().st_mtime_ns for f in (tmp_path / "res" / "builds").glob("*.json")}
    assert len(builds) == 2                  # the endpoints, finished before the first boot

    p = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=1200)
    assert p.returncode == 0, p.stderr
    d = orjson.loads(p.stdout)
    assert d["first_bad"]["hash"] == hashes[5]
    assert {f: f.stat().st_mtime_ns for f in done} == stamps        # no boot made twice
    assert all(f.stat().st_mtime_ns == t for f, t in builds.items())  # no build made twice
    # git bisect's first midpoint of this linear history is commit 3, which does not build
    skipped = [s for s in d["steps"] if s["decision"] == "skip"]
    assert [s["commit"]["hash"] for s in skipped] == [hashes[3]]
    assert "build failed" in skipped[0]["reason"] and skipped[0]["boots"] == 0
    assert "git bisect skip " + hashes[3] in (tmp_path / "res" / "bisect.log").read_text()
    assert our_qemus(tmp_path) == []
