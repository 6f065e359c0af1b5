"""End to end with real guests (TCG is fine): `perfsuite nightly` must call the same QEMU
"no regression" against itself, and a regression when the candidate's disk sits behind a
throttle-group IOPS limit at 85% of the baseline's mean where the night's noise lets the test
resolve it -- elsewhere "inconclusive" with the runs it would take, never "no change".

Kept short for CI: one configuration, 2 s of fio, 3-4 pairs per night. Only QEMU processes
whose command line holds this test's tmp path are looked at (others may be running guests).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from qemu_procs import our_qemus

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(1500)]

REPO = Path(__file__).resolve().parent.parent
QEMU = "qemu-system-x86_64"


def nightly(tmp: Path, night: str, repeat: int, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    argv = [sys.executable, "-m", "perfsuite.cli", "nightly", "--baseline-qemu", QEMU,
            "--candidate-qemu", QEMU, "--matrix", str(REPO / "jobs" / "ci.toml"),
            "--only", "*-smp-2-dataplane", "--boots", str(repeat), "--runtime", "2", "--ramp", "0",
            "--accel", "tcg", "--results-dir", str(tmp / "res"), "--work-root", str(tmp / "w"),
            "--night", night, "--no-html", *extra]
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=1400,
                          env={**os.environ, "CI": "true"})
    doc_path = tmp / "res" / "nights" / night / "compare.json"
    doc = json.loads(doc_path.read_text()) if doc_path.exists() else {}
    return proc, doc


@pytest.fixture(scope="module")
def image():
    from perfsuite.guest import ensure_image
    return ensure_image(log=lambda m: None)


@pytest.fixture
def workdir():
    # Not pytest's tmp_path: its base directory is rotated by other pytest sessions on the
    # same machine, which may delete it while these minutes-long guests still write there.
    d = Path(tempfile.mkdtemp(prefix="perfsuite-nightly-qemu-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_self_is_no_regression_and_throttle_is_one(workdir, image):
    from perfsuite.analysis.stats import reps_needed, welch_power

    tmp_path = workdir
    aa, doc = nightly(tmp_path, "aa", 4)
    assert aa.returncode == 0, aa.stderr[-3000:]
    (row,) = doc["rows"]
    assert row["verdict"] != "regression" and row["n_base"] == row["n_cand"] == 4
    base_mean = row["mean_base"]

    # A 15% drop is only resolvable if this host's run-to-run noise allows it within the
    # budget: short TCG runs on 2 cores may not (CV 13-30% seen). Whatever the noise, the
    # pipeline must never call the throttled build "no change" or an improvement, and when it
    # cannot tell it must say how many runs would. It must call it a regression where the
    # night's own noise gave the test near-certain power (a quiet host; KVM) -- judged on the
    # throttled night itself, since 4 A/A runs predict the next night's noise too poorly.
    cv = max(row["cv_base"], row["cv_cand"])
    budget = 10
    needed = int(reps_needed(cv, cv, 0.15, alpha=0.05, power=0.8))
    limit = int(0.85 * base_mean)
    thr, doc = nightly(tmp_path, "throttled", min(budget, max(4, needed)), "--throttle-iops", str(limit))
    assert thr.returncode in (0, 1), thr.stderr[-3000:]
    (row,) = doc["rows"]
    assert row["mean_cand"] <= 1.05 * limit  # the throttle really held the candidate down
    assert our_qemus(tmp_path) == []
    assert row["verdict"] in ("inconclusive", "regression"), row
    assert thr.returncode == (1 if row["verdict"] == "regression" else 0), thr.stderr[-3000:]
    if row["verdict"] == "inconclusive":
        assert row["reps_needed"] > row["n_base"], row  # it says what would resolve it
    # Power for a 10% drop, not 15%: the limit was set from the A/A night's mean, and the host
    # may drift by a few % between nights.
    power = float(welch_power(0.10, row["cv_base"], row["cv_cand"], row["n_base"], row["n_cand"]))
    if power >= 0.99:
        assert row["verdict"] == "regression", (power, row)
    # Both nights are in the history with their exit codes.
    hist = subprocess.run([sys.executable, "-m", "perfsuite.cli", "history", "--results-dir",
                           str(tmp_path / "res"), "--format", "json"], capture_output=True, text=True)
    nights = {n["night"]: n["exit_code"] for n in json.loads(hist.stdout)["nights"]}
    assert nights == {"aa": 0, "throttled": thr.returncode}
