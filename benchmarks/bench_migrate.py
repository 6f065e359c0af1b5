#!/usr/bin/env python3
"""Downtime and IOPS dip per configuration, from a `perfsuite migrate` runs dir.

    .venv/bin/python benchmarks/bench_migrate.py [RUNS_DIR] [--run] [--runtime 15] [--at 5]
                                                 [--repeat 2] [--out benchmarks/RESULTS-migrate.md]

`--run` first runs `perfsuite migrate` (jobs/migrate.toml, the seed's axes) into RUNS_DIR
(default examples/migration); without it the committed runs are summarized. Per configuration:
repetitions ok / run, mean and range of QEMU's downtime and total migration time, MiB sent,
the deepest dip and the slowest recovery (a repetition that did not recover counts as such),
and the window's write IOPS (fio, whole window, migration included).
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _rng(vals, fmt="{:.0f}") -> str:
    vals = [v for v in vals if v == v and v is not None]
    if not vals:
        return "-"
    mean = sum(vals) / len(vals)
    if len(vals) == 1:
        return fmt.format(mean)
    return f"{fmt.format(mean)} ({fmt.format(min(vals))}-{fmt.format(max(vals))})"


def table(runs_dir: Path) -> str:
    import pandas as pd
    from perfsuite.analysis.results import load_runs
    from perfsuite.migrate.store import load_meta
    rows = ["| configuration | ok / runs | downtime ms | total ms | MiB sent | dip depth | recovery ms | write IOPS |",
            "|---|---|---|---|---|---|---|---|"]
    frame = load_runs(runs_dir).frame
    for d in sorted(p for p in runs_dir.iterdir() if p.is_dir()):
        metas = [m for m in (load_meta(p) for p in sorted(d.glob("*.meta.json"))) if m]
        summ = [m["migration"]["summary"] for m in metas if m.get("status") == "ok"]
        ok = [m for m in metas if m.get("status") == "ok"]
        rec = [s["dip_recover_ms"] for s in summ]
        rec_txt = _rng([r for r in rec if r is not None])
        if any(r is None for r in rec):
            rec_txt += f"; {sum(r is None for r in rec)} not recovered"
        f = frame[frame["name"] == d.name]
        iops = f["write_iops"].tolist() if not f.empty else []
        rows.append(f"| {d.name} | {len(ok)} / {len(metas)} | {_rng([s['downtime_ms'] for s in summ])} | "
                    f"{_rng([s['total_time_ms'] for s in summ])} | "
                    f"{_rng([s['bytes'] / 2**20 for s in summ if s['bytes']], '{:.1f}')} | "
                    f"{_rng([100 * s['dip_depth'] for s in summ if s['dip_depth'] is not None], '{:.0f}%')} | "
                    f"{rec_txt} | {_rng(iops)} |")
    del pd
    return "\n".join(rows) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs_dir", nargs="?", default=str(REPO / "examples" / "migration"))
    ap.add_argument("--run", action="store_true")
    ap.add_argument("--runtime", type=int, default=15)
    ap.add_argument("--at", type=float, default=5)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "RESULTS-migrate.md"))
    a = ap.parse_args()
    if a.run:
        subprocess.run([sys.executable, "-m", "perfsuite.cli", "migrate", "--accel", "tcg",
                        "--runtime", str(a.runtime), "--at", str(a.at), "--repeat", str(a.repeat),
                        "--runs-dir", a.runs_dir], cwd=REPO)
    text = table(Path(a.runs_dir))
    head = (f"# perfsuite migrate: downtime and IOPS dip per configuration\n\n"
            f"Made by `benchmarks/bench_migrate.py` from `{Path(a.runs_dir).resolve().relative_to(REPO)}` "
            f"(host {platform.node()}, {platform.machine()}; see BENCHMARKS.md for the machine).\n\n")
    Path(a.out).write_text(head + text)
    print(text, end="")


if __name__ == "__main__":
    main()
