"""Results home: unpack one host's pack into the controller's runs dir, at most once each.

A repetition already complete here is never replaced (a configuration moved off a lost host
may have run a repetition on both): the first complete copy counts, later ones are dropped
and counted as duplicates. Files are written atomically, the fio JSON last, so a
repetition is complete only once everything beside it is there.
"""

from __future__ import annotations

import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

import orjson

from perfsuite.fsutil import atomic_write_bytes
from perfsuite.run.runner import complete_reps

# [SIDE/]NAME/N.suffix; SIDE is baseline/candidate for a night. No "..", no absolute path.
_MEMBER = re.compile(r"^((?:[A-Za-z0-9][A-Za-z0-9._+-]*/)?[A-Za-z0-9][A-Za-z0-9._+-]*)/(\d+)"
                     r"(\.json|\.meta\.json|\.log)$")


@dataclass(frozen=True)
class Arrived:
    name: str
    rep: int
    status: str            # the meta's status; "duplicate" when dropped
    error: str | None = None


def unpack(tar_path: Path, dest: Path, host: str, wanted: set[str] | None = None) -> list[Arrived]:
    """Move the results in tar_path into dest/NAME/ (only names in `wanted`, when given)."""
    groups: dict[tuple[str, int], dict[str, bytes]] = {}
    with tarfile.open(tar_path) as tar:
        for m in tar.getmembers():
            got = _MEMBER.match(m.name)
            if not got or not m.isfile():
                continue  # anything else is not ours to write
            name, rep, suffix = got.group(1), int(got.group(2)), got.group(3)
            if wanted is not None and name not in wanted:
                continue
            f = tar.extractfile(m)
            if f is not None:
                groups.setdefault((name, rep), {})[suffix] = f.read()
    out = []
    done: dict[str, set[int]] = {}
    for (name, rep), files in sorted(groups.items()):
        if ".meta.json" not in files:
            continue
        meta = orjson.loads(files[".meta.json"])
        if (meta.get("lab") or {}).get("host") != host:
            continue
        if name not in done:
            done[name] = complete_reps(dest / name)
        if rep in done[name]:
            if _origin(dest / name / f"{rep}.meta.json") == host and ".log" in files:
                # the same result again: its boot ended since, and the console is complete now
                atomic_write_bytes(dest / name / f"{rep}.log", files[".log"])
            else:
                out.append(Arrived(name, rep, "duplicate"))
            continue
        status = meta.get("status", "ok")
        if status == "ok" and ".json" not in files:
            continue  # cannot happen with the runner's write order; never count it
        run_dir = dest / name
        run_dir.mkdir(parents=True, exist_ok=True)
        for suffix in (".log", ".meta.json", ".json"):
            if suffix in files:
                atomic_write_bytes(run_dir / f"{rep}{suffix}", files[suffix])
        if status == "ok":
            done[name].add(rep)
        out.append(Arrived(name, rep, status, meta.get("error")))
    return out


def _origin(meta: Path) -> str | None:
    try:
        return (orjson.loads(meta.read_bytes()).get("lab") or {}).get("host")
    except (OSError, orjson.JSONDecodeError, AttributeError):
        return None


def pack_local(src: Path, names: list[str], out: Path) -> bool:
    """Tar the complete repetitions of `names` under src (to resume them elsewhere)."""
    files = []
    for name in names:
        for n in sorted(complete_reps(src / name)):
            files += [p for p in (src / name / f"{n}{s}" for s in (".json", ".meta.json", ".log"))
                      if p.exists()]
    if not files:
        return False
    with tarfile.open(out, "w") as tar:
        for p in files:
            tar.add(p, arcname=str(p.relative_to(src)))
    return True
