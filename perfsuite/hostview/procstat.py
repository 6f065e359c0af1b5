"""/proc text -> numbers, and two snapshots -> CPU shares. Pure: text and dicts in, dicts out.

Times in /proc/<pid>/task/<tid>/stat are clock ticks (USER_HZ); a share is given in percent
of one host core (100 = one core busy the whole window), the way top shows a thread.
Host-wide figures from /proc/stat are in percent of all cores, the way top shows %st.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# /proc/stat's cpu line, in order (man 5 proc); guest/guest_nice are already in user/nice
PROC_STAT_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


@dataclass(frozen=True)
class TaskTimes:
    comm: str
    ticks: int          # utime + stime


def parse_task_stat(text: str) -> TaskTimes:
    """One /proc/<pid>[/task/<tid>]/stat line -> (comm, utime + stime).

    comm sits in parentheses and may itself hold spaces and ')' ("CPU 0/TCG"), so the
    fields are counted from the last ')'.
    """
    head, _, tail = text.rpartition(")")
    if not _:
        raise ValueError(f"not a /proc stat line: {text[:60]!r}")
    comm = head.partition("(")[2]
    rest = tail.split()
    # rest[0] is field 3 (state); utime and stime are fields 14 and 15
    return TaskTimes(comm, int(rest[11]) + int(rest[12]))


def parse_proc_stat(text: str) -> dict[str, int]:
    """The aggregate `cpu` line of /proc/stat -> {field: ticks} (missing fields are 0)."""
    for line in text.splitlines():
        if line.startswith("cpu "):
            vals = [int(v) for v in line.split()[1:]]
            vals += [0] * (len(PROC_STAT_FIELDS) - len(vals))
            return dict(zip(PROC_STAT_FIELDS, vals))
    raise ValueError("no aggregate cpu line in /proc/stat")


def parse_loadavg(text: str) -> list[float]:
    return [float(v) for v in text.split()[:3]]


@dataclass
class Snapshot:
    """What the sampler read at one instant (all times are ticks, `t` seconds monotonic)."""
    t: float
    threads: dict[int, TaskTimes] = field(default_factory=dict)     # QEMU's tid -> times
    host: dict[str, int] = field(default_factory=dict)              # /proc/stat cpu line
    procs: dict[int, TaskTimes] = field(default_factory=dict)       # every other pid -> times
    loadavg: list[float] = field(default_factory=list)


def _pct(ticks: int, seconds: float, hz: int) -> float:
    return round(100.0 * ticks / hz / seconds, 2) if seconds > 0 else 0.0


def thread_role(tid: int, pid: int, vcpus: list[int], iothreads: dict[int, str]) -> tuple[str, str]:
    """(role, name) of a QEMU thread: vcpu (by QMP cpu index), iothread (by its id), main
    (the process's first thread, which runs the main loop), or other (RCU, workers, ...)."""
    if tid in vcpus:
        return "vcpu", f"vcpu{vcpus.index(tid)}"
    if tid in iothreads:
        return "iothread", iothreads[tid]
    if tid == pid:
        return "main", "main"
    return "other", ""


def thread_cpu(a: Snapshot, b: Snapshot, pid: int, vcpus: list[int], iothreads: dict[int, str],
               hz: int) -> list[dict]:
    """`host_threads`: one entry per QEMU thread alive at the end of the window.

    A thread born inside the window counts from zero; one that died inside it is lost
    (QEMU's short-lived worker threads): the shares are a lower bound for "other".
    """
    secs = b.t - a.t
    out = []
    for tid, end in sorted(b.threads.items()):
        start = a.threads.get(tid)
        used = end.ticks - (start.ticks if start else 0)
        role, name = thread_role(tid, pid, vcpus, iothreads)
        out.append({"role": role, "name": name or end.comm, "tid": tid, "comm": end.comm,
                    "cpu_pct": _pct(max(used, 0), secs, hz)})
    order = {"vcpu": 0, "iothread": 1, "main": 2, "other": 3}
    return sorted(out, key=lambda e: (order[e["role"]], e["name"], e["tid"]))


def host_load(a: Snapshot, b: Snapshot, hz: int, exclude: set[int], top: int = 8,
              min_pct: float = 1.0) -> dict:
    """`host_load`: where all of the host's CPU went in the window, and who else used it.

    Host shares are of all cores together (sum of the fields = 100); `others` are processes
    outside `exclude` (QEMU itself) by CPU in percent of one core, `top` of them at most.
    """
    delta = {k: b.host.get(k, 0) - a.host.get(k, 0) for k in PROC_STAT_FIELDS}
    total = sum(delta.values()) or 1
    share = {k: round(100.0 * v / total, 2) for k, v in delta.items()}
    secs = b.t - a.t
    others = []
    for p, end in b.procs.items():
        if p in exclude:
            continue
        start = a.procs.get(p)
        used = end.ticks - (start.ticks if start else 0)
        pct = _pct(max(used, 0), secs, hz)
        if pct >= min_pct:
            others.append({"pid": p, "comm": end.comm, "cpu_pct": pct})
    others.sort(key=lambda e: -e["cpu_pct"])
    return {
        "window_s": round(secs, 3),
        "user_pct": round(share["user"] + share["nice"], 2),
        "system_pct": round(share["system"] + share["irq"] + share["softirq"], 2),
        "iowait_pct": share["iowait"], "steal_pct": share["steal"], "idle_pct": share["idle"],
        "loadavg": b.loadavg or None,
        "others": others[:top],
    }
