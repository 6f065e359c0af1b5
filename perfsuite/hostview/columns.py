"""A meta's `host_threads` / `host_load` -> the results frame's host columns (pure).

    cpu_vcpu_pct         mean CPU per vCPU thread, % of one core
    cpu_iothread_pct     the busiest IOThread, % of one core (None without IOThreads)
    cpu_main_pct         the main loop thread
    cpu_other_pct        QEMU's other threads together (RCU, workers, ...)
    cpu_vcpus_total_pct  all vCPU threads together (for "where QEMU's CPU went")
    cpu_iothreads_total_pct
    steal_pct            host steal, % of all host cores
    host_busy_pct        host user + system + iowait... i.e. 100 - idle, % of all cores
    host_other_pct       the busiest process other than QEMU, % of one core
    host_other           its name and pid
"""

from __future__ import annotations

from typing import Any

COLUMNS = ("cpu_vcpu_pct", "cpu_iothread_pct", "cpu_main_pct", "cpu_other_pct",
           "cpu_vcpus_total_pct", "cpu_iothreads_total_pct", "steal_pct", "host_busy_pct",
           "host_other_pct", "host_other")


def _role(threads: list[dict], role: str) -> list[float]:
    return [float(t.get("cpu_pct") or 0.0) for t in threads
            if isinstance(t, dict) and t.get("role") == role]


def derive(meta: dict[str, Any]) -> dict[str, Any]:
    """The host columns of one repetition; every column None when the meta has no sample."""
    out: dict[str, Any] = dict.fromkeys(COLUMNS)
    threads = meta.get("host_threads")
    if isinstance(threads, list) and threads:
        vcpu, io = _role(threads, "vcpu"), _role(threads, "iothread")
        main, other = _role(threads, "main"), _role(threads, "other")
        out["cpu_vcpu_pct"] = round(sum(vcpu) / len(vcpu), 2) if vcpu else None
        out["cpu_iothread_pct"] = max(io) if io else None
        out["cpu_main_pct"] = sum(main) if main else None
        out["cpu_other_pct"] = round(sum(other), 2)
        out["cpu_vcpus_total_pct"] = round(sum(vcpu), 2) if vcpu else None  # none seen: unknown
        out["cpu_iothreads_total_pct"] = round(sum(io), 2)
    load = meta.get("host_load")
    if isinstance(load, dict) and load:
        out["steal_pct"] = load.get("steal_pct")
        idle = load.get("idle_pct")
        out["host_busy_pct"] = round(100.0 - idle, 2) if isinstance(idle, (int, float)) else None
        others = [o for o in load.get("others") or [] if isinstance(o, dict)]
        if others:
            top = max(others, key=lambda o: o.get("cpu_pct") or 0)
            out["host_other_pct"] = top.get("cpu_pct")
            out["host_other"] = f"{top.get('comm')} (pid {top.get('pid')})"
        else:
            out["host_other_pct"] = 0.0
    return out
