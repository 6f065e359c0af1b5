"""The analyzer's plain-column path (perfsuite.analysis.runs, no pandas) against pandas.

`./analyze.py` summarises, renders and checks `LoadResult.runs`; the report, compare and
the nightly hand the same functions `LoadResult.frame`. Both must print the same thing, and
the summary must be what a pandas groupby makes of the frame."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import analyzer_trees
from perfsuite.analysis import stats
from perfsuite.analysis.checks import check_runs, condense
from perfsuite.analysis.results import load_runs
from perfsuite.analysis.runs import Runs, as_runs, from_frame, missing
from perfsuite.analysis.summary import METRICS, missing_metric, one_boot_names, summary_runs
from perfsuite.commands.analyze import analyze
from perfsuite.report.table import FORMATS, render

REPO = Path(__file__).resolve().parent.parent
SEED = REPO / "examples" / "seed-qemu-7.2"


@pytest.fixture(scope="module", params=["seed", "with_meta", "without_meta"])
def tree(request, tmp_path_factory) -> Path:
    if request.param == "seed":
        return SEED
    root = tmp_path_factory.mktemp(request.param) / "runs"
    return getattr(analyzer_trees, request.param)(root)


@pytest.fixture(scope="module")
def loaded(tree):
    return load_runs(tree)


def _reference(frame: pd.DataFrame, metric: str, kind: str) -> pd.DataFrame:
    """The summary as a pandas groupby computes it, with stats.error_pct per name."""
    col = METRICS[metric][0]
    ok = frame[np.isfinite(frame[col].astype(float))]
    rows = []
    for name, g in ok.groupby("name", sort=True):
        boots = g["boot"].to_numpy(dtype=object) if "boot" in g.columns else None
        rows.append({"name": name, "mean": g[col].astype(float).mean(), "n": len(g),
                     "error_pct": stats.error_pct(g[col].to_numpy(dtype=float), kind, boots)})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("metric", ["iops", "read-iops", "disk-read-ios"])
@pytest.mark.parametrize("kind", stats.ERROR_KINDS)
def test_summary_is_the_groupby_of_the_frame(loaded, metric, kind):
    got = summary_runs(loaded.runs, METRICS[metric][0], kind)
    ref = _reference(loaded.frame, metric, kind)
    assert got["name"] == ref["name"].tolist() if len(ref) else got["name"] == []
    assert got["n"] == ref["n"].tolist() if len(ref) else True
    assert np.allclose(got["mean"], ref["mean"].to_numpy(), rtol=1e-12) if len(ref) else True
    for a, b in zip(got["error_pct"], ref["error_pct"] if len(ref) else []):
        assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-12)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", stats.ERROR_KINDS)
def test_render_is_the_same_from_runs_and_from_the_frame(loaded, fmt, kind):
    a = render(summary_runs(loaded.runs, "iops", kind), fmt, show_n=True, error=kind)
    b = render(summary_runs(loaded.frame, "iops", kind), fmt, show_n=True, error=kind)
    assert a == b
    assert a.count("\n") >= len(set(loaded.runs["name"]))


def test_host_means_are_the_frames():
    loaded = load_runs(SEED)   # the tree with the host view
    got = summary_runs(loaded.runs)
    host = [c for c in got.columns if c.startswith(("cpu_", "steal"))]
    assert len(host) == 4
    ref = loaded.frame.groupby("name", sort=True)[host].mean()
    for c in host:
        assert np.allclose(got[c], ref[c].to_numpy(), rtol=1e-12, equal_nan=True), c


def test_checks_are_the_same_from_runs_and_from_the_frame(loaded):
    a, b = check_runs(loaded.runs), check_runs(loaded.frame)
    assert a == b
    assert condense(a) == condense(b)


def test_missing_metric_and_one_boot_from_runs_and_frame(loaded):
    for metric in METRICS:
        assert missing_metric(loaded.runs, metric) == missing_metric(loaded.frame, metric)
        assert one_boot_names(loaded.runs, metric) == one_boot_names(loaded.frame, metric)


def test_the_trees_exercise_the_warnings(tmp_path):
    meta = load_runs(analyzer_trees.with_meta(tmp_path / "m"))
    kinds = {f.kind for f in check_runs(meta.runs)}
    assert {"mq-gain", "single-run", "mixed", "queues-seen", "idle-queues"} <= kinds
    assert one_boot_names(meta.runs) == ["v1-smp-1-dataplane"]
    assert any("5.json" in w and "skipped" in w for w in meta.warnings)
    other = load_runs(analyzer_trees.without_meta(tmp_path / "o"))
    assert missing_metric(other.runs, "disk-read-ios")
    assert any("fio reported an error" in w for w in other.warnings)


@pytest.mark.parametrize("args", [[], ["--runs"], ["--format", "csv"], ["--format", "json", "--error", "ci95"],
                                  ["--error", "sem"], ["--metric", "disk-read-ios"], ["--filter", "*-no-mq"],
                                  ["--verbose"]])
def test_cli_prints_what_the_frame_path_prints(tree, loaded, args):
    r = CliRunner().invoke(analyze, [*args, str(tree)])
    assert r.exit_code == 0, r.output
    opts = dict(zip(args[::2], args[1::2]))
    metric, kind = opts.get("--metric", "iops"), opts.get("--error", "range")
    frame = loaded.frame
    if "--filter" in opts:
        frame = frame[frame["name"].str.endswith("-no-mq")]
    want = render(summary_runs(frame, METRICS[metric][0], kind), opts.get("--format", "table"),
                  label=METRICS[metric][1], show_n="--runs" in args, metric=metric, error=kind)
    assert r.stdout == want
    lines = condense(check_runs(frame), max_names=None if "--verbose" in args else 8)
    assert all(line in r.stderr for line in lines)


def test_runs_view_and_missing():
    r = Runs({"name": ["b", "a", "b", None], "x": [1.0, math.nan, 3.0, 4.0]})
    assert r.groups() == {"a": [1], "b": [0, 2]}
    assert r.take([2, 0])["x"] == [3.0, 1.0] and r.take([2, 0]).take([1])["x"] == [1.0]
    assert [missing(v) for v in (None, math.nan, pd.NA, pd.NaT, 0, "")] == [True] * 4 + [False] * 2
    f = pd.DataFrame({"n": pd.array([1, None], dtype="Int64"), "s": ["a", None]})
    assert from_frame(f)["n"] == [1, None] and as_runs(f).to_frame() is f


def test_plainstats_are_numpys_floats():
    from perfsuite.analysis import plainstats as P

    rng = np.random.default_rng(7)
    for n in [*range(1, 40), 127, 128, 129, 255, 300, 1000]:
        x = rng.lognormal(10, 1, n) * rng.choice([1e-3, 1.0, 1e3])
        xs = x.tolist()
        assert P.pairwise_sum(xs) == np.add.reduce(x) and P.mean(xs) == x.mean()
        assert P.segment_sum(xs) == np.add.reduceat(x, [0])[0]
        for kind in ("range", "cv", "sem"):
            got, want = P.error_pct(xs, kind), stats.error_pct(x, kind)
            assert got == want or (math.isnan(got) and math.isnan(want)), (n, kind)
        if n > 1:
            assert P.std(xs) == x.std(ddof=1)
    assert math.isnan(P.error_pct([1.0, math.nan])) and math.isnan(P.error_pct([0.0, 0.0]))
    with pytest.raises(ValueError):
        P.error_pct([1.0, 2.0], "stddev")
