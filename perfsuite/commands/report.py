"""`perfsuite report RUNS_DIR... -o reports/NAME/`: one self-contained HTML page.

The edge of the report: reads the runs trees (and optionally a baseline/candidate pair
and a nightly history database), calls the other modules, writes index.html atomically.
Everything between is perfsuite.report.html (context) and perfsuite.report.plots (figures).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import click

from perfsuite.commands.base import command
from perfsuite.errors import BadInput

LOG_TAIL_LINES = 40


@command()
@click.argument("runs_dirs", metavar="RUNS_DIR [MORE_RUNS_DIRS]...", nargs=-1)
@click.option("-o", "--output", "out", metavar="DIR",
              help="Report directory; index.html is written inside (created if missing). Required.")
@click.option("--baseline", metavar="DIR", help="Runs tree of the baseline build (with --candidate): adds a compare section.")
@click.option("--candidate", metavar="DIR", help="Runs tree of the candidate build (with --baseline).")
@click.option("--history", "history_db", metavar="DB", help="Nightly history database (SQLite): adds trends and change points.")
@click.option("--check/--no-check", default=True, show_default=True,
              help="Show the plausibility checks (reference model) beside the table.")
def report(runs_dirs: tuple[str, ...], out: str, baseline: str | None, candidate: str | None,
           history_db: str | None, check: bool) -> None:
    """Write OUT/index.html: table, IOPS and speedup charts, every repetition, latency,
    optional compare and history sections, environment and links to the raw files.

    \b
    Examples:
      perfsuite report runs/ -o reports/example/
      perfsuite report runs/ --baseline runs-v3/ --candidate runs-v4/ -o reports/v3-v4/
      perfsuite report runs/ --history nightly.sqlite -o reports/nightly/
    """
    # Checked here rather than by click, whose usage errors take three lines.
    if not runs_dirs:
        raise BadInput("give at least one RUNS_DIR (e.g. perfsuite report runs/ -o reports/example/)")
    if not out:
        raise BadInput("give the report directory with -o DIR (e.g. -o reports/example/)")
    t0 = time.perf_counter()
    path, ctx = _build([Path(d) for d in runs_dirs], Path(out), baseline, candidate, history_db, check)
    nc, nr = ctx["n_configs"], ctx["n_runs"]
    click.echo(f"{path}  ({nc} configuration{'s' * (nc != 1)}, {nr} run{'s' * (nr != 1)}; "
               f"built in {time.perf_counter() - t0:.2f} s)")


def _build(runs_dirs: list[Path], out: Path, baseline: str | None, candidate: str | None,
           history_db: str | None, check: bool):
    if (baseline is None) != (candidate is None):
        raise BadInput("--baseline and --candidate go together: give both or neither")
    if history_db is not None and not Path(history_db).is_file():
        raise BadInput(f"history database {history_db!r} does not exist")
    if out.exists() and not out.is_dir():
        raise BadInput(f"output {str(out)!r} exists and is not a directory")

    import pandas as pd

    from perfsuite.fsutil import atomic_write_text
    from perfsuite.report import html
    from perfsuite.analysis.results import ResultsError, load_runs

    frames, warnings = [], []
    labels = html.source_labels(runs_dirs)
    for label, d in zip(labels, runs_dirs):
        try:
            loaded = load_runs(d)
        except ResultsError as exc:
            raise BadInput(str(exc)) from None
        f = loaded.frame.copy()
        f["name"] = [html.display_name(label, n, len(runs_dirs)) for n in f["name"]]
        frames.append(f)
        warnings += loaded.warnings
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]

    comparison = history = None
    if baseline is not None:
        comparison = _comparison(baseline, candidate, warnings)
    if history_db is not None:
        history = _history(Path(history_db))
    findings = _findings(frame) if check else []

    files = scan_files(runs_dirs)
    from perfsuite.report import hostview  # flame graphs and perf diff: the runs' perf.data
    hv = {"profiles": hostview.profiles(files, sorted(files)),
          "diffs": hostview.profile_diffs(comparison["rows"], baseline, candidate) if comparison else []}
    ctx = html.build_context(
        frame, files, out, sources=[str(d) for d in runs_dirs], jobs={n: job_text(r) for n, r in files.items()},
        load_warnings=warnings, findings=findings, comparison=comparison, history=history, hostview=hv,
    )
    out.mkdir(parents=True, exist_ok=True)
    path = out / "index.html"
    atomic_write_text(path, html.render(ctx))  # readable by others: fsutil applies the umask
    return path, ctx


# ---------------------------------------------------------------- reading the runs trees

def scan_files(runs_dirs: list[Path]) -> dict[str, list]:
    """Display name -> repetitions (html.RunFiles) with their files, meta and the log tails of
    the repetitions that do not count (perfsuite.rundir decides, as for the table)."""
    from perfsuite.report.html import RunFiles, display_name, source_labels
    from perfsuite.rundir import list_runs

    out: dict[str, list[RunFiles]] = {}
    for source, d in zip(source_labels(runs_dirs), runs_dirs):
        try:
            groups, _ = list_runs(d)  # the loader already warned about what it skipped
        except OSError:
            continue
        for name, listing in groups.items():
            reps = []
            for r in listing.reps:
                run = RunFiles(r.stem, meta=r.meta)
                for kind, f in (("json", r.result), ("meta", r.meta_path), ("log", r.log)):
                    if f is not None:
                        run.files[kind] = f
                if not r.counts and r.log is not None:
                    run.log_tail = _tail(r.log, LOG_TAIL_LINES)
                reps.append(run)
            if reps:
                out[display_name(source, name, len(runs_dirs))] = reps
    return out


def _tail(path: Path, lines: int) -> str:
    try:
        data = path.read_bytes()[-64 * 1024:]  # a guest console can be huge; the end says why it died
    except OSError as exc:
        return f"(unreadable: {exc.strerror})"
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def job_text(runs: list) -> dict[str, str] | None:
    """The fio job as fio ran it: the options fio recorded in its JSON output (the runner
    overrides numjobs, iodepth, runtime, filename per configuration, so the job file alone
    would not say what ran). The job file named in meta.json is the fallback, e.g. for
    outputs that could not be parsed."""
    for r in runs:
        if "json" in r.files:
            job = _job_from_fio(r.files["json"])
            if job:
                name = _job_name(runs)
                if name:
                    job["source"] += f"; job file {name}"
                return job
    name = _job_name(runs)
    if not name:
        return None
    here = next(iter(runs[0].files.values())).parent if runs and runs[0].files else Path(".")
    for cand in (Path(name), here.parent.parent / name, here.parent.parent / "jobs" / Path(name).name):
        try:
            if cand.is_file() and cand.stat().st_size < 256 * 1024:
                return {"text": cand.read_text("utf-8", "replace"), "source": f"job file {name}"}
        except OSError:
            continue
    return None


def _job_name(runs: list) -> str | None:
    meta = next((r.meta for r in runs if r.meta), None) or {}
    config = meta.get("config")
    name = config.get("fio_job") if isinstance(config, dict) else None
    return name if isinstance(name, str) and name else None


def _job_from_fio(path: Path) -> dict[str, str] | None:
    from perfsuite.analysis.fio import FioParseError, load_json

    try:
        data = load_json(path.read_bytes())
    except (OSError, FioParseError, ValueError):
        return None  # fio files with noise before the JSON: the loader handles those, the job text is optional
    lines = []
    if data.get("global options"):
        lines += ["[global]", *[f"{k}={v}" for k, v in data["global options"].items()], ""]
    seen = set()
    for j in data.get("jobs", ()):
        opts = tuple((j.get("job options") or {}).items())
        key = (j.get("jobname"), opts)
        if key in seen:
            continue  # numjobs=N repeats the same section N times
        seen.add(key)
        lines += [f"[{j.get('jobname', 'job')}]", *[f"{k}={v}" for k, v in opts], ""]
    if not lines:
        return None
    return {"text": "\n".join(lines).strip() + "\n", "source": f"options {data.get('fio version', 'fio')} recorded in {path.name}"}


# ---------------------------------------------------------------- adapters
# These functions turn the values of the analysis and nightly rooms into the plain dicts
# perfsuite.report.html expects, so the page does not depend on their internals.

def _findings(frame) -> list:
    from perfsuite.analysis.checks import check_runs

    try:
        return list(check_runs(frame, band=True) or ())
    except Exception as exc:  # noqa: BLE001 - a broken check must not cost the reader the report
        if os.environ.get("PERFSUITE_DEBUG"):
            raise
        from types import SimpleNamespace

        return [SimpleNamespace(name="", severity="error", message=f"checks could not run: {type(exc).__name__}: {exc}")]


def _comparison(baseline: str, candidate: str, warnings: list[str]) -> dict:
    from perfsuite.analysis.comparison import CompareError, compare
    from perfsuite.analysis.results import ResultsError, load_runs

    frames = []
    for side, d in (("baseline", baseline), ("candidate", candidate)):
        try:
            loaded = load_runs(d)
        except ResultsError as exc:
            raise BadInput(f"{side}: {exc}") from None
        warnings += [f"{side}: {w}" for w in loaded.warnings]
        frames.append(loaded.frame)
    try:
        c = compare(*frames)
    except CompareError as exc:
        raise BadInput(f"compare: {exc}") from None
    warnings += [f"compare: {w}" for w in c.warnings]
    return comparison_context(c, baseline, candidate)


def comparison_context(c, baseline: str, candidate: str) -> dict:
    """perfsuite.analysis.comparison.Comparison -> the rows the compare section and its plot show."""
    p = c.params
    rows = []
    for r in c.rows.itertuples(index=False):
        lo, hi = float(r.ci_low), float(r.ci_high)
        ci = f"[{lo:.3f}, {hi:.3f}]" if math.isfinite(lo) and math.isfinite(hi) else "[unbounded]"
        host = f" [host: {r.host_diff}]" if getattr(r, "host_diff", "") else ""  # hosts differ
        rows.append({"label": str(r.config) + host, "name_base": str(r.name_base), "name_cand": str(r.name_cand),
                     "ratio": float(r.ratio), "lo": lo, "hi": hi, "verdict": str(r.verdict),
                     "verdict_class": str(r.verdict).replace(" ", "-"),
                     "base_txt": f"{r.mean_base:,.0f} (n={int(r.n_base)})", "cand_txt": f"{r.mean_cand:,.0f} (n={int(r.n_cand)})",
                     "ratio_txt": f"{r.ratio:.3f} {ci}"})
    method = (f"Metric {p.get('metric', 'iops')}; {p.get('test', 'welch')} test, {p.get('correction', 'holm')} correction, "
              f"alpha {p.get('alpha', 0.05)}, threshold {100 * p.get('threshold', 0.05):g}%; ratio CI: Fieller 95%.")
    return {"baseline": baseline, "candidate": candidate, "rows": rows, "method": method,
            "unmatched": [f"{n} (baseline only)" for n in c.only_baseline] + [f"{n} (candidate only)" for n in c.only_candidate]}


def _history(db: Path) -> dict:
    import shutil
    import tempfile

    from perfsuite.nightly import history as H

    # open_history migrates old files in place; a report only reads, so it opens a copy.
    with tempfile.TemporaryDirectory(prefix="perfsuite-report-") as tmp:
        copy = Path(tmp) / db.name
        shutil.copy2(db, copy)
        try:
            conn = H.open_history(copy)
        except H.HistoryError as exc:
            raise BadInput(str(exc).replace(str(copy), str(db))) from None
        try:
            nights, res = H.nights(conn), H.results(conn, "iops")
        finally:
            conn.close()
    return history_context(res, H.detect(res), str(db), len(nights))


def history_context(res, changes, source: str, n_nights: int) -> dict:
    """history.results + history.detect frames -> the series and change points the section shows."""
    import pandas as pd

    when = pd.to_datetime(res["night"], errors="coerce", utc=True)
    # Dates give a time axis; other night ids keep their order as categories.
    x = when.dt.tz_localize(None) if when.notna().all() else res["night"].astype(str)
    to_x = dict(zip(res["night"], x))
    series = pd.DataFrame({"name": res["config"].astype(str), "x": x, "night": res["night"].astype(str),
                           "iops": pd.to_numeric(res["cand_mean"], errors="coerce"),
                           "ratio": pd.to_numeric(res["ratio"], errors="coerce")})
    ch = pd.DataFrame({"name": changes["config"].astype(str), "x": [to_x.get(n) for n in changes["night"]],
                       "series": changes["series"]}) if len(changes) else pd.DataFrame(columns=["name", "x", "series"])
    rows = [{"name": str(r.config), "when": str(r.night),
             "detail": (f"{'first night of a creep' if r.kind == 'creep' else 'step'}: {r.change:+.1%} "
                        f"({r.before:.3f} → {r.after:.3f}, {'candidate/baseline ratio' if r.series == 'ratio' else 'candidate mean IOPS'}, "
                        f"{r.nights} nights)")} for r in changes.itertuples()]
    return {"source": source, "n_nights": n_nights, "n_configs": int(series["name"].nunique()),
            "series": series, "changes": ch, "change_rows": rows}


