"""The fio phases of a migration repetition and the migration schedule (pure).

One job file describes the measured write phase (jobs/fio-migrate.job): its sections are
the regions (offset/size) and queue depths. From it come three files the guest runs in turn:

- fill:   every region written once, sequentially, with verify headers, so that the final
          read-back never meets a block that was never written;
- write:  the measured window (time-based random writes, IOPS logged every 100 ms); the
          host migrates during this phase;
- verify: every region read back and checked (crc32c) after the last migration.

fio cannot verify a time-based write job itself ("verification read phase will never start
because write phase uses all of runtime", fio 3.33), hence the separate read-back phase.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from perfsuite.errors import BadInput

LOG_MS = 100   # fio's IOPS log resolution (log_avg_msec)
IOPS_LOG = "iops"  # write_iops_log prefix: files iops_iops.<job>.log

# keys each phase sets in [global]; the same keys are dropped from every section
_PHASE_KEYS = {
    "fill": {"rw": "write", "do_verify": "0", "time_based": "0"},
    "write": {"do_verify": "0", "time_based": "1", "write_iops_log": IOPS_LOG,
              "log_avg_msec": str(LOG_MS)},
    "verify": {"rw": "read", "do_verify": "1", "time_based": "0"},
}
_DROP_ALWAYS = {"filename", "runtime", "ramp_time", "numjobs", "verify_state_save",
                "write_iops_log", "log_avg_msec", "time_based", "do_verify"}


@dataclass(frozen=True)
class Section:
    name: str
    lines: tuple[str, ...]


def parse_sections(text: str) -> list[Section]:
    """fio job text -> sections in order (lines before the first header are dropped)."""
    out: list[Section] = []
    name, lines = None, []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        m = re.match(r"^\[([^\]]+)\]$", line)
        if m:
            if name is not None:
                out.append(Section(name, tuple(lines)))
            name, lines = m.group(1).strip(), []
        elif name is not None:
            lines.append(line)
    if name is not None:
        out.append(Section(name, tuple(lines)))
    return out


def _key(line: str) -> str:
    return line.split("=", 1)[0].strip()


def _value(sections: list[Section], key: str) -> str | None:
    for s in sections:
        for line in s.lines:
            if _key(line) == key and "=" in line:
                return line.split("=", 1)[1].strip()
    return None


def check_job(text: str, source: str = "job file") -> list[Section]:
    """The sections of a migration job, or BadInput saying what is missing."""
    sections = parse_sections(text)
    jobs = [s for s in sections if s.name != "global"]
    if not jobs:
        raise BadInput(f"{source}: no job section")
    if not _value(sections, "verify") or _value(sections, "verify") == "0":
        raise BadInput(f"{source}: a migration job must verify its data (e.g. verify=crc32c)")
    for s in jobs:
        if not any(_key(x) == "size" for x in s.lines) and not _value(
                [x for x in sections if x.name == "global"], "size"):
            raise BadInput(f"{source}: [{s.name}] needs size= (its own region of the disk)")
    return sections


def render_phases(text: str, runtime: int, device: str, source: str = "job file") -> dict[str, str]:
    """{"fill": ..., "write": ..., "verify": ...}: the three job files the guest runs."""
    sections = check_job(text, source)
    out = {}
    for phase, keys in _PHASE_KEYS.items():
        settings = dict(keys, filename=device, verify_state_save="0")
        if phase == "write":
            settings["runtime"] = str(runtime)
        drop = _DROP_ALWAYS | set(settings)
        body: list[str] = []
        glob = [s for s in sections if s.name == "global"]
        body.append("[global]")
        for s in glob:
            body += [x for x in s.lines if _key(x) not in drop]
        body += [f"{k}={v}" for k, v in settings.items()]
        for s in sections:
            if s.name == "global":
                continue
            body += ["", f"[{s.name}]"] + [x for x in s.lines if _key(x) not in drop]
        out[phase] = "\n".join(body) + "\n"
    return out


def schedule(at: float, every: float | None, migrations: int, runtime: float) -> list[float]:
    """Seconds into the write window at which each migration starts; BadInput if they do
    not fit (the last must start at least 2 s before the window closes)."""
    if migrations < 1:
        raise BadInput("--migrations must be at least 1")
    if at <= 0:
        raise BadInput("--at must be positive (seconds into the measured window)")
    step = at if every is None else every
    if step <= 0:
        raise BadInput("--every must be positive")
    times = [at + i * step for i in range(migrations)]
    if times[-1] > runtime - 2:
        raise BadInput(f"migration {migrations} would start at {times[-1]:g} s of a {runtime:g} s "
                       f"window: give a longer --runtime or an earlier --at/--every")
    return times
