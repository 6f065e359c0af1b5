"""Plausibility checks: each finding fires when (and only when) its condition holds."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from perfsuite.analysis.checks import LITTLE_FLOOR, LITTLE_TOLERANCE, Finding, check_runs, row_facts
from perfsuite.model.fit import Model
from perfsuite.model.simulate import seed_matrix, simulate
from perfsuite.analysis.results import load_runs


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """Synthetic seed-matrix runs with little noise: nothing to complain about."""
    out = tmp_path_factory.mktemp("runs")
    truth = simulate(seed_matrix(), out, repeat=5, cv=0.01, seed=7, accel="tcg", host_cpus=2)
    return load_runs(out).frame, truth


def names(findings, severity="warning", text=""):
    return sorted({f.name for f in findings if f.severity == severity and text in f.message})


def test_clean_synthetic_runs_raise_no_warning(clean):
    frame, _ = clean
    assert names(check_runs(frame)) == []


def test_finding_str_is_name_colon_message():
    f = Finding("v4-smp-4-dataplane", "warning", "something is off")
    assert str(f) == "v4-smp-4-dataplane: something is off"


def test_guest_saw_fewer_queues(clean):
    frame = clean[0].copy()
    row = "v4-smp-4-dataplane"
    frame.loc[frame.name == row, "queues_seen"] = 1
    found = check_runs(frame)
    assert names(found, text="queue") == [row]
    msg = next(f.message for f in found if f.name == row and "queue" in f.message)
    assert "expected 4" in msg


def test_more_queues_than_vcpus_is_expected_not_a_mismatch(clean):
    # num-queues 4 on 1 vCPU: Linux uses min(4, 1) = 1 queue, so seeing 1 is right.
    frame = clean[0].copy()
    row = "v4-smp-1-dataplane"
    frame.loc[frame.name == row, "num_queues"] = 4
    frame.loc[frame.name == row, "queues_seen"] = 1
    found = check_runs(frame)
    assert row not in names(found, text="queue")
    assert row in names(found, "info", "idle")


def test_guest_saw_fewer_cpus(clean):
    frame = clean[0].copy()
    frame.loc[frame.name == "v4-smp-4-no-dataplane", "cpus_seen"] = 2
    assert names(check_runs(frame), text="CPU") == ["v4-smp-4-no-dataplane"]


def test_result_outside_the_models_band(clean):
    frame = clean[0].copy()
    row = "v4-smp-4-no-dataplane"
    frame.loc[frame.name == row, "iops"] *= 6
    assert names(check_runs(frame, band=True), text="plausible band") == [row]
    # the band costs a model fit: only on request (analyze --model, the report)
    assert names(check_runs(frame), text="plausible band") == []


def test_mixed_versions_and_accelerators(clean):
    frame = clean[0].copy()
    idx = frame.index[frame.name == "v4-smp-1-dataplane"]
    frame.loc[idx[0], "qemu_version"] = "8.2.0"
    frame.loc[idx[1], "accel"] = "kvm"
    found = check_runs(frame)
    assert names(found, text="QEMU versions") == ["v4-smp-1-dataplane"]
    assert names(found, text="accelerators") == ["v4-smp-1-dataplane"]


def test_noisy_rows_are_named_for_re_running(clean):
    frame = clean[0].copy()
    idx = frame.index[frame.name == "v4-smp-4-dataplane-no-mq"]
    frame.loc[idx[0], "iops"] *= 1.5
    found = check_runs(frame)
    assert "v4-smp-4-dataplane-no-mq" in names(found, text="re-run")
    summary = [f for f in found if f.name == "re-run"]
    assert len(summary) == 1 and "v4-smp-4-dataplane-no-mq" in summary[0].message


def test_spread_warning_says_it_is_the_iops_half_range(clean):
    # `analyze --metric disk-read-ios --error ci95` prints other numbers in the table; the
    # warning must say which statistic of which metric it judged
    frame = clean[0].copy()
    idx = frame.index[frame.name == "v4-smp-4-dataplane-no-mq"]
    frame.loc[idx[0], "iops"] *= 1.5
    msg = [f.message for f in check_runs(frame) if f.name == "v4-smp-4-dataplane-no-mq"
           and "re-run" in f.message]
    assert len(msg) == 1 and msg[0].startswith("IOPS spread ±") and "(half-range)" in msg[0]


def _frame(rows):
    base = dict(label="t", smp=4, num_queues=4, dataplane=True, numjobs=4, iodepth=32, accel="kvm",
                rw="randread", bs="4k")
    return pd.DataFrame([{**base, **r} for r in rows])


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 16), q=st.integers(2, 16), jobs=st.integers(1, 16), gain=st.floats(0.2, 20))
def test_mq_gain_flagged_exactly_beyond_its_bound(n, q, jobs, gain):
    base = 100_000.0
    rows = []
    for rep in range(3):  # identical repetitions: the only tolerance is the 10% floor
        rows.append(dict(name="mq", rep=str(rep), iops=base * gain, smp=n, num_queues=q, numjobs=jobs))
        rows.append(dict(name="single", rep=str(rep), iops=base, smp=n, num_queues=1, numjobs=jobs))
    found = check_runs(_frame(rows), model=Model())
    flagged = "mq" in names(found, text="multiqueue gain")
    bound = min(q, n, jobs)
    if gain > bound * 1.1 * (1 + 1e-9):
        assert flagged
    elif gain < bound * 1.1 * (1 - 1e-9):
        assert not flagged


def test_three_x_multiqueue_gain_on_one_vcpu_is_flagged():
    rows = [dict(name="smp1-mq", rep="1", iops=300_000.0, smp=1, num_queues=4, numjobs=1),
            dict(name="smp1-mq", rep="2", iops=301_000.0, smp=1, num_queues=4, numjobs=1),
            dict(name="smp1", rep="1", iops=100_000.0, smp=1, num_queues=1, numjobs=1),
            dict(name="smp1", rep="2", iops=101_000.0, smp=1, num_queues=1, numjobs=1)]
    assert names(check_runs(_frame(rows)), text="multiqueue gain") == ["smp1-mq"]


@settings(max_examples=40, deadline=None)
@given(jobs=st.integers(1, 8), depth=st.integers(1, 64), ratio=st.floats(0.01, 5.0),
       iops=st.floats(1e3, 1e6))
def test_littles_law(jobs, depth, ratio, iops):
    cap = jobs * depth
    lat_us = ratio * cap / iops * 1e6  # so that IOPS x latency = ratio x cap
    rows = [dict(name="r", rep=str(k), iops=iops, lat_mean_us=lat_us, numjobs=jobs, iodepth=depth)
            for k in range(2)]
    found = check_runs(_frame(rows), model=Model())
    broken = "r" in names(found, text="broken measurement")
    starved = "r" in names(found, "info", "bottleneck")
    eps = 1e-6
    assert broken == (ratio > (1 + LITTLE_TOLERANCE) * (1 + eps)) or abs(ratio - 1 - LITTLE_TOLERANCE) < eps
    if cap >= 2 and ratio < LITTLE_FLOOR * (1 - eps):
        assert starved
    if ratio >= LITTLE_FLOOR * (1 + eps):
        assert not starved


def test_frames_without_meta_or_latency_do_not_crash():
    frame = pd.DataFrame({"name": ["a", "a", "b"], "rep": ["1", "2", "1"], "iops": [1.0, 1.05, 2.0]})
    found = check_runs(frame)
    assert names(found, "info", "spread unknown") == ["b"]
    assert check_runs(frame.iloc[0:0]) == []


def test_real_fio_files_parse_into_checkable_frames(data_dir, tmp_path):
    # Real fio outputs with no meta: only the meta-free checks can speak.
    import shutil
    for i, f in enumerate(sorted((data_dir / "fio").glob("fio3-*.json"))[:3], start=1):
        (tmp_path / "x").mkdir(exist_ok=True)
        shutil.copy(f, tmp_path / "x" / f"{i}.json")
    frame = load_runs(tmp_path).frame  # the enospc run is excluded (fio reported an error)
    found = check_runs(frame)
    assert [(f.name, f.kind) for f in found] == [("x", "spread"), ("re-run", "")]
    assert "over 2 runs" in found[0].message


def test_many_rows_with_one_finding_are_one_line_naming_them(clean):
    from perfsuite.analysis.checks import condense

    frame = clean[0].copy()
    noisy = sorted(frame["name"].unique())
    for n in noisy:  # every row: a spread far above the limit
        frame.loc[(frame.name == n) & (frame.rep == frame.loc[frame.name == n, "rep"].iloc[0]), "iops"] *= 2
    found = check_runs(frame)
    assert sum(f.kind == "spread" for f in found) == len(noisy) > 3
    short = condense(found, max_names=2)
    spread_lines = [line for line in short if "too high to trust" in line]
    assert len(spread_lines) == 1 and spread_lines[0].startswith(f"warning: {len(noisy)} rows: ")
    assert spread_lines[0].count(" (±") == 2 and f"and {len(noisy) - 2} more" in spread_lines[0]
    assert not any("re-run:" in line for line in short)  # the same names, once
    every = condense(found, max_names=None)
    assert all(n in next(x for x in every if "too high to trust" in x) for n in noisy)
    # a lone finding keeps its own message
    one = [f for f in found if f.kind == "spread"][:1]
    assert condense(one) == [f"warning: {one[0]}"]


def _two_depth_doc(iops_each: float, lat_us: tuple[float, float]) -> dict:
    """fio 3 JSON with two job sections: iodepth 1 and iodepth 32, one job each."""
    doc = json.loads((Path(__file__).parent / "data" / "fio" / "fio3-null-2jobs-jsonplus.json").read_text())
    for job, (name, depth), lat in zip(doc["jobs"], (("shallow", "1"), ("deep", "32")), lat_us):
        job["jobname"] = name
        job["job options"] = {**job["job options"], "name": name, "iodepth": depth, "numjobs": "1"}
        job["read"]["iops"] = iops_each
        job["read"]["clat_ns"]["mean"] = lat * 1e3
        job["read"]["total_ios"] = int(iops_each)
    return doc


def test_littles_law_sums_the_depth_of_every_job_section(tmp_path):
    # 1 + 32 I/Os can be in flight; at 10,000 IOPS each, the shallow job (100 us) keeps 1 and
    # the deep one (3 ms) 30 in flight: 31 <= 33. The first job's iodepth x 2 jobs = 2 called
    # that a broken measurement.
    from perfsuite.analysis.fio import parse_bytes

    doc = _two_depth_doc(10_000.0, (100.0, 3000.0))
    rec = parse_bytes(json.dumps(doc).encode())
    assert (rec["numjobs"], rec["iodepth"], rec["iodepth_total"]) == (2, 1, 33)
    for rep in ("1", "2"):
        (tmp_path / "mixed").mkdir(exist_ok=True)
        (tmp_path / "mixed" / f"{rep}.json").write_text(json.dumps(doc))
    loaded = load_runs(tmp_path)
    assert names(check_runs(loaded.runs), text="broken measurement") == []
    facts = row_facts(loaded.runs)
    assert facts["mixed"].cap == 33 and facts["mixed"].inflight == pytest.approx(31.0)
    # the old cap (first section's depth x jobs) is what a frame without iodepth_total falls back to
    old = loaded.frame.drop(columns=["iodepth_total"])
    assert names(check_runs(old), text="broken measurement") == ["mixed"]
    # over the real cap it is still broken
    doc = _two_depth_doc(10_000.0, (100.0, 7000.0))
    for rep in ("1", "2"):
        (tmp_path / "mixed" / f"{rep}.json").write_text(json.dumps(doc))
    assert names(check_runs(load_runs(tmp_path).runs), text="broken measurement") == ["mixed"]
