"""HTML report: escaping, sections present/absent, relative links, CLI errors.

Test data: runs trees in tmp dirs built from REAL fio output (host fio with the null
engine, a few hundred ms per run), or from the committed real fio fixtures when fio is
not installed, plus meta.json / guest logs written per CONTRACTS.md section 2.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest
from click.testing import CliRunner

from perfsuite.commands.report import report
from perfsuite.report import html

DATA = Path(__file__).resolve().parent / "data" / "fio"
XSS_SCRIPT = "<script>alert(1)</script>"
XSS_IMG = '"><img src=x onerror=alert(1)>'
CONFIGS = [  # (smp, dataplane, mq)
    (1, True, True), (1, True, False), (1, False, True), (1, False, False),
    (4, True, True), (4, True, False), (4, False, True), (4, False, False),
]


# ---------------------------------------------------------------- building runs trees

def _fio_outputs(tmp: Path) -> list[bytes]:
    """Real fio JSON documents: host fio (null engine) with 1-3 jobs, else committed fixtures."""
    if shutil.which("fio"):
        outs = []
        for i, numjobs in enumerate((1, 2, 3) * 3 + (2,)):
            args = ["fio", f"--name=j{numjobs}", "--ioengine=null", "--size=64M", "--rw=randread", "--bs=4k",
                    "--runtime=150ms", "--time_based", "--output-format=json", f"--numjobs={numjobs}", "--iodepth=16"]
            if i == 9:
                args.append("--gtod_reduce=1")  # no latency percentiles: the "not recorded" case
            outs.append(subprocess.run(args, capture_output=True, check=True, cwd=tmp).stdout)
        return outs
    files = ["fio3-randread-null.json", "fio3-null-2jobs-jsonplus.json", "fio3-numjobs3.json",
             "fio3-randread-null-jsonplus.json", "fio3-randrw-jsonplus.json", "fio3-group-reporting.json",
             "fio3-libaio-randrw-1job-jsonplus.json", "fio3-psync-note-diskutil.json", "fio3-libaio-randrw-diskutil-jsonplus.json",
             "fio3-randread-null.json"]
    return [(DATA / f).read_bytes() for f in files]


def _meta(name: str, rep: int, smp: int, dp: bool, mq: bool, label: str, status: str = "ok", **extra) -> dict:
    nq = max(smp, 2) if mq else 1  # one queue per vCPU, but mq means more than one
    meta = {
        "schema": 1, "name": name, "rep": rep, "boot": 1,
        "config": {"label": label, "qemu": "/usr/bin/qemu-system-x86_64", "smp": smp, "memory_mb": 1024,
                   "num_queues": nq, "dataplane": dp, "iothreads": int(dp), "queue_size": 256,
                   "backend": "null-co", "backend_path": None, "aio": "threads", "cache": "none",
                   "fio_job": "jobs/does-not-exist.fio", "numjobs": 1, "iodepth": 16, "runtime": 1, "ramp": 0,
                   "pin": False, "machine": "q35"},
        "qemu_argv": ["qemu-system-x86_64", "-machine", "q35,accel=tcg", "-smp", str(smp), "-device",
                      f"virtio-blk-pci,drive=d0,num-queues={nq}" + (",iothread=io0" if dp else "")],
        "accel": "tcg", "accel_note": "KVM probe failed; using TCG",
        "versions": {"qemu": "7.2.22", "host_fio": "fio-3.33"},
        "host": {"hostname": "testhost", "cpu_model": "Test CPU", "cpus": 2, "kernel": "6.1.0-test"},
        "guest": {"cpus_online": smp, "queues": nq, "kernel": "6.1.0-28-amd64", "fio_version": "fio-3.33",
                  "scheduler": "none"},
        "mismatch": [], "started": "2026-11-25T13:00:00+00:00", "finished": "2026-11-25T13:00:05+00:00",
        "status": status, "error": None, "synthetic": False, "true_iops": None,
    }
    meta.update(extra)
    return meta


def make_runs_tree(root: Path, outputs: list[bytes], label: str = "v4", reps: int = 3, meta: bool = True,
                   configs=CONFIGS) -> Path:
    """root/<label>-smp-N-{dataplane,no-dataplane}[-no-mq]/{1..reps}.json (+ meta + log)."""
    for ci, (smp, dp, mq) in enumerate(configs):
        name = f"{label}-smp-{smp}-{'dataplane' if dp else 'no-dataplane'}{'' if mq else '-no-mq'}"
        d = root / name
        d.mkdir(parents=True)
        for rep in range(1, reps + 1):
            # One fio shape (numjobs) per config, a different real run per repetition; the last
            # config gets the gtod_reduce output only.
            data = outputs[9] if ci == len(configs) - 1 else outputs[ci % 3 + 3 * ((rep + ci) % 3)]
            (d / f"{rep}.json").write_bytes(data)
            if meta:
                (d / f"{rep}.meta.json").write_text(json.dumps(_meta(name, rep, smp, dp, mq, label)))
            (d / f"{rep}.log").write_text(f"guest console of {name} rep {rep}\n")
    return root


@pytest.fixture(scope="session")
def fio_outputs(tmp_path_factory) -> list[bytes]:
    return _fio_outputs(tmp_path_factory.mktemp("fio"))


@pytest.fixture
def runs(tmp_path, fio_outputs) -> Path:
    return make_runs_tree(tmp_path / "runs", fio_outputs)


def build(tmp_path: Path, *args: str) -> tuple[str, Path]:
    out = tmp_path / "reports" / "r"
    res = CliRunner().invoke(report, [*args, "-o", str(out)])
    assert res.exit_code == 0, res.output
    return (out / "index.html").read_text(), out


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def tags(page: str) -> list[tuple[str, dict]]:
    p = _Tags()
    p.feed(page)
    return p.tags


# ---------------------------------------------------------------- tests

def test_default_sections(tmp_path, runs):
    page, _ = build(tmp_path, str(runs))
    for section in ("summary", "iops", "repetitions", "latency", "environment", "raw"):
        assert f'id="{section}"' in page
    assert 'id="compare"' not in page and 'id="history"' not in page
    assert "TCG, not KVM" in page
    assert "not recorded (gtod_reduce)" in page  # the gtod_reduce config
    assert "v4-smp-4-no-dataplane-no-mq" in page
    assert page.count("data:image/png;base64,") == 4  # bars, speedup, strip, latency
    assert "qemu-system-x86_64" in page and "num-queues=4" in page  # a QEMU command line
    assert "[j1]" in page  # the fio job rebuilt from the fio output (the job file is gone)
    # perfsuite.analysis.checks flags smp-1 rows asked for 2 queues (Linux gives at most one per vCPU)
    assert re.search(r'<tr class="flagged">\s*<td><span class="swatch"[^>]*></span><code>v4-smp-1-dataplane</code>', page)
    # Static page: nothing to run, nothing to fetch.
    assert not [t for t, a in tags(page) if t == "script"]
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)


def test_optional_inputs_absent(tmp_path, fio_outputs):
    """Without meta.json: no TCG banner, no QEMU command line, environment says unknown."""
    runs = make_runs_tree(tmp_path / "runs", fio_outputs, meta=False, configs=CONFIGS[:2])
    page, _ = build(tmp_path, str(runs))
    assert "TCG, not KVM" not in page
    assert "QEMU command line" not in page
    assert "versions, accelerator and host are unknown" in page
    assert 'id="compare"' not in page and 'id="history"' not in page


def test_escaping(tmp_path, fio_outputs):
    """Names, fio job names, meta fields and guest logs come out as text, never markup."""
    runs = tmp_path / "runs"
    evil_name = "v4-smp-1-dataplane" + XSS_IMG.replace("/", "")
    d = runs / evil_name
    d.mkdir(parents=True)
    for rep in (1, 2):
        doc = json.loads(fio_outputs[rep])
        for job in doc["jobs"]:
            job["jobname"] = XSS_SCRIPT
            job["job options"]["name"] = XSS_SCRIPT
        (d / f"{rep}.json").write_text(json.dumps(doc))
        meta = _meta(evil_name, rep, 1, True, True, "v4", mismatch=[XSS_SCRIPT], accel_note=XSS_IMG)
        meta["qemu_argv"].append(XSS_SCRIPT)
        (d / f"{rep}.meta.json").write_text(json.dumps(meta))
    # A failed repetition: no result, its guest console is shown.
    (d / "3.meta.json").write_text(json.dumps(_meta(evil_name, 3, 1, True, True, "v4", status="failed",
                                                    error=XSS_SCRIPT)))
    (d / "3.log").write_text(f"boot...\n{XSS_SCRIPT}\n{XSS_IMG}\nKernel panic\n")
    page, _ = build(tmp_path, str(runs))

    assert XSS_SCRIPT not in page
    assert "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # shown, as text
    assert "Kernel panic" in page  # the failed run's console tail
    found = tags(page)
    assert not [t for t, a in found if t == "script"]
    assert not [a for _, a in found for k in a if k.startswith("on")]
    imgs = [a for t, a in found if t == "img"]
    assert all(a["src"].startswith("data:image/png;base64,") for a in imgs)


def test_links_relative_and_resolve(tmp_path, fio_outputs):
    runs = make_runs_tree(tmp_path / "data" / "runs", fio_outputs, configs=CONFIGS[:2])
    odd = runs / "v4-smp-1-dataplane-no-mq" / "javascript:alert(1) #x?.json"
    odd.write_bytes(fio_outputs[0])  # a legal file name that must not become a scheme
    page, out = build(tmp_path, str(runs))
    hrefs = [a["href"] for t, a in tags(page) if t == "a" and "href" in a]
    files = [h for h in hrefs if not h.startswith("#")]
    assert files, "no links to raw files"
    assert len(files) == 2 * 3 * 3 + 1  # json + meta + log per repetition, and the odd file
    for h in files:
        assert ":" not in h and not h.startswith("/") and "?" not in h and "#" not in h, h
        assert (out / unquote(h)).resolve().is_file(), h
    assert any(h.endswith("/1.meta.json") for h in files) and any(h.endswith("/2.log") for h in files)


def test_compare_section(tmp_path, fio_outputs):
    base = make_runs_tree(tmp_path / "v3", fio_outputs, label="v3", configs=CONFIGS[:4])
    cand = make_runs_tree(tmp_path / "v4", fio_outputs[3:9] + fio_outputs[:3] + fio_outputs[9:], label="v4",
                          configs=CONFIGS[:4])
    page, _ = build(tmp_path, str(cand), "--baseline", str(base), "--candidate", str(cand))
    assert 'id="compare"' in page
    assert page.count("data:image/png;base64,") == 5
    verdicts = re.findall(r'class="verdict ([\w-]+)"', page)
    # the page says what `perfsuite compare` says of the same two directories, row for row
    from perfsuite.analysis import comparison
    from perfsuite.analysis.results import load_runs
    want = comparison.compare(load_runs(base).frame, load_runs(cand).frame).rows["verdict"]
    assert sorted(verdicts) == sorted(v.replace(" ", "-") for v in want) and len(verdicts) == 4


def test_several_runs_dirs(tmp_path, fio_outputs):
    a = make_runs_tree(tmp_path / "a" / "runs", fio_outputs, configs=CONFIGS[:2])
    b = make_runs_tree(tmp_path / "b" / "runs", fio_outputs, configs=CONFIGS[:2])
    page, _ = build(tmp_path, str(a), str(b))
    # Same basename twice: rows are kept apart by a numbered prefix.
    assert "runs#1/v4-smp-1-dataplane" in page and "runs#2/v4-smp-1-dataplane" in page


def test_findings_beside_rows(tmp_path, runs):
    """The checks' findings appear in the row they name (checks module or not)."""
    from perfsuite.commands.report import scan_files
    from perfsuite.analysis.results import load_runs

    class F:
        def __init__(self, name, severity, message):
            self.name, self.severity, self.message = name, severity, message

    frame = load_runs(runs).frame
    ctx = html.build_context(frame, scan_files([runs]), tmp_path, sources=[str(runs)],
                             findings=[F("v4-smp-1-dataplane", "warning", "3x gain on one vCPU <b>"),
                                       F("elsewhere", "error", "guest saw 1 queue")])
    row = next(r for r in ctx["table"] if r["name"] == "v4-smp-1-dataplane")
    assert row["notes"] == [{"severity": "warning", "message": "3x gain on one vCPU <b>"}]
    assert ctx["general_notes"][0]["row"] == "elsewhere"
    page = html.render(ctx)
    assert "3x gain on one vCPU &lt;b&gt;" in page and "guest saw 1 queue" in page


@pytest.mark.parametrize("args, message", [
    ([], "give at least one RUNS_DIR"),
    (["/nonexistent/runs"], "does not exist"),
    (["{runs}", "--baseline", "{runs}"], "--baseline and --candidate go together"),
    (["{runs}", "--history", "/nonexistent.sqlite"], "does not exist"),
    (["{empty}"], "no fio results"),
])
def test_cli_errors_one_line_exit_2(tmp_path, runs, args, message):
    (tmp_path / "empty").mkdir()
    args = [a.format(runs=runs, empty=tmp_path / "empty") for a in args]
    res = CliRunner().invoke(report, [*args, "-o", str(tmp_path / "out")])
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_cli_missing_output(runs):
    res = CliRunner().invoke(report, [str(runs)])
    assert res.exit_code == 2 and res.output.strip() == "error: give the report directory with -o DIR (e.g. -o reports/example/)"


def test_axes_of_names():
    assert html.axes_of("v4-smp-4-dataplane") == ("v4-smp-4", True, True)
    assert html.axes_of("v4-smp-4-no-dataplane-no-mq") == ("v4-smp-4", False, False)
    assert html.axes_of("v4-smp-2-dataplane-no-mq-qs-64") == ("v4-smp-2-qs-64", True, False)
    # one vCPU without -nq-N: one queue, not multiqueue (perfsuite.matrix.axes.multiqueue)
    assert html.axes_of("runs#1/v4-smp-1-no-dataplane") == ("runs#1/v4-smp-1", False, False)
    assert html.axes_of("qemu-7.2-smp-1-dataplane-nq-4") == ("qemu-7.2-smp-1", True, True)
    assert html.axes_of("v4-smp-4-dataplane-nq-2-qs-64") == ("v4-smp-4-qs-64", True, True)
    assert html.axes_of("custom", dataplane=True, num_queues=1) == ("custom", True, False)
    # meta wins: the runner names a 1-vCPU guest without -no-mq, but it has one queue
    assert html.axes_of("qemu-7.2-smp-1-dataplane", dataplane=True, num_queues=1) == ("qemu-7.2-smp-1", True, False)
    assert html.axes_of("custom") == ("custom", None, None)


def test_nq_rows_find_their_one_queue_twin():
    """`-nq-N` rows (num-queues neither 1 nor the vCPU count) pair with the one-queue row of
    the same configuration, as the checks' multiqueue bound pairs them."""
    names = ["v1-smp-1-dataplane", "v1-smp-1-dataplane-nq-4", "v1-smp-4-dataplane",
             "v1-smp-4-dataplane-nq-2", "v1-smp-4-dataplane-no-mq"]
    axes = {n: html.axes_of(n) for n in names}
    by_name = {n: [1000.0 * (i + 1), 1010.0 * (i + 1), 990.0 * (i + 1)] for i, n in enumerate(names)}
    pairs = {(s["mq"], s["no_mq"]) for s in html._speedups(names, axes, by_name)}
    assert pairs == {("v1-smp-1-dataplane-nq-4", "v1-smp-1-dataplane"),
                     ("v1-smp-4-dataplane", "v1-smp-4-dataplane-no-mq"),
                     ("v1-smp-4-dataplane-nq-2", "v1-smp-4-dataplane-no-mq")}


def test_multiqueue_has_one_definition():
    from perfsuite.matrix.axes import multiqueue
    from perfsuite.matrix.config import Config

    assert [multiqueue(v) for v in (1, 2, 4.0, "8", None, float("nan"), "x")] == [False, True, True, True,
                                                                                  None, None, None]
    assert Config(name="a", smp=4, num_queues=2).mq and not Config(name="b", smp=4, num_queues=1).mq


def test_speedup_ci_matches_compare():
    """The speedup's interval is the one perfsuite.analysis.comparison would give for the same two samples."""
    import numpy as np

    from perfsuite.analysis import stats

    mq, one = [2.0, 2.3, 1.8, 2.2, 2.1], [1.0, 1.2, 0.9, 1.1, 1.05]
    r, lo, hi = html.ratio_ci(mq, one)
    w = stats.welch(stats.pack([one]), stats.pack([mq]))
    assert np.allclose([r, lo, hi], [w.ratio[0], w.ci_low[0], w.ci_high[0]])
    assert np.isnan(html.ratio_ci([2.0], one)[1])


def test_rel_href_encodes_every_segment(tmp_path):
    f = tmp_path / "runs" / "a b" / "javascript:x#y?.json"
    assert html.rel_href(f, tmp_path / "reports" / "r") == "../../runs/a%20b/javascript%3Ax%23y%3F.json"


def _history_db(path: Path, runs: Path, nights: int = 12) -> Path:
    """A nightly history recorded through perfsuite.nightly.history, with a 20% step in one config."""
    import numpy as np

    from perfsuite.nightly import history as H
    from perfsuite.analysis.comparison import compare
    from perfsuite.analysis.results import load_runs

    base = load_runs(runs).frame
    db = H.open_history(path)
    rng = np.random.default_rng(0)
    for i in range(nights):
        cand = base.copy()
        step = np.where((cand["name"] == "v4-smp-4-dataplane") & (i >= nights // 2), 0.8, 1.0)
        cand["iops"] = cand["iops"] * step * rng.normal(1, 0.01, len(cand))
        H.record_night(db, f"2026-11-{i + 1:02d}", compare(base, cand), {"host": "testhost"})
    db.close()
    return path


def test_history_section(tmp_path, runs):
    db = _history_db(tmp_path / "history.sqlite", runs)
    before = db.read_bytes()
    page, _ = build(tmp_path, str(runs), "--history", str(db))
    assert 'id="history"' in page and "12 night(s)" in page
    assert page.count("data:image/png;base64,") == 5
    assert ">smp-4-dataplane</code></td><td>2026-11-07" in page  # the step's first night (label-free name)
    assert db.read_bytes() == before  # the report never writes to the history


def test_history_not_a_database(tmp_path, runs):
    bad = tmp_path / "bad.sqlite"
    bad.write_text("not sqlite")
    res = CliRunner().invoke(report, [str(runs), "--history", str(bad), "-o", str(tmp_path / "o")])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert str(bad) in res.output


def test_unusable_and_failed_runs_are_marked(tmp_path, fio_outputs):
    runs = make_runs_tree(tmp_path / "runs", fio_outputs, configs=CONFIGS[:2])
    d = runs / "v4-smp-1-dataplane"
    (d / "4.json").write_text("<<<<<<< HEAD\n{}\n=======\n>>>>>>> other\n")  # git conflict markers
    (d / "5.meta.json").write_text(json.dumps(_meta("v4-smp-1-dataplane", 5, 1, True, True, "v4",
                                                    status="timeout", error="guest did not power off")))
    (d / "5.log").write_text("boot\nrcu: INFO: rcu_sched self-detected stall\n")
    page, _ = build(tmp_path, str(runs))
    assert "Data warnings" in page and "4.json" in page
    assert '<span class="status bad">not used</span>' in page
    assert '<span class="status bad">timeout</span>' in page and "rcu_sched self-detected stall" in page
