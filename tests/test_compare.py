"""perfsuite.analysis.comparison and `perfsuite compare`: matching, verdicts, renderers, exit codes,
and the A/A false-alarm / injected-drop claims at the seed's noise (CV 3-8%, 5 runs)."""

import json
import math
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from perfsuite.analysis import comparison as C
from perfsuite.report import verdicts as V
import synthetic
from perfsuite.commands.compare import compare as compare_cmd


def frame(label, means, cv=0.04, n=5, seed=0, qemu=None, extra=None):
    """A results frame (CONTRACTS.md section 3) with one name per smp value in `means`."""
    rng = np.random.default_rng(seed)
    rows = []
    for smp, mu in means.items():
        name = f"{label}-smp-{smp}-dataplane"
        for rep, v in enumerate(rng.normal(mu, cv * mu, n), 1):
            rows.append(dict(name=name, rep=rep, iops=v, lat_p99_us=1e7 / v, label=label, smp=smp,
                             dataplane=True, qemu=qemu or f"/opt/{label}/qemu", status="ok", **(extra or {})))
    return pd.DataFrame(rows)


def aa_frames(rows, cv, n, seed, drop=0.0):
    """Many configurations at once: baseline mean 1e5, candidate mean 1e5 * (1 - drop)."""
    rng = np.random.default_rng(seed)
    cvs = np.resize(cv, rows)
    out = []
    for label, mu in (("a", 1e5), ("b", 1e5 * (1 - drop))):
        v = rng.normal(mu, (cvs * mu)[:, None], (rows, n))
        out.append(pd.DataFrame({"name": np.repeat([f"{label}-cfg{i}" for i in range(rows)], n),
                                 "iops": v.ravel(), "label": label,
                                 "smp": np.repeat(np.arange(rows), n)}))
    return out


def test_matching_ignores_label_and_binary_path():
    c = C.compare(frame("v3", {1: 1e5, 4: 4e5}), frame("v4", {1: 1e5, 4: 3e5}, seed=1))
    assert list(c.rows["config"]) == ["smp-1-dataplane", "smp-4-dataplane"]
    assert c.params["match_on"] == ["smp", "dataplane"]
    v = dict(zip(c.rows["config"], c.rows["verdict"]))
    assert v["smp-4-dataplane"] == "regression"
    assert c.exit_code == 1


def test_improvement_and_no_change_and_latency_direction():
    base = frame("v3", {1: 1e5, 2: 2e5}, cv=0.01, n=30)
    cand = frame("v4", {1: 1e5, 2: 2.4e5}, cv=0.01, n=30, seed=2)
    c = C.compare(base, cand)
    assert c.rows["verdict"].tolist() == ["no change", "improvement"]
    assert c.exit_code == 0
    lat = C.compare(base, cand, metric="lat_p99_us")  # latency falls: lower is better
    assert lat.rows["verdict"].tolist() == ["no change", "improvement"]
    assert lat.rows["ratio"].iloc[1] < 1


def test_significant_but_small_change_is_not_a_regression():
    base = frame("v3", {1: 1e5}, cv=0.005, n=30)
    cand = frame("v4", {1: 0.98e5}, cv=0.005, n=30, seed=3)
    row = C.compare(base, cand).rows.iloc[0]
    assert row.p_adj < 1e-6 and row.verdict == "no change"


def test_one_run_rows_inconclusive_and_one_sided_rows_listed():
    base = frame("v3", {1: 1e5, 2: 2e5}, n=1)
    cand = frame("v4", {1: 0.5e5, 8: 1e5})
    c = C.compare(base, cand)
    assert c.rows["verdict"].tolist() == ["inconclusive"]
    assert c.only_baseline == ["v3-smp-2-dataplane"] and c.only_candidate == ["v4-smp-8-dataplane"]
    assert c.exit_code == 0
    junit = ET.fromstring(V.render_junit(c))
    assert junit.get("tests") == "3" and junit.get("skipped") == "3"


def test_name_fallback_without_meta():
    base = pd.DataFrame({"name": ["x"] * 3 + ["y"] * 3, "iops": [1, 2, 3, 4, 5, 6.0]})
    cand = pd.DataFrame({"name": ["x"] * 3, "iops": [1, 2, 3.0]})
    c = C.compare(base, cand)
    assert c.params["match_on"] == ["name"] and c.only_baseline == ["y"]


def test_two_builds_on_one_side_refused():
    both = pd.concat([frame("v3", {1: 1e5}), frame("v4", {1: 1e5})])
    with pytest.raises(C.CompareError, match="--label"):
        C.compare(both, both)
    with pytest.raises(C.CompareError, match="labels present: v3, v4"):
        C.select_label(both, "v9", "baseline")


def test_bad_arguments():
    f = frame("v3", {1: 1e5})
    for kw in (dict(test="ttest"), dict(correction="x"), dict(threshold=5), dict(metric="nope")):
        with pytest.raises(C.CompareError):
            C.compare(f, f, **kw)


def test_renderers_agree():
    c = C.compare(frame("v3", {1: 1e5, 4: 4e5}), frame("v4", {1: 1e5, 4: 3e5}, seed=1))
    doc = json.loads(V.render_json(c))
    assert doc["exit_code"] == 1 and doc["counts"]["regression"] == 1
    assert [r["verdict"] for r in doc["rows"]] == c.rows["verdict"].tolist()
    junit = ET.fromstring(V.render_junit(c))
    assert junit.get("failures") == "1"
    assert [t.get("name") for t in junit.iter("testcase") if t.find("failure") is not None] == ["smp-4-dataplane"]
    md = V.render_markdown(c)
    assert "**regression**" in md and sum(line.startswith("| ") for line in md.splitlines()) == 3
    table = V.render_table(c)
    assert "smp-4-dataplane" in table and "1 regression" in table


def test_aa_false_alarm_rate_within_alpha():
    """>= 1000 A/A comparisons at CV 3-8%, 5 runs: alarms (any change verdict) <= alpha,
    and the uncorrected test itself is calibrated (its rejection rate is ~ alpha, not
    merely small thanks to the threshold)."""
    rows = 4000
    base, cand = aa_frames(rows, np.linspace(0.03, 0.08, 6), 5, seed=42)
    c = C.compare(base, cand, correction="none")
    alarms = np.mean(c.rows["verdict"].isin(["regression", "improvement"]))
    rejections = np.mean(c.rows["p"] < 0.05)
    tol = 3.5 * math.sqrt(0.05 * 0.95 / rows)
    assert alarms <= 0.05 + tol
    assert abs(rejections - 0.05) <= tol
    # Family-wise: 200 nights of 20 configurations each, Holm; P(any alarm in a night) <= alpha.
    nights = [C.compare(*aa_frames(20, np.linspace(0.03, 0.08, 6), 5, seed=s)).exit_code for s in range(200)]
    assert np.mean(nights) <= 0.05 + 3.5 * math.sqrt(0.05 * 0.95 / 200)


def test_true_5pct_drop_detected_with_claimed_power():
    """Detection (significant drop) of a true 5% drop matches stats.welch_power; the
    verdict 'regression' (which also needs the estimate beyond the threshold) never exceeds it."""
    from perfsuite.analysis.stats import welch_power

    rows = 3000
    for cv in (0.03, 0.08):
        base, cand = aa_frames(rows, cv, 5, seed=int(cv * 1000), drop=0.05)
        c = C.compare(base, cand, correction="none")
        claimed = float(welch_power(0.05, cv, cv * 0.95, 5, 5, 0.05))
        detected = np.mean((c.rows["p"] < 0.05) & (c.rows["ratio"] < 1))
        tol = 3.5 * math.sqrt(claimed * (1 - claimed) / rows)
        # The noncentral t uses the true df; Welch estimates it, losing 2-3 points at n = 5
        # (stats docstring): allow that much below the claim, nothing above it.
        assert claimed - 0.03 - tol <= detected <= claimed + tol
        assert np.mean(c.rows["verdict"] == "regression") <= detected


def test_different_accelerators_on_the_two_sides_are_flagged():
    # a baseline whose KVM probe failed (TCG) against a KVM candidate: a 10x "improvement"
    base = frame("v3", {1: 1e4, 2: 2e4}, extra={"accel": "tcg"})
    cand = frame("v4", {1: 1e5, 2: 2e5}, extra={"accel": "kvm"})
    c = C.compare(base, cand)
    assert len(c.warnings) == 1 and "baseline tcg, candidate kvm" in c.warnings[0]
    assert V.to_dict(c)["warnings"] == c.warnings
    same = C.compare(frame("v3", {1: 1e5}, extra={"accel": "kvm"}), frame("v4", {1: 1e5}, extra={"accel": "kvm"}))
    assert same.warnings == [] and C.compare(frame("v3", {1: 1e5}), frame("v4", {1: 1e5})).warnings == []


def test_a_side_without_the_metric_is_an_error_not_only_in_the_other_side():
    base = frame("v3", {1: 1e5, 2: 2e5})
    base["lat_p99_us"] = np.nan  # the seed's job: gtod_reduce=1, no latencies
    with pytest.raises(C.CompareError, match=r"baseline: none of its 10 run\(s\) has lat_p99_us"):
        C.compare(base, frame("v4", {1: 1e5, 2: 2e5}), metric="lat_p99_us")


def test_cli_exit_codes_and_errors(tmp_path):
    for lab, f in (("v3", 1.0), ("v4", 0.8)):
        for smp in (1, 2):
            synthetic.write_runs(tmp_path, f"{lab}-smp-{smp}", 1e5 * (f if smp == 2 else 1), 0.02, 5,
                                 seed=smp * 10 + int(10 * f), config={"label": lab, "smp": smp, "qemu": lab})
    run = CliRunner().invoke
    r = run(compare_cmd, [str(tmp_path), "--label", "v3", "--label", "v4"])
    assert r.exit_code == 1 and "regression" in r.output
    r = run(compare_cmd, [str(tmp_path), "--label", "v3", "--label", "v3", "--format", "json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["counts"]["regression"] == 0
    # the same runs on both sides is almost surely a slip: said once, on stderr
    assert "same runs" in r.stderr and "label v3" in r.stderr
    r = run(compare_cmd, [str(tmp_path), "--label", "v3", "--label", "v4", "--format", "json"])
    assert "same runs" not in r.stderr
    out = tmp_path / "c.xml"
    r = run(compare_cmd, [str(tmp_path), "--label", "v3", "--label", "v4", "--format", "junit", "-o", str(out)])
    assert r.exit_code == 1 and ET.parse(out).getroot().get("failures") == "1"
    for args in ([str(tmp_path / "none"), str(tmp_path)], [str(tmp_path), str(tmp_path)],
                 [str(tmp_path), "--label", "v3"], [str(tmp_path), "--label", "v3", "--label", "v4", "--threshold", "x"]):
        r = run(compare_cmd, args)
        assert r.exit_code == 2, args
        assert "error:" in r.output and "Traceback" not in r.output
