"""--until-precision: how many repetitions a configuration needs, and the loop that adds them."""

from types import SimpleNamespace

import numpy as np
import pytest

from perfsuite.analysis import stats
from perfsuite.run import precision


def test_precise_enough_needs_nothing_more():
    values = [100.0, 101.0, 99.0, 100.5, 99.5]
    assert stats.error_pct(values, "ci95") < 2.0
    assert precision.reps_for_precision(values, 2.0, cap=20) == 5


def test_noisy_config_gets_the_n_that_reaches_the_precision_at_its_spread():
    values = [90.0, 110.0, 100.0, 95.0, 105.0]
    target = precision.reps_for_precision(values, 5.0, cap=100)
    cv = stats.error_pct(values, "cv")
    half = lambda n: stats.t_quantile(0.975, n - 1) * cv / np.sqrt(n)  # noqa: E731
    assert half(target) <= 5.0 < half(target - 1)


def test_cap_and_too_few_runs():
    assert precision.reps_for_precision([50.0, 150.0], 1.0, cap=8) == 8
    assert precision.reps_for_precision([100.0], 1.0, cap=8) == 2
    assert precision.reps_for_precision([], 1.0, cap=8) == 2
    assert precision.reps_for_precision([1.0, 2.0, 3.0], 1.0, cap=3) == 3


class FakeRunner:
    """Stands in for perfsuite.run.runner.Runner: records events only."""

    def __init__(self):
        self.events = []

    def event(self, kind, **data):
        self.events.append((kind, data))


def test_loop_adds_repetitions_after_the_highest_number_used(tmp_path, monkeypatch):
    run_dir = tmp_path / "cfg"
    run_dir.mkdir()
    for name in ("1.json", "2.json", "3.meta.json", "3.log"):  # 3 failed earlier: keep its files
        (run_dir / name).write_text("{}")
    measured = {"cfg": [100.0, 130.0]}
    calls = []

    def fake_run_config(config, runs_dir, reps, runner):
        reps = list(reps)
        calls.append(reps)
        measured[config.name] += [115.0] * len(reps)
        return [SimpleNamespace(name=config.name, rep=r, status="ok") for r in reps]

    monkeypatch.setattr(precision, "_measured", lambda runs_dir, name: (measured[name], None))
    monkeypatch.setattr("perfsuite.run.runner.run_config", fake_run_config)
    runner = FakeRunner()
    out = precision.run_until_precision([SimpleNamespace(name="cfg")], tmp_path, runner, 5.0, 10)
    assert calls and calls[0][0] == 4  # after 1, 2 and the failed 3
    assert [o.rep for o in out] == [r for batch in calls for r in batch]
    assert stats.error_pct(measured["cfg"], "ci95") <= 5.0 or len(measured["cfg"]) == 10
    assert runner.events[0] == ("more", {"name": "cfg", "n": len(calls[0])})


def test_loop_stops_on_a_failing_configuration(tmp_path, monkeypatch):
    calls = []

    def failing(config, runs_dir, reps, runner):
        calls.append(list(reps))
        return [SimpleNamespace(name=config.name, rep=r, status="timeout") for r in reps]

    monkeypatch.setattr(precision, "_measured", lambda runs_dir, name: ([100.0, 150.0], None))
    monkeypatch.setattr("perfsuite.run.runner.run_config", failing)
    out = precision.run_until_precision([SimpleNamespace(name="cfg")], tmp_path, FakeRunner(), 1.0, 50)
    assert len(calls) == 1 and all(o.status == "timeout" for o in out)


def test_loop_says_when_the_cap_stops_it(tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "_measured", lambda runs_dir, name: ([100.0, 150.0, 50.0], None))
    runner = FakeRunner()
    assert precision.run_until_precision([SimpleNamespace(name="cfg")], tmp_path, runner, 1.0, 3) == []
    (kind, data), = runner.events
    assert kind == "note" and "not the ±1% asked" in data["text"] and "after 3 repetition(s)" in data["text"]


@pytest.mark.parametrize("bad", ["0", "-1"])
def test_cli_refuses_a_non_positive_precision(bad):
    from click.testing import CliRunner

    from perfsuite.commands.run import run

    res = CliRunner().invoke(run, ["--dry-run", "--until-precision", bad])
    assert res.exit_code == 2 and "until-precision" in res.output
