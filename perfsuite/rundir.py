"""The run directory, `RUNS/<NAME>/<N>.*`: the one place that lists, orders, reads and writes it.

    RUNS/<NAME>/<N>.json        fio's JSON of repetition N (any *.json but *.meta.json)
    RUNS/<NAME>/<N>.meta.json   what produced it (CONTRACTS.md section 2)
    RUNS/<NAME>/<N>.log         the guest console of the boot that made it
    RUNS/<NAME>/attempts/       earlier failed attempts' meta + log (N.A.meta.json, N.A.log)
    RUNS/.perfsuite.lock        held by the runner writing RUNS

Which repetitions count is decided here, once, for the analyzer, compare, the report and the
runner's resume alike (`Rep.counts`, `Rep.why`):
- a result whose meta says a status other than "ok" does not count;
- a meta that says "ok" without its result does not count (the result is written last, so
  this is a write that was cut short);
- a result without a meta counts in a directory of another tool's data, and does not in a
  perfsuite run directory (some repetition has a result and an "ok" meta): the runner writes
  the meta before the result, so a lone result there is a half-written repetition;
- an unreadable or malformed meta leaves its result counting, with a warning.
Per-entry trouble (a symlink loop, an unreadable file) is a problem of that entry, never of
the listing. Writers go through perfsuite.fsutil (atomic) in the order meta, then result.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from perfsuite.fsutil import atomic_write_bytes, atomic_write_json, atomic_write_text

RESULT, META, LOG = ".json", ".meta.json", ".log"
ATTEMPTS = "attempts"
LOCK_NAME = ".perfsuite.lock"


@functools.lru_cache(maxsize=4096)   # pure; repetition stems repeat in every directory
def natural_key(s: str) -> tuple:
    """The one natural order: 2 before 10, numbers before words ('fio-output-3' after '10')."""
    parts = tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", s) if t)
    return (0 if s.isdigit() else 1, parts)


def classify(fname: str) -> tuple[str | None, str]:
    """A file name -> (kind, stem): ('meta', '3'), ('result', '3'), ('log', '3'), (None, '')."""
    if fname.startswith("."):
        return None, ""  # atomic-write temporaries (fsutil), the lock, editor droppings
    for kind, suffix in (("meta", META), ("result", RESULT), ("log", LOG)):
        if fname.endswith(suffix) and len(fname) > len(suffix):
            return kind, fname[: -len(suffix)]
    return None, ""


@dataclass
class Rep:
    stem: str
    result: Path | None = None
    meta_path: Path | None = None
    log: Path | None = None
    meta: dict | None = None          # parsed, when it is a JSON object
    meta_problem: str | None = None   # why the meta could not be used
    counts: bool = False
    why: str | None = None            # when it does not count (or counts with doubt): one line

    @property
    def number(self) -> int | None:
        return int(self.stem) if self.stem.isdigit() else None

    @property
    def status(self) -> str | None:
        return self.meta.get("status") if self.meta else None


@dataclass
class RunListing:
    name: str
    path: Path
    reps: list[Rep] = field(default_factory=list)      # natural order
    problems: list[str] = field(default_factory=list)  # one line per entry that was skipped

    def counted(self) -> list[Rep]:
        return [r for r in self.reps if r.counts]

    def get(self, stem: str) -> Rep | None:
        return next((r for r in self.reps if r.stem == stem), None)


def read_meta(path: str | os.PathLike) -> tuple[dict | None, str | None]:
    """(meta, None), (None, None) when absent, or (None, problem) for an unusable file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"{path}: unreadable meta file ({exc.strerror or exc}); its columns left empty"
    try:
        meta = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return None, f"{path}: malformed meta file ({exc}); its columns left empty"
    if not isinstance(meta, dict):
        return None, f"{path}: meta file is not a JSON object; its columns left empty"
    return meta, None


def _entry_kind(e: os.DirEntry) -> str | None:
    """'file', 'dir' or None; raises OSError for a symlink loop or an unreadable entry."""
    if e.is_file():
        return "file"
    if e.is_dir():
        return "dir"
    if e.is_symlink():  # dangling or looping: os.stat says which
        os.stat(e.path)
    return None


def scan_run(path: str | os.PathLike, name: str | None = None) -> RunListing:
    """List one run directory and decide which repetitions count.

    Raises OSError only when the directory itself cannot be listed."""
    path = Path(path)
    listing = RunListing(name or path.name, path)
    reps: dict[str, Rep] = {}
    with os.scandir(path) as it:
        entries = list(it)
    for e in entries:
        kind, stem = classify(e.name)
        if kind is None:
            continue
        try:
            if _entry_kind(e) != "file":
                continue
        except OSError as exc:
            listing.problems.append(f"skipped {e.path}: {exc.strerror or exc}")
            continue
        rep = reps.setdefault(stem, Rep(stem))
        setattr(rep, "meta_path" if kind == "meta" else kind, Path(e.path))
    listing.reps = sorted(reps.values(), key=lambda r: natural_key(r.stem))
    _decide(listing)
    return listing


def _decide(listing: RunListing) -> None:
    for r in listing.reps:
        if r.meta_path is not None:
            r.meta, r.meta_problem = read_meta(r.meta_path)
    # a perfsuite run directory: some repetition is complete with an "ok" meta
    ours = any(r.result is not None and r.status == "ok" for r in listing.reps)
    for r in listing.reps:
        status = r.status
        if r.result is None:
            r.counts = False
            if status not in (None, "ok"):
                err = str(r.meta.get("error"))
                err = err if len(err) <= 80 else err[:77] + "..."
                r.why = f"{listing.name}: repetition {r.stem} {status} without a result ({err}); see its .log"
            elif status == "ok":
                r.why = (f"{listing.name}: repetition {r.stem} has a meta but no result "
                         "(a write cut short); not counted")
        elif status not in (None, "ok"):
            r.counts = False
            r.why = (f"{listing.name}: repetition {r.stem} has a result but its meta says "
                     f"{status!r}; not counted")
        elif r.meta_path is None and ours:
            r.counts = False
            r.why = (f"{listing.name}: repetition {r.stem} has a result but no meta "
                     "(a write cut short, e.g. disk full); not counted")
        else:
            r.counts = True
            r.why = r.meta_problem


def list_runs(root: str | os.PathLike) -> tuple[dict[str, RunListing], list[str]]:
    """NAME -> RunListing for every subdirectory of root with repetitions, plus problems.

    When no subdirectory holds a result, root itself is taken as one run directory
    (`analyze runs/NAME/`), named after it. Raises OSError when root cannot be listed."""
    root = Path(root)
    out: dict[str, RunListing] = {}
    problems: list[str] = []
    with os.scandir(root) as it:
        entries = sorted(it, key=lambda e: natural_key(e.name))
    for e in entries:
        if e.name.startswith("."):
            continue
        try:
            if _entry_kind(e) != "dir":
                continue
            listing = scan_run(e.path, e.name)
        except OSError as exc:  # one unlistable run directory must not hide the others
            problems.append(f"skipped {e.path}: cannot list it ({exc.strerror or exc})")
            continue
        if listing.reps:
            out[e.name] = listing
        problems += listing.problems
    if not any(r.result for lst in out.values() for r in lst.reps):
        own = scan_run(root, os.path.basename(os.path.realpath(root)))
        if any(r.result for r in own.reps):
            return {own.name: own}, problems + own.problems
    return out, problems


# ----------------------------------------------------------------------------- the runner's side

def complete_reps(run_dir: str | os.PathLike) -> set[int]:
    """Numbers of the repetitions that count and whose result is well-formed JSON (resume)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return set()
    done: set[int] = set()
    for r in scan_run(run_dir).counted():
        try:
            orjson.loads(r.result.read_bytes())
        except (orjson.JSONDecodeError, OSError):
            continue
        if r.number is not None:
            done.add(r.number)
    return done


def used_numbers(run_dir: str | os.PathLike) -> set[int]:
    """Repetition numbers taken by a result, a meta or a log (failed ones too)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return set()
    return {r.number for r in scan_run(run_dir).reps if r.number is not None}


def used_boots(run_dir: str | os.PathLike, exclude: set[int] = frozenset()) -> set[int]:
    """Boot numbers recorded in the metas of the repetitions not in `exclude`."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return set()
    out: set[int] = set()
    for r in scan_run(run_dir).reps:
        if r.meta and r.number not in exclude:
            try:
                out.add(int(r.meta.get("boot") or 0))
            except (TypeError, ValueError):
                pass
    return out - {0}


def _archive(run_dir: Path, n: int) -> None:
    """Move a failed record of N (meta + log) into attempts/ before it is replaced."""
    meta, _ = read_meta(run_dir / f"{n}{META}")
    if not meta or meta.get("status") in (None, "ok"):
        return
    dest = run_dir / ATTEMPTS
    dest.mkdir(exist_ok=True)
    k = 1
    while (dest / f"{n}.{k}{META}").exists():
        k += 1
    for suffix in (LOG, META):  # the meta last: it is what says the attempt existed
        src = run_dir / f"{n}{suffix}"
        if src.exists():
            os.replace(src, dest / f"{n}.{k}{suffix}")


def write_rep(run_dir: str | os.PathLike, n: int, meta: dict[str, Any], log: str,
              result: bytes | None = None) -> None:
    """Record repetition N: log, meta, then the result (last: it is what makes N count).

    An earlier failed record of N is kept under attempts/; a stale result goes first, so a
    write cut short at any point leaves N not counting rather than counting the old data."""
    run_dir = Path(run_dir)
    _archive(run_dir, n)
    try:
        os.unlink(run_dir / f"{n}{RESULT}")
    except FileNotFoundError:
        pass
    atomic_write_text(run_dir / f"{n}{LOG}", log)
    atomic_write_json(run_dir / f"{n}{META}", meta)
    if result is not None:
        atomic_write_bytes(run_dir / f"{n}{RESULT}", result)


def write_log(run_dir: str | os.PathLike, n: int, log: str) -> None:
    atomic_write_text(Path(run_dir) / f"{n}{LOG}", log)


def read_config(run_dir: str | os.PathLike, n: int) -> dict | None:
    """The `config` of repetition N's meta, or None (no meta, other tools' data)."""
    meta, _ = read_meta(Path(run_dir) / f"{n}{META}")
    cfg = (meta or {}).get("config")
    return cfg if isinstance(cfg, dict) else None


_LOCKS: dict[str, Any] = {}


def lock(runs_dir: str | os.PathLike):
    """The re-entrant lock of one runs dir: RUNS/.perfsuite.lock, in the runs dir itself, so
    runners with different TMPDIRs (sudo, cron, PrivateTmp) still exclude each other."""
    from filelock import FileLock

    key = os.path.realpath(runs_dir)
    try:  # the lock lives inside: a runs dir that does not exist yet is made here
        os.makedirs(key, exist_ok=True)
    except OSError:
        pass  # a file of that name: acquiring then fails, and the caller says so
    if key not in _LOCKS:
        _LOCKS[key] = FileLock(os.path.join(key, LOCK_NAME))
    return _LOCKS[key]
