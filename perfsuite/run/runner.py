"""Configs x repetitions -> runs/NAME/N.json (+ N.meta.json, N.log): boots, retries, resume.

One boot runs every pending repetition of a config (`fresh_guest`: one boot each). As each
W/N.json appears it is copied atomically to runs/NAME/N.json with its meta and the console
so far. A repetition that does not finish before its deadline gets its guest killed, its log
kept and status "timeout"; the remaining repetitions go to a new boot. `retries` extra
attempts are given to each failed repetition. Ctrl-C (KeyboardInterrupt) stops the running
guest and keeps everything already written. A lock keeps two runners out of one runs dir.
"""

from __future__ import annotations

from perfsuite.errors import PerfsuiteError

import atexit
import dataclasses
import hashlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import orjson
from filelock import FileLock, Timeout

from perfsuite.run.boot import Boot, BootLike, boot_timeouts
from perfsuite.matrix import axes
from perfsuite.matrix.config import Config
from perfsuite.fsutil import atomic_write_bytes, atomic_write_json, atomic_write_text
from perfsuite.qemu.accel import AccelChoice, resolve_accel
from perfsuite.run.meta import build_meta, host_info, now_iso, versions

POLL = 0.1
Event = Callable[..., None]  # on_event(kind, **data): "boot", "rep", "note"


class RunnerError(PerfsuiteError, RuntimeError):
    pass


@dataclass
class RunOptions:
    repeat: int = 5
    accel: str = "auto"                 # auto | kvm | tcg
    timeout: float | None = None        # seconds per repetition; None: derived from the job
    retries: int = 0
    resume: bool = True                 # skip repetitions already complete in runs/
    fresh_guest: bool = False           # one boot per repetition
    work_root: str | None = None        # where per-boot work dirs go (default: the temp dir)
    keep_workdir: bool = False
    poweroff: bool = True               # False: the guest never powers off (timeout tests)


@dataclass
class RepOutcome:
    name: str
    rep: int
    status: str                          # ok | failed | timeout | skipped
    error: str | None = None
    attempts: int = 0


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
                    keep_workdir=self.options.keep_workdir)


def pin_image(image: Any) -> Any:
    """Hard-link the image's kernel + initrd into a private dir for this process, so that a
    cache prune (a newer image built meanwhile) cannot pull them away mid-matrix."""
    if not dataclasses.is_dataclass(image):
        return image
    try:
        d = Path(tempfile.mkdtemp(prefix=f"perfsuite-image-{getattr(image, 'key', '')}-"))
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

def complete_reps(run_dir: Path) -> set[int]:
    """Repetitions with a parseable N.json and no failed meta beside it."""
    done: set[int] = set()
    if not run_dir.is_dir():
        return done
    for p in run_dir.glob("*.json"):
        if p.name.endswith(".meta.json") or not p.stem.isdigit():
            continue
        try:
            orjson.loads(p.read_bytes())
        except (orjson.JSONDecodeError, OSError):
            continue
        meta = run_dir / f"{p.stem}.meta.json"
        try:
            if meta.exists() and orjson.loads(meta.read_bytes()).get("status") != "ok":
                continue
        except (orjson.JSONDecodeError, OSError):
            pass
        done.add(int(p.stem))
    return done


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
        try:
            got = orjson.loads((run_dir / f"{n}.meta.json").read_bytes()).get("config")
        except (OSError, orjson.JSONDecodeError, AttributeError):
            continue  # no meta (data from other tools): nothing to compare
        if not isinstance(got, dict):
            continue
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


def _next_boot(run_dir: Path) -> int:
    best = 0
    for p in run_dir.glob("*.meta.json"):
        try:
            best = max(best, int(orjson.loads(p.read_bytes()).get("boot") or 0))
        except (orjson.JSONDecodeError, OSError, ValueError, TypeError):
            pass
    return best + 1


_LOCKS: dict[str, FileLock] = {}


def runs_lock(runs_dir: Path) -> FileLock:
    """A re-entrant lock for one runs dir, kept outside it (runs/ holds results only)."""
    key = os.path.realpath(runs_dir)
    if key not in _LOCKS:
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        lockdir = Path(tempfile.gettempdir()) / "perfsuite-locks"
        lockdir.mkdir(exist_ok=True)
        _LOCKS[key] = FileLock(str(lockdir / f"{digest}.lock"))
    return _LOCKS[key]


def _locked(runs_dir: Path) -> FileLock:
    lock = runs_lock(runs_dir)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise RunnerError(f"another perfsuite runner is writing {runs_dir}") from None
    return lock


def _wanted(reps: int | Iterable[int]) -> list[int]:
    return list(range(1, reps + 1)) if isinstance(reps, int) else sorted(set(reps))


# ----------------------------------------------------------------------------- one config

def run_config(config: Config, runs_dir: str | os.PathLike, reps: int | Iterable[int] = 5,
               runner: Runner | None = None) -> list[RepOutcome]:
    """Run repetitions `reps` (a count, or explicit numbers) of one config into runs_dir/NAME.

    Usable on its own (the nightly interleaves builds: `run_config(a, d, [1])`,
    `run_config(b, d, [1])`, ...): one `Runner` shared over calls probes KVM only once.
    """
    runner = runner or Runner()
    runs_dir = Path(runs_dir)
    run_dir = runs_dir / config.name
    lock = _locked(runs_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        wanted = _wanted(reps)
        if runner.options.resume:
            _check_resume(config, run_dir, runner)
        done = complete_reps(run_dir) if runner.options.resume else set()
        outcomes = [RepOutcome(config.name, n, "skipped") for n in wanted if n in done]
        for o in outcomes:
            runner.event("rep", name=config.name, rep=o.rep, status="skipped")
        pending = [n for n in wanted if n not in done]
        attempts = {n: 0 for n in pending}
        while pending:
            batch = pending[:1] if runner.options.fresh_guest else list(pending)
            finished = _one_boot(config, run_dir, batch, attempts, runner)
            for n, (status, error) in finished.items():
                if status == "ok" or attempts[n] > runner.options.retries:
                    pending.remove(n)
                    outcomes.append(RepOutcome(config.name, n, status, error, attempts[n]))
        return sorted(outcomes, key=lambda o: o.rep)
    finally:
        lock.release()


def _one_boot(c: Config, run_dir: Path, reps: list[int], attempts: dict[int, int],
              runner: Runner) -> dict[int, tuple[str, str | None]]:
    """Boot once for `reps`; returns {rep: (status, error)} for every rep it attempted."""
    choice = runner.accel(c.qemu)
    tmo = boot_timeouts(c, choice.accel, runner.options.timeout)
    boot_no = _next_boot(run_dir)
    boot = runner.launch(c, reps, choice.accel)
    runner.event("boot", name=c.name, reps=list(reps), accel=choice.accel)
    common = dict(boot=boot_no, argv=list(boot.argv), accel=choice.accel,
                  accel_note=choice.note, versions=versions(c.qemu), host=host_info())
    results: dict[int, tuple[str, str | None]] = {}
    t_start = now_iso()
    device: dict = {}

    def record(n: int, status: str, error: str | None, json_path: Path | None = None) -> None:
        nonlocal t_start
        attempts[n] += 1
        if json_path is not None:
            atomic_write_bytes(run_dir / f"{n}.json", json_path.read_bytes())
        elif (run_dir / f"{n}.json").exists() and not runner.options.resume:
            (run_dir / f"{n}.json").unlink()  # a re-run that failed leaves no stale result
        meta = build_meta(c, n, guest=boot.guest_info(), device=device, started=t_start,
                          finished=now_iso(), status=status, error=error,
                          attempt=attempts[n], pinned=getattr(boot, "pinned", None), **common)
        image = runner.image
        if image is not None and hasattr(image, "key"):
            meta["image"] = {"key": image.key, "kernel_source": getattr(image, "kernel_source", None)}
        atomic_write_json(run_dir / f"{n}.meta.json", meta)
        atomic_write_text(run_dir / f"{n}.log", boot.console())
        results[n] = (status, error)
        t_start = now_iso()
        if status == "ok" or attempts[n] > runner.options.retries:
            runner.event("rep", name=c.name, rep=n, status=status, error=error)
        else:
            runner.event("note", text=f"{c.name} #{n}: {status} ({error}); retrying")

    status, error = "ok", None
    result = None
    try:
        try:
            boot.start()
            device = dict(getattr(boot, "device", {}) or {})
        except Exception as e:  # noqa: BLE001 - QEMU refused the config: blame the first rep
            record(reps[0], "failed", f"QEMU did not start: {' '.join(str(e).split())[:500]}")
            status, error = "failed", str(e)
            return results
        deadline = time.monotonic() + tmo.first
        while True:
            for n, path in sorted(boot.poll_new().items()):
                record(n, "ok", None, path)
                deadline = time.monotonic() + tmo.each
            for n, st in sorted(boot.failed_reps().items()):
                if n not in results:
                    record(n, "failed", f"fio exited with status {st} in the guest")
                    deadline = time.monotonic() + tmo.each
            todo = [n for n in reps if n not in results]
            if not todo:
                break
            if boot.exited():
                for n, path in sorted(boot.poll_new().items()):  # written just before exit
                    record(n, "ok", None, path)
                todo = [n for n in reps if n not in results]
                if todo:
                    why = getattr(boot, "guest_error", lambda: None)()
                    status, error = "failed", (f"guest exited before repetition {todo[0]}"
                                               + (f": {why}" if why else ""))
                    record(todo[0], "failed", error)
                break
            if time.monotonic() > deadline:
                status = "timeout"
                error = (f"repetition {todo[0]} did not finish in time "
                         f"({tmo.first if not results else tmo.each:.0f} s); guest killed")
                result = boot.finish("timeout", error)  # kill first: the log is then complete
                record(todo[0], "timeout", error)
                break
            time.sleep(POLL)
    except BaseException:  # Ctrl-C, SIGTERM: stop the guest at once, keep what is written
        status = "interrupted"
        raise
    finally:
        if result is None:
            result = boot.finish(status, error)
        if result.status == "ok":
            for n, (st, _) in results.items():  # the complete console, power-off included
                if st == "ok":
                    atomic_write_text(run_dir / f"{n}.log", boot.console())
        boot.cleanup()
    return results


# ----------------------------------------------------------------------------- the matrix

def run_matrix(configs: Sequence[Config], runs_dir: str | os.PathLike,
               runner: Runner | None = None) -> list[RepOutcome]:
    """Every config x `runner.options.repeat` repetitions, config after config."""
    runner = runner or Runner()
    runs_dir = Path(runs_dir)
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a file of that name, a read-only place, ...
        why = "a file, not a directory" if runs_dir.exists() else (e.strerror or str(e))
        raise RunnerError(f"cannot use {runs_dir} as the runs directory: {why}") from None
    lock = _locked(runs_dir)
    try:
        if runner.options.resume:  # before the first launch, for the whole matrix
            found = [f for c in configs if (f := resume_conflict(c, runs_dir / c.name))]
            bad = [why for why, timing_only in found if not timing_only]
            if bad:
                raise RunnerError(f"{bad[0]}; resuming would mix them: {_RESUME_HINT}" if len(bad) == 1
                                  else f"{len(bad)} run dirs hold repetitions made with other settings "
                                  f"({_RESUME_HINT}):\n  " + "\n  ".join(bad))
        outcomes: list[RepOutcome] = []
        for c in configs:
            outcomes += run_config(c, runs_dir, runner.options.repeat, runner)
        return outcomes
    finally:
        lock.release()
