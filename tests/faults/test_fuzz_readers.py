"""A fuzzer for the readers: hypothesis builds whole runs trees (results good and bad,
metas of every status and shape, logs, symlink loops, dangling links, directories where
files belong, hostile names) and the analyzer, compare, the report and the runner's resume
must agree on which repetitions count, and never raise anything but their one clear error."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perfsuite import rundir
from perfsuite.analysis.comparison import compare
from perfsuite.analysis.results import ResultsError, load_runs
from perfsuite.errors import PerfsuiteError
from perfsuite.model.simulate import fio_document

RESULTS = st.sampled_from(["good", "good", "good", "garbage", "fio-error", "loop", "dangling",
                           "dir", "none", "zero-iops", "huge"])
METAS = st.sampled_from(["ok", "ok", "ok", "failed", "timeout", "none", "malformed", "list",
                         "no-status", "odd-config", "dir"])
STEMS = st.sampled_from(["1", "2", "3", "10", "fio-output-4", "<b>", "$(x)", "a b", "07"])


def _result(kind: str, iops: float) -> bytes | None:
    if kind in ("good", "huge", "zero-iops"):
        doc = fio_document(iops, 1, 32, 5, 1.7e9)
        if kind != "good":
            doc["jobs"][0]["read"]["iops"] = {"huge": 1e308, "zero-iops": 0.0}[kind]
        return orjson.dumps(doc)
    if kind == "fio-error":
        doc = fio_document(iops, 1, 32, 5, 1.7e9)
        doc["jobs"][0]["error"] = 5
        return orjson.dumps(doc)
    if kind == "garbage":
        return b"\x00not json{"
    return None


def _meta(kind: str, name: str, smp: int) -> bytes | None:
    config = {"label": "f", "smp": smp, "num_queues": smp, "dataplane": True, "iothreads": 1}
    base = {"schema": 1, "name": name, "boot": 1, "config": config, "error": None}
    return {"ok": orjson.dumps({**base, "status": "ok"}),
            "failed": orjson.dumps({**base, "status": "failed", "error": "fio exited 1"}),
            "timeout": orjson.dumps({**base, "status": "timeout", "error": "hung"}),
            "malformed": b"{nope", "list": b"[1, 2]",
            "no-status": orjson.dumps(base),
            "odd-config": orjson.dumps({**base, "status": "ok", "config": [1], "host": "h",
                                        "guest": 3, "versions": None, "qemu_argv": "x",
                                        "mismatch": 7, "accel_note": {}})}.get(kind)


def _place(path: Path, kind: str, data: bytes | None) -> None:
    if kind == "loop":
        os.symlink(path.name, path)
    elif kind == "dangling":
        os.symlink("/nonexistent/x", path)
    elif kind == "dir":
        path.mkdir()
    elif data is not None:
        path.write_bytes(data)


REP = st.tuples(STEMS, RESULTS, METAS, st.booleans(), st.floats(1e3, 1e6))
CONFIG = st.lists(REP, max_size=6, unique_by=lambda r: r[0])
TREE = st.lists(CONFIG, min_size=1, max_size=3)


def build(root: Path, tree) -> None:
    for i, reps in enumerate(tree):
        name = f"f-smp-{i + 1}-dataplane"
        d = root / name
        d.mkdir(parents=True)
        for stem, rkind, mkind, log, iops in reps:
            _place(d / f"{stem}.json", rkind, _result(rkind, iops))
            _place(d / f"{stem}.meta.json", mkind, _meta(mkind, name, i + 1))
            if log:
                (d / f"{stem}.log").write_text("console\n")


def counted_by_analyze(root: Path) -> dict[str, list[str]] | None:
    try:
        frame = load_runs(root).frame
    except ResultsError:
        return None
    out: dict[str, list[str]] = {}
    for name, rep in zip(frame["name"], frame["rep"]):
        out.setdefault(name, []).append(rep)
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(TREE)
def test_readers_agree_on_what_counts(tree):
    root = Path(tempfile.mkdtemp(prefix="fuzz-runs-"))
    try:
        build(root / "runs", tree)
        runs = root / "runs"
        counted = counted_by_analyze(runs)
        # the runner's resume: the numbered repetitions the analyzer counts (it also needs
        # fio's JSON to parse, and no fio error, zero or absurd IOPS: the runner never
        # writes those as results)
        for d in sorted(p for p in runs.iterdir() if p.is_dir()):
            resume = rundir.complete_reps(d)
            listed = rundir.scan_run(d)
            assert resume <= {r.number for r in listed.counted() if r.number is not None}
            mine = {int(r) for r in (counted or {}).get(d.name, []) if r.isdigit()}
            assert mine <= resume
        if counted is None:
            return
        frame = load_runs(runs).frame
        # compare: every row says how many repetitions it used (runs_*; n_* counts boots, the
        # unit of replication); they are the analyzer's
        c = compare(frame, frame)
        for r in c.rows.itertuples():
            assert int(r.runs_base) == len(counted[r.name_base])
        # the report: the same repetitions in its table and run list, and it never raises
        from perfsuite.commands.report import _build

        try:
            _, ctx = _build([runs], root / "report", None, None, None, check=False)
        except PerfsuiteError:
            raise AssertionError("the report refused a tree the analyzer reads") from None
        assert ctx["n_runs"] == sum(len(v) for v in counted.values())
    finally:
        shutil.rmtree(root, ignore_errors=True)
