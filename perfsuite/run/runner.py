"""Configs x boots x repetitions -> runs/NAME/N.json (+ N.meta.json, N.log): retries, resume.

`run_matrix` gives each config `boots` boots of `repeat` repetitions (boot b holds repetitions
(b-1)*repeat+1 .. b*repeat), interleaved: boot 1 of every config, then boot 2 of every config,
..., so host drift spreads over all of them; resume skips what is complete, boot by boot.
One boot runs every pending repetition of its slot (`fresh_guest`: one boot each). As each
W/N.json appears it is recorded through perfsuite.rundir (meta, then result) with the
console so far (perfsuite.run.oneboot). A repetition that does not finish before its deadline gets its guest killed, its log
kept and status "timeout"; the remaining repetitions go to a new boot. `retries` extra
attempts are given to each failed repetition. Ctrl-C (KeyboardInterrupt) stops the running
guest and keeps everything already written. A lock keeps two runners out of one runs dir.
"""

from __future__ import annotations

from perfsuite.errors import PerfsuiteError

import atexit
import dataclasses
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from filelock import Timeout

from perfsuite.fsutil import owned_tempdir, remove_stale_dirs
from perfsuite.run.boot import Boot, BootLike
from perfsuite.run.oneboot import run_boot
from perfsuite.matrix import axes
from perfsuite.matrix.config import Config
from perfsuite import rundir
from perfsuite.rundir import complete_reps
from perfsuite.qemu.accel import AccelChoice, resolve_accel

Event = Callable[..., None]  # on_event(kind, **data): "boot", "rep", "note"


class RunnerError(PerfsuiteError, RuntimeError):
    pass


@dataclass
class RunOptions:
    repeat: int = 5                     # repetitions per boot
    boots: int = 1                      # boots per configuration (run_matrix)
    accel: str = "auto"                 # auto | kvm | tcg
    timeout: float | None = None        # seconds per repetition; None: derived from the job
    retries: int = 0
    resume: bool = True                 # skip repetitions already complete in runs/
    fresh_guest: bool = False           # one boot per repetition
    work_root: str | None = None        # where per-boot work dirs go (default: the temp dir)
    keep_workdir: bool = False
    poweroff: bool = True               # False: the guest never powers off (timeout tests)
    profile: str | None = None          # "perf": record one repetition per boot (hostview)
    # only these boot numbers (NAME -> numbers; None -> numbers of every other config): a lab
    # host's part of a configuration spread over several hosts; None: every boot
    boot_numbers: Mapping[str | None, tuple[int, ...]] | None = None


@dataclass
class RepOutcome:
    name: str
    rep: int
    status: str                          # ok | failed | timeout | skipped
    error: str | None = None
    attempts: int = 0
    boot: int | None = None              # the boot it ran in (None: skipped, not run now)
    record: dict | None = None           # an ok repetition's fio record (analysis.fio's fields)


@dataclass
class Runner:
    """Shared state of one invocation: the image, the accelerator, the boot launcher."""

    options: RunOptions = field(default_factory=RunOptions)
    image: Any = None
    launcher: Callable[..., BootLike] | None = None     # tests pass a fake
    accel_choice: AccelChoice | None = None
    on_event: Event | None = None

    def event(self, kind: str, **data: Any) -> None:
        if self.on_event is not None:
            self.on_event(kind, **data)

    def get_image(self) -> Any:
        if self.image is None:
            from perfsuite.guest import ImageError, ensure_image
            try:
                self.image = pin_image(ensure_image(log=lambda m: self.event("note", text=str(m))))
            except ImageError as e:  # apt offline, no busybox, ...: one line, not a traceback
                raise RunnerError(f"guest image: {e}") from None
        return self.image

    def accel(self, qemu: str) -> AccelChoice:
        if self.accel_choice is None:
            image = self.get_image() if self.options.accel == "auto" else None
            self.accel_choice = resolve_accel(self.options.accel, qemu, image,
                                              log=lambda m: self.event("note", text=m))
        return self.accel_choice

    def launch(self, c: Config, reps: Sequence[int], accel: str) -> BootLike:
        if self.launcher is not None:
            return self.launcher(c, reps, accel=accel, poweroff=self.options.poweroff)
        from perfsuite.qemu.features import probe
        image = self.get_image()
        if not all(Path(getattr(image, k)).exists() for k in ("kernel", "initrd")):
            self.event("note", text=f"guest image {getattr(image, 'key', '')} left the cache; "
                                    "ensuring it again")
            self.image = None
            image = self.get_image()
        return Boot(c, reps, image, accel=accel, work_root=self.options.work_root,
                    vq_mapping=probe(c.qemu).vq_mapping, poweroff=self.options.poweroff,
                    keep_workdir=self.options.keep_workdir, profile=self.options.profile)


def pin_image(image: Any) -> Any:
    """Hard-link the image's kernel + initrd into a private dir for this process, so that a
    cache prune (a newer image built meanwhile) cannot pull them away mid-matrix."""
    if not dataclasses.is_dataclass(image):
        return image
    try:
        d = owned_tempdir(f"perfsuite-image-{getattr(image, 'key', '')}-")
        atexit.register(shutil.rmtree, d, True)
        files = {}
        for k in ("kernel", "initrd"):
            src = Path(getattr(image, k))
            dst = d / src.name
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)
            files[k] = dst
        return dataclasses.replace(image, **files)
    except (OSError, TypeError, ValueError):
        return image


# ----------------------------------------------------------------------------- run dir

def _same_setting(key: str, old: Any, new: Any) -> bool:
    if key in ("fio_job", "backend_path"):
        # recorded relative to the directory perfsuite ran in: compare the file names
        return (old is None) == (new is None) and (old is None or Path(old).name == Path(new).name)
    if key == "qemu" and isinstance(old, str) and isinstance(new, str):
        resolve = lambda q: os.path.realpath(shutil.which(q) or q)  # noqa: E731
        return old == new or resolve(old) == resolve(new)
    return old == new


# Settings that change how long fio measures, not what: old repetitions with other values are
# kept (with a warning); any other difference means another device, job or build.


def resume_conflict(config: Config, run_dir: Path) -> tuple[str, bool] | None:
    """Why the complete repetitions in run_dir do not match `config`: (message, only timing
    differs), or None when they match (or carry no meta to compare).

    A run name does not hold every setting (runtime, iodepth, the binary when two builds
    share a version label, ...): without this, a patched QEMU run after the stock one would
    "skip" every repetition and print the stock build's numbers under its name.
    """
    want = config.to_meta()
    reps, diffs = [], {}
    for n in sorted(complete_reps(run_dir)):
        got = rundir.read_config(run_dir, n)
        if got is None:
            continue  # no meta (data from other tools): nothing to compare
        d = {k: (got[k], v) for k, v in want.items() if k in got and not _same_setting(k, got[k], v)}
        if d:
            reps.append(n)
            diffs.update(d)
    if not reps:
        return None
    what = ", ".join(f"{k} {old!r}, now {new!r}" for k, (old, new) in sorted(diffs.items()))
    return (f"{run_dir} holds repetition(s) {', '.join(map(str, reps))} made with other settings "
            f"({what})", all(not axes.AXES[k].identity for k in diffs if k in axes.AXES))


_RESUME_HINT = "--no-resume runs them again; or use another --runs-dir or --label"


def _check_resume(config: Config, run_dir: Path, runner: Runner) -> None:
    found = resume_conflict(config, run_dir)
    if found is None:
        return
    why, timing_only = found
    if not timing_only:
        raise RunnerError(f"{why}; resuming would mix them: {_RESUME_HINT}")
    runner.event("note", text=f"warning: {why}; kept as complete ({_RESUME_HINT})")


def runs_lock(runs_dir: Path):
    return rundir.lock(runs_dir)


def _locked(runs_dir: Path):
    lock = runs_lock(runs_dir)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise RunnerError(f"another perfsuite runner is writing {runs_dir.absolute()} "
                          f"(it holds {runs_dir.absolute() / rundir.LOCK_NAME})") from None
    return lock


def _wanted(reps: int | Iterable[int]) -> list[int]:
    return list(range(1, reps + 1)) if isinstance(reps, int) else sorted(set(reps))


# ----------------------------------------------------------------------------- one config

def run_config(config: Config, runs_dir: str | os.PathLike, reps: int | Iterable[int] = 5,
               runner: Runner | None = None, boot: int | None = None,
               planned_boots: int = 0) -> list[RepOutcome]:
    """Run repetitions `reps` (a count, or explicit numbers) of one config into runs_dir/NAME.

    Usable on its own (the nightly interleaves builds: `run_config(a, d, [1])`,
    `run_config(b, d, [1])`, ...): one `Runner` shared over calls probes KVM only once.
    `boot` is the number this boot gets in the meta when it is free; boots that continue
    after a timeout or a retry get numbers after `planned_boots` and every used one.
    """
    runner = runner or Runner()
    runs_dir = Path(runs_dir)
    run_dir = runs_dir / config.name
    _make_dir(runs_dir, "the runs directory")
    lock = _locked(runs_dir)
    try:
        _make_dir(run_dir)
        wanted = _wanted(reps)
        if runner.options.resume:
            _check_resume(config, run_dir, runner)
        done = complete_reps(run_dir) if runner.options.resume else set()
        outcomes = [RepOutcome(config.name, n, "skipped") for n in wanted if n in done]
        for o in outcomes:
            runner.event("rep", name=config.name, rep=o.rep, status="skipped")
        pending = [n for n in wanted if n not in done]
        attempts = {n: 0 for n in pending}
        slot = boot
        while pending:
            batch = pending[:1] if runner.options.fresh_guest else list(pending)
            used = rundir.used_boots(run_dir, exclude=set(pending))
            if boot is not None and boot not in used:
                number, boot = boot, None
            elif slot is not None and runner.options.boot_numbers is not None:
                number = continuation_boot(slot, planned_boots, used)
            else:
                number = max(used | {planned_boots}) + 1
            finished = run_boot(config, run_dir, batch, attempts, runner, number)
            for n, fin in finished.items():
                if fin.status == "ok" or attempts[n] > runner.options.retries:
                    pending.remove(n)
                    outcomes.append(RepOutcome(config.name, n, fin.status, fin.error, attempts[n],
                                               number, fin.record))
        return sorted(outcomes, key=lambda o: o.rep)
    finally:
        lock.release()


def _make_dir(d: Path, what: str = "a run directory") -> None:
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a file of that name, a read-only place, a name too long, ...
        why = "a file, not a directory" if d.exists() and not d.is_dir() else (e.strerror or str(e))
        raise RunnerError(f"cannot use {d.absolute()} as {what}: {why}") from None


# ----------------------------------------------------------------------------- the matrix

def boot_plan(configs: Sequence[Config], boots: int, repeat: int,
              numbers: Mapping[str | None, Sequence[int]] | None = None,
              ) -> list[tuple[Config, int, list[int]]]:
    """(config, boot number, repetitions) in the order they run: boot 1 of every config, then
    boot 2 of every config, ... so that host drift spreads over all configurations (pure).

    `numbers` keeps only some boots: numbers[NAME] for that config, else numbers[None], else
    all of them (a lab host running its part of a configuration spread over hosts).
    """
    def keep(c: Config, b: int) -> bool:
        if numbers is None:
            return True
        chosen = numbers.get(c.name, numbers.get(None))
        return chosen is None or b in chosen
    return [(c, b, boot_reps(b, repeat))
            for b in range(1, boots + 1) for c in configs if keep(c, b)]


def boot_reps(boot: int, repeat: int) -> list[int]:
    """The repetition numbers boot `boot` holds: (boot-1)*repeat+1 .. boot*repeat (pure)."""
    return list(range((boot - 1) * repeat + 1, boot * repeat + 1))


def continuation_boot(slot: int, planned: int, used: set[int]) -> int:
    """The number of a boot that continues planned boot `slot` (after a timeout or a retry)
    when a configuration's boots run on several hosts: slot + m*planned for the first free
    m >= 1, so two hosts holding different slots never pick the same number (pure)."""
    step = max(planned, 1)
    number = slot + step
    while number in used:
        number += step
    return number


def run_matrix(configs: Sequence[Config], runs_dir: str | os.PathLike,
               runner: Runner | None = None) -> list[RepOutcome]:
    """Every config x `options.boots` boots x `options.repeat` repetitions, boots interleaved."""
    runner = runner or Runner()
    runs_dir = Path(runs_dir)
    _make_dir(runs_dir, "the runs directory")
    lock = _locked(runs_dir)
    try:
        cleanup_stale(runner)
        if runner.options.resume:  # before the first launch, for the whole matrix
            found = [f for c in configs if (f := resume_conflict(c, runs_dir / c.name))]
            bad = [why for why, timing_only in found if not timing_only]
            if bad:
                raise RunnerError(f"{bad[0]}; resuming would mix them: {_RESUME_HINT}" if len(bad) == 1
                                  else f"{len(bad)} run dirs hold repetitions made with other settings "
                                  f"({_RESUME_HINT}):\n  " + "\n  ".join(bad))
        outcomes: list[RepOutcome] = []
        k = runner.options.boots
        for c, b, reps in boot_plan(configs, k, runner.options.repeat, runner.options.boot_numbers):
            outcomes += run_config(c, runs_dir, reps, runner, boot=b, planned_boots=k)
        order = {c.name: i for i, c in enumerate(configs)}
        return sorted(outcomes, key=lambda o: (order.get(o.name, 0), o.rep))
    finally:
        lock.release()


def cleanup_stale(runner: Runner) -> None:
    """Remove the work dirs and image pins of perfsuite processes that died (SIGKILL, OOM)."""
    roots = {tempfile.gettempdir()} | ({runner.options.work_root} if runner.options.work_root else set())
    for root in roots:
        for d in remove_stale_dirs(root, ("perfsuite-", "psq-")):
            runner.event("note", text=f"removed {d}, left by a perfsuite run that died")
