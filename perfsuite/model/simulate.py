"""Synthetic runs with a known truth, in the run-directory contract (CONTRACTS.md 1-2).

For every configuration the performance model gives a true mean IOPS. Runs come in
boots, as the runner makes them: each boot draws its own level, true mean x (1 + e) with
e ~ N(0, boot_cv^2) (the boot-to-boot variation: page cache, vCPU placement, host layout),
and each repetition in that boot draws its IOPS around the boot's level with the
within-boot coefficient of variation cv (redrawn below 5% of the mean, so no run is empty
or negative). ``boots=None`` keeps one boot per repetition. Each repetition is written as

* ``N.json``: a fio 3.x JSON document with the structure fio 3.33 writes for
  ``--output-format=json`` (top-level version/timestamps/jobs/disk_util; per
  job read/write/trim with iops, bw, total_ios, clat_ns/lat_ns with
  percentiles), one job entry per fio job, the total split over them;
  latencies follow Little's law for a job that keeps the device busy
  (mean latency = iodepth / job IOPS);
* ``N.meta.json``: schema 1 with ``synthetic: true`` and ``true_iops``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from perfsuite.fsutil import atomic_write_json

from .fit import Model
from .perf import PerfConfig

FIO_VERSION = "fio-3.33"


@dataclass(frozen=True)
class SimConfig:
    """What simulate needs of a configuration (perfsuite.matrix.config.Config has all of it)."""

    name: str
    smp: int
    num_queues: int
    dataplane: bool
    numjobs: int
    iodepth: int
    iothreads: int = 1
    queue_size: int = 256
    runtime: int = 60
    meta_config: dict | None = None


def seed_matrix(label: str = "v4", iodepth: int = 32) -> list[SimConfig]:
    """The seed's four rows plus the 1-vCPU column (jobs/matrix.toml without the TOML)."""
    out = []
    for smp in (4, 1):
        for dp in (True, False):
            for mq in ((True, False) if smp > 1 else (True,)):
                name = f"{label}-smp-{smp}-{'dataplane' if dp else 'no-dataplane'}" + ("" if mq else "-no-mq")
                out.append(SimConfig(name, smp, smp if mq else 1, dp, smp, iodepth, 1 if dp else 0))
    return out


def from_config(c: Any) -> SimConfig:
    """A perfsuite.matrix.config.Config -> SimConfig."""
    meta = c.to_meta() if hasattr(c, "to_meta") else None
    return SimConfig(name=c.name, smp=c.smp, num_queues=c.num_queues, dataplane=c.dataplane,
                     numjobs=c.numjobs, iodepth=c.iodepth, iothreads=c.iothreads,
                     queue_size=c.queue_size, runtime=c.runtime, meta_config=meta)


def perf_config(c: SimConfig, accel: str, host_cpus: int | None) -> PerfConfig:
    return PerfConfig(smp=c.smp, num_queues=c.num_queues, dataplane=c.dataplane, numjobs=c.numjobs,
                      iodepth=c.iodepth, accel=accel, iothreads=max(1, c.iothreads),
                      queue_size=c.queue_size, host_cpus=host_cpus)


def draw(rng: np.random.Generator, mean: float, cv: float, n: int) -> np.ndarray:
    """n draws from N(mean, (cv*mean)^2), each redrawn until >= 5% of the mean."""
    x = rng.normal(mean, cv * mean, n)
    for _ in range(100):
        bad = x < 0.05 * mean
        if not bad.any():
            break
        x[bad] = rng.normal(mean, cv * mean, int(bad.sum()))
    return np.maximum(x, 0.05 * mean)


def _lat(mean_ns: float) -> dict:
    # Shape of fio's clat_ns: a right-skewed distribution around the mean.
    pct = {"1.000000": 0.45, "5.000000": 0.55, "10.000000": 0.62, "50.000000": 0.92,
           "90.000000": 1.45, "95.000000": 1.7, "99.000000": 2.4, "99.900000": 3.5,
           "99.990000": 5.0}
    return {"min": int(mean_ns * 0.3), "max": int(mean_ns * 8), "mean": mean_ns,
            "stddev": mean_ns * 0.5, "N": 0,
            "percentile": {k: int(mean_ns * f) for k, f in pct.items()}}


def fio_document(iops: float, numjobs: int, iodepth: int, runtime_s: int, start: float,
                 bs: int = 4096) -> dict:
    """One fio 3.x JSON document whose jobs sum to ``iops`` (randread, bs bytes)."""
    per_job = iops / numjobs
    runtime_ms = runtime_s * 1000
    jobs = []
    for _j in range(numjobs):
        ios = int(round(per_job * runtime_s))
        lat_ns = 1e9 * iodepth / per_job
        clat = _lat(lat_ns)
        clat["N"] = ios
        idle = {"io_bytes": 0, "io_kbytes": 0, "bw_bytes": 0, "bw": 0, "iops": 0.0, "runtime": 0,
                "total_ios": 0, "short_ios": 0, "drop_ios": 0,
                "slat_ns": {"min": 0, "max": 0, "mean": 0.0, "stddev": 0.0, "N": 0},
                "clat_ns": {"min": 0, "max": 0, "mean": 0.0, "stddev": 0.0, "N": 0},
                "lat_ns": {"min": 0, "max": 0, "mean": 0.0, "stddev": 0.0, "N": 0},
                "bw_min": 0, "bw_max": 0, "bw_agg": 0.0, "bw_mean": 0.0, "bw_dev": 0.0,
                "bw_samples": 0, "iops_min": 0, "iops_max": 0, "iops_mean": 0.0,
                "iops_stddev": 0.0, "iops_samples": 0}
        read = dict(idle)
        read.update({
            "io_bytes": ios * bs, "io_kbytes": ios * bs // 1024, "bw_bytes": int(per_job * bs),
            "bw": int(per_job * bs / 1024), "iops": per_job, "runtime": runtime_ms,
            "total_ios": ios,
            "slat_ns": {"min": 0, "max": 0, "mean": 0.0, "stddev": 0.0, "N": 0},
            "clat_ns": clat,
            "lat_ns": {"min": clat["min"], "max": clat["max"], "mean": lat_ns,
                       "stddev": clat["stddev"], "N": ios},
            "bw_agg": 100.0 / numjobs, "bw_mean": per_job * bs / 1024,
            "iops_mean": per_job, "iops_samples": runtime_s * 2,
        })
        jobs.append({
            "jobname": "job1", "groupid": 0, "error": 0, "eta": 0, "elapsed": runtime_s + 1,
            "job options": {"rw": "randread", "bs": "4K", "ioengine": "libaio", "direct": "1",
                            "iodepth": str(iodepth), "numjobs": str(numjobs),
                            "runtime": str(runtime_s)},
            "read": read, "write": dict(idle), "trim": dict(idle),
            "sync": {"total_ios": 0, "lat_ns": {"min": 0, "max": 0, "mean": 0.0, "stddev": 0.0, "N": 0}},
            "job_runtime": runtime_ms, "usr_cpu": 5.0, "sys_cpu": 40.0, "ctx": ios // 4,
            "majf": 0, "minf": 40,
            "iodepth_level": {"1": 0.1, "2": 0.1, "4": 0.1, "8": 0.1, "16": 0.1, "32": 99.5, ">=64": 0.0},
            "latency_depth": iodepth, "latency_target": 0, "latency_percentile": 100.0,
            "latency_window": 0,
        })
    total = sum(j["read"]["total_ios"] for j in jobs)
    return {
        "fio version": FIO_VERSION,
        "timestamp": int(start), "timestamp_ms": int(start * 1000),
        "time": time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(start)),
        "jobs": jobs,
        "disk_util": [{"name": "vda", "read_ios": total, "write_ios": 0, "read_merges": 0,
                       "write_merges": 0, "read_ticks": total // 10, "write_ticks": 0,
                       "in_queue": total // 10, "util": 99.5}],
    }


def boot_draw(rng: np.random.Generator, mean: float, cv: float, boot_cv: float, boots: int,
              per_boot: int) -> tuple[np.ndarray, np.ndarray]:
    """boots x per_boot runs: (values, boot number 1..boots of each), boot-major order."""
    levels = mean * (1.0 + rng.normal(0.0, boot_cv, boots)) if boot_cv > 0 else np.full(boots, mean)
    levels = np.maximum(levels, 0.1 * mean)
    values = np.concatenate([draw(rng, lv, cv, per_boot) for lv in levels])
    return values, np.repeat(np.arange(1, boots + 1), per_boot)


def meta_document(c: SimConfig, rep: int, accel: str, true_iops: float, host_cpus: int | None,
                  start: float, finish: float, boot: int | None = None) -> dict:
    from perfsuite.matrix import axes
    config = dict(c.meta_config) if c.meta_config else {
        **axes.defaults(), "label": c.name.split("-smp-")[0], "smp": c.smp,
        "num_queues": c.num_queues, "dataplane": c.dataplane, "iothreads": c.iothreads,
        "queue_size": c.queue_size, "numjobs": c.numjobs, "iodepth": c.iodepth,
        "runtime": c.runtime, "ramp": 0}
    iso = "%Y-%m-%dT%H:%M:%S+00:00"
    return {
        "schema": 1, "name": c.name, "rep": rep, "boot": rep if boot is None else int(boot),
        "config": config,
        "qemu_argv": [], "accel": accel, "accel_note": "synthetic run from perfsuite.model",
        "versions": {"qemu": "synthetic", "host_fio": FIO_VERSION},
        "host": {"hostname": "synthetic", "cpu_model": "perfsuite model", "cpus": host_cpus,
                 "kernel": "synthetic"},
        # A guest that behaves: it sees min(num_queues, smp) queues, all vCPUs online.
        "guest": {"cpus_online": c.smp, "queues": min(c.num_queues, c.smp), "kernel": "synthetic",
                  "fio_version": FIO_VERSION, "scheduler": "none"},
        "mismatch": [], "started": time.strftime(iso, time.gmtime(start)),
        "finished": time.strftime(iso, time.gmtime(finish)), "status": "ok", "error": None,
        "synthetic": True, "true_iops": true_iops,
    }


def simulate(configs: list[SimConfig], out_dir: str | os.PathLike, repeat: int, cv: float,
             seed: int = 0, accel: str = "kvm", host_cpus: int | None = None,
             model: Model | None = None, start: float = 1.7e9, boots: int | None = None,
             boot_cv: float = 0.0) -> dict[str, float]:
    """Write synthetic runs per config under out_dir; returns name -> true IOPS.

    ``boots=None``: ``repeat`` runs, each in a boot of its own. ``boots=K``: K boots of
    ``repeat`` repetitions each (as ``perfsuite run --boots K --repeat R``), numbered
    1..K*R, meta ``boot`` = 1..K. ``boot_cv`` is the boot-to-boot CV.

    Deterministic for a given seed (timestamps come from ``start``, not the clock).
    Refuses to write into a run directory that already holds results.
    """
    if repeat < 1:
        raise ValueError(f"--repeat must be >= 1, got {repeat}")
    if not 0 <= cv < 1:
        raise ValueError(f"--cv must be in [0, 1), got {cv}")
    if not 0 <= boot_cv < 1:
        raise ValueError(f"--boot-cv must be in [0, 1), got {boot_cv}")
    if boots is not None and boots < 1:
        raise ValueError(f"--boots must be >= 1, got {boots}")
    out = Path(out_dir)
    model = model or Model()
    for c in configs:
        d = out / c.name
        if d.is_dir() and any(p.suffix == ".json" for p in d.iterdir()):
            raise FileExistsError(f"{d} already holds runs; choose an empty output directory")
    # Every prediction before the first file: a config the model refuses must not leave
    # the configs before it written (a half-written tree that the next call refuses).
    truth = {c.name: model.predict(perf_config(c, accel, host_cpus)) for c in configs}
    rng = np.random.default_rng(seed)
    t = start
    for c in configs:
        mean = truth[c.name]
        k, r = (repeat, 1) if boots is None else (boots, repeat)
        values, boot_of = boot_draw(rng, mean, cv, boot_cv, k, r)
        for rep, (iops, boot) in enumerate(zip(values, boot_of), start=1):
            doc = fio_document(float(iops), c.numjobs, c.iodepth, c.runtime, t)
            atomic_write_json(out / c.name / f"{rep}.json", doc)
            atomic_write_json(out / c.name / f"{rep}.meta.json",
                              meta_document(c, rep, accel, mean, host_cpus, t, t + c.runtime + 5,
                                            boot=None if boots is None else int(boot)))
            t += c.runtime + 10
    return truth
