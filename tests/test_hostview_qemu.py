"""The host view with real TCG guests: per-thread CPU in every meta and plausible, the
IOThread busy only with dataplane, the measured window without the ramp, a profile recorded
and its flame graph in the report (headless Chromium), a CPU hog raising the noisy-host
check, and `--profile perf` without perf: one line, and the run goes on.

The machine may be shared with other people's guests: the assertions hold on a busy host
(they compare QEMU's threads with each other and with the host's own accounting), and
say so where a quiet host would allow a sharper one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from qemu_procs import our_qemus

from browser import find_chromium, inspect_page

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parent.parent
RUNTIME, RAMP = 4, 2


def perfsuite(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    e = dict(os.environ, CI="true", **(env or {}))
    return subprocess.run([sys.executable, "-m", "perfsuite.cli", *args], cwd=REPO, env=e,
                          capture_output=True, text=True, timeout=840)


def matrix(tmp: Path, dataplane: str = "[true, false]") -> Path:
    m = tmp / "hv.toml"
    m.write_text(f'[defaults]\nfio_job = "{REPO}/jobs/fio.job"\nbackend = "null-co"\nmemory_mb = 512\n'
                 f"iodepth = 16\nruntime = {RUNTIME}\nramp = {RAMP}\n\n[matrix]\nsmp = 1\n"
                 f"dataplane = {dataplane}\n")
    return m


@pytest.fixture(scope="module")
def image():
    from perfsuite.guest import ensure_image
    return ensure_image(log=lambda m: None)


@pytest.fixture(scope="module")
def profiled(tmp_path_factory, image):
    """smp 1, dataplane on and off, 2 repetitions each, `--profile perf`."""
    tmp = tmp_path_factory.mktemp("hostview")
    proc = perfsuite("run", str(matrix(tmp)), "--runs-dir", str(tmp / "runs"), "--repeat", "2", "--boots", "1",
                     "--accel", "tcg", "--label", "hv", "--profile", "perf", "--work-root", str(tmp / "w"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert our_qemus(tmp) == []
    return tmp


def metas(runs: Path, name: str) -> list[dict]:
    return [orjson.loads(p.read_bytes()) for p in sorted((runs / name).glob("*.meta.json"))]


def test_every_repetition_has_plausible_thread_cpu(profiled):
    for name, dataplane in (("hv-smp-1-dataplane", True), ("hv-smp-1-no-dataplane", False)):
        for m in metas(profiled / "runs", name):
            threads, load = m["host_threads"], m["host_load"]
            by_role = {}
            for t in threads:
                by_role.setdefault(t["role"], []).append(t)
            assert len(by_role["vcpu"]) == 1 and len(by_role["main"]) == 1
            vcpu = by_role["vcpu"][0]["cpu_pct"]
            total = sum(t["cpu_pct"] for t in threads)
            # the vCPU thread does the guest's work (fio + the driver, all emulated): it is
            # QEMU's busiest thread and most of QEMU's CPU
            assert vcpu == max(t["cpu_pct"] for t in threads) and vcpu >= 0.5 * total, threads
            # ... and on a host with a core to spare it uses most of that core; on a shared
            # host (idle < 20%) the scheduler decides and only the share above holds
            if load["idle_pct"] >= 20:
                assert vcpu >= 50, (threads, load)
            assert 0 < total <= 100 * os.cpu_count() * 1.05
            if dataplane:
                io = by_role["iothread"]
                assert [t["name"] for t in io] == ["io0"] and io[0]["cpu_pct"] > 0, threads
            else:
                assert "iothread" not in by_role
            # the window is fio's runtime, without its start-up and its ramp
            assert 0.75 * RUNTIME <= load["window_s"] <= RUNTIME + 1.5, load
            shares = sum(load[k] for k in ("user_pct", "system_pct", "iowait_pct", "steal_pct", "idle_pct"))
            assert abs(shares - 100) < 0.5


def test_columns_in_the_frame_and_csv(profiled):
    from perfsuite.analysis.results import load_runs
    f = load_runs(profiled / "runs").frame.set_index("name")
    assert (f.loc["hv-smp-1-dataplane", "cpu_iothread_pct"] > 0).all()
    assert f.loc["hv-smp-1-no-dataplane", "cpu_iothread_pct"].isna().all()
    assert (f["cpu_vcpu_pct"] > 0).all() and (f["cpu_main_pct"] >= 0).all() and f["steal_pct"].notna().all()
    proc = perfsuite("analyze", str(profiled / "runs"), "--format", "csv")
    assert proc.stdout.splitlines()[0] == "name,mean,error_pct,n,cpu_vcpu_pct,cpu_iothread_pct,cpu_main_pct,steal_pct"


def test_profile_recorded_and_its_flame_graph_in_the_report(profiled):
    for name in ("hv-smp-1-dataplane", "hv-smp-1-no-dataplane"):
        d = profiled / "runs" / name
        assert (d / "1.perf.data").stat().st_size > 0 and not (d / "2.perf.data").exists()
        m = orjson.loads((d / "1.meta.json").read_bytes())
        assert m["profile"] == {"tool": "perf", "event": "cpu-clock", "file": "1.perf.data"}
        assert "profile" not in orjson.loads((d / "2.meta.json").read_bytes())
    out = profiled / "report"
    proc = perfsuite("report", str(profiled / "runs"), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    page = (out / "index.html").read_text()
    assert page.count("data:image/svg+xml;base64,") == 2 and 'id="hostview"' in page
    if find_chromium() is None:
        pytest.skip("chromium not installed: the page was checked as text only")
    rep = inspect_page(out / "index.html", profiled / "report.png")
    assert rep.errors == []
    flames = [im for im in rep.images if im["alt"].startswith("Flame graph of")]
    assert len(flames) == 2
    for im in flames:
        assert im["complete"] and im["natural"] and im["width"] > 500 and im["height"] > 100, im
    cpu = [im for im in rep.images if im["alt"].startswith("Where QEMU")]
    assert len(cpu) == 1 and cpu[0]["complete"] and cpu[0]["height"] > 100


def test_cpu_hog_raises_noisy_host_and_perf_missing_is_one_line(tmp_path, image):
    """A busy process the test starts is named by the check; run with no perf on PATH."""
    bindir = tmp_path / "bin"   # PATH with everything of /usr/bin but perf
    bindir.mkdir()
    for tool in Path("/usr/bin").iterdir():
        if not tool.name.startswith("perf"):
            (bindir / tool.name).symlink_to(tool)
    # a high priority even when the tests run under nice: on a shared host it must still get
    # more than OTHER_PCT of a core (it runs only for this one short repetition)
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"],
                           preexec_fn=lambda: os.setpriority(os.PRIO_PROCESS, 0, -10))
    try:
        time.sleep(0.5)
        proc = perfsuite("run", str(matrix(tmp_path, "true")), "--runs-dir", str(tmp_path / "runs"),
                         "--repeat", "1", "--boots", "1", "--accel", "tcg", "--label", "hog", "--profile", "perf",
                         "--qemu", "/usr/bin/qemu-system-x86_64", "--work-root", str(tmp_path / "w"),
                         env={"PATH": str(bindir)})
    finally:
        hog.kill()
        hog.wait()
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if "perf" in line]
    assert len(lines) == 1 and "linux-perf" in lines[0] and "goes on" in lines[0], proc.stderr
    d = tmp_path / "runs" / "hog-smp-1-dataplane"
    assert (d / "1.json").exists() and not list(d.glob("*.perf.data"))
    others = orjson.loads((d / "1.meta.json").read_bytes())["host_load"]["others"]
    mine = [o for o in others if o["pid"] == hog.pid]
    # The hog is seen and named with its share. On a quiet host it takes a whole core; on
    # this shared one (CPU shared by cgroup with other agents) it got 13-23% in trials, and
    # other people's processes may rank above it: the check then fires for them too.
    assert mine and mine[0]["cpu_pct"] > 5, others
    out = perfsuite("analyze", str(tmp_path / "runs"))
    assert "hog-smp-1-dataplane: noisy host: another process" in out.stderr, (others, out.stderr)
    if others[0]["pid"] == hog.pid:
        assert f"(pid {hog.pid}), used" in out.stderr
