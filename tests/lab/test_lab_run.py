"""A real lab on this machine: two sshd "hosts", `lab setup` of a venv on each from this
checkout, then `lab run` of TCG guests (2 s of fio) through real Ansible, with faults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labhosts import Sshd, processes_mentioning

pytestmark = [pytest.mark.qemu, pytest.mark.lab, pytest.mark.timeout(1200)]

PERFSUITE = [sys.executable, "-m", "perfsuite.cli"]
RUN = ["--boots", "1", "--repeat", "2", "--runtime", "2", "--ramp", "0", "--accel", "tcg", "--poll", "2"]

MATRIX = """\
[defaults]
fio_job = "fio.job"
backend = "null-co"
memory_mb = 512
iodepth = 8
[matrix]
smp = 1
dataplane = [true, false]
queue_size = [128, 256]
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory, client_key):
    from conftest import Lab
    root = tmp_path_factory.mktemp("lab")
    lab = Lab(root, client_key, ["h1", "h2"]).start()
    jobs = root / "jobs"
    jobs.mkdir()
    (jobs / "lab.toml").write_text(MATRIX)
    (jobs / "fio.job").write_text((Path(__file__).parents[2] / "jobs" / "fio.job").read_text())
    lab.matrix = jobs / "lab.toml"
    (jobs / "night.toml").write_text(MATRIX.replace("queue_size = [128, 256]", "queue_size = 256"))
    (jobs / "one.toml").write_text(MATRIX.replace("dataplane = [true, false]", "dataplane = true")
                                   .replace("queue_size = [128, 256]", "queue_size = 128"))
    lab.one = jobs / "one.toml"
    lab.inv = lab.inventory()
    first = perfsuite("lab", "setup", str(lab.inv))
    assert first.returncode == 0, first.stdout + first.stderr
    lab.first_setup = first.stdout
    yield lab
    lab.stop()
    for pid, _ in processes_mentioning(str(root)):  # anything a failed test left behind
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def perfsuite(*args: str, timeout: float = 900, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*PERFSUITE, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd)


def metas(runs: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(runs.rglob("*.meta.json"))]


def qemu_of(lab) -> list[tuple[int, str]]:
    return processes_mentioning(str(lab.root), "qemu-system")


def test_setup_twice_changes_nothing_and_says_so(lab):
    assert "h1: changed:" in lab.first_setup and "perfsuite" in lab.first_setup
    again = perfsuite("lab", "setup", str(lab.inv))
    assert again.returncode == 0, again.stderr
    assert "h1: already set up, nothing changed" in again.stdout
    assert "h2: already set up, nothing changed" in again.stdout
    assert "all 2 host(s) already set up: nothing changed" in again.stdout
    for h in lab.hosts:  # each host runs its own venv's perfsuite
        assert (h.lab_dir / "venv" / "bin" / "perfsuite").exists()


def test_setup_installs_the_builds_a_matrix_names_once(lab):
    """A git: spec of the builds tests' stand-in repository (its build wraps the system QEMU:
    seconds, not the 6 minutes of a real tree): each host builds it with its own perfsuite
    into its own cache; a second setup finds it cached and says nothing changed."""
    from test_builds import make_standin
    repo = make_standin(lab.root)
    spec = f"git:{repo}@HEAD"
    matrix = lab.root / "jobs" / "builds.toml"
    matrix.write_text(lab.one.read_text().replace("[defaults]\n", f'[defaults]\nqemu = "{spec}"\nlabel = "standin"\n'))
    first = perfsuite("lab", "setup", str(lab.inv), "--matrix", str(matrix))
    assert first.returncode == 0, first.stdout + first.stderr
    assert "h1: changed: qemu builds" in first.stdout and "h2: changed: qemu builds" in first.stdout
    for h in lab.hosts:   # in the host's cache, where its `perfsuite run` looks
        env = {**os.environ, "PERFSUITE_CACHE": str(h.lab_dir / "cache")}
        got = subprocess.run([str(h.lab_dir / "venv" / "bin" / "perfsuite"), "build", "list", "--json"],
                             capture_output=True, text=True, env=env, check=True)
        assert [b["spec"] for b in json.loads(got.stdout)] == [spec]
    again = perfsuite("lab", "setup", str(lab.inv), "--build", spec)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "all 2 host(s) already set up: nothing changed" in again.stdout
    bad = perfsuite("lab", "setup", str(lab.inv), "--build", "git:@v1")
    assert bad.returncode == 2 and "git:@v1" in bad.stderr and "Traceback" not in bad.stderr
    # the hosts' runs use that build from their caches (its provenance in every meta)
    runs = lab.root / "runs-builds"
    out = perfsuite("lab", "run", str(lab.inv), str(matrix), "--runs-dir", str(runs), "--spread",
                    "--boots", "2", "--repeat", "1", "--poll", "2", *TINY)
    assert out.returncode == 0, out.stderr
    ms = metas(runs)
    assert len(ms) == 2 and {m["lab"]["host"] for m in ms} == {"h1", "h2"}
    assert all(m["status"] == "ok" and m["build"]["spec"] == spec and m["name"].startswith("standin-")
               for m in ms)
    assert all(f"{m['lab']['host']}/lab/cache/builds/" in m["qemu_argv"][0] for m in ms)


def test_lab_run_completes_and_every_result_names_its_host(lab):
    from labhosts import free_port, inventory_yaml
    runs = lab.root / "runs-complete"
    gone = Sshd("gone", lab.root / "gone", free_port())   # unreachable from the start
    inv = lab.root / "with-gone.yml"
    inv.write_text(inventory_yaml(lab.hosts + [gone], lab.key))
    out = perfsuite("lab", "run", str(inv), str(lab.matrix), "--runs-dir", str(runs), *RUN)
    assert out.returncode == 0, out.stderr
    assert "gone lost (unreachable" in out.stderr
    ms = metas(runs)
    assert len(ms) == 8 and all(m["status"] == "ok" for m in ms)
    assert {m["lab"]["host"] for m in ms} == {"h1", "h2"}  # balanced: both hosts ran some
    assert all(m["lab"]["class"] == "default" for m in ms)
    for name in {m["name"] for m in ms}:  # all repetitions of a configuration on one host
        assert len({m["lab"]["host"] for m in ms if m["name"] == name}) == 1
    names = sorted(p.name for p in runs.iterdir())
    assert all(n in out.stdout for n in names)  # the analyzer's table of the whole lab
    # a second run resumes: nothing left to do, nothing dispatched
    again = perfsuite("lab", "run", str(lab.inv), str(lab.matrix), "--runs-dir", str(runs), *RUN)
    assert again.returncode == 0 and "started" not in again.stderr
    assert len(metas(runs)) == 8
    assert qemu_of(lab) == []


def _wait(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_ctrl_c_on_the_controller_leaves_no_qemu_on_any_host(lab):
    runs = lab.root / "runs-interrupted"
    proc = subprocess.Popen([*PERFSUITE, "lab", "run", str(lab.inv), str(lab.matrix),
                             "--runs-dir", str(runs), *RUN], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        _wait(lambda: {h.name for h in lab.hosts if any(str(h.lab_dir) in c for _, c in qemu_of(lab))}
              == {"h1", "h2"}, 300, "a guest on both hosts")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "stopping the runs on every host" in err
    assert qemu_of(lab) == []
    assert processes_mentioning(str(lab.root), "perfsuite run") == []


def test_lab_nightly_interleaves_on_each_host_and_records_the_hosts(lab):
    import sqlite3
    results = lab.root / "nightly"
    qemu = "/usr/bin/qemu-system-x86_64"
    out = perfsuite("lab", "nightly", str(lab.inv), "--matrix", str(lab.matrix.parent / "night.toml"),
                    "--baseline-qemu", qemu, "--candidate-qemu", qemu, "--night", "n1",
                    "--results-dir", str(results), "--boots", "2", "--runtime", "2", "--ramp", "0",
                    "--accel", "tcg", "--poll", "2")
    assert out.returncode in (0, 1), out.stderr     # same build twice: no verdict is forced
    assert "class default (hosts h1, h2):" in out.stdout and "smp-1-dataplane" in out.stdout
    ms = metas(results / "nights" / "n1" / "runs")
    assert len(ms) == 8 and all(m["status"] == "ok" for m in ms)
    for rest in ("smp-1-dataplane", "smp-1-no-dataplane"):
        mine = [m for m in ms if m["name"].endswith(rest)]
        assert len({m["lab"]["host"] for m in mine}) == 1      # a pair stays on one host
        order = [(m["started"], m["config"]["label"], m["rep"]) for m in mine]
        assert [(lab_, rep) for _, lab_, rep in sorted(order)] == [
            ("baseline", 1), ("candidate", 1), ("baseline", 2), ("candidate", 2)]
    db = sqlite3.connect(results / "history.sqlite")
    assert db.execute("SELECT host FROM nights WHERE night = 'n1'").fetchone() == ("h1, h2",)
    assert (results / "nights" / "n1" / "summary.md").exists()


def test_killed_host_has_its_remaining_configurations_finish_elsewhere(lab):
    runs = lab.root / "runs-fault"
    h2 = lab.host("h2")
    proc = subprocess.Popen([*PERFSUITE, "lab", "run", str(lab.inv), str(lab.matrix),
                             "--runs-dir", str(runs), *RUN], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        # h2's first result is home: it still has repetitions and a configuration to go
        _wait(lambda: any(m["lab"]["host"] == "h2" for m in metas(runs)), 400, "a result of h2")
        h2.kill()                                  # ssh gone, sessions too
        for pid, _cmd in processes_mentioning(str(h2.lab_dir), "perfsuite run"):
            os.kill(pid, signal.SIGKILL)           # and its perfsuite (QEMU dies with it)
        out, err = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
        h2.start(Path(f"{lab.key}.pub"))           # back for later tests
    assert proc.returncode == 0, err
    assert "h2 lost" in err
    ms = metas(runs)
    reps = sorted((m["name"], m["rep"]) for m in ms)
    assert len(reps) == 8 and len(set(reps)) == 8  # every repetition, none twice
    assert all(m["status"] == "ok" for m in ms)
    moved = [m for m in ms if m["lab"]["host"] == "h1"]
    assert len(moved) > 4                           # h1 finished h2's share
    assert any(m["lab"]["host"] == "h2" for m in ms)  # h2's finished results are kept
    assert processes_mentioning(str(h2.lab_dir), "qemu-system") == []


TINY = ["--runtime", "2", "--ramp", "0", "--accel", "tcg"]


def test_spread_puts_the_boots_of_one_configuration_on_both_hosts(lab):
    runs = lab.root / "runs-spread"
    args = [str(lab.inv), str(lab.one), "--runs-dir", str(runs), "--spread", "--boots", "2",
            "--repeat", "1", "--poll", "2", *TINY]
    out = perfsuite("lab", "run", *args)
    assert out.returncode == 0, out.stderr
    ms = metas(runs)
    assert len(ms) == 2 and len({m["name"] for m in ms}) == 1 and all(m["status"] == "ok" for m in ms)
    # boot k holds repetition k (repeat 1); each boot on its own host, and the meta says which
    assert sorted((m["boot"], m["rep"]) for m in ms) == [(1, 1), (2, 2)]
    assert {m["lab"]["host"] for m in ms} == {"h1", "h2"}
    assert "1 boot(s) of 1 configuration(s)" in out.stderr
    again = perfsuite("lab", "run", *args)     # resume: nothing left, nothing dispatched
    assert again.returncode == 0 and "started" not in again.stderr
    assert len(metas(runs)) == 2
    assert qemu_of(lab) == []


def test_lab_table_is_the_local_table_within_noise(lab):
    """The same one-configuration matrix (2 boots x 2 repetitions) run here and through the
    lab: the lab adds nothing to the numbers. Assumed: per-boot log IOPS are normal with the
    same mean on both sides (same machine, same QEMU, one guest at a time: a lone
    configuration runs on one host), so compare's 95% Welch CI of the ratio covers 1 except
    5% of the time; its width comes from the boot-to-boot spread seen in these very runs.
    Both run from one folder with the same relative matrix path, as a user would: the
    fio_job each meta records (relative to the cwd) is then the same, and compare matches."""
    local, remote = lab.root / "runs-local", lab.root / "runs-lab"
    design = ["--boots", "2", "--repeat", "2", *TINY]
    matrix = str(lab.one.relative_to(lab.root))
    here = perfsuite("run", matrix, "--runs-dir", str(local), "--quiet", *design, cwd=lab.root)
    assert here.returncode == 0, here.stderr
    there = perfsuite("lab", "run", str(lab.inv), matrix, "--runs-dir", str(remote),
                      "--poll", "2", *design, cwd=lab.root)
    assert there.returncode == 0, there.stderr
    assert sorted(p.name for p in local.iterdir() if p.is_dir()) == \
        sorted(p.name for p in remote.iterdir() if p.is_dir())
    got = perfsuite("compare", str(local), str(remote), "--format", "json")
    assert got.returncode in (0, 1), got.stderr
    rows = json.loads(got.stdout)["rows"]
    assert len(rows) == 1
    r = rows[0]
    seen = {k: r[k] for k in ("mean_base", "mean_cand", "ratio", "ci_low", "ci_high", "ci_rays",
                              "p", "verdict")}
    assert (r["n_base"], r["n_cand"]) == (2, 2), seen   # boots are the unit on both sides
    if r["ci_rays"]:   # Fieller's set is two rays (a mean not clearly above 0): outside the gap
        assert not r["ci_low"] < 1.0 < r["ci_high"], seen
    else:
        assert r["ci_low"] <= 1.0 <= r["ci_high"], seen
    assert r["verdict"] not in ("regression", "improvement"), seen


def test_rebooted_host_comes_back_and_nothing_is_counted_twice(lab):
    runs = lab.root / "runs-reboot"
    h2 = lab.host("h2")
    err_path = lab.root / "reboot.err"
    with open(err_path, "w") as err_f:
        proc = subprocess.Popen([*PERFSUITE, "lab", "run", str(lab.inv), str(lab.matrix),
                                 "--runs-dir", str(runs), *RUN], stdout=subprocess.PIPE,
                                stderr=err_f, text=True)
        try:
            _wait(lambda: any(m["lab"]["host"] == "h2" for m in metas(runs)), 400, "a result of h2")
            h2.kill()                               # the "reboot": ssh gone, sessions too,
            for pid, _cmd in processes_mentioning(str(h2.lab_dir), "perfsuite run"):
                os.kill(pid, signal.SIGKILL)        # its perfsuite and QEMU gone
            _wait(lambda: "h2 lost" in err_path.read_text(), 300, "the controller to lose h2")
            h2.start(Path(f"{lab.key}.pub"))        # the host is up again
            out, _ = proc.communicate(timeout=900)
        finally:
            if proc.poll() is None:
                proc.kill()
            if h2.proc is None:
                h2.start(Path(f"{lab.key}.pub"))
    err = err_path.read_text()
    assert proc.returncode == 0, err
    assert "h2 lost" in err and "h2 is back" in err
    ms = metas(runs)
    reps = sorted((m["name"], m["rep"]) for m in ms)
    assert len(reps) == 8 and len(set(reps)) == 8 and all(m["status"] == "ok" for m in ms)
    assert any(m["lab"]["host"] == "h2" for m in ms)       # its finished results are kept
    assert processes_mentioning(str(h2.lab_dir), "qemu-system") == []
    assert processes_mentioning(str(lab.root), "perfsuite run") == []
