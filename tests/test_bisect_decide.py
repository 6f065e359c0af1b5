"""perfsuite.bisect.decide / schedule / simulate: the statistics and the boot schedule."""

import math

import numpy as np
import pytest

from perfsuite.bisect import decide as D
from perfsuite.bisect import schedule as S
from perfsuite.bisect import simulate as M


def noisy(level, n, cv=0.05, seed=0):
    rng = np.random.default_rng(seed)
    return list(level * np.exp(rng.normal(0, cv, n)))


def test_planned_steps_and_alpha():
    assert [D.planned_steps(n) for n in (1, 2, 3, 7, 8, 32, 33)] == [0, 1, 2, 3, 3, 5, 6]
    assert D.step_alpha(0.05, 32) == pytest.approx(0.01)
    with pytest.raises(ValueError):
        D.step_alpha(1.5, 8)


def test_classify_calls_the_nearer_level_with_small_error():
    g, b = noisy(100, 8, seed=1), noisy(80, 8, seed=2)
    good = D.classify(g, b, noisy(100, 4, seed=3), alpha=0.01)
    bad = D.classify(g, b, noisy(80, 4, seed=4), alpha=0.01)
    assert good.decision == D.GOOD and good.llr < 0 and good.error < 0.01
    assert bad.decision == D.BAD and bad.llr > 0 and bad.error < 0.01
    assert bad.ci_low < bad.ratio < bad.ci_high and bad.ratio == pytest.approx(0.8, abs=0.05)


def test_classify_waits_between_levels_and_with_too_few_boots():
    g, b = noisy(100, 8, seed=1), noisy(80, 8, seed=2)
    assert D.classify(g, b, [90.0], alpha=0.01).decision == D.CONTINUE
    few = D.classify([100.0], [80.0], [100.0], alpha=0.01)   # no variance estimate yet
    assert few.decision == D.CONTINUE and math.isnan(few.llr)


def test_more_boots_mean_a_smaller_error():
    g, b = noisy(100, 10, seed=5), noisy(90, 10, seed=6)
    m = noisy(90, 6, seed=7)
    errors = [D.classify(g, b, m[:k], alpha=1e-9).error for k in range(1, 7)]
    assert errors[-1] < errors[0]


def test_agree():
    c = lambda d: D.Call(d, 0, 0, 1, 1, 1, 0)  # noqa: E731
    assert D.agree([c(D.GOOD), c(D.GOOD)]) == D.GOOD
    assert D.agree([c(D.BAD)]) == D.BAD
    assert D.agree([c(D.GOOD), c(D.BAD)]) == D.UNDECIDED
    assert D.agree([c(D.GOOD), c(D.CONTINUE)]) == D.CONTINUE


def test_confirm_reproduced_not_reproduced_and_latency_direction():
    g = noisy(100, 6, seed=8)
    assert D.confirm(g, noisy(70, 6, seed=9), 0.05, 0.05).decision == D.REPRODUCED
    assert D.confirm(g, noisy(100, 6, cv=0.01, seed=10), 0.05, 0.05).decision == D.NOT_REPRODUCED
    # a faster bad commit is no regression
    assert D.confirm(g, noisy(130, 6, seed=11), 0.05, 0.05).decision == D.NOT_REPRODUCED
    # latency: higher is worse
    assert D.confirm(g, noisy(130, 6, seed=11), 0.05, 0.05, higher_is_better=False).decision == D.REPRODUCED
    assert D.confirm([1.0], [2.0], 0.05, 0.05).decision == D.CONTINUE


class Recorder:
    """A synthetic host that remembers the order of boots."""

    def __init__(self, levels, seed=0, fail=()):
        self.levels, self.rng, self.fail, self.order = levels, np.random.default_rng(seed), fail, []

    def __call__(self, commit):
        self.order.append(commit)
        if commit in self.fail:
            return None
        return (self.levels[commit] * math.exp(self.rng.normal(0, 0.05)),)


def test_confirm_alternates_endpoints_and_step_interleaves():
    host = Recorder({"g": 100, "b": 80, "m": 80})
    levels = S.Levels("g", "b")
    p = S.policy_for(8)
    conf = S.run_confirm(levels, host, p)
    assert conf.decision == D.REPRODUCED
    n = conf.boots
    assert host.order[:n] == ["g", "b"] * (n // 2)
    step = S.run_step("m", levels, host, p)
    assert step.decision == D.BAD
    seq = host.order[n:]
    assert seq[0] == "m" and seq[1] in ("g", "b")           # M E M M E ...
    assert all(x != "m" for x in seq[1::3])
    assert step.boots == len(seq)


def test_step_skips_a_commit_that_does_not_boot_and_caps():
    host = Recorder({"g": 100, "b": 80, "m": math.sqrt(100 * 80)}, seed=2, fail=("x",))
    levels = S.Levels("g", "b")
    p = S.policy_for(8, step_max=3)
    S.run_confirm(levels, host, p)
    assert S.run_step("x", levels, host, p).decision == "skip"
    halfway = S.run_step("m", levels, host, p)
    assert halfway.decision == D.UNDECIDED and len(halfway.mid) == 3 and "3 midpoint boots" in halfway.reason


def test_endpoint_failures_stop_the_bisect():
    host = Recorder({"g": 100, "b": 80}, fail=("b",))
    with pytest.raises(S.EndpointFailed):
        S.run_confirm(S.Levels("g", "b"), host, S.policy_for(8))


def test_simulated_bisections_stay_within_the_bound():
    """300 seeded bisections of 32 commits, 10% step, CV 5%: wrong commits within the bound."""
    truth = M.Truth()
    p = S.policy_for(truth.n, bound=0.05)
    seq = M.simulate("sequential", truth, 300, 7, policy=p)
    assert seq.wrong <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / 300)
    assert seq.unnamed < 0.15
    fixed = M.simulate("fixed", truth, 300, 8, n=round(seq.boots_total / 7))
    assert fixed.wrong > seq.wrong     # the same budget spent blindly does worse
