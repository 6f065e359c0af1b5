"""Boots as the unit: repetitions in one boot are not independent (issue 12, item 1)."""

import numpy as np
import pandas as pd

from perfsuite.analysis import comparison as C
from perfsuite.report import verdicts as V
from perfsuite.analysis import stats
from perfsuite.analysis.results import load_runs
from perfsuite.analysis.summary import summarize
from perfsuite.model.simulate import SimConfig, boot_draw, simulate
from tests.synthetic import write_runs


def _frames(rng, boots, per_boot, cv=0.03, boot_cv=0.03, drop=0.0, rows=1):
    out = []
    for label, mu in (("a", 1e5), ("b", 1e5 * (1 - drop))):
        recs = []
        for i in range(rows):
            v, b = boot_draw(rng, mu, cv, boot_cv, boots, per_boot)
            recs.append(pd.DataFrame({"name": f"{label}-c{i}", "iops": v, "boot": b, "label": label,
                                      "smp": i}))
        out.append(pd.concat(recs, ignore_index=True))
    return out


def test_boot_means_are_the_unit_and_a_single_boot_warns():
    rng = np.random.default_rng(1)
    a, b = _frames(rng, 3, 5)
    r = C.compare(a, b).rows.iloc[0]
    assert (r.n_base, r.runs_base, r.n_cand, r.runs_cand) == (3, 15, 3, 15)
    assert abs(r.mean_base / a["iops"].mean() - 1) < 1e-12
    assert "15/3b" in V.render_table(C.compare(a, b))
    one_a, one_b = _frames(rng, 1, 5)
    c = C.compare(one_a, one_b)
    assert c.rows.iloc[0].n_base == 5
    assert sum("one boot" in w and "understated" in w for w in c.warnings) == 2


def test_aa_false_alarms_hold_with_boot_effects():
    """Within-boot CV 3%, boot-to-boot CV 3%, 3 boots x 5 repetitions: alarms <= alpha,
    where treating the 15 runs as independent would alarm far more often."""
    rng = np.random.default_rng(2)
    a, b = _frames(rng, 3, 5, rows=600)
    rows = C.compare(a, b, correction="none").rows
    rate = float(np.mean(rows["p"] < 0.05))
    assert rate <= 0.05 + 3.5 * np.sqrt(0.05 * 0.95 / 600), rate
    naive = stats.welch(stats.pack([g["iops"] for _, g in a.groupby("name")]),
                        stats.pack([g["iops"] for _, g in b.groupby("name")])).p
    assert np.mean(naive < 0.05) > 2 * max(rate, 0.05)


def test_summary_ci95_uses_boot_means():
    frame = pd.DataFrame({"name": "x", "iops": [100.0, 101, 110, 111, 90, 91],
                          "boot": [1, 1, 2, 2, 3, 3]})
    s = summarize(frame, "iops", "ci95").iloc[0]
    assert s.error_pct == stats.error_pct([100.5, 110.5, 90.5], "ci95")
    assert summarize(frame, "iops", "cv").iloc[0].error_pct == stats.error_pct(frame["iops"], "cv")


def test_simulator_writes_boots(tmp_path):
    c = SimConfig("v4-smp-1-dataplane", 1, 1, True, 1, 32, 1)
    simulate([c], tmp_path, 4, 0.02, seed=1, boots=3, boot_cv=0.05)
    f = load_runs(tmp_path).frame
    f = f.iloc[np.argsort(f["rep"].astype(int).to_numpy())]
    assert f["boot"].tolist() == [1] * 4 + [2] * 4 + [3] * 4
    write_runs(tmp_path / "s", "x", 1000.0, 0.02, 6, seed=2, boot_cv=0.05, per_boot=3)
    g = load_runs(tmp_path / "s").frame
    g = g.iloc[np.argsort(g["rep"].astype(int).to_numpy())]
    assert g["boot"].tolist() == [1, 1, 1, 2, 2, 2]


def test_analyze_warns_about_one_boot_ci95(tmp_path):
    from click.testing import CliRunner

    from perfsuite.cli import main

    write_runs(tmp_path, "x", 1000.0, 0.02, 4, seed=3, per_boot=4)
    res = CliRunner().invoke(main, ["analyze", str(tmp_path), "--error", "ci95"])
    assert res.exit_code == 0, res.output
    assert "one boot" in res.output and "understated" in res.output


def test_precision_counts_boots():
    from perfsuite.run.precision import reps_for_precision

    # Two runs per boot that agree closely, boots that do not: the runs alone look precise.
    vals = [100.0, 100.2, 110.0, 110.1, 90.0, 90.2]
    boots = [1, 1, 2, 2, 3, 3]
    assert reps_for_precision(vals, 10.0, 100) == 6
    assert reps_for_precision(vals, 10.0, 100, boots) > 6
