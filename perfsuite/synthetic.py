"""Minimal generator of fio-shaped runs with a known truth, for testing the statistics.

Kept deliberately small: it exists only because the reference model's generator
(perfsuite.model, issue 6) was not available when compare/nightly needed test data;
prefer the model's `simulate` once it offers the same (meta synthetic=true, true_iops).

Each repetition's total IOPS is drawn from a normal distribution with mean `true_iops`
and standard deviation cv * true_iops (truncated at 1 IOPS), written as a one-job fio 3.x
JSON document plus a schema-1 meta.json (CONTRACTS.md section 2).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from perfsuite.fsutil import atomic_write_json

BASE_CONFIG = {
    "label": "base", "qemu": "/usr/bin/qemu-system-x86_64", "smp": 1, "memory_mb": 1024,
    "num_queues": 1, "dataplane": False, "iothreads": 0, "queue_size": 256,
    "backend": "null-co", "backend_path": None, "aio": "threads", "cache": "none",
    "fio_job": "jobs/fio.job", "numjobs": 1, "iodepth": 32, "runtime": 5, "ramp": 0,
    "pin": False, "machine": "q35",
}


def fio_doc(iops: float, runtime_s: float = 5.0, iodepth: int = 32) -> dict:
    """A fio 3.x JSON document of one randread job reaching `iops`."""
    ios = int(iops * runtime_s)
    lat_ns = 1e9 * iodepth / max(iops, 1.0)  # Little's law: what the queue depth implies
    return {
        "fio version": "fio-3.33",
        "jobs": [{
            "jobname": "synthetic", "groupid": 0, "error": 0,
            "job options": {"rw": "randread", "bs": "4k", "iodepth": str(iodepth)},
            "read": {"iops": float(iops), "bw": float(iops * 4), "total_ios": ios,
                     "runtime": int(runtime_s * 1000),
                     "clat_ns": {"mean": lat_ns, "percentile": {"50.000000": lat_ns,
                                 "99.000000": 2 * lat_ns, "99.900000": 3 * lat_ns}}},
            "write": {"iops": 0.0, "bw": 0, "total_ios": 0, "runtime": 0},
            "trim": {"iops": 0.0, "bw": 0, "total_ios": 0, "runtime": 0},
        }],
    }


def draw(true_iops: float, cv: float, reps: int, rng: np.random.Generator) -> np.ndarray:
    return np.maximum(rng.normal(true_iops, cv * true_iops, size=reps), 1.0)


def write_runs(runs_dir: str | Path, name: str, true_iops: float, cv: float, reps: int,
               seed: int | np.random.Generator = 0, config: dict | None = None,
               first_rep: int = 1, started: str = "2026-01-01T00:00:00+00:00",
               qemu_version: str = "7.2.0") -> list[float]:
    """Write reps repetitions runs_dir/name/{first_rep..}.json (+ .meta.json); return the IOPS drawn."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    cfg = {**BASE_CONFIG, **(config or {})}
    out = Path(runs_dir) / name
    values = draw(true_iops, cv, reps, rng)
    for i, v in enumerate(values):
        rep = first_rep + i
        atomic_write_json(out / f"{rep}.json", fio_doc(float(v)))
        atomic_write_json(out / f"{rep}.meta.json", {
            "schema": 1, "name": name, "rep": rep, "boot": rep, "config": cfg,
            "qemu_argv": [], "accel": "synthetic", "accel_note": None,
            "versions": {"qemu": qemu_version, "host_fio": "fio-3.33"},
            "host": {"hostname": "synthetic", "cpu_model": "none", "cpus": 1, "kernel": ""},
            "guest": {"cpus_online": cfg["smp"], "queues": cfg["num_queues"], "kernel": "",
                      "fio_version": "fio-3.33", "scheduler": "none"},
            "mismatch": [], "started": started, "finished": started, "status": "ok",
            "error": None, "synthetic": True, "true_iops": float(true_iops),
        })
    return [float(v) for v in values]
