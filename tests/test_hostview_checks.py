"""The host view's checks: a saturated IOThread, a noisy host, the model's bottleneck vs
the measured saturated thread; each fires when (and only when) its condition holds."""

from __future__ import annotations

import pytest

from perfsuite.analysis.checks import check_runs
from perfsuite.analysis.results import load_runs
from perfsuite.analysis.summary import summarize
from perfsuite.hostview.findings import OTHER_PCT, SATURATED, STEAL_PCT
from perfsuite.model.simulate import seed_matrix, simulate
from perfsuite.report.table import render


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    simulate(seed_matrix(), out, repeat=5, cv=0.01, seed=7, accel="tcg", host_cpus=2)
    return load_runs(out).frame


def quiet(frame):
    f = frame.copy()
    f["cpu_vcpu_pct"], f["cpu_main_pct"], f["steal_pct"] = 50.0, 20.0, 0.0
    f["cpu_iothread_pct"] = f["dataplane"].map(lambda d: 40.0 if d else None).astype(float)
    f["host_busy_pct"], f["host_other_pct"], f["host_other"] = 60.0, 2.0, "sshd (pid 1)"
    return f


def found(findings, text, severity=None):
    return sorted({f.name for f in findings if text in f.message
                   and (severity is None or f.severity == severity)})


ROW = "v4-smp-4-dataplane"


def test_quiet_host_raises_nothing(clean):
    out = check_runs(quiet(clean))
    assert found(out, "noisy host") == [] and found(out, "IOThread saturated") == []
    assert found(out, "main loop saturated") == []


def test_saturated_iothread(clean):
    f = quiet(clean)
    f.loc[f.name == ROW, "cpu_iothread_pct"] = SATURATED + 1
    assert found(check_runs(f), "IOThread saturated") == [ROW]
    f.loc[f.name == ROW, "cpu_iothread_pct"] = SATURATED - 1
    assert found(check_runs(f), "IOThread saturated") == []


def test_steal_makes_a_noisy_host_and_a_rerun(clean):
    f = quiet(clean)
    f.loc[(f.name == ROW) & (f.rep == "3"), "steal_pct"] = STEAL_PCT
    out = check_runs(f)
    assert found(out, "noisy host: steal", "warning") == [ROW]
    assert any(x.name == "re-run" and ROW in x.message for x in out)
    f.loc[f.name == ROW, "steal_pct"] = STEAL_PCT - 0.1
    assert found(check_runs(f), "noisy host") == []


def test_another_busy_process_is_named(clean):
    f = quiet(clean)
    sel = (f.name == ROW) & (f.rep == "2")
    f.loc[sel, "host_other_pct"], f.loc[sel, "host_other"] = OTHER_PCT + 5, "stress (pid 77)"
    msgs = [x.message for x in check_runs(f) if x.name == ROW and "another process" in x.message]
    assert len(msgs) == 1 and "stress (pid 77)" in msgs[0] and "repetition 2" in msgs[0]


def test_model_bottleneck_against_the_saturated_thread(clean):
    f = quiet(clean)
    # smp-1 dataplane: the model (fitted on these synthetic runs) names one stage
    row = "v4-smp-1-dataplane"
    f.loc[f.name == row, "cpu_vcpu_pct"] = 99.0
    out = [x.message for x in check_runs(f, band=True) if x.name == row and "bottleneck stage" in x.message]
    assert len(out) == 1
    assert ("agree" in out[0]) or "measured: vcpu thread at 99%" in out[0]
    # the other way round: the IOThread saturated instead
    f.loc[f.name == row, ["cpu_vcpu_pct", "cpu_iothread_pct"]] = [40.0, 99.0]
    out2 = [x.message for x in check_runs(f, band=True) if x.name == row and "bottleneck stage" in x.message]
    assert len(out2) == 1 and out2 != out
    # a fully busy host: the threads' shares say nothing about the workload
    f.loc[f.name == row, ["cpu_iothread_pct", "host_busy_pct"]] = [40.0, 100.0]
    out3 = [x.message for x in check_runs(f, band=True) if x.name == row and "bottleneck stage" in x.message]
    assert len(out3) == 1 and "not held against" in out3[0]


def test_no_host_columns_no_host_findings(clean):
    out = check_runs(clean)
    assert found(out, "noisy host") == [] and found(out, "bottleneck stage") == []


def test_summary_csv_and_json_carry_the_cpu_columns(clean):
    import orjson
    f = quiet(clean)
    s = summarize(f)
    csv = render(s, "csv").splitlines()
    assert csv[0] == "name,mean,error_pct,n,cpu_vcpu_pct,cpu_iothread_pct,cpu_main_pct,steal_pct"
    assert csv[1].endswith(",50.0,,20.0,0.0") or csv[1].endswith(",50.0,40.0,20.0,0.0")
    rows = orjson.loads(render(s, "json"))["rows"]
    assert rows[0]["cpu_vcpu_pct"] == 50.0 and rows[0]["steal_pct"] == 0.0
    # runs without a host view: the seed's four columns, nothing more
    assert render(summarize(clean), "csv").splitlines()[0] == "name,mean,error_pct,n"


def test_compare_names_a_row_run_under_different_host_load(clean):
    from perfsuite.analysis.comparison import compare
    base = quiet(clean)
    cand = quiet(clean)
    cand.loc[cand.name == ROW, "host_busy_pct"] = 100.0
    cand.loc[cand.name == ROW, "host_other_pct"] = 80.0
    c = compare(base, cand)
    hits = [w for w in c.warnings if "different host load" in w]
    assert len(hits) == 1 and "smp-4-dataplane:" in hits[0] and "80% of a core" in hits[0]
    assert [w for w in compare(base, quiet(clean)).warnings if "host load" in w] == []
