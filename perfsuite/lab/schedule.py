"""Which host runs which configuration (pure).

By default all boots of a configuration stay on one host (its repetitions are comparable with
each other); configurations are spread over the hosts of a class by expected wall time,
longest first onto the least loaded host (LPT: within 4/3 of the best possible makespan).
With `lab run --spread` the items are single boots, and one configuration's boots go to
different hosts first (host-level replication), then by load.
"""

from __future__ import annotations

from typing import Any, Callable, Hashable, Mapping, Sequence

# Measured under TCG on the development machine: a boot to the first fio is ~8-15 s, and each
# repetition adds fio's start and the result copy. On KVM both are smaller; only the ratio
# between configurations matters for balancing.
BOOT_S = 12.0
REP_OVERHEAD_S = 1.5


def expected_seconds(runtime: int, ramp: int, reps: int) -> float:
    """Wall time of one configuration's pending repetitions on one host."""
    if reps <= 0:
        return 0.0
    return BOOT_S + reps * (runtime + ramp + REP_OVERHEAD_S)


def assign(costs: Mapping[Hashable, float], hosts: Sequence[str],
           load: Mapping[str, float] | None = None,
           group: Callable[[Any], Hashable] | None = None) -> dict[str, list]:
    """Spread work items (item -> seconds) over hosts; `load` is what each host already has.

    With `group` (item -> its configuration), items of one group go to the hosts holding the
    fewest of that group first, then by load: `--spread` puts a configuration's boots on as
    many hosts as there are (host-level replication) before it balances.
    Returns host -> items in the order they were given (so a host runs its share in matrix
    order); every host appears, possibly with nothing.
    """
    if not hosts:
        raise ValueError("no host to assign to")
    total = {h: float((load or {}).get(h, 0.0)) for h in hosts}
    held: dict[tuple[str, Hashable], int] = {}
    chosen: dict[Hashable, str] = {}
    rank = {item: i for i, item in enumerate(costs)}
    for item in sorted(costs, key=lambda it: (-costs[it], rank[it])):
        g = group(item) if group else None
        host = min(hosts, key=lambda h: (held.get((h, g), 0), total[h], hosts.index(h)))
        chosen[item] = host
        total[host] += costs[item]
        if group:
            held[(host, g)] = held.get((host, g), 0) + 1
    out: dict[str, list] = {h: [] for h in hosts}
    for item in costs:
        out[chosen[item]].append(item)
    return out


def makespan(costs: Mapping[Hashable, float], plan: Mapping[str, Sequence]) -> float:
    return max((sum(costs[i] for i in items) for items in plan.values()), default=0.0)
