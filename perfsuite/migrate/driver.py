"""A migration matrix: per configuration, per repetition, one `run_repetition`, its record
and its files (the loop behind `perfsuite migrate`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from perfsuite.matrix.config import Config
from perfsuite.migrate import scenario, store
from perfsuite.migrate.job import schedule
from perfsuite.run.meta import build_meta, host_info, now_iso, versions


@dataclass(frozen=True)
class Done:
    name: str
    rep: int
    status: str
    error: str | None
    summary: dict[str, Any]


def meta_for(c: Config, rep: int, out: scenario.RepOutcome, opts: scenario.MigrateOptions,
             accel_note: str | None, started: str, finished: str,
             timeline: list[tuple[int, float]]) -> dict[str, Any]:
    rep_dir = out.workdir / f"rep-{rep}"
    meta = build_meta(c, rep, boot=rep, argv=out.argv[0] if out.argv else [], accel=opts.accel,
                      accel_note=accel_note, versions=versions(c.qemu), host=host_info(),
                      guest=out.guest, device=out.device, started=started, finished=finished,
                      status=out.status, error=out.error)
    times = schedule(opts.at, opts.every, opts.migrations, c.runtime)
    options = {k: v for k, v in dataclasses.asdict(opts).items()
               if k not in ("work_root", "keep_workdir", "accel", "finish_timeout")}
    meta["migration"] = store.migration_record(
        out.hops, timeline, times, out.ran_on, out.phases, store.verify_errors(rep_dir), options)
    meta["migration"]["destination_argv"] = out.argv[1:]
    return meta


def migrate_matrix(configs: Sequence[Config], runs_dir: str | Path, reps: Sequence[int],
                   image: Any, opts: scenario.MigrateOptions, accel_note: str | None = None,
                   on_done: Callable[[Done], None] | None = None) -> list[Done]:
    """Each configuration's repetitions in turn; every result kept as it arrives."""
    done: list[Done] = []
    for c in configs:
        for rep in reps:
            started = now_iso()
            out = scenario.run_repetition(c, rep, image, opts)
            try:
                timeline = store.read_timeline(out.workdir / f"rep-{rep}")
                meta = meta_for(c, rep, out, opts, accel_note, started, now_iso(), timeline)
                store.store(Path(runs_dir) / c.name, rep, meta, out, timeline)
            finally:
                scenario.cleanup(out, opts.keep_workdir)
            d = Done(c.name, rep, out.status, out.error, meta["migration"]["summary"])
            done.append(d)
            if on_done:
                on_done(d)
    return done


def pending(run_dir: Path, reps: Sequence[int]) -> list[int]:
    """The repetitions not already ok in `run_dir` (resume)."""
    out = []
    for rep in reps:
        meta = store.load_meta(run_dir / f"{rep}.meta.json")
        if not (meta and meta.get("status") == "ok" and (run_dir / f"{rep}.json").exists()):
            out.append(rep)
    return out
