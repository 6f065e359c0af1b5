"""Config, matrix expansion, naming and validation (pure; no QEMU launched)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from perfsuite.matrix.config import (VIRTIO_QUEUE_MAX, Config, ConfigError, load_matrix, parse_matrix,
                              select, validate)

REPO = Path(__file__).resolve().parent.parent
JOB = str(REPO / "jobs" / "fio.job")
CONTRACT_KEYS = {"label", "qemu", "smp", "memory_mb", "num_queues", "dataplane", "iothreads",
                 "queue_size", "backend", "backend_path", "aio", "cache", "fio_job", "numjobs",
                 "iodepth", "runtime", "ramp", "pin", "machine"}


def no_vq(_qemu):
    return SimpleNamespace(vq_mapping=False)


def names(configs):
    return [c.name for c in configs]


def test_default_matrix_is_the_seeds():
    configs = load_matrix(REPO / "jobs" / "matrix.toml", {"label": "v4"})
    assert names(configs) == [
        "v4-smp-4-dataplane", "v4-smp-4-dataplane-no-mq", "v4-smp-4-no-dataplane",
        "v4-smp-4-no-dataplane-no-mq", "v4-smp-1-dataplane", "v4-smp-1-no-dataplane"]
    by = {c.name: c for c in configs}
    assert by["v4-smp-4-dataplane"].num_queues == 4
    assert by["v4-smp-4-dataplane-no-mq"].num_queues == 1
    assert by["v4-smp-4-dataplane"].numjobs == 4 and by["v4-smp-1-dataplane"].numjobs == 1
    assert by["v4-smp-4-no-dataplane"].iothreads == 0
    assert all(Path(c.fio_job).resolve() == Path(JOB) for c in configs)
    validate(configs, probe=no_vq)


def test_ci_matrix_is_small_and_valid():
    configs = load_matrix(REPO / "jobs" / "ci.toml", {"label": "ci"})
    assert 1 <= len(configs) <= 2 and all(c.runtime <= 3 for c in configs)
    validate(configs, probe=no_vq)


def test_label_defaults_from_the_binary():
    configs = parse_matrix({"matrix": {"smp": 2}}, default_label=lambda q: "qemu-9.9")
    assert names(configs) == ["qemu-9.9-smp-2-dataplane"]


def test_to_meta_has_exactly_the_contract_keys():
    c = Config(label="v4", smp=4)
    assert set(c.to_meta()) == CONTRACT_KEYS
    assert c.to_meta()["num_queues"] == 4 and c.mq


def test_num_queues_wins_over_mq_and_is_always_explicit():
    cs = parse_matrix({"matrix": {"label": "x", "smp": 4, "num_queues": [1, 2, 4], "mq": False}})
    assert [c.num_queues for c in cs] == [1, 2, 4]
    assert names(cs) == ["x-smp-4-dataplane-no-mq", "x-smp-4-dataplane-nq-2", "x-smp-4-dataplane"]


def test_varying_axes_are_appended_only_where_they_vary():
    cs = parse_matrix({"defaults": {"label": "x", "iodepth": 8},
                       "matrix": {"smp": [1, 2], "queue_size": [128, 256], "fio_job": ["a.job", "b/fio-latency.job"]}})
    assert "x-smp-1-dataplane-qs-128-a" in names(cs)
    assert "x-smp-2-dataplane-qs-256-fio-latency" in names(cs)
    assert not any("qd-" in n or "jobs-" in n for n in names(cs))  # derived numjobs is not an axis


def test_explicit_config_entries_and_names():
    doc = {"defaults": {"label": "x"}, "matrix": {"smp": 2},
           "config": [{"smp": 1, "dataplane": False}, {"smp": 2, "pin": True, "name": "pinned"}]}
    cs = parse_matrix(doc)
    assert names(cs)[:2] == ["x-smp-2-dataplane-no-pin", "x-smp-1-no-dataplane-no-pin"]
    assert names(cs)[2] == "pinned" and cs[2].pin


def test_identical_configs_collapse():
    cs = parse_matrix({"matrix": {"label": "x", "smp": 1, "mq": [True, False]}})
    assert names(cs) == ["x-smp-1-dataplane"]


def test_overrides_replace_matrix_values():
    cs = parse_matrix({"matrix": {"label": "x", "smp": 2, "runtime": 60}}, overrides={"runtime": 3, "ramp": None})
    assert cs[0].runtime == 3 and cs[0].ramp == 5


@pytest.mark.parametrize("doc, msg", [
    ({"matrix": {"smpp": 2}}, "unknown matrix key"),
    ({"matrix": {"smp": []}}, "empty list"),
    ({"defaults": {"smp": [1, 2]}}, "put axes in [matrix]"),
    ({"other": {}}, "unknown matrix table"),
    ({}, "no [matrix] table"),
])
def test_bad_matrix_documents(doc, msg):
    with pytest.raises(ConfigError, match=msg.replace("[", r"\[").replace("]", r"\]")):
        parse_matrix(doc)


def test_bad_toml_and_missing_file(tmp_path):
    bad = tmp_path / "m.toml"
    bad.write_text("[matrix\nsmp=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_matrix(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_matrix(tmp_path / "nope.toml")


def test_select_globs():
    cs = parse_matrix({"matrix": {"label": "x", "smp": [1, 4], "dataplane": [True, False]}})
    assert names(select(cs, ["*-smp-4-*"])) == ["x-smp-4-dataplane", "x-smp-4-no-dataplane"]
    assert select(cs, []) == cs


def ok(**kw):
    return Config(**{"label": "x", "fio_job": JOB, **kw})


@pytest.mark.parametrize("cfg, msg", [
    (ok(smp=2, num_queues=0), "num_queues=0"),
    (ok(smp=2, num_queues=VIRTIO_QUEUE_MAX + 1), "VIRTIO_QUEUE_MAX"),
    (ok(smp=0, num_queues=1), "smp=0"),
    (ok(queue_size=1000), "power of 2"),
    (ok(queue_size=2), "power of 2"),
    (ok(memory_mb=64), "at least"),
    (ok(iodepth=0), "iodepth=0"),
    (ok(ramp=-1), "ramp=-1"),
    (ok(backend="nvme"), "backend="),
    (ok(backend="file"), "needs backend_path"),
    (ok(backend="file", backend_path="/nonexistent/disk.img"), "does not exist"),
    (ok(backend="host_device", backend_path=JOB), "not a block device"),
    (ok(backend="file", backend_path=JOB, aio="native", cache="writeback"), "aio=native"),
    (ok(smp=2, iothreads=2), "iothread-vq-mapping"),
    (ok(smp=2, iothreads=0), "at least 1 IOThread"),
    (Config(label="x", fio_job="/nonexistent.job"), "no such file"),
    (ok(label="bad/label"), "letters, digits"),
])
def test_validate_rejects(cfg, msg):
    with pytest.raises(ConfigError, match=msg):
        validate([cfg], probe=no_vq, host_mem_mb=4096)


def test_validate_accepts_the_limits():
    validate([ok(smp=4, num_queues=VIRTIO_QUEUE_MAX), ok(queue_size=1024, name="a"),
              ok(queue_size=4, name="b")], probe=no_vq)
    # where the binary has iothread-vq-mapping, several IOThreads are fine
    validate([ok(smp=4, iothreads=2)], probe=lambda q: SimpleNamespace(vq_mapping=True))


def test_validate_collects_every_problem_in_one_error():
    with pytest.raises(ConfigError) as e:
        validate([ok(smp=0, num_queues=1, name="a"), ok(queue_size=3, name="b")], probe=no_vq)
    text = str(e.value)
    # smp=0 is one problem: numjobs (= smp by default) is not reported again
    assert "2 problem(s)" in text and "a: smp=0" in text and "b: queue_size=3" in text
    assert "numjobs" not in text


@pytest.mark.parametrize("smp", [0, -1, 2.5, "four"])
def test_a_bad_smp_is_one_problem_not_three(smp):
    # num_queues and numjobs follow smp; repeating its error under their names misleads
    with pytest.raises(ConfigError) as e:
        validate([ok(smp=smp, num_queues=None, numjobs=None)], probe=no_vq)
    text = str(e.value)
    assert "\n" not in text and "smp=" in text and "nothing launched" in text


def test_a_bad_smp_with_mq_is_a_config_error_not_a_traceback(tmp_path):
    m = tmp_path / "m.toml"
    m.write_text('[matrix]\nsmp = "four"\nmq = [true, false]\n')
    configs = load_matrix(m, default_label=lambda q: "v")
    with pytest.raises(ConfigError, match="smp='four'"):
        validate(configs, probe=no_vq, check_files=False)


@pytest.mark.parametrize("key, value, msg", [
    ("smp", True, "smp=True"),            # Python's True is 1: it reached QEMU as "-smp True"
    ("num_queues", True, "num_queues=True"),
    ("iodepth", False, "iodepth=False"),
    ("pin", "false", "pin='false': must be true or false"),   # truthy: would pin
    ("dataplane", 0, "dataplane=0: must be true or false"),
])
def test_validate_rejects_booleans_for_numbers_and_others_for_booleans(key, value, msg):
    with pytest.raises(ConfigError, match=msg.replace("(", r"\(")):
        validate([ok(**{key: value})], probe=no_vq)


def test_mq_must_be_a_boolean(tmp_path):
    m = tmp_path / "m.toml"
    m.write_text('[matrix]\nsmp = 4\nmq = "no"\n')
    with pytest.raises(ConfigError, match="mq='no': must be true or false"):
        load_matrix(m, default_label=lambda q: "v")


@pytest.mark.parametrize("text", ["root:x:0:0:root:/root:/bin/bash\n", "[global]\nrw=randread\n", ""])
def test_validate_rejects_a_fio_job_without_a_job(tmp_path, text):
    # fio says "No job(s) defined" in the guest, once per boot: catch it before any launch
    job = tmp_path / "x.job"
    job.write_text(text)
    with pytest.raises(ConfigError, match="no job section"):
        validate([ok(fio_job=str(job))], probe=no_vq)


def test_validate_memory_against_host():
    with pytest.raises(ConfigError, match="more than the host"):
        validate([ok(memory_mb=8192)], probe=no_vq, host_mem_mb=4096)


def test_validate_duplicate_names_and_dead_binary():
    a = ok(smp=2)
    b = a.replace(qemu="/opt/other/qemu")  # same label, other build: same name
    with pytest.raises(ConfigError, match="duplicate name.*own label"):
        validate([a, b], probe=no_vq)
    # one explicit name over a list axis: the hint is about the name, not about QEMU builds
    c = a.replace(smp=4, num_queues=4, numjobs=4)
    with pytest.raises(ConfigError, match="duplicate name.*explicit `name` must not cover a list"):
        validate([a, c], probe=no_vq)

    def dead(_q):
        raise RuntimeError("exec format error")
    with pytest.raises(ConfigError, match="does not run"):
        validate([a], probe=dead)
    with pytest.raises(ConfigError, match="no configuration"):
        validate([], probe=no_vq)
