"""The seed's table layout, the other renderers, and summarize()."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pandas as pd
import pytest

from perfsuite.report.table import render, render_table
from perfsuite.analysis.stats import error_pct
from perfsuite.analysis.summary import METRICS, missing_metric, summarize

# The table that started it all (DESIGN.md): its layout is the contract.
SEED = """\
Name                                   IOPS   Error
v4-smp-4-dataplane               13326598.0 ± 6.31%
v4-smp-4-dataplane-no-mq         11483568.0 ± 3.42%
v4-smp-4-no-dataplane            18108611.6 ± 1.53%
v4-smp-4-no-dataplane-no-mq      13951225.6 ± 7.81%
"""


def seed_summary() -> pd.DataFrame:
    rows = [line.split() for line in SEED.splitlines()[1:]]
    return pd.DataFrame({
        "name": [r[0] for r in rows],
        "mean": [float(r[1]) for r in rows],
        "error_pct": [float(r[3].rstrip("%")) for r in rows],
        "n": [5] * len(rows),
    })


def test_seed_table_is_reproduced_byte_for_byte():
    assert render_table(seed_summary()) == SEED


def test_column_positions_follow_the_spec():
    header, row = render_table(seed_summary()).splitlines()[:2]
    assert header[:30] == "Name".ljust(30) and header[30] == " " and header[31:43] == "IOPS".rjust(12)
    assert header[43:] == "   Error"
    assert row[31:43] == "13326598.0".rjust(12) and row[43:46] == " ± "


def test_long_names_and_numbers_widen_every_row():
    s = seed_summary()
    s.loc[0, "name"] = "v4-smp-16-dataplane-no-mq-pinned-iothreads-4"
    s.loc[1, "mean"] = 12345678901234.5
    lines = render_table(s).splitlines()
    # the "±" (and the Error heading) sit at one column in every line
    assert len({line.index("±") for line in lines[1:]}) == 1
    assert lines[0].index("Error") == lines[1].index("±") + 2
    assert lines[1].startswith(s.loc[0, "name"] + " ")
    assert "12345678901234.5" in lines[2]


def test_single_run_prints_na():
    s = seed_summary()
    s.loc[2, "error_pct"] = math.nan
    assert render_table(s).splitlines()[3].endswith("18108611.6 ± n/a")


def test_n_column_is_aligned_and_optional():
    s = seed_summary()
    s.loc[0, "n"] = 12
    s.loc[1, "error_pct"] = math.nan
    lines = render_table(s, show_n=True).splitlines()
    assert lines[0].split()[-1] == "n"
    assert [line.split()[-1] for line in lines[1:]] == ["12", "5", "5", "5"]
    assert len({len(line) for line in lines}) == 1
    assert render_table(s) != render_table(s, show_n=True)


def test_csv_round_trip_keeps_full_precision():
    s = seed_summary()
    s.loc[0, "error_pct"] = math.nan
    rows = list(csv.DictReader(io.StringIO(render(s, "csv"))))
    assert [r["name"] for r in rows] == list(s["name"])
    assert [float(r["mean"]) for r in rows] == list(s["mean"])
    assert rows[0]["error_pct"] == "" and float(rows[1]["error_pct"]) == s.loc[1, "error_pct"]
    assert [int(r["n"]) for r in rows] == list(s["n"])


def test_json_has_null_for_undefined_error():
    s = seed_summary()
    s.loc[3, "error_pct"] = math.nan
    doc = json.loads(render(s, "json", metric="disk-read-ios", error="cv"))
    assert doc["metric"] == "disk-read-ios" and doc["error"] == "cv"
    assert [r["name"] for r in doc["rows"]] == list(s["name"])
    assert doc["rows"][3]["error_pct"] is None and doc["rows"][0]["error_pct"] == s.loc[0, "error_pct"]


def test_markdown_table():
    md = render(seed_summary(), "markdown", show_n=True).splitlines()
    assert md[0] == "| Name | IOPS | Error | n |"
    assert md[1].count("|") == 5
    assert md[2] == "| v4-smp-4-dataplane | 13326598.0 | ± 6.31% | 5 |"


def test_unknown_format():
    with pytest.raises(ValueError, match="format"):
        render(seed_summary(), "html")


def frame(values: dict[str, list[float]], **extra) -> pd.DataFrame:
    names = [n for n, vs in values.items() for _ in vs]
    iops = [v for vs in values.values() for v in vs]
    return pd.DataFrame({"name": names, "iops": iops, "read_iops": iops,
                         "disk_read_ios": [math.nan] * len(iops), **extra})


@pytest.mark.parametrize("kind", ["range", "cv", "sem", "ci95"])
def test_summarize_uses_stats_error_pct(kind):
    rng = np.random.default_rng(1)
    values = {f"cfg-{i}": list(rng.normal(1e6, 5e4, size=i + 1)) for i in range(5)}
    names = list(values)[::-1]  # unsorted input
    s = summarize(frame({n: values[n] for n in names}), "iops", kind)
    assert list(s["name"]) == sorted(values)
    for row in s.itertuples():
        vs = values[row.name]
        assert row.n == len(vs)
        assert row.mean == pytest.approx(np.mean(vs))
        want = error_pct(vs, kind)
        assert (math.isnan(row.error_pct) and math.isnan(want)) or row.error_pct == pytest.approx(want)


def test_summarize_leaves_out_runs_without_the_metric():
    f = frame({"a": [1.0, 2.0, 3.0], "b": [5.0]})
    f.loc[1, "iops"] = math.nan
    s = summarize(f, "iops")
    assert s.set_index("name").loc["a", "n"] == 2
    assert missing_metric(f, "iops") == {"a": 1}
    assert summarize(f, "disk-read-ios").empty
    assert missing_metric(f, "disk-read-ios") == {"a": 3, "b": 1}


def test_summarize_carries_config_columns():
    f = frame({"a": [1.0, 2.0], "b": [3.0]}, smp=[4, 4, 1], dataplane=[True, True, False])
    s = summarize(f, "read-iops").set_index("name")
    assert s.loc["a", "smp"] == 4 and not s.loc["b", "dataplane"]


def test_metric_names():
    assert set(METRICS) == {"iops", "read-iops", "write-iops", "disk-read-ios"}
    with pytest.raises(ValueError, match="metric"):
        summarize(frame({"a": [1.0]}), "bandwidth")
    with pytest.raises(ValueError, match="error"):
        summarize(frame({"a": [1.0]}), "iops", "stddev")
