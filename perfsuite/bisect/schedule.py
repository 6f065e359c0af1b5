"""Which boots a bisection runs, and in what order: pure but for the `measure` callback.

`measure(commit)` boots the build of `commit` once and returns one value per configuration
(a tuple), or None when the boot failed. The same functions drive the real bisect (the
callback runs a guest through the runner) and the simulation (the callback draws numbers).

Confirmation: good and bad alternate (G B G B ...) until `decide.confirm` stops.
A step: midpoint and endpoint boots alternate, M G M B M G ..., so every midpoint boot is
next to a fresh boot of an endpoint and host drift moves both alike. The levels a step
compares against are the last `window` boots of each endpoint (the confirmation's, the
previous steps' and this step's), not all of them: old boots would let drift decide.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

from perfsuite.bisect import decide as D
from perfsuite.errors import PerfsuiteError

Values = Optional[tuple]
Measure = Callable[[str], Values]


@dataclass
class Levels:
    """Every endpoint boot so far, in order; `turn` says which endpoint boots next."""

    good_commit: str
    bad_commit: str
    good: list[tuple] = field(default_factory=list)
    bad: list[tuple] = field(default_factory=list)
    turn: int = 0
    failed: int = 0

    def boot_endpoint(self, measure: Measure) -> None:
        side = self.turn % 2
        self.turn += 1
        got = measure(self.good_commit if side == 0 else self.bad_commit)
        if got is None:
            self.failed += 1  # the endpoint built and booted before: a flaky boot, not a verdict
            return
        (self.good if side == 0 else self.bad).append(tuple(got))

    def column(self, side: str, i: int, window: int | None = None) -> list[float]:
        rows = self.good if side == D.GOOD else self.bad
        rows = rows[-window:] if window else rows
        return [r[i] for r in rows]


@dataclass(frozen=True)
class Policy:
    threshold: float = 0.05
    bound: float = 0.05         # the whole bisection's error bound
    alpha: float = 0.01         # per call (set from bound and the number of candidates)
    confirm_min: int = 3        # boots of each endpoint before the confirmation may stop
    confirm_max: int = 10
    step_max: int = 16          # midpoint boots after which a step is undecided
    window: int = 16            # endpoint boots per level a step compares against
    mid_per_endpoint: int = 2   # midpoint boots per fresh endpoint boot (M E M M E ...)
    higher_is_better: bool = True
    max_endpoint_failures: int = 3


@dataclass
class ConfirmResult:
    calls: list[D.Confirmation]
    boots: int

    @property
    def decision(self) -> str:
        d = D.agree_confirm(self.calls)
        return D.NOT_REPRODUCED if d == D.CONTINUE else d  # the cap: not shown, not bisected


def run_confirm(levels: Levels, measure: Measure, p: Policy, n_configs: int = 1) -> ConfirmResult:
    boots = 0
    while True:
        for _ in range(2):
            levels.boot_endpoint(measure)
            boots += 1
        if levels.failed > p.max_endpoint_failures:
            raise EndpointFailed(f"{levels.failed} boots of the endpoints failed")
        n = min(len(levels.good), len(levels.bad))
        calls = [D.confirm(levels.column(D.GOOD, i), levels.column(D.BAD, i), p.threshold,
                           p.bound, p.higher_is_better) for i in range(n_configs)]
        kinds = {c.decision for c in calls}
        if n >= p.confirm_min and D.CONTINUE not in kinds:
            return ConfirmResult(calls, boots)
        if n >= p.confirm_max:
            return ConfirmResult(calls, boots)


class EndpointFailed(PerfsuiteError):
    """The endpoints, which built and booted before, keep failing: no level to compare with."""


@dataclass
class StepResult:
    commit: str
    decision: str                     # good | bad | undecided | skip
    mid: list[tuple]                  # midpoint boot values
    endpoint_boots: int
    calls: list[D.Call]
    reason: str = ""
    failed_boots: int = 0             # a midpoint boot that failed (the step is then a skip)

    @property
    def assumed(self) -> bool:
        return self.reason.startswith("assumed")

    @property
    def boots(self) -> int:
        return len(self.mid) + self.endpoint_boots + self.failed_boots


def run_step(commit: str, levels: Levels, measure: Measure, p: Policy,
             n_configs: int = 1) -> StepResult:
    """Boot the midpoint (and endpoints) until every configuration's call agrees, or the cap."""
    mid: list[tuple] = []
    ends = 0
    calls: list[D.Call] = []
    while True:
        got = measure(commit)
        if got is None:
            return StepResult(commit, "skip", mid, ends, calls, "the build did not boot", 1)
        mid.append(tuple(got))
        if len(mid) % p.mid_per_endpoint == 1 or p.mid_per_endpoint == 1:
            levels.boot_endpoint(measure)
            ends += 1
        if levels.failed > p.max_endpoint_failures:
            raise EndpointFailed(f"{levels.failed} boots of the endpoints failed")
        calls = [D.classify(levels.column(D.GOOD, i, p.window), levels.column(D.BAD, i, p.window),
                            [r[i] for r in mid], p.alpha) for i in range(n_configs)]
        verdict = D.agree(calls)
        if verdict in (D.GOOD, D.BAD):
            return StepResult(commit, verdict, mid, ends, calls)
        if verdict == D.UNDECIDED:
            return StepResult(commit, D.UNDECIDED, mid, ends, calls,
                              "the configurations disagree")
        if len(mid) >= p.step_max:
            return StepResult(commit, D.UNDECIDED, mid, ends, calls,
                              f"no call within {p.step_max} midpoint boots")


def policy_for(n_candidates: int, **kw) -> Policy:
    bound = kw.pop("bound", 0.05)
    return Policy(bound=bound, alpha=D.step_alpha(bound, n_candidates), **kw)


def stated_bound(p: Policy, steps: Sequence[StepResult]) -> float:
    """The bound the output states: alpha times the calls actually made (decide.py)."""
    return p.alpha * sum(1 for s in steps if s.decision in (D.GOOD, D.BAD) and not s.assumed)
