"""The lab run: hand each host its share, collect as results arrive, move a lost host's work.

State lives on the controller: which (class, configuration) items are pending, which host
runs which (a Job), which hosts are lost. Each host runs one `perfsuite run` at a time (a
second one would disturb the first's timing); items of a lost host go back to its class's
pool and are handed to the next idle host of that class. Completeness is judged from the
controller's runs dir only, so re-running the same command resumes across the lab.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from perfsuite.commands.base import RunArgs
from perfsuite.lab.ansible import Ansible, HostOutcome
from perfsuite.lab.collect import pack_local, unpack
from perfsuite.lab.inventory import LabHost
from perfsuite.lab.schedule import assign, expected_seconds
from perfsuite.run.runner import boot_reps, complete_reps

Key = tuple[str, str, int]   # (class, configuration name, boot number; 0: all its boots)


@dataclass
class Job:
    host: LabHost
    dir: str
    keys: list[Key]
    since: float = 0.0
    seq: int = 0
    misses: int = 0


@dataclass
class LabOptions:
    matrix: Path
    run_args: RunArgs
    extra: tuple[str, ...] = ()      # more `perfsuite run` options (--label, --qemu, ...)
    poll: float = 5.0                # seconds between collections
    lost_after: int = 2              # collections in a row without an answer: host lost
    max_moves: int = 2               # times one item may be moved after a loss
    spread: bool = False             # a configuration's boots may go to different hosts


@dataclass
class LabRun:
    hosts: list[LabHost]
    configs: list[Any]               # perfsuite.matrix.config.Config
    opts: LabOptions
    ansible: Ansible
    on_event: Callable[..., None] = lambda kind, **d: None
    # unit (a configuration, or a baseline/candidate pair) -> run dirs it fills, relative to
    # the class's runs dir; default: one dir per configuration, named like it
    units: dict[str, list[str]] | None = None
    argv_for: Callable[["LabRun", "Job"], list[str]] | None = None   # default: `perfsuite run`
    jobs: dict[str, Job] = field(default_factory=dict)
    lost: dict[str, str] = field(default_factory=dict)
    gone: dict[str, Job] = field(default_factory=dict)   # a lost host's last job: asked again
    back: list[str] = field(default_factory=list)        # lost hosts that came back
    pool: list[Key] = field(default_factory=list)
    moves: dict[Key, int] = field(default_factory=dict)
    failed: set[Key] = field(default_factory=set)
    not_run: list[Key] = field(default_factory=list)
    duplicates: int = 0

    def __post_init__(self) -> None:
        self.runs_dir = Path(self.opts.run_args.runs_dir)
        self.classes = sorted({h.cls for h in self.hosts})
        self.by_name = {c.name: c for c in self.configs}
        if self.units is None:
            self.units = {c.name: [c.name] for c in self.configs}
        self.run_id = hashlib.sha256(str(self.runs_dir.resolve()).encode()).hexdigest()[:12]
        self.staging = Path(tempfile.mkdtemp(prefix="perfsuite-lab-"))
        self.inputs = self._inputs()
        self.input_dir = input_dir(self.opts.matrix)
        self.matrix_on_host = f"{self.input_dir}/{self.opts.matrix.name}"

    # ------------------------------------------------------------------ where things are

    def local_dir(self, cls: str) -> Path:
        """runs_dir/NAME for a one-class lab; runs_dir/CLASS/NAME when classes are compared apart."""
        return self.runs_dir if len(self.classes) == 1 else self.runs_dir / cls

    def wanted(self, key: Key) -> set[int]:
        """The repetition numbers a unit fills: all of its configuration's, or one boot's."""
        a = self.opts.run_args
        if key[2]:
            return set(boot_reps(key[2], a.repeat))
        return set(range(1, a.reps_per_config + 1))

    def missing(self, key: Key) -> int:
        want = self.wanted(key)
        return sum(len(want - complete_reps(self.local_dir(key[0]) / rel)) for rel in self.units[key[1]])

    def all_keys(self) -> list[Key]:
        """Every unit: (class, configuration, 0), or with --spread one per boot (matrix order,
        boot 1 of every configuration first, as `perfsuite run` interleaves them)."""
        boots = range(1, (self.opts.run_args.boots or 1) + 1) if self.opts.spread else (0,)
        return [(cls, u, b) for cls in self.classes for b in boots for u in self.units]

    def cost(self, key: Key) -> float:
        c = self.by_name[key[1]]
        return expected_seconds(c.runtime, c.ramp, self.missing(key))

    def rels(self, keys: list[Key]) -> list[str]:
        return list(dict.fromkeys(rel for k in keys for rel in self.units[k[1]]))

    def _inputs(self) -> Path:
        """The matrix file and the job files beside it, as the host gets them."""
        d = self.staging / "inputs"
        d.mkdir()
        src = self.opts.matrix.resolve().parent
        for p in src.iterdir():
            if p.is_file() and (p.suffix in (".toml", ".job", ".fio") or p == self.opts.matrix.resolve()):
                shutil.copy2(p, d / p.name)
        return d

    # ------------------------------------------------------------------ the loop

    def run(self) -> None:
        keys = self.all_keys()
        for key in keys:
            have = len(self.wanted(key)) * len(self.units[key[1]]) - self.missing(key)
            for n in range(have):
                self.on_event("rep", name=self._label(key), rep=n + 1, status="skipped")
        self.pool = [k for k in keys if self.missing(k) > 0]
        self._schedule()
        while self.jobs or self.pool:  # each pass dispatches, collects, or gives items up
            if self.jobs:
                time.sleep(self.opts.poll)
                self.collect()
            self._schedule()

    def _alive(self, cls: str) -> list[LabHost]:
        return [h for h in self.hosts if h.cls == cls and h.name not in self.lost]

    def _schedule(self) -> None:
        for cls in self.classes:
            items = [k for k in self.pool if k[0] == cls]
            if not items:
                continue
            alive = self._alive(cls)
            if not alive:
                self.not_run += items
                self.pool = [k for k in self.pool if k[0] != cls]
                for k in items:
                    self.on_event("note", text=f"{self._label(k)}: not run: no host of class {cls} left")
                continue
            idle = [h.name for h in alive if h.name not in self.jobs]
            if idle:
                plan = assign({k: self.cost(k) for k in items}, idle,
                              group=(lambda k: k[1]) if self.opts.spread else None)
                self.pool = [k for k in self.pool if k[0] != cls]
                self._dispatch({h: ks for h, ks in plan.items() if ks})

    def _dispatch(self, plan: dict[str, list[Key]]) -> None:
        hosts = {h.name: h for h in self.hosts}
        vars_, jobs = {}, {}
        for name, keys in plan.items():
            h = hosts[name]
            job = Job(h, f"{h.dir}/runs/{self.run_id}/{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{len(self.moves)}", keys)
            push = self.staging / f"push-{name}-{time.monotonic_ns()}.tar"
            has_push = pack_local(self.local_dir(h.cls), self.rels(keys), push)
            vars_[name] = {"dir": job.dir, "inputs": str(self.inputs), "input_dir": self.input_dir,
                           "cmd": self.command(job),
                           "push": str(push) if has_push else ""}
            jobs[name] = job
        outcomes = self.ansible.play("run", {"perfsuite_plan": vars_}, limit=sorted(plan))
        for name, job in jobs.items():
            o = outcomes.get(name)
            if o is not None and o.ok:
                self.jobs[name] = job
                self.on_event("note", text=f"{name}: started {_share(job.keys)}")
            else:
                self._lose(job, _why(o))

    def command(self, job: Job) -> str:
        """The host's perfsuite command for its share, as a shell line (detached by Ansible)."""
        h = job.host
        env = {"PERFSUITE_LAB_HOST": h.name, "PERFSUITE_LAB_CLASS": h.cls,
               "PERFSUITE_CACHE": f"{h.dir}/cache"}
        argv = (self.argv_for or LabRun.run_argv)(self, job)
        line = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()) + " " + shlex.join(argv)
        return (f"mkdir -p work && {{ {line} > run.log 2>&1 & echo $! > pid; wait $!; "
                f"echo $? > rc; }}")

    def run_argv(self, job: Job) -> list[str]:
        a, h = self.opts.run_args, job.host
        argv = [f"{h.dir}/venv/bin/perfsuite", "run", self.matrix_on_host,
                "--runs-dir", "runs", "--work-root", f"{job.dir}/work", "--quiet",
                "--repeat", str(a.repeat), "--accel", a.accel]
        for opt, v in (("--runtime", a.runtime), ("--ramp", a.ramp), ("--timeout", a.timeout),
                       ("--boots", a.boots)):
            if v is not None:
                argv += [opt, str(v)]
        argv += list(self.opts.extra)
        for name in dict.fromkeys(k[1] for k in job.keys):
            argv += ["--only", name]
        for name, boots in boot_numbers(job.keys).items():
            argv += ["--boot-numbers", f"{name}={','.join(map(str, boots))}"]
        return argv

    # ------------------------------------------------------------------ collection

    def collect(self, lost_too: bool = True) -> None:
        """One round over the busy hosts (and the lost ones, to see whether they came back)."""
        asked = {**(self.gone if lost_too else {}), **self.jobs}
        if not asked:
            return
        inbox = self.staging / "inbox"
        inbox.mkdir(exist_ok=True)
        plan = {n: {"dir": j.dir, "since": j.since, "seq": j.seq} for n, j in asked.items()}
        outcomes = self.ansible.play("collect", {"perfsuite_plan": plan, "perfsuite_inbox": str(inbox)},
                                     limit=sorted(plan))
        for name, job in list(asked.items()):
            if name in self.jobs:
                self._collected(job, outcomes.get(name), inbox)
            else:
                self._returned(job, outcomes.get(name), inbox)

    def _unpack(self, job: Job, info: dict, inbox: Path) -> None:
        if info.get("tar"):
            tar = inbox / f"{job.host.name}-{job.seq}.tar"
            for a in unpack(tar, self.local_dir(job.host.cls), job.host.name, set(self.rels(job.keys))):
                self._arrived(job, a)
            tar.unlink(missing_ok=True)
        job.since, job.seq = info["next_since"], job.seq + 1

    def _returned(self, job: Job, o: HostOutcome | None, inbox: Path) -> None:
        """A lost host answered again (ssh back, host rebooted): what its last job finished
        comes home (a repetition another host made meanwhile is dropped, not counted twice);
        once nothing of that job runs there any more, the host takes work again."""
        if o is None or not o.ok:
            return
        info = json.loads(o.results["pack"]["stdout"])
        self._unpack(job, info, inbox)
        if info.get("alive"):
            return  # its old share still runs there (ssh went away, the host did not)
        del self.gone[job.host.name]
        why = self.lost.pop(job.host.name)
        self.back.append(job.host.name)
        self.on_event("note", text=f"{job.host.name} is back (was lost: {why}); it takes work again")

    def _collected(self, job: Job, o: HostOutcome | None, inbox: Path) -> None:
        if o is None or not o.ok:
            job.misses += 1
            if job.misses >= self.opts.lost_after:
                self._lose(job, _why(o))
            return
        job.misses = 0
        info = json.loads(o.results["pack"]["stdout"])
        self._unpack(job, info, inbox)
        if info.get("alive"):
            return
        if info.get("pid") is None and info.get("rc") is None and job.seq <= self.opts.lost_after:
            return  # the detached shell has not written its pid yet
        if info.get("rc") is None:
            self._lose(job, "its perfsuite run died without an exit status (killed?)")
        else:
            self._finished(job, int(info["rc"]))

    def _arrived(self, job: Job, a) -> None:
        if a.status == "duplicate":
            self.duplicates += 1
            self.on_event("note", text=f"{job.host.name}: {a.name} #{a.rep} already here; dropped")
            return
        key = (job.host.cls, a.name, 0)
        self.on_event("rep", name=f"{job.host.name}: {self._label(key)}", rep=a.rep,
                      status=a.status, error=a.error)

    def _finished(self, job: Job, rc: int) -> None:
        del self.jobs[job.host.name]
        for key in job.keys:
            if self.missing(key) and key not in self.failed:
                self.failed.add(key)   # the host ran it to the end: failed, not lost
        if rc not in (0, 1):
            self.on_event("note", text=f"{job.host.name}: perfsuite run exited {rc} "
                                       f"(see {job.dir}/run.log on the host)")

    def _lose(self, job: Job, why: str) -> None:
        self.jobs.pop(job.host.name, None)
        self.lost[job.host.name] = why
        self.gone[job.host.name] = job
        moved = []
        for key in job.keys:
            if self.missing(key) == 0:
                continue
            self.moves[key] = self.moves.get(key, 0) + 1
            if self.moves[key] > self.opts.max_moves:
                self.not_run.append(key)
            else:
                self.pool.append(key)
                moved.append(key)
        self.on_event("note", text=f"{job.host.name} lost ({why}): {_share(moved, 'unfinished ')} "
                                   f"go to another host of class {job.host.cls}")

    def stop(self) -> None:
        """Ctrl-C: end every remote run (no QEMU left on any host), then keep what finished."""
        if not self.jobs:
            return
        plan = {n: {"dir": j.dir} for n, j in self.jobs.items()}
        self.ansible.play("stop", {"perfsuite_plan": plan}, limit=sorted(plan))
        self.collect(lost_too=False)

    def _label(self, key: Key) -> str:
        name = key[1] if len(self.classes) == 1 else f"{key[0]}/{key[1]}"
        return f"{name} boot {key[2]}" if key[2] else name

    def describe(self, key: Key) -> str:
        """CLASS/NAME[ boot N], for the closing report."""
        return f"{key[0]}/{key[1]}" + (f" boot {key[2]}" if key[2] else "")

    def cleanup(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


def input_dir(matrix: Path) -> str:
    """Where the matrix and its job files go in a host's dispatch dir (its cwd there): the
    matrix's folder relative to here when it lies below here, so that the fio_job path a
    host records (relative to its cwd, as `run` records it) is the one a local run from here
    records and `compare` matches lab rows with local ones; `input` otherwise (pure)."""
    rel = os.path.relpath(matrix.parent) if not matrix.is_absolute() else ""
    if not rel or rel.startswith(".."):
        try:
            rel = os.path.relpath(matrix.resolve().parent)
        except ValueError:
            rel = ".."
    if rel.startswith("..") or os.path.isabs(rel):
        return "input"
    return rel


def boot_numbers(keys: list[Key]) -> dict[str, list[int]]:
    """NAME -> the boots a share holds, for the units that are single boots (pure)."""
    out: dict[str, list[int]] = {}
    for _, name, boot in keys:
        if boot:
            out.setdefault(name, []).append(boot)
    return {n: sorted(set(b)) for n, b in out.items()}


def _share(keys: list[Key], what: str = "") -> str:
    boots = sum(1 for k in keys if k[2])
    if boots:
        return f"{boots} {what}boot(s) of {len({k[1] for k in keys})} configuration(s)"
    return f"{len(keys)} {what}configuration(s)"


def _why(o: HostOutcome | None) -> str:
    if o is None:
        return "no answer from Ansible"
    return f"unreachable: {o.unreachable}" if o.unreachable else (o.failed or "failed")
