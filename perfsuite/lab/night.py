"""`lab nightly`: each host interleaves baseline and candidate for its configurations (it runs
`perfsuite nightly` on its share); the controller compares per class and records the lab
hosts that made the results in that class's history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import orjson


@dataclass(frozen=True)
class NightPlan:
    pairs: Sequence[tuple]          # (baseline Config, candidate Config), as nightly pairs them
    baseline_qemu: str
    candidate_qemu: str
    night: str

    def units(self) -> dict[str, list[str]]:
        """One unit per pair, filling baseline/A and candidate/B of the class's runs dir."""
        return {a.name: [f"baseline/{a.name}", f"candidate/{b.name}"] for a, b in self.pairs}

    def argv(self, labrun, job) -> list[str]:
        a, h = labrun.opts.run_args, job.host
        la, lb = self.pairs[0][0].label, self.pairs[0][1].label
        argv = [f"{h.dir}/venv/bin/perfsuite", "nightly", "--matrix", labrun.matrix_on_host,
                "--baseline-qemu", self.baseline_qemu, "--candidate-qemu", self.candidate_qemu,
                "--baseline-label", la, "--candidate-label", lb, "--runs-dir", "runs",
                "--results-dir", "nightly", "--night", self.night, "--boots", str(a.boots), "--repeat", str(a.repeat),
                "--accel", a.accel, "--work-root", f"{job.dir}/work", "--no-html"]
        for opt, v in (("--runtime", a.runtime), ("--ramp", a.ramp), ("--timeout", a.timeout)):
            if v is not None:
                argv += [opt, str(v)]
        partner = {x.name: y.name for x, y in self.pairs}
        for name in dict.fromkeys(k[1] for k in job.keys):
            argv += ["--only", name, "--only", partner[name]]
        return argv


def lab_hosts(runs: Path) -> list[str]:
    """The inventory hosts named by the metas under runs (the night's origin)."""
    found = set()
    for p in runs.rglob("*.meta.json"):
        try:
            host = (orjson.loads(p.read_bytes()).get("lab") or {}).get("host")
        except (OSError, orjson.JSONDecodeError, AttributeError):
            continue
        if host:
            found.add(host)
    return sorted(found)


def compare_class(runs: Path, results: Path, plan: NightPlan, opts, started: str):
    """Compare one class's night, record it (host = its lab hosts), write its outputs."""
    from perfsuite.analysis.comparison import compare
    from perfsuite.report.verdicts import render_json, render_junit
    from perfsuite.analysis.results import load_runs
    from perfsuite.fsutil import atomic_write_text
    from perfsuite.nightly import history
    from perfsuite.nightly.night import night_info, summary_markdown

    fa = load_runs(runs / "baseline", names=[a.name for a, _ in plan.pairs])
    fb = load_runs(runs / "candidate", names=[b.name for _, b in plan.pairs])
    comp = compare(fa.frame, fb.frame, threshold=opts.threshold, test=opts.test,
                   correction=opts.correction, metric=opts.metric, alpha=opts.alpha)
    finished = datetime.now(timezone.utc).isoformat(timespec="seconds")
    info = night_info(fa.frame, fb.frame, started, finished,
                      (plan.pairs[0][0].label, plan.pairs[0][1].label))
    info["host"] = ", ".join(lab_hosts(runs)) or info["host"]
    db = history.open_history(results / history.FILENAME)
    history.record_night(db, plan.night, comp, info)
    changes = history.detect(history.results(db, comp.params["metric"]))
    db.close()
    out = results / "nights" / plan.night
    atomic_write_text(out / "summary.md", summary_markdown(plan.night, comp, info, {}, [], changes))
    atomic_write_text(out / "junit.xml", render_junit(comp))
    atomic_write_text(out / "compare.json", render_json(comp))
    return comp, info
