"""The report in a real headless Chromium (Debian's `chromium`): loads without console
errors or failed loads, every plot has a non-zero rendered size, hostile names stay inert,
and a screenshot is taken (kept under the pytest tmp dir for a look)."""

from __future__ import annotations

import json
import struct

import pytest
from click.testing import CliRunner

from perfsuite.commands.report import report
from browser import find_chromium, inspect_page

from test_report import XSS_IMG, XSS_SCRIPT, _history_db, _meta, fio_outputs, make_runs_tree  # noqa: E402,F401 (fixture)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(find_chromium() is None, reason="chromium not installed (apt-get install chromium)"),
]


def _build(tmp_path, *args):
    out = tmp_path / "reports" / "r"
    res = CliRunner().invoke(report, [*args, "-o", str(out)])
    assert res.exit_code == 0, res.output
    return out / "index.html"


def test_page_renders_cleanly(tmp_path, fio_outputs):  # noqa: F811 - the pytest fixture imported above
    runs = make_runs_tree(tmp_path / "runs", fio_outputs)
    base = make_runs_tree(tmp_path / "v3", fio_outputs, label="v3")
    db = _history_db(tmp_path / "history.sqlite", runs)
    page = _build(tmp_path, str(runs), "--baseline", str(base), "--candidate", str(runs), "--history", str(db))
    shot = tmp_path / "screenshot.png"
    rep = inspect_page(page, shot, width=1280)

    assert rep.errors == []
    assert rep.title.startswith("perfsuite report")
    plots = [im for im in rep.images if im["tag"] == "img"]
    assert len(plots) == 6  # bars, speedup, strip, latency, compare, history
    for im in plots:
        assert im["width"] > 200 and im["height"] > 100, im
        assert im["natural"] and im["complete"], im  # decoded, not a broken-image icon
        assert im["width"] <= 1280  # fits the window: no horizontal scrolling for plots
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert width == 1280 and height > 2000  # the full page, not just the first screen


def test_hostile_names_stay_inert(tmp_path, fio_outputs):  # noqa: F811 - the pytest fixture imported above
    """An injected <img src=x onerror=...> would fail to load (a logged error) and add an image."""
    runs = make_runs_tree(tmp_path / "runs", fio_outputs, configs=[(1, True, True), (1, True, False)])
    d = runs / "v4-smp-1-dataplane"
    (d / "9.meta.json").write_text(json.dumps(_meta("x", 9, 1, True, True, XSS_SCRIPT, status="failed",
                                                    error=XSS_IMG, mismatch=[XSS_SCRIPT])))
    (d / "9.log").write_text(f"{XSS_SCRIPT}\n{XSS_IMG}\n")
    page = _build(tmp_path, str(runs))
    rep = inspect_page(page, None)
    assert rep.errors == []
    assert [im["tag"] for im in rep.images] == ["img"] * 4
