"""Property-based tests: mutated real fio files give a valid record or FioParseError, nothing else.

Mutations: truncation, byte damage, dropped keys, wrong types, huge numbers (beyond float
and beyond 64-bit ints), NaN and +-Infinity, anywhere in the document tree.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perfsuite.analysis.fio import FIELDS, FioParseError, extract, parse_bytes
from perfsuite.analysis.results import ResultsError, load_runs

FIXTURES = Path(__file__).parent / "data" / "fio"
FILES = {p.name: p.read_bytes() for p in sorted(FIXTURES.glob("*.json"))}


def _decode(data: bytes) -> Any:
    text = data.decode()
    return json.loads(text[text.index("\n{") + 1 :] if not text.startswith("{") else text)


DOCS = {name: _decode(data) for name, data in FILES.items()}
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

WEIRD = st.one_of(
    st.none(), st.booleans(), st.text(max_size=5), st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1.0, 10**30, -(10**20), 0, 2**63]),
    st.floats(allow_nan=True, allow_infinity=True),
)


def check(data: bytes) -> None:
    try:
        rec = parse_bytes(data)
    except FioParseError as exc:
        assert str(exc)  # the message names the problem
        return
    assert set(rec) == set(FIELDS)
    assert isinstance(rec["iops"], float) and math.isfinite(rec["iops"]) and rec["iops"] >= 0
    for k in ("read_iops", "write_iops", "trim_iops"):
        assert math.isfinite(rec[k]) and rec[k] >= 0
    assert isinstance(rec["error"], int)
    assert rec["numjobs"] >= 1


def _nodes(obj: Any, path: tuple = ()) -> list[tuple]:
    """Every (container path, key) in the tree, in a stable order."""
    out = []
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else []
    for k, v in items:
        out.append((*path, k))
        out.extend(_nodes(v, (*path, k)))
    return out


def _mutate(doc: Any, path: tuple, how: str, value: Any) -> Any:
    doc = json.loads(json.dumps(doc))  # deep copy
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    if how == "drop":
        if isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent.pop(path[-1])
    else:
        parent[path[-1]] = value
    return doc


@st.composite
def tree_mutation(draw) -> bytes:
    name = draw(st.sampled_from(sorted(DOCS)))
    doc = DOCS[name]
    nodes = _nodes(doc)
    # bias towards the fields the parser reads
    hot = [p for p in nodes if p[-1] in ("jobs", "read", "write", "trim", "iops", "error", "clat_ns", "clat",
                                         "percentile", "mean", "disk_util", "read_ios", "job options",
                                         "runtime", "total_ios", "bw", "numjobs", "iodepth")]
    path = draw(st.sampled_from(hot if hot and draw(st.booleans()) else nodes))
    how = draw(st.sampled_from(["drop", "replace"]))
    doc = _mutate(doc, path, how, draw(WEIRD))
    # allow_nan: writes NaN/Infinity tokens, not JSON but what a broken producer might write
    return json.dumps(doc, indent=2, allow_nan=True).encode()


@given(tree_mutation())
@SETTINGS
def test_tree_mutations(data):
    check(data)


def _drop_bins(o: Any) -> Any:
    if isinstance(o, dict):
        return {k: _drop_bins(v) for k, v in o.items() if k != "bins"}
    return [_drop_bins(v) for v in o] if isinstance(o, list) else o


def _same(a: Any, b: Any) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


@given(tree_mutation())
@SETTINGS
def test_fast_path_agrees_with_the_standard_library(data):
    # Skipping json+ bins and orjson must not change the record: compare with a plain
    # json.loads of the same bytes (bins removed afterwards, as they are never read).
    try:
        ref_doc = _drop_bins(json.loads(data))
    except ValueError:
        return
    try:
        ref = extract(ref_doc) if isinstance(ref_doc, dict) else None
    except FioParseError:
        ref = None
    try:
        got = parse_bytes(data)
    except FioParseError:
        got = None
    assert (ref is None) == (got is None)
    if ref is not None:
        # error codes beyond 64 bits come back as int or float depending on the decoder
        assert bool(ref["error"]) == bool(got["error"])
        assert all(_same(ref[k], got[k]) for k in FIELDS if k != "error"), {k: (ref[k], got[k]) for k in FIELDS}


@given(st.sampled_from(sorted(FILES)), st.floats(0, 1))
@SETTINGS
def test_truncation(name, frac):
    data = FILES[name]
    check(data[: int(len(data) * frac)])


@given(st.sampled_from(sorted(FILES)), st.lists(st.tuples(st.floats(0, 1), st.binary(min_size=0, max_size=4)),
                                                min_size=1, max_size=4))
@SETTINGS
def test_byte_damage(name, edits):
    data = bytearray(FILES[name])
    for frac, junk in edits:
        i = int(len(data) * frac)
        data[i : i + len(junk)] = junk
    check(bytes(data))


@given(st.sampled_from(sorted(FILES)),
       st.sampled_from([b"nan", b"-nan", b"inf", b"-inf", b"NaN", b"Infinity", b"1e999", b"-1e999",
                        b"123456789012345678901234567890", b"1e308", b"null", b'"x"', b"true", b"[]", b"{}"]),
       st.integers(0, 10_000))
@SETTINGS
def test_number_replacement_in_the_raw_text(name, token, k):
    # replace the k-th number in fio's own formatting, keeping everything else byte-exact
    import re

    data = FILES[name]
    numbers = list(re.finditer(rb"(?<=: )-?\d+(\.\d+)?(?=,?\n)", data))
    m = numbers[k % len(numbers)]
    check(data[: m.start()] + token + data[m.end():])


@given(st.sampled_from(sorted(FILES)), st.floats(0, 1))
@settings(max_examples=30, deadline=None)
def test_load_runs_never_raises_anything_else(tmp_path_factory, name, frac):
    root = tmp_path_factory.mktemp("runs")
    (root / "x").mkdir()
    data = FILES[name]
    (root / "x" / "1.json").write_bytes(data[: int(len(data) * frac)])
    (root / "x" / "2.json").write_bytes(FILES["fio3-randread-null.json"])
    try:
        res = load_runs(root)
    except ResultsError:
        return
    assert 1 <= len(res.frame) <= 2
    assert len(res.frame) + len(res.warnings) >= 2
