"""One migration between two running QEMUs over QMP (the side-effecting edge).

The destination was started with `-incoming defer`; `migrate-incoming` makes it listen on a
unix socket, `migrate` on the source connects to it, and `query-migrate` is polled until the
migration completes, fails, or runs past the convergence limit, when `migrate_cancel` hands
the guest back to the source (it never stopped running there).

Shared storage needs no block migration: the destination opens the raw file inactive, the
source flushes and inactivates (releasing its image locks) just before the switch-over, and
the destination activates (takes the locks) when it resumes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

FINAL = ("completed", "failed", "cancelled")
POLL_S = 0.05


@dataclass
class HopResult:
    """What one migration did; times are host seconds since the window's first write."""

    index: int
    outcome: str                    # completed | failed | cancelled | not-started
    error: str | None = None
    started_s: float | None = None
    ended_s: float | None = None
    total_time_ms: int | None = None
    downtime_ms: int | None = None
    setup_time_ms: int | None = None
    transferred_bytes: int | None = None
    ram: dict[str, Any] = field(default_factory=dict)
    expected_downtime_ms: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def stats_from_query(info: dict[str, Any]) -> dict[str, Any]:
    """The figures perfsuite keeps from a `query-migrate` answer (pure)."""
    ram = info.get("ram") or {}
    return {"total_time_ms": info.get("total-time"), "downtime_ms": info.get("downtime"),
            "setup_time_ms": info.get("setup-time"),
            "transferred_bytes": ram.get("transferred"),
            "expected_downtime_ms": info.get("expected-downtime"),
            "ram": {k: ram.get(k) for k in ("transferred", "total", "duplicate", "normal",
                                            "dirty-sync-count", "mbps", "remaining")
                    if k in ram}}


def set_parameters(src: Any, max_bandwidth: int | None, downtime_limit_ms: int | None) -> None:
    params: dict[str, Any] = {}
    if max_bandwidth is not None:
        params["max-bandwidth"] = int(max_bandwidth)
    if downtime_limit_ms is not None:
        params["downtime-limit"] = int(downtime_limit_ms)
    if params:
        src.cmd("migrate-set-parameters", **params)


def migrate(src: Any, dst: Any, uri: str, index: int, *, clock: Callable[[], float],
            converge_timeout: float, max_bandwidth: int | None = None,
            downtime_limit_ms: int | None = None) -> HopResult:
    """Migrate `src` -> `dst` (both QemuProcess-like, with `.cmd`); never raises for a
    migration that goes wrong: the outcome says so."""
    res = HopResult(index=index, outcome="failed")
    try:
        set_parameters(src, max_bandwidth, downtime_limit_ms)
        dst.cmd("migrate-incoming", uri=uri)
        res.started_s = clock()
        src.cmd("migrate", uri=uri)
    except Exception as e:  # noqa: BLE001 - QMP error: a blocker, a bad URI...
        res.error = f"migrate refused: {_qmp_text(e)}"
        res.ended_s = clock()
        return res
    deadline = time.monotonic() + converge_timeout
    info: dict[str, Any] = {}
    last_ram: dict[str, Any] = {}   # a cancelled migration's answer has no ram figures
    why: str | None = None
    while True:
        info = src.cmd("query-migrate")
        status = info.get("status")
        last_ram = info.get("ram") or last_ram
        if status in FINAL:
            break
        if why is None and time.monotonic() > deadline:
            why = f"did not converge within {converge_timeout:g} s"
        elif why is None and dst.poll() is not None:
            why = "the destination QEMU exited"  # stop sending to nobody
        if why is not None and info.get("status") != "cancelling":
            src.cmd("migrate_cancel")
        time.sleep(POLL_S)
    res.ended_s = clock()
    res.__dict__.update(stats_from_query(dict(info, ram=info.get("ram") or last_ram)))
    res.outcome = status
    if status == "cancelled":
        res.error = (f"migration {index} cancelled: {why or 'by someone else'} (transferred "
                     f"{res.transferred_bytes} bytes, {res.ram.get('remaining')} remaining); "
                     "the guest kept running on the source")
    elif status == "failed":
        res.error = f"migration {index} failed: {info.get('error-desc', 'no reason given')}"
    return res


def _qmp_text(e: Exception) -> str:
    return " ".join(str(e).split())[:300] or type(e).__name__
