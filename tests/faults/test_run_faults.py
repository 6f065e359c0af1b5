"""Faults of the runner that need no guest: bad matrices and job files, hostile labels and
paths, the lock across TMPDIRs, disk full, writes cut short, retries, dead runs' temp dirs.
The guest is the fake of tests/test_runner.py where a boot is needed (its files are real)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from faults.conftest import CI_MATRIX, FIO_JOB, REPO, clear
from perfsuite import rundir
from perfsuite.analysis.results import load_runs
from perfsuite.matrix.config import Config
from perfsuite.run import oneboot
from perfsuite.run.boot import Boot, Timeouts
from perfsuite.run.runner import run_config, run_matrix

import test_runner as tr  # the fake boot and runner


@pytest.fixture(autouse=True)
def fast(monkeypatch):
    monkeypatch.setattr(oneboot, "POLL", 0.001)
    monkeypatch.setattr(oneboot, "boot_timeouts", lambda c, a, o=None: Timeouts(0.3, 0.3, 0.1))
    monkeypatch.setattr(oneboot, "versions", lambda q: {"qemu": "7.2.22", "host_fio": "fio-3.33"})


def matrix(tmp: Path, body: str) -> Path:
    p = tmp / "m.toml"
    p.write_text(body)
    return p


# ----------------------------------------------------------------------------- bad input

BAD_MATRICES = [
    ("[matrix]\nsmp = [0]\n", "smp=0"),
    ("[matrix]\nsmp = 2\nnum_queues = 2000\n", "num_queues=2000"),
    ("[matrix\n", "not valid TOML"),
    ("[matrix]\nsmp = 2\nqueue_size = 3\n", "queue_size=3"),
    ('[matrix]\nsmp = 2\nfio_job = "missing.job"\n', "no such file"),
    ("[matrix]\nsmp = 2\nlabel = \"../../etc\"\n", "letters, digits"),
    ("[matrix]\nsmp = 2\nlabel = \"a b;rm -rf /\"\n", "letters, digits"),
    (f"[matrix]\nsmp = 2\nlabel = \"{'L' * 300}\"\n", "bytes: a run name becomes a directory name"),
]


@pytest.mark.parametrize("body,words", BAD_MATRICES)
def test_bad_matrix_is_one_clear_line_and_launches_nothing(case, body, words):
    m = matrix(case.root, body)
    proc = case.run("run", m, "--runs-dir", case.root / "runs", "--accel", "tcg")
    clear(proc.stderr)
    assert proc.returncode == 2 and words in proc.stderr, proc.stderr
    assert not (case.root / "runs").exists() and case.leftovers() == []


def test_300_character_label_is_refused_before_anything_is_made(case):
    # defect 4: was `OSError: [Errno 36] File name too long` from mkdir, after validation
    proc = case.run("run", CI_MATRIX, "--label", "x" * 300, "--runs-dir", case.root / "runs")
    clear(proc.stderr)
    assert proc.returncode == 2 and "at most 200 bytes" in proc.stderr
    assert not (case.root / "runs").exists()


def test_messages_name_files_absolutely(case):
    # defect 9: a relative path was printed relative to the cwd (../../data/x.img)
    sub = case.root / "a" / "b"
    sub.mkdir(parents=True)
    m = matrix(case.root, '[matrix]\nsmp = 2\nbackend = "file"\nbackend_path = "data/x.img"\n')
    proc = case.run("run", m, "--runs-dir", case.root / "runs", cwd=sub)
    clear(proc.stderr)
    assert proc.returncode == 2 and f"backend_path {case.root / 'data' / 'x.img'}:" in proc.stderr


def test_timeout_help_says_what_it_means(case):
    # defect 9: --timeout silently added a 90 s boot margin; the help now says so
    proc = case.run("run", "--help")
    text = " ".join(proc.stdout.split())
    assert proc.returncode == 0 and "boot's margin on top (90 s under TCG" in text


def test_dry_run_is_pasteable_into_a_shell(case):
    # defect 9: `<workdir>` placeholders made the output a shell syntax error
    proc = case.run("run", CI_MATRIX, "--dry-run", "--runs-dir", case.root / "runs")
    assert proc.returncode == 0 and "<" not in proc.stdout
    check = subprocess.run(["bash", "-n"], input=proc.stdout, text=True, capture_output=True)
    assert check.returncode == 0, check.stderr
    assert not (case.root / "runs").exists() and case.leftovers() == []


def test_non_utf8_job_file_is_rendered_byte_for_byte(tmp_path):
    # defect 2: a Latin-1 comment passed validation, then UnicodeDecodeError in boot.py and
    # an empty work dir left behind
    job = tmp_path / "latin1.job"
    job.write_bytes(FIO_JOB.read_bytes() + b"# caf\xe9 au lait\n")
    c = Config(label="l1", smp=1, fio_job=str(job))
    image = SimpleNamespace(kernel=Path("/k"), initrd=Path("/i"), fio_mode="initramfs")
    b = Boot(c, [1], image, accel="tcg", work_root=tmp_path / "w")
    assert b"# caf\xe9 au lait" in (b.workdir / "job.fio").read_bytes()
    b.cleanup()
    assert list((tmp_path / "w").iterdir()) == []


def test_unreadable_job_file_leaves_no_work_dir(tmp_path):
    from perfsuite.run.boot import BootError
    c = Config(label="gone", smp=1, fio_job=str(tmp_path / "nope.job"))
    with pytest.raises(BootError, match="cannot read the fio job /"):
        Boot(c, [1], SimpleNamespace(kernel=Path("/k"), initrd=Path("/i")), accel="tcg",
             work_root=tmp_path / "w")
    assert not (tmp_path / "w").exists() or list((tmp_path / "w").iterdir()) == []


# ----------------------------------------------------------------------------- the lock

def test_lock_holds_across_tmpdirs(case):
    # defect 5: the lock lived under $TMPDIR; a runner with another TMPDIR was not refused
    runs = case.root / "runs"
    runs.mkdir()
    lock = rundir.lock(runs)
    lock.acquire()
    try:
        other = {**case.env, "TMPDIR": str(case.root / "other-tmp")}
        (case.root / "other-tmp").mkdir()
        proc = case.run("run", CI_MATRIX, "--runs-dir", runs, *("--accel", "tcg"), env=other)
    finally:
        lock.release()
    clear(proc.stderr)
    assert proc.returncode == 2 and "another perfsuite runner is writing" in proc.stderr
    assert list(runs.iterdir()) == [runs / rundir.LOCK_NAME]


def test_concurrent_runners_in_one_process_share_the_lock(tmp_path):
    r = tr.make_runner(tmp_path, repeat=1)
    run_matrix([tr.C1], tmp_path / "runs", r)  # re-entrant: run_config inside run_matrix
    assert not rundir.lock(tmp_path / "runs").is_locked


# ----------------------------------------------------------------------------- disk full

@pytest.fixture
def tiny_fs(tmp_path):
    """A 64 KiB tmpfs of our own (we are root in CI); skipped where mount is not allowed."""
    d = tmp_path / "tiny"
    d.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(d)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield d
    subprocess.run(["umount", "-l", str(d)], check=False)


def test_disk_full_stops_with_a_clear_error_and_nothing_half_counts(tmp_path, tiny_fs):
    # defect 3: ENOSPC traceback from the meta write; 2.json stayed without 2.meta.json and
    # the resume and the analyzer counted it
    big = json.dumps({"fio version": "fio-3.33", "pad": "x" * 9000,
                      "jobs": [{"read": {"iops": 1000.0, "io_bytes": 4096}}]})
    r = tr.make_runner(tmp_path, repeat=40)
    tr.FIO_SAVED = tr.FIO
    try:
        tr.FIO = big
        with pytest.raises(oneboot.RecordError, match="No space left on device"):
            run_matrix([tr.C1], tiny_fs, r)
    finally:
        tr.FIO = tr.FIO_SAVED
    d = tiny_fs / tr.C1.name
    done = rundir.complete_reps(d)
    assert done, "some repetitions fit before the disk filled"
    for n in done:
        assert (d / f"{n}.meta.json").exists()
    assert set(map(int, load_runs(tiny_fs).frame["rep"])) == done
    assert r.log[-1][0] == "finish" and r.log[-1][2] == "interrupted"  # the guest was stopped


def test_result_write_cut_short_does_not_count(tmp_path, monkeypatch):
    # a signal (or a crash) between the meta and the result: the repetition does not count
    real = rundir.atomic_write_bytes

    def cut(path, data):
        if str(path).endswith("/2.json"):
            raise KeyboardInterrupt
        real(path, data)

    monkeypatch.setattr(rundir, "atomic_write_bytes", cut)
    with pytest.raises(KeyboardInterrupt):
        run_config(tr.C1, tmp_path / "runs", 3, tr.make_runner(tmp_path))
    d = tmp_path / "runs" / tr.C1.name
    assert rundir.complete_reps(d) == {1}
    assert list(load_runs(tmp_path / "runs").frame["rep"]) == ["1"]
    assert not [p for p in d.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")]


def test_old_half_written_tree_is_not_counted_by_anyone(tmp_path):
    # a tree from before the fix: 2.json without 2.meta.json beside complete repetitions
    d = tmp_path / "runs" / tr.C1.name
    run_config(tr.C1, tmp_path / "runs", 2, tr.make_runner(tmp_path))
    (d / "2.meta.json").unlink()
    assert rundir.complete_reps(d) == {1}
    res = load_runs(tmp_path / "runs")
    assert list(res.frame["rep"]) == ["1"]
    assert any("repetition 2 has a result but no meta" in w for w in res.warnings)
    out = run_config(tr.C1, tmp_path / "runs", 2, tr.make_runner(tmp_path))  # resume redoes 2
    assert [(o.rep, o.status) for o in out] == [(1, "skipped"), (2, "ok")]


# ----------------------------------------------------------------------------- evidence

def test_retry_keeps_the_failed_attempts_log_and_meta(tmp_path):
    # defect 9: a successful retry overwrote the failed attempt's log and meta
    r = tr.make_runner(tmp_path, script=lambda name, n, a: "fail" if a == 1 else "ok", retries=1)
    out = run_config(tr.C1, tmp_path / "runs", 1, r)
    assert [(o.rep, o.status, o.attempts) for o in out] == [(1, "ok", 2)]
    d = tmp_path / "runs" / tr.C1.name
    old = json.loads((d / "attempts" / "1.1.meta.json").read_text())
    assert old["status"] == "failed" and old["attempt"] == 1
    assert (d / "attempts" / "1.1.log").exists()
    assert json.loads((d / "1.meta.json").read_text())["attempt"] == 2
    assert list(load_runs(tmp_path / "runs").frame["rep"]) == ["1"]  # attempts/ is not a run


def test_qemu_killed_by_a_signal_says_so(tmp_path):
    # defect 9: a QEMU killed by a signal was reported only as "guest exited"
    r = tr.make_runner(tmp_path, script=lambda name, n, a: "crash")
    tr.FakeBoot.exit_code = lambda self: -9
    try:
        out = run_config(tr.C1, tmp_path / "runs", 1, r)
    finally:
        del tr.FakeBoot.exit_code
    assert out[0].status == "failed" and "QEMU was killed by SIGKILL before repetition 1" in out[0].error


def test_io_free_fio_run_is_failed_with_fios_words(tmp_path):
    # defect 6: fio exited 0 after "failed setting up IO queues" with 0 bytes: recorded ok
    # (the real guest case is in test_guest_faults.py; here fio's output as it wrote it)
    assert oneboot.fio_verdict(b'{"fio version": "fio-3.33", "jobs": [{"error": 0}]}')
    assert oneboot.fio_verdict(b'{"jobs": [{"error": 5, "read": {"iops": 9.0}}]}').startswith(
        "fio reported error 5")
    assert oneboot.fio_verdict(b'{"jobs": [{"error": 0, "read": {"iops": 9.0}}]}') is None
    r = tr.make_runner(tmp_path)
    tr.FIO_SAVED = tr.FIO
    try:
        tr.FIO = "fio: failed setting up IO queues\n" + json.dumps(
            {"fio version": "fio-3.33", "jobs": [{"error": 0, "read": {"iops": 0.0}}]})
        out = run_config(tr.C1, tmp_path / "runs", 1, r)
    finally:
        tr.FIO = tr.FIO_SAVED
    d = tmp_path / "runs" / tr.C1.name
    assert out[0].status == "failed" and "failed setting up IO queues" in out[0].error
    assert not (d / "1.json").exists()
    assert "failed setting up IO queues" in (d / "1.log").read_text()


# ----------------------------------------------------------------------------- dead runs

def test_work_dirs_of_a_dead_run_are_removed_by_the_next(tmp_path, monkeypatch):
    # defect 9: SIGKILL of perfsuite left its work dir and image dir; no later run cleaned them
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    dead = subprocess.run(["python3", "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp / "perfsuite-x-dead"
    stale.mkdir()
    (stale / ".perfsuite-owner").write_text(f"{dead} 1\n")
    foreign = tmp / "perfsuite-no-owner"  # not ours to judge: kept
    foreign.mkdir()
    from perfsuite.fsutil import owned_tempdir
    live = owned_tempdir("perfsuite-live-")
    run_matrix([tr.C1], tmp_path / "runs", tr.make_runner(tmp_path, repeat=1))
    assert not stale.exists() and foreign.exists() and live.exists()


def test_analyze_after_a_real_symlink_loop_in_the_runs_dir_itself(case):
    runs = case.root / "runs"
    runs.mkdir()
    os.symlink("loop", runs / "loop")
    proc = case.run("analyze", runs, cwd=REPO)
    clear(proc.stderr)
    assert proc.returncode == 2 and "no fio results" in proc.stderr


def test_fios_words_on_the_guest_console_are_kept(tmp_path):
    # what the real guest showed: fio's stderr is on the console, its output file has none
    console = ("perfsuite-guest[5.1]: repetition 1\nfio: failed setting up IO queues\n"
               "perfsuite-guest[5.9]: repetition 1: fio exited with status 0\n")
    said = oneboot.console_fio_lines(console, 1)
    assert said == "fio: failed setting up IO queues"
    assert oneboot.console_fio_lines(console, 2) is None
    why = oneboot.fio_verdict(b'{"jobs": [{"error": 0, "read": {"iops": 0.0}}]}', said)
    assert why == "fio did no I/O (0 IOPS, 0 bytes): fio: failed setting up IO queues"
