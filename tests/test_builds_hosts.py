"""Host differences in compare: named in every format, rows marked, --strict-hosts an error,
non-interleaved runs said. Run dirs are the committed examples, copied, with only the host
block (or the times) of the candidate's meta files changed."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from perfsuite.analysis import hosts
from perfsuite.cli import main

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "seed-qemu-7.2"


def _copy(tmp: Path, name: str, edit=None, only: str | None = None) -> Path:
    dest = tmp / name
    shutil.copytree(EXAMPLE, dest)
    for meta_path in dest.glob("*/*.meta.json"):
        meta = orjson.loads(meta_path.read_bytes())
        if edit and (only is None or meta_path.parent.name == only):
            edit(meta)
        meta_path.write_bytes(orjson.dumps(meta))
    hosts._meta.cache_clear()
    return dest


def _xeon(meta):
    meta["host"] = {**meta["host"], "cpu_model": "Intel Xeon", "kernel": "6.1.0-99-amd64"}


def _later(meta):
    for k in ("started", "finished"):
        meta[k] = (datetime.fromisoformat(meta[k]) + timedelta(days=1)).isoformat()


def _compare(*args):
    return CliRunner().invoke(main, ["compare", *map(str, args)])


def test_same_host_no_warning(tmp_path):
    res = _compare(_copy(tmp_path, "a"), _copy(tmp_path, "b"), "--format", "json", "--strict-hosts")
    assert res.exit_code in (0, 1), res.output
    doc = json.loads(res.stdout)
    assert doc["params"]["hosts"] == {} and doc["params"]["interleaved"] is True
    assert all(r["host_diff"] == "" for r in doc["rows"])
    assert not any("hosts differ" in w for w in doc["warnings"])


def test_host_difference_named_in_every_format_and_rows_marked(tmp_path):
    base = _copy(tmp_path, "a")
    cand = _copy(tmp_path, "b", _xeon, only="qemu-7.2-smp-1-dataplane")
    res = _compare(base, cand)
    assert "smp-1-dataplane [host]" in res.stdout
    assert "smp-4-dataplane [host]" not in res.stdout  # only that row's runs differ
    assert "hosts differ (cpu_model: baseline AMD EPYC, candidate AMD EPYC/Intel Xeon; kernel:" in res.stdout
    md = _compare(base, cand, "--format", "markdown").stdout
    assert "smp-1-dataplane [host]" in md and "- warning: hosts differ" in md
    doc = json.loads(_compare(base, cand, "--format", "json").stdout)
    assert doc["params"]["hosts"]["cpu_model"] == {"baseline": ["AMD EPYC"], "candidate": ["AMD EPYC", "Intel Xeon"]}
    marked = {r["config"]: r["host_diff"] for r in doc["rows"]}
    assert marked["smp-1-dataplane"] == "cpu_model, kernel"
    assert marked["smp-4-dataplane"] == ""
    junit = ET.fromstring(_compare(base, cand, "--format", "junit").stdout.split("\n", 1)[1])
    assert "hosts differ" in junit.find("system-err").text
    case = next(tc for tc in junit.iter("testcase") if tc.get("name") == "smp-1-dataplane")
    assert "hosts differ: cpu_model, kernel" in ET.tostring(case, encoding="unicode")


def test_strict_hosts_is_an_error(tmp_path):
    res = _compare(_copy(tmp_path, "a"), _copy(tmp_path, "b", _xeon), "--strict-hosts")
    assert res.exit_code == 2
    line = res.output.strip().splitlines()[-1]
    assert line.startswith("perfsuite compare: error: hosts differ (cpu_model: baseline AMD EPYC, candidate Intel Xeon")


def test_accelerator_and_cores_are_host_facts(tmp_path):
    def kvm4(meta):
        meta["accel"], meta["host"]["cpus"] = "kvm", 4
    doc = json.loads(_compare(_copy(tmp_path, "a"), _copy(tmp_path, "b", kvm4), "--format", "json").stdout)
    assert set(doc["params"]["hosts"]) == {"accel", "cpus"}


def test_not_interleaved_is_said(tmp_path):
    res = _compare(_copy(tmp_path, "a"), _copy(tmp_path, "b", _later), "--format", "json")
    doc = json.loads(res.stdout)
    assert doc["params"]["interleaved"] is False
    assert any(w.startswith("runs were not interleaved: baseline ran 2026-") for w in doc["warnings"])


def test_differences_pure():
    d = hosts.differences({"cpu_model": {"AMD EPYC"}, "cpus": {2}}, {"cpu_model": {"Intel Xeon"}, "cpus": {2}})
    assert d == {"cpu_model": (["AMD EPYC"], ["Intel Xeon"])}
    assert hosts.differences({"kernel": {"a"}}, {}) == {}  # unknown is not a difference


def test_nightly_always_strict_about_hosts(tmp_path):
    """A night whose candidate runs report another host is an error, not a verdict."""
    import synthetic
    from perfsuite.matrix.config import Config
    from perfsuite.nightly import night as N

    def run_one(config, runs_dir, reps, boot):
        for rep in reps:
            synthetic.write_runs(runs_dir, config.name, 1e5, 0.02, 1, seed=rep, config=config.to_meta(),
                                 first_rep=rep)
            if config.label == "candidate":
                p = Path(runs_dir) / config.name / f"{rep}.meta.json"
                meta = orjson.loads(p.read_bytes())
                meta["host"]["cpu_model"] = "Intel Xeon"
                p.write_bytes(orjson.dumps(meta))
        return []

    pairs = N.pair_configs([Config(label="baseline", qemu="/opt/a/qemu", smp=1, runtime=2, ramp=0)],
                           [Config(label="candidate", qemu="/opt/b/qemu", smp=1, runtime=2, ramp=0)])
    with pytest.raises(N.NightlyError, match=r"hosts differ \(cpu_model: baseline perfsuite model, candidate Intel Xeon\)"):
        N.run_night(pairs, tmp_path / "res", tmp_path / "runs", N.NightlyOptions(boots=3), run_one,
                    night="n1", html=False)


def test_the_two_build_example_names_both_builds_and_one_host():
    ex = EXAMPLE.parent / "qemu-7.2-vs-10.0"
    res = _compare(ex / "qemu-7.2", ex / "qemu-10.0", "--format", "json", "--strict-hosts")
    doc = json.loads(res.stdout)
    assert res.exit_code in (0, 1) and len(doc["rows"]) == 6
    assert doc["params"]["hosts"] == {} and doc["params"]["interleaved"] is True
    builds = {orjson.loads(p.read_bytes())["build"]["spec"] for p in ex.glob("qemu-*/*/1.meta.json")}
    assert builds == {"system", "debian:bookworm-backports"}
