"""perfsuite.analysis.results.load_runs on small runs/ trees built from real fio output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from perfsuite.analysis.fio import parse_file
from perfsuite.analysis.results import HOST_COLUMNS, META_PATHS, ResultsError, columns, flatten_meta, load_runs
from perfsuite.matrix.axes import meta_columns

FIXTURES = Path(__file__).parent / "data" / "fio"
A = FIXTURES / "fio3-randread-null.json"
B = FIXTURES / "fio3-randread-null-jsonplus.json"
C = FIXTURES / "fio3-numjobs3.json"
ERR = FIXTURES / "fio3-error-enospc.json"

META = {
    "schema": 1, "name": "v4-smp-4-dataplane", "rep": 1, "boot": 1,
    "config": {
        "label": "v4", "qemu": "/usr/bin/qemu-system-x86_64", "smp": 4, "memory_mb": 1024,
        "num_queues": 4, "dataplane": True, "iothreads": 1, "queue_size": 256,
        "backend": "null-co", "backend_path": None, "aio": "threads", "cache": "none",
        "fio_job": "jobs/fio.job", "numjobs": 4, "iodepth": 32, "runtime": 60, "ramp": 5,
        "pin": False, "machine": "q35",
    },
    "qemu_argv": ["qemu-system-x86_64"],
    "accel": "tcg", "accel_note": "KVM probe failed",
    "versions": {"qemu": "7.2.22", "host_fio": "fio-3.33"},
    "host": {"hostname": "h", "cpu_model": "Some CPU", "cpus": 2, "kernel": "6.1.0"},
    "guest": {"cpus_online": 4, "queues": 1, "kernel": "6.1.0-28-amd64", "fio_version": "fio-3.33",
              "scheduler": "none"},
    "mismatch": ["queues: asked 4, guest saw 1", "smp: asked 4, guest saw 4"],
    "started": "2026-11-25T13:00:00+00:00", "finished": "2026-11-25T13:01:05+00:00",
    "status": "ok", "error": None, "synthetic": False, "true_iops": None,
}


def tree(root: Path, spec: dict[str, dict[str, Path | bytes | dict]]) -> Path:
    for name, files in spec.items():
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        for fname, src in files.items():
            if isinstance(src, Path):
                shutil.copy(src, d / fname)
            elif isinstance(src, dict):
                (d / fname).write_text(json.dumps(src))
            else:
                (d / fname).write_bytes(src)
    return root


def test_one_row_per_repetition_with_contract_columns(tmp_path):
    root = tree(tmp_path / "runs", {"x": {"1.json": A, "2.json": B}, "y": {"fio-output-3.json": C}})
    res = load_runs(root)
    f = res.frame
    assert list(f.columns) == list(columns())
    assert res.warnings == []
    assert sorted(zip(f["name"], f["rep"])) == [("x", "1"), ("x", "2"), ("y", "fio-output-3")]
    for src, row in zip([A, B, C], f.itertuples()):
        assert row.iops == pytest.approx(parse_file(src)["iops"])
        assert Path(row.path).read_bytes() == src.read_bytes()
    assert f.loc[f["name"] == "y", "numjobs"].item() == 3


def test_meta_is_flattened_as_the_contract_lists(tmp_path):
    root = tree(tmp_path / "runs", {"v4": {"1.json": A, "1.meta.json": META, "2.json": B}})
    f = load_runs(root).frame.set_index("rep")
    row = f.loc["1"]
    for k in meta_columns():
        assert row[k] == META["config"][k], k
    assert row["qemu_version"] == "7.2.22" and row["accel"] == "tcg"
    assert row["guest_kernel"] == "6.1.0-28-amd64" and row["guest_fio_version"] == "fio-3.33"
    assert row["queues_seen"] == 1 and row["cpus_seen"] == 4
    assert row["mismatch"] == "queues: asked 4, guest saw 1; smp: asked 4, guest saw 4"
    assert row["host"] == "h" and row["host_cpu"] == "Some CPU"
    assert row["status"] == "ok" and row["boot"] == 1 and bool(row["synthetic"]) is False
    # the fio columns win over the config's numjobs/iodepth: they say what really ran
    assert row["numjobs"] == parse_file(A)["numjobs"]
    # repetition 2 has no meta beside repetitions that have one: a write cut short (the
    # runner writes the meta first), so it does not count, and says so
    assert "2" not in f.index
    assert any("repetition 2 has a result but no meta" in w for w in load_runs(root).warnings)


def test_meta_columns_stay_unknown_in_a_tree_without_meta(tmp_path):
    root = tree(tmp_path / "runs", {"v4": {"1.json": A, "2.json": B}})
    f = load_runs(root).frame.set_index("rep")
    assert pd.isna(f.loc["2", "label"]) and pd.isna(f.loc["2", "qemu_version"])


def test_flatten_meta_tolerates_missing_and_odd_values():
    out = flatten_meta({"config": {"smp": [1, 2]}, "guest": "?", "mismatch": "text"})
    assert out["smp"] == "[1,2]"
    assert out["queues_seen"] is None and out["mismatch"] == "text"
    assert set(out) == {"smp", *META_PATHS, *HOST_COLUMNS}
    assert all(out[c] is None for c in HOST_COLUMNS)  # no sample: unknown, not zero


def test_malformed_file_is_named_and_skipped(tmp_path):
    root = tree(tmp_path / "runs", {"x": {"1.json": A, "2.json": b"<<<<<<< HEAD\n{\n=======\n"}})
    res = load_runs(root)
    assert len(res.frame) == 1
    assert len(res.warnings) == 1 and str(root / "x" / "2.json") in res.warnings[0]


def test_strict_makes_a_malformed_file_an_error(tmp_path):
    root = tree(tmp_path / "runs", {"x": {"1.json": A, "2.json": b"{"}})
    with pytest.raises(ResultsError, match="2.json"):
        load_runs(root, strict=True)


def test_runs_with_fio_errors_are_excluded_and_counted(tmp_path):
    root = tree(tmp_path / "runs", {"x": {"1.json": A, "2.json": ERR, "3.json": ERR}})
    res = load_runs(root)
    assert list(res.frame["rep"]) == ["1"]
    assert res.warnings == ["x: excluded 2 run(s) where fio reported an error (error != 0)"]


def test_failed_repetition_without_result_is_reported(tmp_path):
    failed = {**META, "status": "timeout", "error": "guest did not finish in 300 s"}
    root = tree(tmp_path / "runs", {"x": {"1.json": A, "2.meta.json": failed}})
    res = load_runs(root)
    assert len(res.frame) == 1
    assert any("repetition 2 timeout" in w and "did not finish" in w for w in res.warnings)


def test_malformed_meta_keeps_the_run(tmp_path):
    root = tree(tmp_path / "runs", {"x": {"1.json": A, "1.meta.json": b"{nope"}})
    res = load_runs(root)
    assert len(res.frame) == 1 and "1.meta.json" in res.warnings[0]
    with pytest.raises(ResultsError):
        load_runs(root, strict=True)


def test_temporaries_and_other_files_are_ignored(tmp_path):
    root = tree(tmp_path / "runs", {"x": {"1.json": A, ".2.json.abc.tmp": b"{", ".3.json": b"{",
                                          "4.json.part": b"{", "4.log": b"boot log"}})
    res = load_runs(root)
    assert list(res.frame["rep"]) == ["1"] and res.warnings == []


def test_natural_order_of_repetitions(tmp_path):
    root = tree(tmp_path / "runs", {"x": {f"{i}.json": A for i in (10, 2, 1)}})
    assert list(load_runs(root).frame["rep"]) == ["1", "2", "10"]


def test_name_filter(tmp_path):
    root = tree(tmp_path / "runs", {"v4-a": {"1.json": A}, "v4-b": {"1.json": B}, "v5-a": {"1.json": C}})
    assert sorted(load_runs(root, names="v4-*").frame["name"]) == ["v4-a", "v4-b"]
    assert sorted(load_runs(root, names=["*-a"]).frame["name"]) == ["v4-a", "v5-a"]
    with pytest.raises(ResultsError, match="matches"):
        load_runs(root, names="zzz*")


def test_a_single_run_directory_is_its_own_row(tmp_path):
    d = tree(tmp_path / "runs", {"v4-smp-1": {"1.json": A, "2.json": B}}) / "v4-smp-1"
    f = load_runs(d).frame
    assert set(f["name"]) == {"v4-smp-1"} and len(f) == 2


@pytest.mark.parametrize("make, words", [
    (lambda p: p / "missing", "does not exist"),
    (lambda p: (p / "file").write_text("x") and p / "file", "not a directory"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "no fio results"),
    (lambda p: tree(p / "r", {"x": {"1.json": b"junk"}}), "no usable"),
    (lambda p: tree(p / "r", {"x": {"1.json": ERR}}), "no usable"),
])
def test_no_results_is_a_clear_error(tmp_path, make, words):
    with pytest.raises(ResultsError, match=words):
        load_runs(make(tmp_path))


def test_unreadable_run_directory_is_a_warning(tmp_path, monkeypatch):
    # chmod 0 does not stop root (CI runs as root), so the listing itself fails here
    import perfsuite.rundir as rundir

    root = tree(tmp_path / "runs", {"x": {"1.json": A}, "y": {"1.json": B}})
    real = rundir.scan_run

    def scan(d, name=None):
        if str(d).endswith("y"):
            raise PermissionError(13, "Permission denied")
        return real(d, name)

    monkeypatch.setattr(rundir, "scan_run", scan)
    res = load_runs(root)
    assert list(res.frame["name"]) == ["x"]
    assert res.warnings == [f"skipped {root / 'y'}: cannot list it (Permission denied)"]
