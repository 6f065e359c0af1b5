"""`perfsuite analyze` / `./analyze.py` end to end on runs/ trees of real fio output."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from perfsuite.analysis import checks
from perfsuite.commands.analyze import analyze
from perfsuite.analysis.fio import parse_file
from perfsuite.analysis.stats import ERROR_HELP, error_pct

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "data" / "fio"
RUNS = {
    "v4-smp-4-dataplane": ["fio3-randread-null.json", "fio3-randread-null-jsonplus.json", "fio3-numjobs3.json"],
    "v4-smp-4-no-dataplane": ["fio3-psync-note-diskutil.json", "fio3-libaio-randrw-diskutil-jsonplus.json"],
    "v4-smp-1-dataplane": ["fio3-group-reporting.json"],
}


def _stub_checks(monkeypatch, check_runs) -> None:
    monkeypatch.setattr(checks, "check_runs", lambda frame, band=False: check_runs(frame))


@pytest.fixture(autouse=True)
def quiet_checks(monkeypatch):
    # The real checks judge the data (tests/test_checks.py); these tests are about the
    # analyzer, so they run with checks that find nothing unless a test says otherwise.
    _stub_checks(monkeypatch, lambda frame: [])


@pytest.fixture
def runs(tmp_path) -> Path:
    root = tmp_path / "runs"
    for name, files in RUNS.items():
        (root / name).mkdir(parents=True)
        for i, f in enumerate(files, 1):
            shutil.copy(FIXTURES / f, root / name / f"{i}.json")
    return root


def invoke(*args: str):
    return CliRunner().invoke(analyze, [str(a) for a in args])


def expected_rows(field: str = "iops", kind: str = "range") -> list[tuple[str, str, str]]:
    rows = []
    for name in sorted(RUNS):
        vals = [parse_file(FIXTURES / f)[field] for f in RUNS[name]]
        err = error_pct(vals, kind)
        rows.append((name, f"{np.mean(vals):.1f}", "n/a" if np.isnan(err) else f"{err:.2f}%"))
    return rows


def test_table_matches_the_runs(runs):
    r = invoke(runs)
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0] == f"{'Name':<30} {'IOPS':>12}   Error"
    assert lines[1:] == [f"{n:<30} {m:>12} ± {e}" for n, m, e in expected_rows()]
    assert r.stderr == ""


def test_error_kinds_and_n_column(runs):
    r = invoke(runs, "--error", "ci95", "--runs")
    assert r.exit_code == 0
    got = [line.split() for line in r.stdout.splitlines()[1:]]
    assert [(g[0], g[1], g[3], g[4]) for g in got] == [
        (n, m, e, str(len(RUNS[n]))) for n, m, e in expected_rows(kind="ci95")]


def test_disk_read_ios_metric_warns_about_runs_without_disk_util(runs):
    r = invoke(runs, "--metric", "disk-read-ios")
    assert r.exit_code == 0
    rows = r.stdout.splitlines()[1:]
    assert [row.split()[0] for row in rows] == ["v4-smp-4-no-dataplane"]
    assert r.stderr.count("\n") == 1
    assert "4 run(s) without disk-read-ios data" in r.stderr
    assert "v4-smp-1-dataplane (1), v4-smp-4-dataplane (3)" in r.stderr


def test_filter_and_formats(runs):
    r = invoke(runs, "--filter", "*-no-dataplane", "--format", "csv")
    assert r.exit_code == 0
    assert r.stdout.splitlines()[0] == "name,mean,error_pct,n"
    assert [line.split(",")[0] for line in r.stdout.splitlines()[1:]] == ["v4-smp-4-no-dataplane"]
    assert invoke(runs, "--format", "json").stdout.lstrip().startswith("{")
    assert invoke(runs, "--format", "markdown").stdout.startswith("| Name | IOPS | Error |")


def test_malformed_file_warns_and_strict_fails(runs):
    bad = runs / "v4-smp-4-dataplane" / "4.json"
    bad.write_text("<<<<<<< HEAD\n")
    r = invoke(runs)
    assert r.exit_code == 0
    assert r.stderr.startswith("warning: skipped ") and str(bad) in r.stderr
    assert r.stdout.splitlines()[1:] == [f"{n:<30} {m:>12} ± {e}" for n, m, e in expected_rows()]
    r = invoke(runs, "--strict")
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and str(bad) in r.stderr


def test_failed_fio_run_is_excluded_with_a_warning(runs):
    shutil.copy(FIXTURES / "fio3-error-enospc.json", runs / "v4-smp-1-dataplane" / "2.json")
    r = invoke(runs)
    assert r.exit_code == 0
    assert "v4-smp-1-dataplane: excluded 1 run(s) where fio reported an error" in r.stderr
    assert r.stdout.splitlines()[1].endswith("± n/a")  # still a single good run


@pytest.mark.parametrize("args, words", [
    (["{tmp}/nope"], "does not exist"),
    (["{tmp}"], "no fio results"),
    (["{runs}", "--filter", "zzz"], "matches"),
])
def test_bad_input_is_one_line_and_exit_2(runs, tmp_path, args, words):
    empty = tmp_path / "empty"
    empty.mkdir()
    r = invoke(*[a.format(tmp=empty, runs=runs) for a in args])
    assert r.exit_code == 2
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1 and words in r.stderr
    assert "Traceback" not in r.output


def test_checks_are_printed_after_the_table_when_available(runs, monkeypatch):
    seen = {}

    def check_runs(frame):
        seen["rows"] = len(frame)
        return [checks.Finding("v4-smp-1-dataplane", "warning", "guest saw 1 queue, 4 asked")]

    _stub_checks(monkeypatch, check_runs)
    r = invoke(runs)
    assert r.exit_code == 0 and seen["rows"] == sum(map(len, RUNS.values()))
    assert r.stderr == "warning: v4-smp-1-dataplane: guest saw 1 queue, 4 asked\n"
    assert r.output.index("Name") < r.output.index("warning:")  # after the table
    seen.clear()
    assert invoke(runs, "--no-check").stderr == "" and not seen


def test_broken_check_does_not_hide_the_table(runs, monkeypatch):
    _stub_checks(monkeypatch, lambda frame: 1 / 0)
    r = invoke(runs)
    assert r.exit_code == 0 and r.stdout.startswith("Name")
    assert "checks could not run: ZeroDivisionError" in r.stderr


def test_help_explains_every_statistic():
    r = invoke("--help")
    assert r.exit_code == 0
    flat = " ".join(r.stdout.split())
    for kind, text in ERROR_HELP.items():
        assert " ".join(text.split()) in flat, kind
    for opt in ("--metric", "--error", "--format", "--runs", "--filter", "--strict", "--check"):
        assert opt in r.stdout


def run_shim(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-X", "importtime", str(REPO / "analyze.py"), *args],
                          capture_output=True, text=True, env=env, timeout=60)


def imported(stderr: str) -> set[str]:
    # -X importtime lines: "import time: self | cumulative | module"
    return {line.rsplit("|", 1)[1].strip().split(".")[0]
            for line in stderr.splitlines() if line.startswith("import time:") and "|" in line}


@pytest.mark.parametrize("fmt", ["table", "csv", "json", "markdown"])
def test_shim_table_and_default_checks_without_pandas(runs, fmt):
    # the table and the default checks work on plain columns (perfsuite.analysis.runs) and
    # plain arithmetic (perfsuite.analysis.plainstats)
    p = run_shim(str(runs), "--format", fmt)
    assert p.returncode == 0 and p.stdout.strip()
    assert not imported(p.stderr) & {"numpy", "pandas", "matplotlib", "scipy", "jinja2"}


def test_shim_imports_scipy_only_for_ci95_and_pandas_only_for_the_model(runs):
    ci95 = imported(run_shim(str(runs), "--error", "ci95").stderr)
    assert "scipy" in ci95 and "pandas" not in ci95
    model = run_shim(str(runs), "--model")
    assert model.returncode == 0 and "pandas" in imported(model.stderr)


def test_shim_help_does_not_import_pandas():
    p = run_shim("--help")
    assert p.returncode == 0 and "Usage: analyze.py" in p.stdout
    # numpy comes in with perfsuite.analysis.stats, where the help's error definitions live
    assert not imported(p.stderr) & {"pandas", "matplotlib", "scipy", "jinja2"}


def test_shim_missing_dir_has_no_traceback(tmp_path):
    p = run_shim(str(tmp_path / "nope"))
    assert p.returncode == 2
    errs = [line for line in p.stderr.splitlines() if not line.startswith("import time:")]
    assert errs == [f"error: runs directory '{tmp_path / 'nope'}' does not exist"]


def test_ascii_only_output_falls_back_to_plus_minus(runs):
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    p = subprocess.run([sys.executable, str(REPO / "analyze.py"), str(runs), "--no-check"], capture_output=True, env=env,
                       timeout=60)
    assert p.returncode == 0 and p.stderr == b""
    assert p.stdout.splitlines()[1].decode("ascii").split()[2] == "+-"


def test_shim_with_the_real_checks_still_prints_the_table(runs):
    p = subprocess.run([sys.executable, str(REPO / "analyze.py"), str(runs)], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0 and p.stdout.splitlines()[0].startswith("Name")
    assert "Traceback" not in p.stderr
    assert all(line.startswith(("warning: ", "info: ")) for line in p.stderr.splitlines())
