"""perfsuite migrate without QEMU: job phases, schedule, timeline and dip, records, the
init script's normal path, and bad input that launches nothing."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from perfsuite.errors import BadInput
from perfsuite.guest import GuestPlan, write_plan
from perfsuite.guest.init_script import INIT_SCRIPT
from perfsuite.guest.protocol import plan_sh
from perfsuite.migrate import job, store, timeline as tl
from perfsuite.migrate.hop import HopResult, stats_from_query
from perfsuite.migrate.scenario import verdict

REPO = Path(__file__).resolve().parent.parent
JOB = (REPO / "jobs" / "fio-migrate.job").read_text()

# sha256 of INIT_SCRIPT without the mode branch: the normal path must stay this text (updated
# when the normal path itself changed: hostview's measured-window markers, docs/hostview.md)
NORMAL_INIT_SHA256 = "ea9740560a416d23b45e4a19a68e5a0a8cffea80c7c5ac3d891a08293c3bed16"


# --- the guest's normal path is unchanged ---------------------------------------------------

def test_init_script_without_the_mode_branch_is_the_normal_path_byte_for_byte():
    stripped = re.sub(r"# ---- BEGIN mode branch.*?# ---- END mode branch ----\n", "",
                      INIT_SCRIPT, flags=re.S)
    assert stripped != INIT_SCRIPT
    assert hashlib.sha256(stripped.encode()).hexdigest() == NORMAL_INIT_SHA256


def test_normal_plan_does_not_mention_a_mode(tmp_path):
    write_plan(tmp_path, GuestPlan(repetitions=[1]))
    assert "MODE_SCRIPT" not in (tmp_path / "plan.sh").read_text()
    assert "mode_script" not in (tmp_path / "plan.json").read_text()
    text = plan_sh(GuestPlan(mode_script="migrate.sh"))
    assert "MODE_SCRIPT=migrate.sh" in text and text.rstrip().splitlines()[-1].startswith("set --")


def test_mode_branch_sources_the_script_in_a_real_shell(tmp_path):
    """The branch as busybox runs it: the script is copied off W and its effects are seen."""
    branch = re.search(r"# ---- BEGIN mode branch.*?# ---- END mode branch ----\n", INIT_SCRIPT,
                       re.S).group(0)
    (tmp_path / "m.sh").write_text('echo "mode ran with W=$W"\n')
    script = (f'W={tmp_path}; MODE_SCRIPT=m.sh; die() {{ echo "die $*"; exit 3; }}; '
              f'finish() {{ echo finished; exit 0; }}\n{branch}echo "normal path"\n')
    out = subprocess.run(["/bin/busybox", "sh", "-c", script], capture_output=True, text=True)
    assert out.stdout.splitlines() == [f"mode ran with W={tmp_path}", "finished"]


@pytest.mark.parametrize("bad", ["../x.sh", "/tmp/x.sh", "d/x.sh"])
def test_mode_script_must_be_a_name_in_the_work_dir(bad):
    with pytest.raises(ValueError):
        GuestPlan(mode_script=bad)


# --- job phases and schedule ---------------------------------------------------------------

def test_phases_share_regions_and_set_what_each_needs():
    ph = job.render_phases(JOB, runtime=12, device="/dev/vda")
    secs = {p: job.parse_sections(t) for p, t in ph.items()}
    for p in ph:
        names = [s.name for s in secs[p]]
        assert names == ["global", "qd1", "qd4", "qd16", "qd32"]
        g = dict(x.split("=", 1) for x in secs[p][0].lines)
        assert g["filename"] == "/dev/vda" and g["verify"] == "crc32c"
        assert g["verify_state_save"] == "0"
    w = dict(x.split("=", 1) for x in secs["write"][0].lines)
    assert (w["runtime"], w["time_based"], w["do_verify"], w["log_avg_msec"]) == ("12", "1", "0", "100")
    f = dict(x.split("=", 1) for x in secs["fill"][0].lines)
    v = dict(x.split("=", 1) for x in secs["verify"][0].lines)
    assert (f["rw"], f["time_based"]) == ("write", "0") and "runtime" not in f
    assert (v["rw"], v["do_verify"]) == ("read", "1") and "write_iops_log" not in v
    depths = [dict(x.split("=", 1) for x in s.lines)["iodepth"] for s in secs["write"][1:]]
    assert depths == ["1", "4", "16", "32"]
    assert ph["write"].count("runtime=") == 1  # the job file's own runtime=20 is replaced


def test_a_job_without_verification_or_regions_is_refused():
    with pytest.raises(BadInput, match="verify"):
        job.check_job("[global]\nrw=randwrite\n[a]\nsize=1M\n")
    with pytest.raises(BadInput, match=r"\[b\] needs size="):
        job.check_job("[global]\nverify=crc32c\n[a]\nsize=1M\n[b]\niodepth=4\n")
    with pytest.raises(BadInput, match="no job section"):
        job.check_job("[global]\nverify=crc32c\n")


def test_schedule():
    assert job.schedule(3, None, 1, 10) == [3]
    assert job.schedule(2, 2, 3, 10) == [2, 4, 6]
    with pytest.raises(BadInput, match="longer --runtime"):
        job.schedule(3, 3, 3, 10)
    with pytest.raises(BadInput):
        job.schedule(0, None, 1, 10)


# --- timeline and dip ---------------------------------------------------------------------

def test_iops_log_is_parsed_and_jobs_summed_per_bin():
    a = tl.parse_iops_log("102, 600, 1, 0, 0\n203, 700, 1, 0, 0\n210, 5, 0, 0, 0\n")
    b = tl.parse_iops_log("99, 100, 1, 0, 0\n105, 300, 1, 0, 0\n201, 200, 1, 0, 0\n")
    assert a == [(102, 600.0), (203, 700.0)]
    # b has two entries in bin 0/1: 99 -> bin 0, 105 -> bin 1
    assert tl.merge([a, b]) == [(0, 100.0), (100, 900.0), (200, 900.0)]
    # a late entry (bin 5 after bin 2) is fio's mean over bins 3-5
    assert tl.merge([[(250, 10.0), (580, 40.0)]]) == [(200, 10.0), (300, 40.0), (400, 40.0), (500, 40.0)]
    assert tl.read_timeline_csv(tl.timeline_csv([(0, 1.0), (100, 2.5)])) == [(0, 1.0), (100, 2.5)]


def _flat(value, t_from, t_to):
    return [(t, value) for t in range(t_from, t_to, 100)]


def test_dip_depth_and_recovery():
    tline = _flat(1000, 0, 3000) + _flat(400, 3000, 3500) + _flat(100, 3500, 3700) \
        + _flat(800, 3700, 4000) + _flat(1000, 4000, 7000)
    d = tl.dip(tline, 3000, 3600)
    assert d.baseline_iops == 1000 and d.trough_iops == 100
    assert d.depth == pytest.approx(0.9)
    # recovery: the first bin from which the next 10 bins average >= 950, after the end (3600)
    # from 3700: (3 x 800 + 7 x 1000) / 10 = 940 < 950; from 3800: 960
    assert d.recovered and d.recover_ms == pytest.approx(3800 - 3600)


def test_no_dip_recovers_at_the_switch_over_and_never_recovering_is_said():
    flat = _flat(1000, 0, 8000)
    d = tl.dip(flat, 3000, 3500)
    assert d.depth == 0 and d.recover_ms == 0
    low = _flat(1000, 0, 3000) + _flat(500, 3000, 8000)
    d = tl.dip(low, 3000, 3500)
    assert not d.recovered and d.recover_ms is None and d.depth == pytest.approx(0.5)
    assert tl.dip(low, 0, 100).baseline_iops is None  # nothing before the start


def test_hop_marks_move_later_migrations_onto_the_guest_clock():
    hops = [HopResult(1, "completed", started_s=2.0, ended_s=3.0, downtime_ms=100),
            HopResult(2, "completed", started_s=5.0, ended_s=5.5, downtime_ms=50)]
    m = store.hop_marks(hops)
    assert m[0] == {"start_ms": 2000, "end_ms": 2900}
    assert m[1] == {"start_ms": 4900, "end_ms": 5350}


def test_record_summary_over_completed_migrations():
    tline = _flat(1000, 0, 10000)
    hops = [HopResult(1, "completed", started_s=2.0, ended_s=3.0, total_time_ms=1000,
                      downtime_ms=100, setup_time_ms=2, transferred_bytes=10),
            HopResult(2, "cancelled", started_s=5.0, ended_s=8.0, error="cancelled")]
    rec = store.migration_record(hops, tline, [2, 5], 1, {}, 0, {})
    s = rec["summary"]
    assert s["completed"] == 1 and s["downtime_ms"] == 100 and s["bytes"] == 10
    assert s["dip_depth"] == 0 and s["dip_recover_ms"] == 0
    assert "dip" not in rec["hops"][1]


def test_query_migrate_fields():
    info = {"status": "completed", "total-time": 900, "downtime": 40, "setup-time": 3,
            "ram": {"transferred": 123, "total": 1000, "mbps": 5.0, "remaining": 0}}
    s = stats_from_query(info)
    assert (s["total_time_ms"], s["downtime_ms"], s["setup_time_ms"], s["transferred_bytes"]) == \
        (900, 40, 3, 123)


def test_verdict_names_the_migration_a_failure_followed():
    ok = {"fill": 0, "write": 0, "verify": 0}
    assert verdict([HopResult(1, "completed")], ok, None, 1) == ("ok", None)
    st, err = verdict([HopResult(1, "completed")], ok | {"verify": 1}, None, 1)
    assert st == "failed" and "verify failed: exit status 1 (after migration 1)" in err
    st, err = verdict([HopResult(1, "not-started", error="destination QEMU of migration 1 did not start")],
                      ok, None, 0)
    assert st == "failed" and "did not start" in err


# --- the command refuses bad input before launching anything ------------------------------

def _cli(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "perfsuite.cli", "migrate", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, msg", [
    (["--at", "30", "--runtime", "10"], "would start at 30 s of a 10 s window"),
    (["--max-bandwidth", "lots"], "--max-bandwidth 'lots'"),
    (["--ramp", "2"], "no ramp"),
    (["no-such-matrix.toml"], "no-such-matrix.toml"),
])
def test_bad_input_is_one_line_and_exit_2(args, msg, tmp_path):
    p = _cli(*args, "--runs-dir", str(tmp_path / "runs"))
    assert p.returncode == 2, p.stderr
    assert msg in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_a_job_that_does_not_verify_is_refused(tmp_path):
    (tmp_path / "j.fio").write_text("[global]\nrw=randwrite\n[a]\nsize=1M\n")
    (tmp_path / "m.toml").write_text('[[config]]\nfio_job = "j.fio"\nruntime = 10\n')
    p = _cli(str(tmp_path / "m.toml"), "--runs-dir", str(tmp_path / "runs"))
    assert p.returncode == 2 and "must verify its data" in p.stderr


# --- the analyzer's migration columns ------------------------------------------------------

def test_analyzer_columns_come_from_the_migration_summary(tmp_path):
    import orjson
    import pandas as pd
    from perfsuite.analysis.results import load_runs
    seed = REPO / "examples" / "seed-qemu-7.2" / "qemu-7.2-smp-1-dataplane"
    for name, with_mig in (("mig", True), ("plain", False)):
        d = tmp_path / name
        d.mkdir()
        (d / "1.json").write_bytes((seed / "1.json").read_bytes())
        m = orjson.loads((seed / "1.meta.json").read_bytes())
        if with_mig:
            hops = [HopResult(1, "completed", started_s=2.0, ended_s=3.0, total_time_ms=800,
                              downtime_ms=40, setup_time_ms=2, transferred_bytes=5000)]
            m["migration"] = store.migration_record(hops, _flat(1000, 0, 8000), [2], 1, {}, 0, {})
        (d / "1.meta.json").write_bytes(orjson.dumps(m))
    f = load_runs(tmp_path).frame.set_index("name")
    assert f.loc["mig", "mig_downtime_ms"] == 40 and f.loc["mig", "mig_bytes"] == 5000
    assert f.loc["mig", "mig_total_time_ms"] == 800 and f.loc["mig", "mig_completed"] == 1
    assert f.loc["mig", "mig_dip_depth"] == 0 and f.loc["mig", "mig_dip_recover_ms"] == 0
    assert pd.isna(f.loc["plain", "mig_downtime_ms"])


def test_report_plots_the_timeline_with_the_migration_marked(tmp_path):
    import orjson
    seed = REPO / "examples" / "seed-qemu-7.2" / "qemu-7.2-smp-1-dataplane"
    d = tmp_path / "runs" / "it-smp-1-dataplane"
    d.mkdir(parents=True)
    (d / "1.json").write_bytes((seed / "1.json").read_bytes())
    m = orjson.loads((seed / "1.meta.json").read_bytes())
    tline = _flat(1000, 0, 3000) + _flat(200, 3000, 3500) + _flat(1000, 3500, 8000)
    hops = [HopResult(1, "completed", started_s=3.0, ended_s=3.6, downtime_ms=80)]
    m["migration"] = store.migration_record(hops, tline, [3], 1, {}, 0, {})
    m["migration"]["timeline"]["file"] = "1.iops.csv"
    (d / "1.iops.csv").write_text(tl.timeline_csv(tline))
    (d / "1.meta.json").write_bytes(orjson.dumps(m))
    p = subprocess.run([sys.executable, "-m", "perfsuite.cli", "report", str(tmp_path / "runs"),
                        "-o", str(tmp_path / "rep")], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    page = (tmp_path / "rep" / "index.html").read_text()
    section = page[page.index('<section id="migration">'):]
    assert "data:image/png;base64," in section.split("</section>")[0]


def test_a_guest_kernel_crash_after_a_migration_is_named():
    console = ("perfsuite-guest[23.96]: migrate: 1 write start\n"
               "[   32.446905] BUG: scheduling while atomic: swapper/3/0/0x00000002\n"
               "[   32.648729] Oops: 0011 [#1] PREEMPT SMP NOPTI\n")
    none = {"fill": None, "write": None, "verify": None}
    st, err = verdict([HopResult(1, "completed")], none, None, 1, console)
    assert st == "failed"
    assert "the guest kernel failed (after migration 1): BUG: scheduling while atomic" in err
    assert verdict([HopResult(1, "completed")], {"fill": 0, "write": 0, "verify": 0}, None, 1,
                   "perfsuite-guest[1.0]: done\n") == ("ok", None)
