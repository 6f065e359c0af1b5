"""fio's IOPS logs -> one IOPS timeline, and the dip around a migration (pure).

fio writes one log per job (`iops_iops.<job>.log`, `time_ms, iops, direction, bs, offset`);
with log_avg_msec=100 each line is the job's mean IOPS over the 100 ms ending at `time_ms`.
The timeline sums the jobs per 100 ms bin.

The dip of one migration: the baseline is the mean IOPS over the `baseline_ms` before the
migration started; the trough is the lowest bin from the start until recovery; recovery is
the first bin at or after the switch-over (the migration's end) from which the mean of the
next `smooth` bins is within `tolerance` of the baseline. Single 100 ms bins under TCG wander
by more than 5%, hence the short moving mean.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence


def parse_iops_log(text: str, direction: int | None = 1) -> list[tuple[int, float]]:
    """(time_ms, iops) of one fio log; `direction` 0 read, 1 write, None both."""
    out = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 3 or not parts[0].isdigit():
            continue
        if direction is not None and int(parts[2]) != direction:
            continue
        out.append((int(parts[0]), float(parts[1])))
    return out


def merge(logs: Iterable[Sequence[tuple[int, float]]], bin_ms: int = 100) -> list[tuple[int, float]]:
    """Sum of the jobs' IOPS per bin: [(bin start ms, iops)].

    A job with two entries in one bin (its timer jittered) counts with their mean. An entry
    that comes late (fio's helper thread starved: no entry for some bins) is fio's mean over
    the whole gap, so it fills the bins it covers, rather than the gap being skipped (which
    would hide a stall from the dip).
    """
    total: dict[int, float] = defaultdict(float)
    for log in logs:
        per_bin: dict[int, list[float]] = defaultdict(list)
        for t, v in log:
            per_bin[int(t // bin_ms)].append(v)
        prev = None
        for b in sorted(per_bin):
            v = sum(per_bin[b]) / len(per_bin[b])
            start = b if prev is None else prev + 1
            for k in range(start, b + 1):
                total[k] += v
            prev = b
    return [(b * bin_ms, total[b]) for b in sorted(total)]


@dataclass(frozen=True)
class Dip:
    baseline_iops: float | None     # mean over the baseline window
    trough_iops: float | None       # lowest bin from the start to recovery
    depth: float | None             # 1 - trough / baseline (0: no dip)
    recovered: bool
    recover_ms: float | None        # from the switch-over to recovery

    def as_dict(self) -> dict:
        return asdict(self)


def dip(timeline: Sequence[tuple[int, float]], start_ms: float, end_ms: float, *,
        baseline_ms: float = 5000, tolerance: float = 0.05, smooth: int = 10,
        baseline_from_ms: float | None = None, bin_ms: int = 100) -> Dip:
    """The dip of a migration that ran from `start_ms` to `end_ms` (timeline clock).

    `baseline_from_ms` keeps the baseline window after an earlier migration's recovery.
    """
    lo = start_ms - baseline_ms
    if baseline_from_ms is not None:
        lo = max(lo, baseline_from_ms)
    before = [v for t, v in timeline if lo <= t < start_ms]
    if not before or sum(before) <= 0:
        return Dip(None, None, None, False, None)
    base = sum(before) / len(before)
    after = [(t, v) for t, v in timeline if t >= start_ms]
    rec_t = None
    for i, (t, _) in enumerate(after):
        if t + bin_ms <= end_ms:  # the bin holding the switch-over counts
            continue
        window = [v for _, v in after[i:i + smooth]]
        if len(window) == smooth and sum(window) / smooth >= (1 - tolerance) * base:
            rec_t = t
            break
    span = [v for t, v in after if rec_t is None or t <= rec_t]
    trough = min(span) if span else None
    depth = None if trough is None else max(0.0, 1 - trough / base)
    return Dip(base, trough, depth, rec_t is not None,
               None if rec_t is None else max(0.0, float(rec_t - end_ms)))


def to_fio_clock(host_ms: float, downtimes_before_ms: Iterable[float]) -> float:
    """A host time (ms since the first write of the window) on the guest's clock.

    The guest's clock stands still while the VM is stopped for the switch-over (QEMU's
    virtual clock does not run while the VM is stopped and travels with the migration), so
    every earlier downtime is subtracted.
    """
    return host_ms - sum(downtimes_before_ms)


def timeline_csv(timeline: Sequence[tuple[int, float]]) -> str:
    return "t_ms,iops\n" + "".join(f"{t},{v:.1f}\n" for t, v in timeline)


def read_timeline_csv(text: str) -> list[tuple[int, float]]:
    out = []
    for line in text.splitlines()[1:]:
        t, _, v = line.partition(",")
        if t.strip():
            out.append((int(t), float(v)))
    return out
