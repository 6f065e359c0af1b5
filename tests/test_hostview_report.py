"""The report's host view without a guest: the CPU bars and host-load line from a frame,
a flame graph drawn from a real `perf record` of a busy process, perf diff parsed, and
the one line when perf is missing."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from perfsuite.analysis.results import load_runs
from perfsuite.hostview.profile import PERF_MISSING, flamegraph_svg, parse_perf_diff, perf_available
from perfsuite.model.simulate import seed_matrix, simulate
from perfsuite.report import hostview, html

needs_perf = pytest.mark.skipif(shutil.which("perf") is None, reason="linux-perf is not installed")


@pytest.fixture(scope="module")
def frame(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    simulate(seed_matrix(), out, repeat=3, cv=0.01, seed=3, accel="tcg", host_cpus=2)
    f = load_runs(out).frame
    f["cpu_vcpu_pct"], f["cpu_vcpus_total_pct"] = 60.0, f["smp"].astype(float) * 60.0
    f["cpu_iothreads_total_pct"] = f["dataplane"].map(lambda d: 35.0 if d else 0.0).astype(float)
    f["cpu_main_pct"], f["cpu_other_pct"] = 8.0, 1.0
    f["host_busy_pct"], f["steal_pct"], f["host_other_pct"] = 70.0, 0.5, 3.0
    return f


def test_cpu_rows_and_load_points(frame):
    order = sorted(frame["name"].unique())
    rows = hostview.cpu_rows(frame, order)
    assert [r["name"] for r in rows] == order
    dp = next(r for r in rows if r["name"].endswith("smp-4-dataplane"))
    assert dp["cpu_vcpus_total_pct"] == 240.0 and dp["cpu_iothreads_total_pct"] == 35.0
    points = hostview.load_points(frame)
    assert len(points) == len(frame) and all(p["host_busy_pct"] == 70.0 for p in points)
    # no host view in the frame: no section
    bare = frame.drop(columns=[c for c in frame.columns if c.startswith(("cpu_", "host_b", "steal", "host_o"))])
    assert hostview.context(bare, order) is None


def test_report_page_has_the_host_view(frame, tmp_path):
    ctx = html.build_context(frame, {}, tmp_path, sources=["x"],
                             hostview={"profiles": [{"name": "n", "rep": "1", "file": "1.perf.data",
                                                     "svg": None, "error": "flamegraph failed on 1.perf.data: boom"}]})
    page = html.render(ctx)
    assert 'id="hostview"' in page and "Where QEMU's CPU went, per configuration" in page
    assert page.count("data:image/png;base64,") >= 4   # IOPS, strip, CPU bars, host load
    assert "flamegraph failed on 1.perf.data: boom" in page


def test_parse_perf_diff():
    text = ("# Event 'cpu-clock'\n#\n# Baseline  Delta Abs  Shared Object  Symbol\n#\n"
            "              +27.29%  [JIT] tid 5336           [.] 0x00007f096c000000\n"
            "     5.20%     +3.33%  [kernel.kallsyms]        [k] finish_task_switch.isra.0\n"
            "    27.28%     -4.14%  qemu-system-x86_64       [.] qht_lookup_custom\n"
            "     1.00%             qemu-system-x86_64       [.] unchanged\n")
    rows = parse_perf_diff(text)
    assert [r["symbol"] for r in rows] == ["0x00007f096c000000", "qht_lookup_custom", "finish_task_switch.isra.0"]
    assert rows[0]["base_pct"] == "" and rows[1] == {"base_pct": "27.28%", "delta_pct": "-4.14%",
                                                      "object": "qemu-system-x86_64", "symbol": "qht_lookup_custom"}


@needs_perf
def test_flame_graph_of_a_real_recording(tmp_path):
    """perf records a busy Python process; the packaged flamegraph tool folds and draws it."""
    busy = subprocess.Popen([sys.executable, "-c", "import time\nt=time.time()\nwhile time.time()-t<3: pass"])
    try:
        data = tmp_path / "1.perf.data"
        rec = subprocess.run(["perf", "record", "-g", "-e", "cpu-clock", "-p", str(busy.pid), "-q",
                              "-o", str(data), "--", "sleep", "1"], capture_output=True, text=True, timeout=60)
        assert rec.returncode == 0, rec.stderr
    finally:
        busy.kill()
        busy.wait()
    svg = flamegraph_svg(data, "busy python").decode()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "busy python" in svg
    assert "python" in svg   # the process's frames are in it


def test_perf_missing_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))   # no perf anywhere
    why = perf_available()
    assert why == PERF_MISSING and "\n" not in why and "linux-perf" in why


@needs_perf
def test_perf_available_here():
    assert perf_available() is None
