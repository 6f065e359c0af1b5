"""One bisection, end to end: builds, boots through the runner, `git bisect`, resume.

Layout of the results dir:
    state.json              what is being bisected (a rerun with other inputs is refused)
    repo/                   the private clone where `git bisect` runs
    builds/HASH.json, HASH/ the build cache (see build.py)
    runs/HASH12/NAME/N.*    every boot's results, as `perfsuite run` writes them
    bisect.log              `git bisect log`, after every call
    result.json|.md|.txt    the outcome

Resume is a replay: the procedure is deterministic given what is on disk, so a rerun takes
the same decisions from the same boots (the runner skips repetitions already complete, the
build cache every build already made) and continues where the interrupted one stopped.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import orjson

from perfsuite.bisect import decide as D
from perfsuite.bisect import schedule as S
from perfsuite.bisect.build import Build, Builder, BuildError
from perfsuite.bisect.git import Bisect, CommitInfo, candidates, history, info, resolve
from perfsuite.errors import BadInput, PerfsuiteError
from perfsuite.fsutil import atomic_write_json, atomic_write_text


class BisectError(PerfsuiteError):
    pass


@dataclass(frozen=True)
class Request:
    src: Path
    good: str
    bad: str
    configs: tuple            # perfsuite.matrix.config.Config, qemu filled per commit
    results: Path
    metric: str = "iops"
    threshold: float = 0.05
    bound: float = 0.05
    recipe: str | None = None
    repeat: int = 1
    step_max: int = 16
    runs: Path | None = None            # where boots go (default: results/runs)
    assume: tuple = ()                  # ((hash prefix, good|bad), ...): the user's calls


@dataclass
class Outcome:
    status: str                               # found | not reproduced | undecided | ambiguous
    good: CommitInfo
    bad: CommitInfo
    candidates: int
    policy: S.Policy
    configs: list[str]
    metric: str
    confirm: S.ConfirmResult | None = None
    steps: list[tuple[CommitInfo, S.StepResult]] = field(default_factory=list)
    first_bad: CommitInfo | None = None
    could_be: list[CommitInfo] = field(default_factory=list)
    builds: int = 0
    boots: int = 0
    wall_s: float = 0.0
    bound: float = 0.0
    note: str = ""
    levels: list[dict] = field(default_factory=list)   # tested commits in commit order

    @property
    def exit_code(self) -> int:
        return 0 if self.status == "found" else 1


def metric_value(path: Path, metric: str) -> float | None:
    from perfsuite.analysis.fio import FioParseError, parse_file
    try:
        v = parse_file(path).get(metric)
    except FioParseError:
        return None
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) and v > 0 else None


class Measurer:
    """`measure(commit)`: one boot per configuration of the commit's build, through the runner."""

    def __init__(self, req: Request, builder: Builder, runner: Any, run_config: Callable,
                 log: Callable[[str], None]) -> None:
        self.req, self.builder, self.runner, self.run_config, self.log = req, builder, runner, run_config, log
        self.count: dict[str, int] = {}
        self.binaries: dict[str, str] = {}
        self.values: dict[str, list[tuple]] = {}   # commit -> every successful boot's values

    def __call__(self, commit: str) -> tuple | None:
        k = self.count[commit] = self.count.get(commit, 0) + 1
        r = self.req.repeat
        reps = list(range((k - 1) * r + 1, k * r + 1))
        d = (self.req.runs or self.req.results / "runs") / commit[:12]
        values = []
        for c in self.req.configs:
            c = c.replace(qemu=self.binaries[commit])
            run_dir = d / c.name
            if not self._failed_before(run_dir, reps):
                self.run_config(c, d, reps, self.runner)
            got = [metric_value(run_dir / f"{n}.json", self.req.metric) for n in reps]
            if any(v is None for v in got):
                self.log(f"{commit[:12]} boot {k} ({c.name}): failed (see {run_dir}/)")
                return None
            values.append(sum(got) / len(got))
        self.values.setdefault(commit, []).append(tuple(values))
        return tuple(values)

    @staticmethod
    def _failed_before(run_dir: Path, reps: list[int]) -> bool:
        """A boot that failed in an earlier session stays failed (the replay stays the same)."""
        for n in reps:
            try:
                meta = orjson.loads((run_dir / f"{n}.meta.json").read_bytes())
            except (OSError, orjson.JSONDecodeError):
                continue
            if meta.get("status") != "ok" and not (run_dir / f"{n}.json").exists():
                return True
        return False


def _fingerprint(req: Request, good: str, bad: str) -> dict:
    return {"good": good, "bad": bad, "metric": req.metric, "threshold": req.threshold,
            "bound": req.bound, "recipe": str(Path(req.recipe).resolve()) if req.recipe else None,
            "repeat": req.repeat, "step_max": req.step_max,
            "configs": [dict(c.to_meta(), qemu=None, name=c.name) for c in req.configs]}


def _state(req: Request, fp: dict) -> dict:
    path = req.results / "state.json"
    try:
        old = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        old = None
    if old and old.get("fingerprint") != fp:
        diff = sorted(k for k in fp if old["fingerprint"].get(k) != fp[k])
        raise BadInput(f"{req.results} holds another bisect (differs in: {', '.join(diff)}); "
                       "give another --results-dir")
    state = old or {"fingerprint": fp, "elapsed_s": 0.0, "sessions": 0}
    state["sessions"] += 1
    req.results.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, state)
    return state


def run_bisect(req: Request, runner: Any, run_config: Callable,
               log: Callable[[str], None] = lambda m: None) -> Outcome:
    from perfsuite.run.runner import runs_lock
    from filelock import Timeout

    good, bad = resolve(req.src, req.good), resolve(req.src, req.bad)
    n = candidates(req.src, good, bad)
    lock = runs_lock(req.results)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise BisectError(f"another perfsuite bisect is using {req.results}") from None
    t0 = time.monotonic()
    state = _state(req, _fingerprint(req, good, bad))
    try:
        out = _bisect(req, good, bad, n, runner, run_config, log)
    finally:  # the wall time of every session, the interrupted ones included
        state["elapsed_s"] = state.get("elapsed_s", 0.0) + time.monotonic() - t0
        atomic_write_json(req.results / "state.json", state)
        lock.release()
    out.wall_s = state["elapsed_s"]
    return out


def _bisect(req: Request, good: str, bad: str, n: int, runner: Any, run_config: Callable,
            log: Callable[[str], None]) -> Outcome:
    bis = Bisect(req.src, req.results / "repo")
    builder = Builder(req.src, bis.path, req.results, req.recipe)
    measure = Measurer(req, builder, runner, run_config, log)
    policy = S.policy_for(n, threshold=req.threshold, bound=req.bound, step_max=req.step_max,
                          higher_is_better=not req.metric.startswith("lat"))
    verdict = bis.prepare(good, bad)
    built: set[str] = set()
    for commit in (good, bad):  # endpoints first: without them there is nothing to compare
        b = _build_at(bis, builder, commit)
        if b.status != "ok":
            raise BuildError(f"the {'good' if commit == good else 'bad'} endpoint "
                             f"{commit[:12]} does not build: {b.error}")
        measure.binaries[commit] = b.binary
        built.add(commit)
    out = Outcome("not reproduced", info(req.src, good), info(req.src, bad), n, policy,
                  [c.name for c in req.configs], req.metric)
    levels = S.Levels(good, bad)
    log(f"confirming: {good[:12]} (good) vs {bad[:12]} (bad), boots interleaved")
    out.confirm = S.run_confirm(levels, measure, policy, len(req.configs))
    if out.confirm.decision != D.REPRODUCED:
        return _finish(req, out, bis, builder, measure, built)
    while verdict.next is not None:
        commit = verdict.next
        b = _build_at(bis, builder, commit)
        built.add(commit)
        if b.status != "ok":
            log(f"{commit[:12]}: build failed ({b.error}): skipped")
            step = S.StepResult(commit, "skip", [], 0, [], f"build failed: {b.error}")
        elif (mine := _assumed(req, commit)) is not None:
            step = S.StepResult(commit, mine, [], 0, [], "assumed (--assume)")
        else:
            measure.binaries[commit] = b.binary
            step = S.run_step(commit, levels, measure, policy, len(req.configs))
        out.steps.append((info(req.src, commit), step))
        log(f"{commit[:12]}: {step.decision} after {step.boots} boot(s)"
            + (f" ({step.reason})" if step.reason else ""))
        if step.decision == D.UNDECIDED:
            out.status = "undecided"
            return _finish(req, out, bis, builder, measure, built)
        verdict = bis.mark(commit, step.decision)
        atomic_write_text(req.results / "bisect.log", bis.log())
    if verdict.first_bad:
        out.status, out.first_bad = "found", info(req.src, verdict.first_bad)
    else:
        out.status, out.could_be = "ambiguous", [info(req.src, c) for c in verdict.could_be]
    return _finish(req, out, bis, builder, measure, built)


def _assumed(req: Request, commit: str) -> str | None:
    for prefix, decision in req.assume:
        if commit.startswith(prefix.lower()):
            return decision
    return None


def _build_at(bis: Bisect, builder: Builder, commit: str) -> Build:
    if builder.record(commit) is None:
        bis.git_checkout(commit)
    return builder.build(commit)


def _finish(req: Request, out: Outcome, bis: Bisect, builder: Builder, measure: Measurer,
            built: set[str]) -> Outcome:
    out.builds = len(built)
    out.boots = sum(measure.count.values()) * len(req.configs)
    out.bound = S.stated_bound(out.policy, [s for _, s in out.steps])
    order = [out.good.hash] + history(req.src, out.good.hash, out.bad.hash)
    out.levels = [{"commit": c, "index": i, "values": [list(v) for v in measure.values[c]]}
                  for i, c in enumerate(order) if c in measure.values]
    atomic_write_text(req.results / "bisect.log", bis.log())
    return out
