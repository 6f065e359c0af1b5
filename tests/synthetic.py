"""Synthetic runs with a chosen truth, written one repetition at a time.

A thin adapter over the reference model's generator (perfsuite.model.simulate): its fio
documents, meta documents (synthetic=true, true_iops) and draws are used as they are.
What it adds is what the statistics tests and the nightly's fake runner need and
`simulate()` does not offer: a true mean chosen by the caller (not the model's
prediction), e.g. a candidate 5% slower, and repetitions appended to an existing run
directory (`first_rep`), as the interleaved nightly writes them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from perfsuite.fsutil import atomic_write_json
from perfsuite.matrix import axes
from perfsuite.model.simulate import SimConfig, boot_draw, fio_document, meta_document

# every registered axis at its default, then what the synthetic runs fix
BASE_CONFIG = {
    **axes.defaults(), "label": "base", "qemu": "/usr/bin/qemu-system-x86_64", "smp": 1,
    "num_queues": 1, "dataplane": False, "iothreads": 0, "numjobs": 1, "runtime": 5, "ramp": 0,
}


def write_runs(runs_dir: str | Path, name: str, true_iops: float, cv: float, reps: int,
               seed: int | np.random.Generator = 0, config: dict | None = None,
               first_rep: int = 1, start: float = 1.7e9, boot_cv: float = 0.0, per_boot: int = 1,
               first_boot: int | None = None) -> list[float]:
    """Write reps repetitions runs_dir/name/{first_rep..}.json (+ .meta.json); return the IOPS drawn.

    Runs come in boots of `per_boot` repetitions (the last one may be short), each boot at
    its own level true_iops x (1 + N(0, boot_cv^2)); meta `boot` counts from `first_boot`
    (default: first_rep, i.e. boot = rep when per_boot = 1, the old layout).
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    cfg = {**BASE_CONFIG, **(config or {})}
    sim = SimConfig(name=name, smp=cfg["smp"], num_queues=cfg["num_queues"] or cfg["smp"],
                    dataplane=bool(cfg["dataplane"]), numjobs=cfg["numjobs"] or cfg["smp"],
                    iodepth=cfg["iodepth"], iothreads=cfg["iothreads"], queue_size=cfg["queue_size"],
                    runtime=cfg["runtime"], meta_config=cfg)
    out = Path(runs_dir) / name
    k = -(-reps // per_boot)
    values, boot_of = boot_draw(rng, true_iops, cv, boot_cv, k, per_boot)
    values, boot_of = values[:reps], boot_of[:reps] - 1 + (first_rep if first_boot is None else first_boot)
    for i, v in enumerate(values):
        rep = first_rep + i
        t = start + 100.0 * rep
        atomic_write_json(out / f"{rep}.json", fio_document(float(v), sim.numjobs, sim.iodepth, sim.runtime, t))
        atomic_write_json(out / f"{rep}.meta.json",
                          meta_document(sim, rep, "synthetic", float(true_iops), None, t, t + sim.runtime,
                                        boot=int(boot_of[i])))
    return [float(v) for v in values]
