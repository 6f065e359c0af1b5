"""The axis registry: one entry, and a new axis flows into every place that lists axes.

A throwaway axis (virtio-blk's real `seg-max-adjust` property) is registered for the duration
of each test; the run name, the QEMU argv, the meta, the results frame, compare's matching
key, the checks' mq/no-mq pair finder and the report's environment table must all see it
without any other edit.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import synthetic
from perfsuite.analysis import checks, comparison
from perfsuite.analysis.results import load_runs
from perfsuite.matrix import axes
from perfsuite.matrix.config import Config, ConfigError, parse_matrix, parse_name, problems
from perfsuite.qemu.argv import build_argv
from perfsuite.run.meta import build_meta, mismatches

SMA = axes.Axis("seg_max_adjust", True, "virtio-blk seg-max-adjust", check=axes.boolean,
                spell=lambda v, c: "sma" if v else "no-sma", report="Seg max adjust",
                device_prop="seg-max-adjust")
FIO = Path(__file__).parent / "data" / "fio" / "fio3-randread-null.json"


@pytest.fixture
def sma():
    with axes.registered(SMA) as a:
        yield a


def test_builtin_axes_cannot_be_dropped_or_registered_twice():
    with pytest.raises(ValueError):
        axes.unregister("smp")
    with pytest.raises(ValueError):
        axes.register(axes.AXES["smp"])


def test_name_argv_meta_and_validation(sma):
    configs = parse_matrix({"defaults": {"label": "t", "smp": 2},
                            "matrix": {"seg_max_adjust": [True, False]}})
    assert [c.name for c in configs] == ["t-smp-2-dataplane-sma", "t-smp-2-dataplane-no-sma"]
    on, off = configs
    dev_on = build_argv(on, [], "/w")[build_argv(on, [], "/w").index("-device") + 1]
    dev_off = build_argv(off, [], "/w")[build_argv(off, [], "/w").index("-device") + 1]
    assert "seg-max-adjust=on" in dev_on and "seg-max-adjust=off" in dev_off
    meta = build_meta(off, 1, boot=1, argv=[], accel="tcg", accel_note=None, versions={}, host={},
                      guest=None, device=None, started="s", finished="f", status="ok", error=None)
    assert meta["config"]["seg_max_adjust"] is False
    # what QEMU built is read back per device property: a difference is a mismatch
    assert any("seg-max-adjust" in m for m in mismatches(off, {"queues": 2, "cpus_online": 2},
                                                         {"seg-max-adjust": True}))
    assert not any("seg-max-adjust" in m for m in mismatches(off, None, {"seg-max-adjust": False}))
    # its own check runs with the others
    assert any(p.startswith("seg_max_adjust='yes'") for p in
               problems(on.replace(seg_max_adjust="yes"), check_files=False))
    with pytest.raises(ConfigError, match="unknown matrix key"):
        parse_matrix({"matrix": {"seg_max_adjst": [True]}})


def _tree(root: Path, label: str, values: dict[bool, float]) -> Path:
    """One run dir per value of the axis: 3 real fio files each, meta from the synthetic writer."""
    for v, iops in values.items():
        c = Config(label=label, smp=2, seg_max_adjust=v)
        name = f"{c.name}-{'sma' if v else 'no-sma'}"
        synthetic.write_runs(root, name, iops, 0.02, 3, seed=int(v), config=c.to_meta())
    return root


def test_results_frame_and_compare_key(sma, tmp_path):
    base = _tree(tmp_path / "a", "v1", {True: 1e5, False: 2e5})
    cand = _tree(tmp_path / "b", "v2", {True: 1e5, False: 2e5})
    fa, fb = load_runs(base).frame, load_runs(cand).frame
    assert "seg_max_adjust" in fa.columns
    assert sorted(set(fa["seg_max_adjust"])) == [False, True]
    c = comparison.compare(fa, fb)
    # two configurations that differ only in the new axis are two rows, not a collision
    assert "seg_max_adjust" in c.params["match_on"]
    assert len(c.rows) == 2 and not c.only_baseline and not c.only_candidate


def test_checks_pair_finder_matches_the_right_twin(sma, tmp_path):
    assert "seg_max_adjust" in checks.pair_keys()
    root = tmp_path / "runs"
    rows = {  # (mq, sma) -> IOPS; the mq gain is bounded by min(queues 4, vCPUs 4, jobs 4) = 4
        (False, True): 1000.0, (False, False): 100.0, (True, True): 3000.0, (True, False): 3000.0}
    for (mq, v), iops in rows.items():
        c = Config(label="t", smp=4, num_queues=4 if mq else 1, seg_max_adjust=v)
        synthetic.write_runs(root, f"{c.name}-{'sma' if v else 'no-sma'}", iops, 0.01, 3,
                             config=c.to_meta())
    found = [f for f in checks.check_runs(load_runs(root).frame) if "multiqueue gain" in f.message]
    # 3000 over its own twin (1000) is 3x: fine; over the other twin (100) it would be 30x
    assert [f.name for f in found] == ["t-smp-4-dataplane-no-sma"]
    assert "t-smp-4-dataplane-no-mq-no-sma" in found[0].message


def test_report_environment_shows_it(sma, tmp_path):
    from perfsuite.commands.report import report

    root = _tree(tmp_path / "runs", "v1", {True: 1e5, False: 2e5})
    res = CliRunner().invoke(report, [str(root), "-o", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    page = (tmp_path / "out" / "index.html").read_text()
    assert "Seg max adjust" in page


def test_identity_from_the_name_without_meta(tmp_path):
    """Runs from other tools (no meta.json) are told apart by their names' axes."""
    assert parse_name("v1-smp-4-dataplane-no-mq") == {
        "label": "v1", "smp": 4, "dataplane": True, "num_queues": 1, "variant": ""}
    assert parse_name("v1-smp-4-no-dataplane-nq-2-mem-2048")["variant"] == "mem-2048"
    assert parse_name("host-null-a") == {"variant": "host-null-a"}
    sides = []
    for label in ("v1", "v2"):
        for suffix in ("", "-no-mq"):
            d = tmp_path / label / f"{label}-smp-4-dataplane{suffix}"
            d.mkdir(parents=True)
            for rep in (1, 2, 3):
                shutil.copy(FIO, d / f"{rep}.json")
        sides.append(load_runs(tmp_path / label).frame)
    c = comparison.compare(*sides)
    assert sorted(c.rows["config"]) == ["smp-4-dataplane", "smp-4-dataplane-no-mq"]
    assert {"smp", "num_queues", "dataplane"} <= set(c.params["match_on"])
