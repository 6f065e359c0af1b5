"""The runner loop with a fake launcher (no QEMU): files, meta, resume, timeout, retries,
failures, interruption, the runs-dir lock."""

from __future__ import annotations

import json

import orjson
import pytest
from filelock import FileLock

from perfsuite.run import oneboot
from perfsuite.run import runner as runner_mod
from perfsuite.run.boot import BootResult, Timeouts
from perfsuite.matrix.config import Config
from perfsuite.qemu.accel import AccelChoice
from perfsuite.run.runner import (RunOptions, Runner, RunnerError, complete_reps, run_config,
                              run_matrix, runs_lock)

FIO = json.dumps({"fio version": "fio-3.33", "jobs": [{"read": {"iops": 1000.0}}]})


class FakeBoot:
    """Finishes one repetition per poll, as `script(name, rep, attempt)` says:
    "ok", "hang" (never finishes), "fail" (fio exits 1), "crash" (QEMU exits), "nostart"."""

    def __init__(self, c, reps, workdir, script, log, attempts, guest):
        self.c, self.reps, self.workdir, self.script, self.log = c, list(reps), workdir, script, log
        self.attempts, self._guest = attempts, guest
        self.argv = ["fake-qemu", "-name", c.name, str(workdir)]
        self.device = {"num-queues": c.num_queues, "queue-size": c.queue_size,
                       "iothread": "io0" if c.dataplane else None}
        self.i = 0
        self.failed: dict[int, int] = {}
        self._exited = False
        self.finished_with = None
        workdir.mkdir(parents=True, exist_ok=True)

    def _what(self, n):
        self.attempts[(self.c.name, n)] = self.attempts.get((self.c.name, n), 0) + 1
        return self.script(self.c.name, n, self.attempts[(self.c.name, n)])

    def start(self):
        self.log.append(("boot", self.c.name, tuple(self.reps)))
        if self.reps and self.script(self.c.name, self.reps[0], 0) == "nostart":
            self.attempts[(self.c.name, self.reps[0])] = self.attempts.get((self.c.name, self.reps[0]), 0) + 1
            raise RuntimeError("qemu-system-x86_64: -device bogus: not found")

    def poll_new(self):
        if self._exited or self.i >= len(self.reps):
            self._exited = True
            return {}
        n = self.reps[self.i]
        what = self._what(n) if not getattr(self, "_hanging", False) else "hang"
        if what == "hang":
            self._hanging = True
            return {}
        self.i += 1
        if what == "ok":
            p = self.workdir / f"{n}.json"
            p.write_text(FIO)
            return {n: p}
        if what == "fail":
            self.failed[n] = 1
        if what == "crash":
            self._exited = True
        if what == "interrupt":
            raise KeyboardInterrupt
        return {}

    def failed_reps(self):
        return dict(self.failed)

    def guest_info(self):
        return self._guest(self.c)

    def exited(self):
        return self._exited

    def console(self):
        return f"console of {self.c.name} boot {self.reps}\n"

    def finish(self, status, error):
        self.finished_with = status
        self.log.append(("finish", self.c.name, status))
        return BootResult(status, error, 0)

    def cleanup(self):
        pass


def seen_ok(c):
    return {"cpus_online": c.smp, "queues": min(c.num_queues, c.smp), "kernel": "6.1",
            "fio_version": "fio-3.33", "scheduler": "none"}


def make_runner(tmp_path, script=lambda name, n, a: "ok", guest=seen_ok, **opts):
    log, attempts = [], {}
    counter = iter(range(10_000))

    def launcher(c, reps, *, accel, poweroff):
        return FakeBoot(c, reps, tmp_path / "work" / f"b{next(counter)}", script, log, attempts, guest)
    r = Runner(options=RunOptions(**{"accel": "tcg", **opts}), launcher=launcher,
               accel_choice=AccelChoice("tcg", "KVM probe failed (test); using TCG"))
    r.log = log
    return r


@pytest.fixture(autouse=True)
def fast(monkeypatch):
    monkeypatch.setattr(oneboot, "POLL", 0.001)
    monkeypatch.setattr(oneboot, "boot_timeouts", lambda c, a, o=None: Timeouts(0.3, 0.3, 0.1))
    monkeypatch.setattr(oneboot, "versions", lambda q: {"qemu": "7.2.22", "host_fio": "fio-3.33"})


C1 = Config(label="t", smp=2)
C2 = Config(label="t", smp=2, num_queues=1)


def boots(r):
    return [e for e in r.log if e[0] == "boot"]


def test_all_ok_one_boot_per_config(tmp_path):
    r = make_runner(tmp_path, repeat=3)
    out = run_matrix([C1, C2], tmp_path / "runs", r)
    assert [o.status for o in out] == ["ok"] * 6
    assert boots(r) == [("boot", C1.name, (1, 2, 3)), ("boot", C2.name, (1, 2, 3))]
    d = tmp_path / "runs" / C1.name
    assert sorted(p.name for p in d.iterdir()) == sorted(
        f"{n}.{ext}" for n in (1, 2, 3) for ext in ("json", "meta.json", "log"))
    assert (d / "2.json").read_text() == FIO  # exactly as fio wrote it
    meta = orjson.loads((d / "2.meta.json").read_bytes())
    assert meta["status"] == "ok" and meta["rep"] == 2 and meta["boot"] == 1
    assert meta["accel"] == "tcg" and "using TCG" in meta["accel_note"]
    assert meta["config"]["num_queues"] == 2 and meta["mismatch"] == []
    assert meta["guest"]["queues"] == 2 and meta["qemu_argv"][0] == "fake-qemu"
    assert complete_reps(d) == {1, 2, 3}


def test_fresh_guest_boots_per_repetition(tmp_path):
    r = make_runner(tmp_path, repeat=3, fresh_guest=True)
    run_config(C1, tmp_path / "runs", 3, r)
    assert [b[2] for b in boots(r)] == [(1,), (2,), (3,)]
    metas = [orjson.loads((tmp_path / "runs" / C1.name / f"{n}.meta.json").read_bytes()) for n in (1, 2, 3)]
    assert [m["boot"] for m in metas] == [1, 2, 3]


def test_resume_skips_complete_repetitions(tmp_path):
    run_config(C1, tmp_path / "runs", 3, make_runner(tmp_path))
    (tmp_path / "runs" / C1.name / "2.json").unlink()
    r = make_runner(tmp_path)
    out = run_config(C1, tmp_path / "runs", 3, r)
    assert [(o.rep, o.status) for o in out] == [(1, "skipped"), (2, "ok"), (3, "skipped")]
    assert boots(r) == [("boot", C1.name, (2,))]
    r = make_runner(tmp_path)
    assert all(o.status == "skipped" for o in run_config(C1, tmp_path / "runs", 3, r))
    assert boots(r) == []
    r = make_runner(tmp_path, resume=False)
    assert all(o.status == "ok" for o in run_config(C1, tmp_path / "runs", 3, r))
    assert boots(r) == [("boot", C1.name, (1, 2, 3))]


def test_resume_refuses_repetitions_made_with_other_settings(tmp_path):
    # the run name does not hold iodepth or the binary: a patched QEMU with the same version
    # label (or another queue depth) must not "skip" into the old build's numbers
    runs = tmp_path / "runs"
    run_config(C1, runs, 2, make_runner(tmp_path))
    deeper = C1.replace(iodepth=C1.iodepth * 2)
    assert deeper.name == C1.name
    for call in (lambda r: run_config(deeper, runs, 2, r), lambda r: run_matrix([C2, deeper], runs, r)):
        r = make_runner(tmp_path)
        with pytest.raises(RunnerError, match=r"repetition\(s\) 1, 2 made with other settings "
                                              r"\(iodepth 32, now 64\).*--no-resume"):
            call(r)
        assert boots(r) == []  # nothing launched, not even the matrix's first config
    patched = C1.replace(qemu="/opt/qemu-patched/bin/qemu-system-x86_64")
    with pytest.raises(RunnerError, match="qemu"):
        run_config(patched, runs, 2, make_runner(tmp_path))
    # the same settings spelled differently still resume: job path relative to another cwd
    moved = C1.replace(fio_job="../elsewhere/jobs/" + C1.fio_job.split("/")[-1])
    assert all(o.status == "skipped" for o in run_config(moved, runs, 2, make_runner(tmp_path)))
    # --no-resume is the way to replace them
    r = make_runner(tmp_path, resume=False)
    assert all(o.status == "ok" for o in run_config(deeper, runs, 2, r))
    assert all(o.status == "skipped" for o in run_config(deeper, runs, 2, make_runner(tmp_path)))


def test_resume_keeps_repetitions_of_another_runtime_with_a_warning(tmp_path):
    # runtime/ramp change how long fio measured, not what: kept, but said
    runs = tmp_path / "runs"
    run_config(C1, runs, 2, make_runner(tmp_path))
    longer = C1.replace(runtime=C1.runtime + 10)
    notes = []
    r = make_runner(tmp_path, repeat=2)
    r.on_event = lambda kind, **d: notes.append(d.get("text")) if kind == "note" else None
    assert all(o.status == "skipped" for o in run_matrix([longer], runs, r))
    assert any(n and n.startswith("warning:") and "runtime 60, now 70" in n for n in notes), notes


def test_a_guest_image_that_cannot_be_built_is_a_runner_error(monkeypatch):
    # perfsuite run caught RunnerError only: apt offline while building the image was a traceback
    import perfsuite.guest as guest
    from perfsuite.guest import ImageError

    def fail(**kw):
        raise ImageError("apt cannot resolve linux-image-amd64; pass --kernel PATH")
    monkeypatch.setattr(guest, "ensure_image", fail)
    with pytest.raises(RunnerError, match="guest image: apt cannot resolve"):
        Runner().get_image()


def test_a_runs_dir_that_cannot_be_created_is_a_runner_error(tmp_path):
    (tmp_path / "afile").write_text("x")
    r = make_runner(tmp_path, repeat=1)
    for bad in (tmp_path / "afile", tmp_path / "afile" / "runs"):
        with pytest.raises(RunnerError, match="cannot use .* as the runs directory"):
            run_matrix([C1], bad, r)
    assert boots(r) == []


def test_explicit_repetition_numbers(tmp_path):
    r = make_runner(tmp_path)
    run_config(C1, tmp_path / "runs", [2, 4], r)
    assert complete_reps(tmp_path / "runs" / C1.name) == {2, 4}


def test_timeout_kills_keeps_log_and_goes_on(tmp_path):
    script = lambda name, n, a: "hang" if n == 2 else "ok"  # noqa: E731
    run_config(C1, tmp_path / "runs", 3, make_runner(tmp_path))  # an earlier complete run
    r = make_runner(tmp_path, script=script, resume=False)
    out = run_config(C1, tmp_path / "runs", 3, r)
    assert [(o.rep, o.status) for o in out] == [(1, "ok"), (2, "timeout"), (3, "ok")]
    d = tmp_path / "runs" / C1.name
    assert not (d / "2.json").exists()  # --no-resume: the stale result went with the re-run
    meta = orjson.loads((d / "2.meta.json").read_bytes())
    assert meta["status"] == "timeout" and "did not finish in time" in meta["error"]
    assert (d / "2.log").read_text().startswith("console of")
    assert boots(r) == [("boot", C1.name, (1, 2, 3)), ("boot", C1.name, (3,))]
    assert ("finish", C1.name, "timeout") in r.log
    assert complete_reps(d) == {1, 3}


def test_retries_give_failed_repetitions_another_boot(tmp_path):
    script = lambda name, n, a: "fail" if (n == 1 and a == 1) else "ok"  # noqa: E731
    r = make_runner(tmp_path, script=script, retries=1)
    out = run_config(C1, tmp_path / "runs", 2, r)
    assert [(o.rep, o.status, o.attempts) for o in out] == [(1, "ok", 2), (2, "ok", 1)]
    meta = orjson.loads((tmp_path / "runs" / C1.name / "1.meta.json").read_bytes())
    assert meta["status"] == "ok" and meta["attempt"] == 2


def test_fio_failure_without_retries_is_marked(tmp_path):
    r = make_runner(tmp_path, script=lambda name, n, a: "fail" if n == 1 else "ok")
    out = run_config(C1, tmp_path / "runs", 2, r)
    assert [(o.rep, o.status) for o in out] == [(1, "failed"), (2, "ok")]
    meta = orjson.loads((tmp_path / "runs" / C1.name / "1.meta.json").read_bytes())
    assert "fio exited with status 1" in meta["error"]
    assert len(boots(r)) == 1


def test_crash_and_refused_start_terminate(tmp_path):
    r = make_runner(tmp_path, script=lambda name, n, a: "crash" if n == 2 else "ok")
    out = run_config(C1, tmp_path / "runs", 3, r)
    assert [(o.rep, o.status) for o in out] == [(1, "ok"), (2, "failed"), (3, "ok")]
    r = make_runner(tmp_path, script=lambda name, n, a: "nostart", resume=False)
    out = run_config(C2, tmp_path / "runs", 2, r)
    assert [o.status for o in out] == ["failed", "failed"]
    meta = orjson.loads((tmp_path / "runs" / C2.name / "1.meta.json").read_bytes())
    assert "QEMU did not start" in meta["error"] and "bogus" in meta["error"]


def test_mismatch_is_recorded_but_run_kept(tmp_path):
    r = make_runner(tmp_path, guest=lambda c: {**seen_ok(c), "queues": 1})
    run_config(C1, tmp_path / "runs", 1, r)
    meta = orjson.loads((tmp_path / "runs" / C1.name / "1.meta.json").read_bytes())
    assert meta["status"] == "ok" and meta["mismatch"] == ["queues: asked 2, guest saw 1"]


def test_interrupt_stops_the_guest_and_keeps_completed(tmp_path):
    r = make_runner(tmp_path, script=lambda name, n, a: "interrupt" if n == 2 else "ok")
    with pytest.raises(KeyboardInterrupt):
        run_matrix([C1, C2], tmp_path / "runs", r)
    assert ("finish", C1.name, "interrupted") in r.log
    assert complete_reps(tmp_path / "runs" / C1.name) == {1}
    assert not (tmp_path / "runs" / C2.name).exists()
    assert not runs_lock(tmp_path / "runs").is_locked  # released on the way out


def test_lock_keeps_a_second_runner_out(tmp_path):
    (tmp_path / "runs").mkdir()
    other = FileLock(runs_lock(tmp_path / "runs").lock_file)  # as another process would
    with other:
        with pytest.raises(RunnerError, match="another perfsuite runner"):
            run_matrix([C1], tmp_path / "runs", make_runner(tmp_path))
    run_matrix([C1], tmp_path / "runs", make_runner(tmp_path, repeat=1))


def test_no_temp_files_left(tmp_path):
    run_matrix([C1], tmp_path / "runs", make_runner(tmp_path, repeat=2))
    # dot files are atomic-write temporaries; the runs dir's lock is the one that stays
    assert not [p for p in (tmp_path / "runs").rglob("*")
                if p.name.startswith(".") and p.name != ".perfsuite.lock"]


def test_events_for_progress(tmp_path):
    events = []
    r = make_runner(tmp_path, repeat=2)
    r.on_event = lambda kind, **d: events.append((kind, d.get("rep"), d.get("status")))
    run_matrix([C1], tmp_path / "runs", r)
    assert [e for e in events if e[0] == "rep"] == [("rep", 1, "ok"), ("rep", 2, "ok")]
    assert events[0][0] == "boot"




def test_progress_plain_and_fancy():
    import io

    from perfsuite.run.progress import Progress
    s = io.StringIO()
    with Progress(total=2, stream=s) as p:
        assert not p.fancy  # not a TTY
        p.event("boot", name="n", reps=[1, 2], accel="tcg")
        p.event("rep", name="n", rep=1, status="ok")
        p.event("rep", name="n", rep=2, status="timeout", error="late")
        p.event("note", text="KVM probe failed; using TCG")
    out = s.getvalue()
    assert "boot n [tcg] repetitions 1,2" in out and "n #2: timeout: late" in out
    assert "[2/2" in out and "using TCG" in out
    q = io.StringIO()
    with Progress(total=1, stream=q, quiet=True) as p:
        p.event("rep", name="n", rep=1, status="ok")
    assert q.getvalue() == ""
    f = io.StringIO()
    p = Progress(total=1, stream=f)
    p.fancy = True  # as on a terminal
    with p:
        p.event("boot", name="n", reps=[1], accel="tcg")
        p.event("rep", name="n", rep=1, status="failed", error="x")
    assert "n #1: failed: x" in f.getvalue()


# ----------------------------------------------------------------------------- boots x repeat

def test_boots_are_interleaved_across_configs_and_numbered(tmp_path):
    r = make_runner(tmp_path, repeat=2, boots=3)
    out = run_matrix([C1, C2], tmp_path / "runs", r)
    assert [(b[1], b[2]) for b in boots(r)] == [
        (C1.name, (1, 2)), (C2.name, (1, 2)), (C1.name, (3, 4)), (C2.name, (3, 4)),
        (C1.name, (5, 6)), (C2.name, (5, 6))]
    assert [o.status for o in out] == ["ok"] * 12
    for c in (C1, C2):
        d = tmp_path / "runs" / c.name
        got = {n: orjson.loads((d / f"{n}.meta.json").read_bytes())["boot"] for n in range(1, 7)}
        assert got == {1: 1, 2: 1, 3: 2, 4: 2, 5: 3, 6: 3}


def test_resume_works_boot_by_boot(tmp_path):
    r = make_runner(tmp_path, repeat=2, boots=3)
    run_matrix([C1], tmp_path / "runs", r)
    d = tmp_path / "runs" / C1.name
    for n in (3, 4):  # boot 2 lost
        (d / f"{n}.json").unlink()
    r2 = make_runner(tmp_path, repeat=2, boots=3)
    out = run_matrix([C1], tmp_path / "runs", r2)
    assert [b[2] for b in boots(r2)] == [(3, 4)]
    assert [o.status for o in out] == ["skipped", "skipped", "ok", "ok", "skipped", "skipped"]
    assert orjson.loads((d / "3.meta.json").read_bytes())["boot"] == 2


def test_a_continuation_boot_gets_a_number_after_the_planned_ones(tmp_path):
    # boot 1 times out at repetition 2: repetition 3... of that slot go to a new guest, which is
    # another boot (the statistics treat boots as units), numbered after the design's 2
    r = make_runner(tmp_path, script=lambda name, n, a: "hang" if (n, a) == (2, 1) else "ok",
                    repeat=3, boots=2)
    run_matrix([C1], tmp_path / "runs", r)
    d = tmp_path / "runs" / C1.name
    got = {n: orjson.loads((d / f"{n}.meta.json").read_bytes())["boot"] for n in range(1, 7)}
    assert got[1] == 1 and got[2] == 1 and got[3] == 3 and got[4] == got[5] == got[6] == 2


def test_boot_plan_is_pure_and_interleaved():
    plan = runner_mod.boot_plan([C1, C2], boots=2, repeat=1)
    assert [(c.name, b, reps) for c, b, reps in plan] == [
        (C1.name, 1, [1]), (C2.name, 1, [1]), (C1.name, 2, [2]), (C2.name, 2, [2])]
