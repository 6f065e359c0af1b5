"""The nightly procedure: baseline vs candidate QEMU, interleaved, compared, remembered.

    for each configuration of the matrix:
        A1 B1 A2 B2 ... (boot k of the baseline, then boot k of the candidate; `boots` boots
                         per build, `repeat` fio repetitions in each)
    compare (perfsuite.analysis.comparison)  ->  history (perfsuite.nightly.history)  ->  summary.md, junit.xml,
    compare.json, report/index.html (when `perfsuite report` is available); exit 0/1/2.

Why interleaved: a host that slows down during the night (thermal, a neighbour, a backup
job) then hurts A and B of a configuration alike instead of posing as a regression.
Why several boots: boot-to-boot variation is real and must be in the spread; the unit of
every test is the boot mean (a boot's repetitions share its state). The schedule is
`perfsuite run`'s (`runner.boot_plan`), so `--boots` / `--repeat` mean the same in both.

Sequential mode (`sequential=True`): from `boots` pairs of boots on, each configuration is
looked at after every pair with the mixture sequential t-test of perfsuite.analysis.sequential (paired
log-ratios of boot means, alpha / configs per configuration) and stops as soon as it decides
("change" or "no change") or at `max_boots` pairs. That test, not a fixed-n test applied to
optionally stopped data, gives the night's verdict, its anytime-valid p, its confidence
sequence and a bias-adjusted ratio (`sequential_rows`); `compare` still fills the rest.

The runner is called once per boot through `run_one(config, runs_dir, reps, boot)`, by
default `perfsuite.run.runner.run_config` with one shared `Runner` (KVM probed once); tests
pass a function that writes synthetic runs.
"""

from __future__ import annotations

from perfsuite.errors import PerfsuiteError

import os
import socket
import stat
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from perfsuite.analysis import sequential as seq

RunOne = Callable[..., object]


class NightlyError(PerfsuiteError):
    """The night cannot be run or compared (exit 2); the message says why."""


@dataclass
class NightlyOptions:
    boots: int = 5        # boots per build and configuration: the pairs (A boot k, B boot k)
    repeat: int = 1       # fio repetitions per boot
    sequential: bool = False
    max_boots: int = 38   # the sequential design's 90% power point (analysis/sequential.py)
    threshold: float = 0.05
    test: str = "welch"
    correction: str = "holm"
    metric: str = "iops"
    alpha: float = 0.05


@dataclass
class NightResult:
    night: str
    comparison: object  # perfsuite.analysis.comparison.Comparison
    exit_code: int
    outputs: dict[str, Path] = field(default_factory=dict)
    stops: dict[str, tuple[str, int]] = field(default_factory=dict)  # config -> (decision, pairs)
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    changes: object = None  # pandas frame of change points over the stored history


def night_id(now: datetime | None = None) -> str:
    return (now or datetime.now(timezone.utc)).strftime("%Y-%m-%d")


def pair_configs(base: Sequence, cand: Sequence) -> list[tuple]:
    """Baseline and candidate configs of one matrix (same order), checked to differ only in
    the build (label, qemu)."""
    if len(base) != len(cand):
        raise NightlyError(f"the matrix expands to {len(base)} baseline but {len(cand)} candidate configs")
    pairs = []
    for a, b in zip(base, cand):
        same = b.replace(label=a.label, qemu=a.qemu, name=a.name)
        if same != a:
            raise NightlyError(f"configs {a.name} and {b.name} differ beyond the QEMU build")
        pairs.append((a, b))
    if len({a.name for a, _ in pairs} | {b.name for _, b in pairs}) != 2 * len(pairs):
        raise NightlyError("baseline and candidate run names collide; give the builds different labels")
    return pairs


def _values(runs_dir: Path, name: str, metric: str):
    """(values, boots or None) of one run name's ok runs."""
    from perfsuite.analysis.results import ResultsError, load_runs

    try:
        frame = load_runs(runs_dir, names=[name]).frame
    except ResultsError:
        return [], None
    if "status" in frame.columns:
        frame = frame[frame["status"].isna() | (frame["status"] == "ok")]
    from perfsuite.analysis.comparison import CompareError, resolve_metric

    try:
        col = resolve_metric(metric, frame)
    except CompareError:
        return [], None
    if col not in frame.columns:
        return [], None
    frame = frame[frame[col].notna()]
    return frame[col].to_list(), frame["boot"].to_list() if "boot" in frame.columns else None


def design(opts: NightlyOptions, configs: int) -> seq.Design:
    """The night's sequential design: alpha split over the configurations (Bonferroni)."""
    return seq.Design(alpha=opts.alpha / max(configs, 1), threshold=opts.threshold,
                      n_min=max(3, opts.boots), n_max=max(opts.max_boots, opts.boots))


def schedule(a, b, boots: int, repeat: int) -> list[tuple]:
    """(config, boot, repetitions) of one configuration's pairs in the order they run: boot k
    of the baseline, then boot k of the candidate (pure; `perfsuite run`'s boot_plan)."""
    from perfsuite.run.runner import boot_plan

    return boot_plan([a, b], boots, repeat)


def paired(base_dir: Path, cand_dir: Path, a, b, metric: str):
    """Paired log-ratios log(candidate / baseline) of boot means, in boot order."""
    va, ba = _values(base_dir, a.name, metric)
    vb, bb = _values(cand_dir, b.name, metric)
    d = seq.pairs_from_boots(va, ba, vb, bb)
    return d


class _Seen:
    """One configuration's values and boots of one side, as the sequential stop sees them:
    what the runs dir held when the configuration started (a resumed night), then what the
    runner returned for each repetition it ran; nothing is read again after a pair."""

    def __init__(self, runs_dir: Path, name: str, metric: str):
        from perfsuite.analysis.comparison import CompareError, resolve_metric

        try:
            self.column = resolve_metric(metric)
        except CompareError:
            self.column = metric
        self.values, boots = _values(runs_dir, name, metric)
        self.boots = list(boots) if boots is not None else [None] * len(self.values)

    def add(self, outcome) -> None:
        v = (getattr(outcome, "record", None) or {}).get(self.column)
        if getattr(outcome, "status", None) == "ok" and isinstance(v, (int, float)) and v == v:
            self.values.append(float(v))
            self.boots.append(getattr(outcome, "boot", None))


def run_pairs(pairs: Sequence[tuple], base_dir: Path, cand_dir: Path, opts: NightlyOptions,
              run_one: RunOne, log: Callable[[str], None] = lambda m: None):
    """Run each config's pairs of boots interleaved (A1 B1 A2 B2 ..., `opts.repeat`
    repetitions per boot). Returns ({config: (decision, pairs of boots)}, [failure strings])."""
    stops: dict[str, tuple[str, int]] = {}
    failures: list[str] = []
    cap = max(opts.max_boots, opts.boots) if opts.sequential else opts.boots
    des = design(opts, len(pairs))
    for a, b in pairs:
        decision, k = "fixed", 0
        seen = {a.name: _Seen(base_dir, a.name, opts.metric), b.name: _Seen(cand_dir, b.name, opts.metric)} \
            if opts.sequential else {}
        plan = schedule(a, b, cap, opts.repeat)
        for i in range(0, len(plan), 2):
            for c, boot, reps in plan[i:i + 2]:
                d = base_dir if c is a else cand_dir
                for o in run_one(c, d, reps, boot) or []:
                    if getattr(o, "status", "ok") not in ("ok", "skipped"):
                        failures.append(f"{c.name} #{o.rep}: {o.status}: {o.error}")
                    elif seen:
                        seen[c.name].add(o)
            k = i // 2 + 1
            if opts.sequential and k >= des.n_min:
                # Two-sided: the stop does not care which direction is "better".
                sa, sb = seen[a.name], seen[b.name]
                d = seq.pairs_from_boots(sa.values, sa.boots, sb.values, sb.boots)
                if d.size >= 2:
                    decision = str(seq.run_paths(d[None, :], des).decision[0])
                    if decision != seq.SEQ_CONTINUE:
                        break
        stops[a.name] = (decision, k)
        log(f"{a.name} / {b.name}: {k} pair(s) of boots x {opts.repeat}"
            + ("" if decision == "fixed" else f", sequential: {decision}"))
    return stops, failures


def sequential_rows(comp, pairs: Sequence[tuple], base_dir: Path, cand_dir: Path,
                    opts: NightlyOptions) -> None:
    """Replace each row's verdict, ratio, interval and p by the sequential test's (in place).

    ratio: exp of the bias-adjusted mean log-ratio; interval: the (1 - alpha/configs)
    confidence sequence at the stop; p: anytime-valid, times the configs (Bonferroni).
    """
    import numpy as np

    from perfsuite.analysis.comparison import lower_is_better

    rows = comp.rows
    des = design(opts, len(pairs))
    worse_if_up = lower_is_better(comp.params.get("metric", "iops"))
    by_name = {a.name: (a, b) for a, b in pairs}
    for i, name in enumerate(rows["name_base"].tolist()):
        if name not in by_name:
            continue
        a, b = by_name[name]
        d = paired(base_dir, cand_dir, a, b, opts.metric)
        if d.size < 2:
            continue
        path = seq.run_paths(d[None, :], des)
        n, dec, mean, sd = int(path.n[0]), str(path.decision[0]), float(path.mean[0]), float(path.sd[0])
        early = dec in (seq.SEQ_CHANGE, seq.SEQ_NONE) and n < des.n_max
        adj = seq.adjusted_mean(mean, sd, n, des, early, seed=i)
        hw = float(seq.cs_halfwidth(n, sd, des.alpha, des.tau))
        if dec == seq.SEQ_CHANGE:
            bad = (mean > 0) if worse_if_up else (mean < 0)
            verdict = "regression" if bad else "improvement"
        else:
            verdict = "no change" if dec == seq.SEQ_NONE else "inconclusive"
        p = float(path.p[0])
        rows.loc[rows.index[i], ["ratio", "ci_low", "ci_high", "p", "p_adj", "verdict"]] = [
            float(np.exp(adj)), float(np.exp(mean - hw)), float(np.exp(mean + hw)), p,
            min(1.0, p * len(pairs)), verdict]
    comp.params["test"] = "sequential mixture t"
    comp.params["correction"] = "bonferroni"


def night_info(base_frame, cand_frame, started: str, finished: str, labels: tuple[str, str]) -> dict:
    def one(frame, col):
        if col not in frame.columns:
            return None
        vals = sorted({str(v) for v in frame[col].dropna()})
        return ", ".join(vals) or None

    return {"started": started, "finished": finished,
            "host": one(base_frame, "host") or socket.gethostname(),
            "baseline_label": labels[0], "candidate_label": labels[1],
            "baseline_qemu_version": one(base_frame, "qemu_version"),
            "candidate_qemu_version": one(cand_frame, "qemu_version")}


def summary_markdown(night: str, comparison, info: dict, stops: dict, failures: list[str],
                     changes) -> str:
    """The night's markdown summary (pure)."""
    from perfsuite.report.verdicts import render_markdown

    verdict = "REGRESSION" if comparison.exit_code else "no regression"
    lines = [f"# perfsuite nightly {night}: {verdict}", "",
             f"- baseline: `{info.get('baseline_label')}` (QEMU {info.get('baseline_qemu_version') or '?'})",
             f"- candidate: `{info.get('candidate_label')}` (QEMU {info.get('candidate_qemu_version') or '?'})",
             f"- host: {info.get('host')}; {info.get('started')} .. {info.get('finished')}", ""]
    lines.append(render_markdown(comparison))
    if stops and any(d != "fixed" for d, _ in stops.values()):
        lines += ["## Sequential stops", ""]
        lines += [f"- {name}: {d} after {n} pair(s) of boots" for name, (d, n) in stops.items()]
        lines.append("")
    if failures:
        lines += ["## Failed repetitions", ""] + [f"- {f}" for f in failures] + [""]
    if changes is not None and len(changes):
        lines += ["## Change points over the stored nights", ""]
        for r in changes.itertuples():
            lines.append(f"- {r.config}: {r.kind} from night {r.night} ({r.change:+.1%} over "
                         f"{r.nights} nights, series {r.series})")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_html(base_dir: Path, cand_dir: Path, db_path: Path, out: Path) -> str | None:
    """`perfsuite report` on the night, as a subprocess (its failure never changes the
    verdict). Returns a warning, or None on success."""
    import importlib.util

    if importlib.util.find_spec("perfsuite.report.html") is None:
        return "no HTML report: perfsuite.report.html is not available"
    base = [sys.executable, "-m", "perfsuite.cli", "report", str(base_dir), str(cand_dir),
            "--baseline", str(base_dir), "--candidate", str(cand_dir), "-o", str(out)]
    last = ""
    for extra in (["--history", str(db_path)], []):  # without history if that part is missing
        try:
            p = subprocess.run(base + extra, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"no HTML report: {exc}"
        if p.returncode == 0:
            return None
        last = (p.stderr or p.stdout).strip().splitlines()[-1:] or [f"exit {p.returncode}"]
        last = last[0]
    return f"no HTML report: {last}"


def throttle_wrapper(qemu: str, iops: int, path: Path) -> Path:
    """An executable that runs `qemu` with the benchmark disk behind a throttle group.

    It rewrites the runner's argv: the disk's -blockdev node is renamed and a `throttle`
    filter node (throttle-group with x-iops-total=iops) takes its name, so the device line
    is untouched. A way to inject a known regression into a nightly (and the end-to-end
    test's candidate build) without any change to the runner.
    """
    from perfsuite.qemu.argv import NODE

    real = os.path.abspath(qemu) if os.sep in qemu else qemu
    script = f"""#!{sys.executable}
# perfsuite throttle wrapper: {real} with the disk limited to {int(iops)} IOPS.
import os, shutil, sys
REAL, IOPS, NODE = {real!r}, {int(iops)}, {NODE!r}
args, out, i = sys.argv[1:], [], 0
while i < len(args):
    opts = args[i + 1].split(",") if args[i] == "-blockdev" and i + 1 < len(args) else []
    if "node-name=" + NODE in opts:
        raw = ",".join("node-name=" + NODE + "-raw" if o == "node-name=" + NODE else o for o in opts)
        out += ["-object", "throttle-group,id=perfsuite-tg0,x-iops-total=%d" % IOPS,
                "-blockdev", raw, "-blockdev",
                "driver=throttle,node-name=%s,throttle-group=perfsuite-tg0,file=%s-raw" % (NODE, NODE)]
        i += 2
        continue
    out.append(args[i])
    i += 1
exe = REAL if os.sep in REAL else shutil.which(REAL) or REAL
os.execv(exe, [exe] + out)
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def run_night(pairs: Sequence[tuple], results_dir: Path, runs_dir: Path, opts: NightlyOptions,
              run_one: RunOne, night: str | None = None, html: bool = True,
              log: Callable[[str], None] = lambda m: None) -> NightResult:
    """Run, compare, record and write the night. Raises NightlyError when nothing compares."""
    from perfsuite.nightly import history
    from perfsuite.analysis import hosts
    from perfsuite.analysis.comparison import CompareError, compare, resolve_metric
    from perfsuite.report.verdicts import render_json, render_junit
    from perfsuite.fsutil import atomic_write_text
    from perfsuite.analysis.results import ResultsError, load_runs

    night = night or night_id()
    out_dir = results_dir / "nights" / night
    base_dir, cand_dir = runs_dir / "baseline", runs_dir / "candidate"
    db_path = results_dir / history.FILENAME
    db = history.open_history(db_path)  # refuse a bad history before hours of runs
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    stops, failures = run_pairs(pairs, base_dir, cand_dir, opts, run_one, log)
    finished = datetime.now(timezone.utc).isoformat(timespec="seconds")
    names_a, names_b = [a.name for a, _ in pairs], [b.name for _, b in pairs]
    try:
        fa = load_runs(base_dir, names=names_a)
        fb = load_runs(cand_dir, names=names_b)
    except ResultsError as exc:
        raise NightlyError(f"no results to compare: {exc}") from None
    try:
        # --test moderated borrows its variance prior from the stored nights when there are some
        prior = (history.variance_prior(db, resolve_metric(opts.metric, fa.frame, fb.frame))
                 if opts.test == "moderated" else None)
        comp = compare(fa.frame, fb.frame, threshold=opts.threshold, test=opts.test,
                       correction=opts.correction, metric=opts.metric, alpha=opts.alpha,
                       prior=prior, strict_hosts=True)  # one night, one host: anything else is an error
    except (CompareError, hosts.HostsDiffer) as exc:
        raise NightlyError(str(exc)) from None
    if not len(comp.rows):
        raise NightlyError("no configuration has results on both sides")
    if opts.sequential:
        sequential_rows(comp, pairs, base_dir, cand_dir, opts)
    labels = (pairs[0][0].label, pairs[0][1].label)
    info = night_info(fa.frame, fb.frame, started, finished, labels)
    history.record_night(db, night, comp, info)
    # Each change point once: on the night it is first seen, not again every night after.
    changes = history.new_changes(history.results(db, comp.params["metric"]), night)
    db.close()
    res = NightResult(night, comp, comp.exit_code, stops=stops, failures=failures,
                      warnings=fa.warnings + fb.warnings, changes=changes)
    outputs = {"summary": out_dir / "summary.md", "junit": out_dir / "junit.xml",
               "json": out_dir / "compare.json"}
    atomic_write_text(outputs["summary"], summary_markdown(night, comp, info, stops, failures, changes))
    atomic_write_text(outputs["junit"], render_junit(comp))
    atomic_write_text(outputs["json"], render_json(comp))
    if html:
        warn = write_html(base_dir, cand_dir, db_path, out_dir / "report")
        if warn:
            res.warnings.append(warn)
        else:
            outputs["html"] = out_dir / "report" / "index.html"
    res.outputs = outputs
    return res
