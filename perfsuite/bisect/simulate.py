"""Synthetic bisections: known levels, boot-to-boot noise, optional drift; no QEMU.

A history of `n` commits after the good one, the culprit drawn uniformly; commits before it
sit at level 1, from it on at 1 - step. One boot of commit k yields
level(k) * exp(boot effect + mean of `reps` repetition noises) * exp(drift), the drift a
random walk advanced at every boot. The bisection itself is a plain binary search over the
indices (what `git bisect` does on a linear history).

Three rules are run on the same kind of history:
- `sequential`: perfsuite's (schedule.run_confirm + schedule.run_step);
- `fixed`: every endpoint and midpoint gets n boots, the midpoint goes to the nearer level;
- `vote`: endpoints get n boots, each midpoint 3, each boot votes for the nearer level,
  2 of 3 decide (a fixed-vote rule of the kind run-perf offers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from perfsuite.bisect import decide as D
from perfsuite.bisect import schedule as S


@dataclass
class Truth:
    n: int = 32
    step: float = 0.10
    boot_cv: float = 0.04
    rep_cv: float = 0.03
    reps: int = 1
    drift: float = 0.0            # sd of the random walk's step per boot (log)

    @property
    def cv(self) -> float:
        return math.sqrt(self.boot_cv ** 2 + self.rep_cv ** 2 / self.reps)


@dataclass
class World:
    """One synthetic history and its host: `measure(commit)` boots it once."""

    truth: Truth
    rng: np.random.Generator
    culprit: int = 0
    walk: float = 0.0
    boots: int = 0

    def __post_init__(self) -> None:
        self.culprit = int(self.rng.integers(1, self.truth.n + 1))

    def level(self, k: int) -> float:
        return 1.0 if k < self.culprit else 1.0 - self.truth.step

    def measure(self, commit: str) -> tuple:
        t = self.truth
        self.boots += 1
        self.walk += self.rng.normal(0, t.drift) if t.drift else 0.0
        noise = self.rng.normal(0, t.boot_cv) + self.rng.normal(0, t.rep_cv, t.reps).mean()
        return (self.level(int(commit)) * math.exp(noise + self.walk),)


@dataclass
class Outcome:
    named: int | None       # None: not reproduced or undecided
    culprit: int
    boots: int
    steps: int
    step_boots: list[int] = field(default_factory=list)

    @property
    def wrong(self) -> bool:
        return self.named is not None and self.named != self.culprit


def _search(world: World, call) -> tuple[int | None, list[int]]:
    """Binary search (lo good, hi bad); `call(mid) -> (decision, boots)`."""
    lo, hi, spent = 0, world.truth.n, []
    while hi - lo > 1:
        mid = (lo + hi) // 2
        decision, boots = call(mid)
        spent.append(boots)
        if decision == D.GOOD:
            lo = mid
        elif decision == D.BAD:
            hi = mid
        else:
            return None, spent
    return hi, spent


def sequential(world: World, policy: S.Policy) -> Outcome:
    levels = S.Levels("0", str(world.truth.n))
    conf = S.run_confirm(levels, world.measure, policy)
    if conf.decision != D.REPRODUCED:
        return Outcome(None, world.culprit, world.boots, 0)

    def call(mid: int):
        r = S.run_step(str(mid), levels, world.measure, policy)
        return r.decision, r.boots
    named, spent = _search(world, call)
    return Outcome(named, world.culprit, world.boots, len(spent), spent)


def _nearest(x: float, g: float, b: float) -> str:
    return D.GOOD if abs(x - g) <= abs(x - b) else D.BAD


def _boots(world: World, commit: int, n: int) -> list[float]:
    return [math.log(world.measure(str(commit))[0]) for _ in range(n)]


def fixed(world: World, n: int) -> Outcome:
    g = float(np.mean(_boots(world, 0, n)))
    b = float(np.mean(_boots(world, world.truth.n, n)))
    named, spent = _search(world, lambda mid: (_nearest(float(np.mean(_boots(world, mid, n))), g, b), n))
    return Outcome(named, world.culprit, world.boots, len(spent), spent)


def vote(world: World, n_endpoint: int) -> Outcome:
    g = float(np.mean(_boots(world, 0, n_endpoint)))
    b = float(np.mean(_boots(world, world.truth.n, n_endpoint)))

    def call(mid: int):
        votes = [_nearest(x, g, b) for x in _boots(world, mid, 3)]
        return (D.BAD if votes.count(D.BAD) >= 2 else D.GOOD), 3
    named, spent = _search(world, call)
    return Outcome(named, world.culprit, world.boots, len(spent), spent)


@dataclass
class Summary:
    rule: str
    runs: int
    wrong: float            # share naming the wrong commit
    unnamed: float          # share not reproduced / undecided
    boots_total: float      # mean boots per bisection
    boots_step: float       # mean boots per bisection step (confirmation excluded)

    def row(self) -> list[str]:
        return [self.rule, f"{self.wrong:.1%}", f"{self.unnamed:.1%}", f"{self.boots_step:.2f}",
                f"{self.boots_total:.1f}"]


def summarize(rule: str, outcomes: list[Outcome]) -> Summary:
    steps = [b for o in outcomes for b in o.step_boots]
    return Summary(rule, len(outcomes), float(np.mean([o.wrong for o in outcomes])),
                   float(np.mean([o.named is None for o in outcomes])),
                   float(np.mean([o.boots for o in outcomes])),
                   float(np.mean(steps)) if steps else float("nan"))


def simulate(rule: str, truth: Truth, runs: int, seed: int, **kw) -> Summary:
    """`runs` bisections under one rule: sequential (kw: policy), fixed (n), vote (n_endpoint)."""
    rng = np.random.default_rng(seed)
    fn = {"sequential": sequential, "fixed": fixed, "vote": vote}[rule]
    outs = [fn(World(truth, rng), **kw) for _ in range(runs)]
    return summarize(rule, outs)
