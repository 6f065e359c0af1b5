"""perfsuite.analysis.fio against real fio output (tests/data/fio, see SOURCES.md).

Expected values are computed here from the raw documents with the standard library,
independently of the parser's code path (orjson, noise handling, weighting).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from perfsuite.analysis.fio import FIELDS, FioParseError, parse_bytes, parse_file

FIXTURES = Path(__file__).parent / "data" / "fio"
ALL = sorted(FIXTURES.glob("*.json"))


def raw(name: str) -> dict:
    text = (FIXTURES / name).read_text()
    return json.loads(text[text.index("\n{") + 1 :] if not text.startswith("{") else text)


def test_there_are_fixtures_of_both_fio_generations():
    versions = {raw(p.name)["fio version"].split(".")[0] for p in ALL}
    assert versions == {"fio-2", "fio-3"}


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_every_fixture_parses_to_the_full_record(path):
    rec = parse_file(path)
    assert set(rec) == set(FIELDS)
    doc = raw(path.name)
    expected = sum(j[d]["iops"] for j in doc["jobs"] for d in ("read", "write", "trim") if d in j)
    assert rec["iops"] == pytest.approx(expected)
    assert rec["iops"] == pytest.approx(rec["read_iops"] + rec["write_iops"] + rec["trim_iops"])
    assert rec["read_bw_kib"] == pytest.approx(sum(j["read"]["bw"] for j in doc["jobs"]))
    assert rec["fio_version"] == doc["fio version"]


def test_fio3_latency_is_converted_from_ns_to_us():
    doc = raw("fio3-randread-null.json")
    rec = parse_file(FIXTURES / "fio3-randread-null.json")
    clat = doc["jobs"][0]["read"]["clat_ns"]
    assert rec["lat_mean_us"] == pytest.approx(clat["mean"] / 1000)
    assert rec["lat_p50_us"] == pytest.approx(clat["percentile"]["50.000000"] / 1000)
    assert rec["lat_p99_us"] == pytest.approx(clat["percentile"]["99.000000"] / 1000)
    assert rec["lat_p999_us"] == pytest.approx(clat["percentile"]["99.900000"] / 1000)
    assert rec["runtime_s"] == pytest.approx(doc["jobs"][0]["read"]["runtime"] / 1000)


def test_fio2_latency_is_already_us_and_duplicate_keys_do_not_matter():
    doc = raw("fio2-2.2.10-libaio-write-diskutil.json")
    rec = parse_file(FIXTURES / "fio2-2.2.10-libaio-write-diskutil.json")
    clat = doc["jobs"][0]["write"]["clat"]
    assert rec["lat_mean_us"] == pytest.approx(clat["mean"])
    assert rec["lat_p99_us"] == pytest.approx(clat["percentile"]["99.000000"])
    assert rec["lat_p999_us"] == pytest.approx(clat["percentile"]["99.900000"])
    assert rec["write_iops"] == pytest.approx(doc["jobs"][0]["write"]["iops"])
    assert rec["read_iops"] == 0
    assert rec["disk_read_ios"] == doc["disk_util"][0]["read_ios"]
    assert rec["iodepth"] is None  # fio 2.2 did not print job options


def test_randrw_latency_is_weighted_by_completed_ios():
    doc = raw("fio3-randrw-jsonplus.json")
    job = doc["jobs"][0]
    r, w = job["read"], job["write"]
    want = (r["total_ios"] * r["clat_ns"]["mean"] + w["total_ios"] * w["clat_ns"]["mean"]) / (
        r["total_ios"] + w["total_ios"]) / 1000
    rec = parse_file(FIXTURES / "fio3-randrw-jsonplus.json")
    assert rec["lat_mean_us"] == pytest.approx(want)
    assert rec["read_iops"] > rec["write_iops"] > 0  # rwmixread=70
    assert rec["rw"] == "randrw" and rec["bs"] == "4k"


@pytest.mark.parametrize("name, entries", [
    ("fio3-numjobs3.json", 3),        # three entries, one per clone
    ("fio3-group-reporting.json", 1),  # one aggregated entry standing for three
    ("fio3-null-2jobs-jsonplus.json", 2),
])
def test_numjobs_counts_processes_with_or_without_group_reporting(name, entries):
    doc = raw(name)
    assert len(doc["jobs"]) == entries
    opt = int(doc["jobs"][0]["job options"].get("numjobs", 1))
    assert parse_file(FIXTURES / name)["numjobs"] == opt


def test_disk_util_read_ios_summed():
    doc = raw("fio3-libaio-randrw-diskutil-jsonplus.json")
    rec = parse_file(FIXTURES / "fio3-libaio-randrw-diskutil-jsonplus.json")
    assert rec["disk_read_ios"] == sum(d["read_ios"] for d in doc["disk_util"])
    assert rec["iodepth"] == int(doc["jobs"][0]["job options"]["iodepth"])
    assert math.isnan(parse_file(FIXTURES / "fio3-randread-null.json")["disk_read_ios"])


def test_note_line_before_json_is_tolerated():
    data = (FIXTURES / "fio3-psync-note-diskutil.json").read_bytes()
    assert data.startswith(b"note:")  # fio itself wrote it there
    assert parse_bytes(data)["iops"] > 0


def test_arbitrary_text_before_and_after():
    data = (FIXTURES / "fio3-numjobs3.json").read_bytes()
    clean = parse_bytes(data)
    noisy = b"fio: some warning {with braces}\nnote: x\n" + data + b"\nfio: file hash not empty on exit }\n"
    assert parse_bytes(noisy) == clean


@pytest.mark.parametrize("where", ["whole file", "inside the object"])
def test_git_conflict_markers_are_an_error_not_one_side(where):
    # The seed's analyze.py crashed on such a file; silently reading the "ours" half (the
    # first JSON object parses) would be worse: a result nobody chose.
    a = (FIXTURES / "fio3-numjobs3.json").read_bytes()
    b = (FIXTURES / "fio3-randread-null.json").read_bytes()
    if where == "whole file":
        data = b"<<<<<<< HEAD\n" + a + b"\n=======\n" + b + b"\n>>>>>>> other-branch\n"
    else:
        i = a.index(b"\n", a.index(b'"iops"')) + 1
        data = a[:i] + b"<<<<<<< HEAD\n=======\n>>>>>>> 1234abc (rerun)\n" + a[i:]
    with pytest.raises(FioParseError, match="conflict markers"):
        parse_bytes(data)


def test_conflict_marker_lookalikes_in_noise_are_not_conflicts():
    data = (FIXTURES / "fio3-numjobs3.json").read_bytes()
    assert parse_bytes(b"note: <<<<<<< not at line start\n" + data) == parse_bytes(data)


def test_failed_job_reports_its_error_code():
    doc = raw("fio3-error-enospc.json")
    assert parse_file(FIXTURES / "fio3-error-enospc.json")["error"] == doc["jobs"][0]["error"] != 0
    assert parse_file(FIXTURES / "fio3-randread-null.json")["error"] == 0


def test_bare_nan_in_optional_field_gives_unknown_latency():
    doc = raw("fio3-randread-null.json")
    mean = doc["jobs"][0]["read"]["clat_ns"]["mean"]
    text = (FIXTURES / "fio3-randread-null.json").read_text()
    bad = text.replace(f'"mean" : {mean:f}', '"mean" : -nan', 1)
    assert bad != text
    rec = parse_bytes(bad.encode())
    assert math.isnan(rec["lat_mean_us"])
    assert rec["iops"] == pytest.approx(doc["jobs"][0]["read"]["iops"])


def test_integer_beyond_64_bits_in_unused_field_is_fine():
    doc = raw("fio3-randread-null.json")
    doc["jobs"][0]["read"]["io_bytes"] = 10**40
    assert parse_bytes(json.dumps(doc).encode())["iops"] > 0


@pytest.mark.parametrize("data, words", [
    (b"", "empty"),
    (b"   \n", "empty"),
    (b"fio: engine libaio not loadable\n", "no JSON object"),
    (b"[1, 2]", "not an object"),
    (b'{"fio version": "fio-3.33"}', "jobs"),
    (b'{"jobs": []}', "empty"),
    (b'{"jobs": [1]}', "jobs[0]"),
    (b'{"jobs": [{"error": 0}]}', "no read/write/trim"),
    (b'{"jobs": [{"error": 0, "read": {"iops": "12"}}]}', "jobs[0].read.iops"),
    (b'{"jobs": [{"error": 0, "read": {"iops": -1}}]}', "non-negative"),
    (b'{"jobs": [{"error": 0, "read": {"iops": true}}]}', "not a number"),
    (b'{"jobs": [{"error": "x", "read": {"iops": 1}}]}', "error"),
    (b'{"jobs": [{"error": 0, "read": {"iops": 1e999}}]}', "finite"),
])
def test_malformed_input_raises_a_named_error(data, words):
    with pytest.raises(FioParseError, match=r"(?i)" + words.replace("[", r"\[").replace("]", r"\]")):
        parse_bytes(data)


def test_truncated_file_raises_parse_error():
    data = (FIXTURES / "fio3-randread-null.json").read_bytes()
    with pytest.raises(FioParseError, match="invalid JSON"):
        parse_bytes(data[: len(data) // 2])


def test_unreadable_file(tmp_path):
    with pytest.raises(FioParseError, match="cannot read"):
        parse_file(tmp_path / "missing.json")


def test_unified_rw_reporting_mixed_counts_in_total_only():
    doc = raw("fio3-randread-null.json")
    job = doc["jobs"][0]
    job["mixed"] = job.pop("read")
    rec = parse_bytes(json.dumps(doc).encode())
    assert rec["iops"] == pytest.approx(job["mixed"]["iops"]) and rec["read_iops"] == 0


def test_client_server_output_skips_the_all_clients_sum():
    doc = raw("fio3-numjobs3.json")
    jobs = doc.pop("jobs")
    total = {**jobs[0], "jobname": "All clients"}
    doc["client_stats"] = [*jobs, total]
    assert parse_bytes(json.dumps(doc).encode())["iops"] == pytest.approx(sum(j["read"]["iops"] for j in jobs))


def _drop_bins(o):
    if isinstance(o, dict):
        return {k: _drop_bins(v) for k, v in o.items() if k != "bins"}
    if isinstance(o, list):
        return [_drop_bins(v) for v in o]
    return o


@pytest.mark.parametrize("path", [p for p in ALL if "jsonplus" in p.name], ids=lambda p: p.name)
def test_json_plus_bins_are_skipped_without_changing_anything_else(path):
    from perfsuite.analysis.fio import _without_bins, load_json

    data = path.read_bytes()
    stripped = _without_bins(data)
    assert b'"bins"' in data and b'"bins"' not in stripped and len(stripped) < len(data) / 1.5
    assert load_json(data) == _drop_bins(raw(path.name))


def test_odd_bins_are_parsed_whole():
    from perfsuite.analysis.fio import _without_bins

    data = b'{"jobs": [{"read": {"iops": 1, "clat_ns": {"mean": 1, "bins": {"1": "}"}}}}]}'
    assert _without_bins(data) == data
    assert parse_bytes(data)["iops"] == 1


def test_latency_not_measured_is_unknown_not_zero():
    # gtod_reduce=1: fio measures no latency and prints zeros with N = 0
    doc = raw("fio3-gtod-reduce.json")
    assert doc["jobs"][0]["read"]["clat_ns"]["N"] == 0
    rec = parse_file(FIXTURES / "fio3-gtod-reduce.json")
    assert all(math.isnan(rec[k]) for k in ("lat_mean_us", "lat_p50_us", "lat_p99_us", "lat_p999_us"))
    assert rec["iops"] == pytest.approx(sum(j["read"]["iops"] for j in doc["jobs"]))
