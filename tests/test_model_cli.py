"""`perfsuite model predict|fit|simulate` through the real click entry point."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings, strategies as st

from perfsuite.cli import main
from perfsuite.model.perf import PerfConfig, predict
from perfsuite.analysis.results import load_runs

MATRIX = str(Path(__file__).resolve().parent.parent / "jobs" / "matrix.toml")


def run(*args):
    return CliRunner().invoke(main, ["model", *map(str, args)])


def last_number(res) -> float:
    assert res.exit_code == 0, res.output
    return float(res.output.strip().splitlines()[-1])


@settings(max_examples=25, deadline=None)
@given(smp=st.integers(1, 16), q=st.integers(1, 16), dp=st.booleans(), d=st.integers(1, 64),
       accel=st.sampled_from(["kvm", "tcg"]))
def test_predict_prints_the_models_number_last(smp, q, dp, d, accel):
    res = run("predict", "--smp", smp, "--num-queues", q, "--dataplane" if dp else "--no-dataplane",
              "--iodepth", d, "--accel", accel)
    expect = predict(PerfConfig(smp, q, dp, None, d, accel)).iops
    assert math.isclose(last_number(res), expect, rel_tol=0, abs_tol=0.5)


def test_predict_extra_queues_on_one_vcpu_change_nothing():
    one = last_number(run("predict", "--smp", 1, "--num-queues", 1))
    four = last_number(run("predict", "--smp", 1, "--num-queues", 4))
    assert one == four


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "runs"
    res = CliRunner().invoke(main, ["model", "simulate", MATRIX, "-o", str(out), "--repeat", "3",
                                    "--cv", "0.03", "--seed", "5", "--accel", "tcg", "--host-cpus", "2",
                                    "--label", "sim"])
    assert res.exit_code == 0, res.output
    return out, res.output


def test_simulate_writes_the_run_dir_contract(simulated):
    out, text = simulated
    frame = load_runs(out).frame
    assert set(frame.name) == {line.split()[0] for line in text.splitlines() if " true " in line}
    assert (frame.synthetic == True).all()  # noqa: E712 - a pandas column
    assert (frame.groupby("name").size() == 3).all()
    # Each run is drawn around its true mean; the fio JSON sums back to the drawn IOPS.
    rel = (frame.iops / frame.true_iops - 1).abs()
    assert rel.max() < 0.2
    assert ((frame.queues_seen == frame[["num_queues", "smp"]].min(axis=1))).all()
    assert ((frame.numjobs == frame.smp)).all()


def test_fit_reports_every_config_and_quality(simulated, tmp_path):
    out, _ = simulated
    save = tmp_path / "p.json"
    res = run("fit", out, "--save", save)
    assert res.exit_code == 0, res.output
    names = {p.name for p in out.iterdir()}
    table = res.output.splitlines()
    assert all(any(line.startswith(n + " ") for line in table) for n in names)
    assert any(line.startswith("fit: 6 configuration(s)") for line in table)
    # The saved parameters drive predict.
    pred = last_number(run("predict", "--smp", 4, "--accel", "tcg", "--host-cpus", 2, "--params", save))
    assert pred > 0


def test_simulate_refuses_to_overwrite(simulated):
    out, _ = simulated
    res = run("simulate", MATRIX, "-o", out, "--label", "sim")
    assert res.exit_code == 2
    assert "already holds runs" in res.output


@pytest.mark.parametrize("bad, text", [("smp = 0", "smp=0"), ("smp = true", "smp=True"),
                                       ("queue_size = 3", "queue_size=3")])
def test_simulate_checks_the_whole_matrix_before_writing_anything(tmp_path, bad, text):
    # a good config first, the bad one after: nothing of the good one may be left behind
    m = tmp_path / "m.toml"
    m.write_text(f"[matrix]\nsmp = 2\n\n[[config]]\n{bad}\n")
    out = tmp_path / "out"
    res = run("simulate", m, "-o", out, "--label", "sim")
    assert res.exit_code == 2 and text in res.output, res.output
    assert "Traceback" not in res.output
    assert not out.exists() or not any(out.rglob("*.json"))


def test_simulate_writes_nothing_when_the_model_refuses_a_later_config(tmp_path):
    from perfsuite.model import simulate as sim
    good = sim.seed_matrix("g")[0]
    bad = sim.SimConfig("b-smp-0", 0, 1, True, 1, 32)
    with pytest.raises(ValueError):
        sim.simulate([good, bad], tmp_path, 2, 0.05)
    assert not any(tmp_path.rglob("*.json"))


def test_fit_save_to_an_impossible_path_is_a_plain_error(simulated, tmp_path):
    out, _ = simulated
    (tmp_path / "afile").write_text("x")
    res = run("fit", out, "--save", tmp_path / "afile" / "p.json")
    assert res.exit_code == 2 and "[Errno" not in res.output and "afile" in res.output, res.output


def test_simulate_builtin_seed_matrix(tmp_path):
    res = run("simulate", "seed", "-o", tmp_path, "--repeat", 2, "--cv", 0.1)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "v4-smp-4-dataplane-no-mq" / "2.json").exists()


@pytest.mark.parametrize("args, text", [
    (["fit", "/nonexistent/runs"], "does not exist"),
    (["simulate", "no-such-matrix.toml", "-o", "/tmp/x"], "not found"),
    (["predict", "--smp", "2", "--params", "/nonexistent.json"], "cannot read"),
])
def test_errors_are_one_line_exit_2(args, text):
    res = run(*args)
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and text in lines[0]
    assert "Traceback" not in res.output


def test_usage_errors_exit_2():
    assert run("predict", "--smp", 0).exit_code == 2
    assert run("simulate", "seed", "-o", "/tmp/x", "--cv", 1.5).exit_code == 2


def test_fit_on_runs_without_meta_says_so(data_dir, tmp_path):
    import shutil
    (tmp_path / "r").mkdir()
    shutil.copy(data_dir / "fio" / "fio3-randread-null.json", tmp_path / "r" / "1.json")
    res = run("fit", tmp_path)
    assert res.exit_code == 2 and "meta.json" in res.output.splitlines()[-1]
