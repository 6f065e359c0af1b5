"""The statistics of one bisection: confirm the regression, classify a midpoint.

Pure functions of per-boot values (one number per guest boot: the mean of the metric over
that boot's repetitions; a boot, not a repetition, is the unit of replication because boots
differ from one another). Work is done on log values, so levels and noise are ratios.

Classifying a midpoint M between the measured good level G and bad level B is a test of two
simple hypotheses: M sits at G, or M sits at B. With D = mean(M) - (mean(G) + mean(B)) / 2
and Delta = mean(B) - mean(G), D is normal with mean -Delta/2 (good) or +Delta/2 (bad) and
variance v = s^2 (1/n_M + (1/n_G + 1/n_B) / 4), s^2 the variance pooled over the three
samples. The log-likelihood ratio bad:good is D * Delta / v. Boots are added until
|LLR| >= log((1 - alpha) / alpha) (Wald's SPRT boundary: the probability of a wrong call is
then at most about alpha); the reported error probability of a call is 1 / (1 + e^|LLR|).
s^2 is an estimate: v is inflated by df / (df - 2) (the variance of Student's t) so that few
boots do not look more certain than they are, and Delta is shrunk by one standard error.

When the regression is real, the bisection names a wrong commit only if one of its calls is
wrong: with k = ceil(log2 N) planned calls each gets alpha = bound / k (union bound; a skipped
commit costs a call only if it leads to an extra one, and the output states alpha times the
calls actually made). When there is no regression, any commit named is wrong, and that needs
the confirmation to pass falsely: its own test, at level `bound`, caps that case. The two
cases are different truths, so each is within `bound` on its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

GOOD, BAD, CONTINUE, UNDECIDED = "good", "bad", "continue", "undecided"


def step_alpha(bound: float, n_candidates: int) -> float:
    """Per-call error bound so that ceil(log2 N) calls stay within `bound` (union bound)."""
    if not 0 < bound < 1:
        raise ValueError("bound must be in (0, 1)")
    return bound / max(planned_steps(n_candidates), 1)


def planned_steps(n_candidates: int) -> int:
    """Tests a binary search needs to find one commit among N candidates (N >= 1)."""
    return max(1, math.ceil(math.log2(max(n_candidates, 1)))) if n_candidates > 1 else 0


def _logs(values: Sequence[float]) -> list[float]:
    return [math.log(v) for v in values if v is not None and v > 0 and math.isfinite(v)]


def _mean_ss(x: Sequence[float]) -> tuple[float, float]:
    m = sum(x) / len(x)
    return m, sum((v - m) ** 2 for v in x)


@dataclass(frozen=True)
class Call:
    """One classification of a midpoint from the boots so far."""

    decision: str          # good | bad | continue (| undecided, set by the schedule at its cap)
    llr: float             # log-likelihood ratio bad:good (NaN: not computable yet)
    error: float           # probability that the leading call is wrong
    ratio: float           # mean(M) / mean(G)
    ci_low: float          # 95% CI of that ratio
    ci_high: float
    separation: float      # |mean(B) / mean(G) - 1| as measured


NAN = float("nan")
SHRINK = 1.0  # standard errors taken off the measured separation (conservative)


def classify(good: Sequence[float], bad: Sequence[float], mid: Sequence[float],
             alpha: float) -> Call:
    """The call on midpoint boots `mid` given endpoint boots `good`, `bad` (raw values)."""
    g, b, m = _logs(good), _logs(bad), _logs(mid)
    df = len(g) + len(b) + len(m) - 3
    if min(len(g), len(b)) < 1 or len(m) < 1 or df < 3:
        return Call(CONTINUE, NAN, 0.5, NAN, NAN, NAN, NAN)
    (mg, sg), (mb, sb), (mm, sm) = _mean_ss(g), _mean_ss(b), _mean_ss(m)
    s2 = (sg + sb + sm) / df
    s2 = max(s2, 1e-12) * df / (df - 2)
    delta = mb - mg
    se_delta = math.sqrt(s2 * (1 / len(g) + 1 / len(b)))
    shrunk = math.copysign(max(abs(delta) - SHRINK * se_delta, 0.0), delta)
    v = s2 * (1 / len(m) + (1 / len(g) + 1 / len(b)) / 4)
    d = mm - (mg + mb) / 2
    llr = d * shrunk / v
    err = 1.0 / (1.0 + math.exp(min(abs(llr), 700.0)))
    se_r = math.sqrt(s2 * (1 / len(m) + 1 / len(g)))
    z = 1.959963984540054
    bound = math.log((1 - alpha) / alpha)
    decision = CONTINUE if abs(llr) < bound else (BAD if llr > 0 else GOOD)
    return Call(decision, llr, err, math.exp(mm - mg), math.exp(mm - mg - z * se_r),
                math.exp(mm - mg + z * se_r), abs(math.exp(delta) - 1))


def agree(calls: Sequence[Call]) -> str:
    """One decision from several configurations' calls: they must all say the same."""
    kinds = {c.decision for c in calls}
    if kinds == {GOOD} or kinds == {BAD}:
        return kinds.pop()
    if GOOD in kinds and BAD in kinds:
        return UNDECIDED  # the configurations disagree: more boots will not settle that
    return CONTINUE


@dataclass(frozen=True)
class Confirmation:
    """Is the bad endpoint significantly worse than the good one, by more than the threshold?"""

    decision: str          # reproduced | not reproduced | continue
    ratio: float           # mean(bad) / mean(good)
    ci_low: float          # (1 - alpha) CI of the ratio
    ci_high: float
    n_good: int
    n_bad: int


REPRODUCED, NOT_REPRODUCED = "reproduced", "not reproduced"


def confirm(good: Sequence[float], bad: Sequence[float], threshold: float, alpha: float,
            higher_is_better: bool = True) -> Confirmation:
    """Welch CI (on logs) of bad/good at confidence 1 - alpha.

    reproduced: the CI excludes 1 on the worse side and the estimate is worse by more than
    `threshold`; not reproduced: the CI shows the change is smaller than the threshold (or
    not in the worse direction); continue: neither yet.
    """
    from scipy.stats import t as student

    g, b = _logs(good), _logs(bad)
    if min(len(g), len(b)) < 2:
        return Confirmation(CONTINUE, NAN, NAN, NAN, len(g), len(b))
    (mg, sg), (mb, sb) = _mean_ss(g), _mean_ss(b)
    va, vb = max(sg, 1e-12) / (len(g) - 1) / len(g), max(sb, 1e-12) / (len(b) - 1) / len(b)
    df = (va + vb) ** 2 / (va ** 2 / (len(g) - 1) + vb ** 2 / (len(b) - 1))
    half = float(student.ppf(1 - alpha / 2, df)) * math.sqrt(va + vb)
    d = mb - mg
    lo, hi = math.exp(d - half), math.exp(d + half)
    ratio = math.exp(d)
    # the direction of "worse": below 1 for throughput, above 1 for latency
    worse = (lambda r: 1 - r) if higher_is_better else (lambda r: r - 1)
    significant = (hi < 1) if higher_is_better else (lo > 1)
    if significant and worse(ratio) > threshold:
        decision = REPRODUCED
    elif worse(lo if higher_is_better else hi) < threshold:
        decision = NOT_REPRODUCED  # even the worst end of the CI is within the threshold
    else:
        decision = CONTINUE
    return Confirmation(decision, ratio, lo, hi, len(g), len(b))


def agree_confirm(calls: Sequence[Confirmation]) -> str:
    """Reproduced only if every configuration reproduces it."""
    kinds = {c.decision for c in calls}
    if kinds == {REPRODUCED}:
        return REPRODUCED
    if CONTINUE in kinds and NOT_REPRODUCED not in kinds:
        return CONTINUE
    return NOT_REPRODUCED
