"""Bad and hostile result trees for analyze, compare, report, model fit and history: each
command says what it skipped in words, keeps every good repetition, and exits as documented."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

import synthetic
from faults.conftest import clear

COMMANDS = ("analyze", "compare", "report", "model-fit")


def good_tree(root, names=("v4-smp-4-dataplane", "v4-smp-1-dataplane"), reps=3, seed=0):
    for i, n in enumerate(names):
        smp = int(n.split("-smp-")[1].split("-")[0])
        config = {"label": n.split("-smp-")[0], "smp": smp, "num_queues": smp, "numjobs": smp,
                  "dataplane": "no-dataplane" not in n, "iothreads": int("no-dataplane" not in n)}
        synthetic.write_runs(root, n, 10000.0 * (i + 1), 0.03, reps, seed=seed + i, config=config)
    return root


def args_of(case, cmd, runs):
    """One reader over `runs` (compare: the same tree on both sides, a legal comparison)."""
    return {"analyze": ["analyze", runs, "--format", "json"], "compare": ["compare", runs, runs],
            "report": ["report", runs, "-o", case.root / "report"],
            "model-fit": ["model", "fit", runs]}[cmd]


def invoke(case, cmd, runs):
    return case.run(*args_of(case, cmd, runs))


def invoke_here(case, cmd, runs):
    """In-process (click's runner): the many hostile cases stay cheap; a stray exception
    shows as res.exception, a traceback as the output."""
    from types import SimpleNamespace

    from click.testing import CliRunner

    from perfsuite.cli import main

    res = CliRunner().invoke(main, [str(a) for a in args_of(case, cmd, runs)])
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    return SimpleNamespace(returncode=res.exit_code, stdout=res.stdout, stderr=res.stderr)


def hostile(kind, d):
    """Damage run directory d (which holds 1..3.json + meta) in one way."""
    if kind == "symlink-loop":         # defect 7: `ln -s 4.json 4.json`
        os.symlink("4.json", d / "4.json")
    elif kind == "dangling-link":
        os.symlink("/nonexistent/5.json", d / "5.json")
    elif kind == "meta-is-a-list":    # defect 8
        (d / "4.json").write_bytes((d / "1.json").read_bytes())
        (d / "4.meta.json").write_text("[1, 2, 3]")
    elif kind == "meta-malformed":
        (d / "4.json").write_bytes((d / "1.json").read_bytes())
        (d / "4.meta.json").write_text("{nope")
    elif kind == "result-garbage":
        (d / "4.json").write_bytes(b"\x00\xff garbage")
        (d / "4.meta.json").write_bytes((d / "1.meta.json").read_bytes())
    elif kind == "result-without-meta":  # defect 3 as found on disk
        (d / "4.json").write_bytes((d / "1.json").read_bytes())
    elif kind == "meta-without-result":
        (d / "4.meta.json").write_bytes((d / "1.meta.json").read_bytes())
    elif kind == "failed-meta-beside-result":
        (d / "4.json").write_bytes((d / "1.json").read_bytes())
        meta = json.loads((d / "1.meta.json").read_text())
        (d / "4.meta.json").write_text(json.dumps({**meta, "status": "failed", "error": "x"}))
    elif kind == "a-dir-named-like-a-result":
        (d / "4.json").mkdir()
    elif kind == "hostile-names":
        (d / "<script>.json").write_bytes((d / "1.json").read_bytes())
        (d / "$(rm -rf ~).meta.json").write_text('{"status": "failed"}')
    elif kind == "loop-dir":
        os.symlink(d.name + "-loop", d.parent / (d.name + "-loop"))
    elif kind == "huge-iops":          # defect 9: 1e308 IOPS
        doc = json.loads((d / "1.json").read_text())
        for i, j in enumerate(doc["jobs"]):  # a sum of 1e308: no overflow, just absurd
            j["read"]["iops"] = 1e308 if i == 0 else 0.0
        (d / "4.json").write_text(json.dumps(doc))
        (d / "4.meta.json").write_bytes((d / "1.meta.json").read_bytes())


KINDS = ("symlink-loop", "dangling-link", "meta-is-a-list", "meta-malformed", "result-garbage",
         "result-without-meta", "meta-without-result", "failed-meta-beside-result",
         "a-dir-named-like-a-result", "hostile-names", "loop-dir", "huge-iops")


@pytest.mark.filterwarnings("error::RuntimeWarning")  # numpy's overflow warnings fail the case
@pytest.mark.parametrize("cmd", COMMANDS)
@pytest.mark.parametrize("kind", KINDS)
def test_hostile_tree_keeps_every_good_repetition(case, kind, cmd):
    runs = good_tree(case.root / "runs")
    d = runs / "v4-smp-4-dataplane"
    hostile(kind, d)
    proc = invoke_here(case, cmd, runs)
    clear(proc.stderr)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    if cmd == "analyze":
        # the row keeps its three good repetitions, whatever was added beside them
        rows = {r["name"]: r for r in json.loads(proc.stdout)["rows"]}
        # a result beside an unusable meta counts (with a warning), as it always did
        n = 4 if kind in ("meta-is-a-list", "meta-malformed") else 3
        assert rows["v4-smp-4-dataplane"]["n"] == n and rows["v4-smp-1-dataplane"]["n"] == 3
        assert rows["v4-smp-4-dataplane"]["mean"] < 1e6  # 1e308 is not averaged in


def test_reports_unreadable_config_dir_like_analyze(tmp_path, monkeypatch):
    # defect 8: an unreadable config dir aborted the report (PermissionError) where analyze
    # warned and went on. As root chmod does not bite, so the listing is made to fail.
    from click.testing import CliRunner

    import perfsuite.rundir as rundir
    from perfsuite.cli import main

    runs = good_tree(tmp_path / "runs")
    real = rundir.scan_run

    def scan(d, name=None):
        if str(d).endswith("smp-1-dataplane"):
            raise PermissionError(13, "Permission denied")
        return real(d, name)

    monkeypatch.setattr(rundir, "scan_run", scan)
    for args in (["analyze", str(runs)], ["report", str(runs), "-o", str(tmp_path / "r")]):
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 0, res.output
        assert "cannot list it (Permission denied)" in res.output or args[0] == "report"
    assert (tmp_path / "r" / "index.html").exists()


def test_compare_with_nothing_in_common_is_an_error(case):
    # defect 9: exit 0 with a warning; nothing was compared, so it is no answer
    a = good_tree(case.root / "a", names=("v4-smp-4-dataplane",))
    b = good_tree(case.root / "b", names=("v4-smp-2-no-dataplane",))
    proc = case.run("compare", a, b)
    clear(proc.stderr)
    assert proc.returncode == 2 and "no configuration appears on both sides" in proc.stderr


@pytest.mark.parametrize("cmd", COMMANDS)
@pytest.mark.parametrize("what", ["missing", "a-file", "empty", "only-junk"])
def test_no_usable_tree_is_one_line_exit_2(case, cmd, what):
    runs = case.root / "runs"
    if what == "a-file":
        runs.write_text("x")
    elif what == "empty":
        runs.mkdir()
    elif what == "only-junk":
        (runs / "x").mkdir(parents=True)
        (runs / "x" / "1.json").write_text("junk")
    proc = invoke_here(case, cmd, runs) if cmd != "analyze" else invoke(case, cmd, runs)
    clear(proc.stderr)
    assert proc.returncode == 2 and proc.stderr.strip(), proc.stderr


@pytest.mark.parametrize("damage", ["not-sqlite", "empty-file", "foreign-schema"])
def test_history_of_a_bad_database_is_one_line(case, damage):
    db = case.root / "history.sqlite"
    if damage == "not-sqlite":
        db.write_bytes(b"this is not a database" * 10)
    elif damage == "empty-file":
        db.write_bytes(b"")
    else:
        con = sqlite3.connect(db)
        con.execute("create table nights (x text)")
        con.commit()
        con.close()
    proc = case.run("history", "--db", db)
    clear(proc.stderr)
    assert proc.returncode in (0, 2) and (proc.returncode == 0 or proc.stderr.strip())
