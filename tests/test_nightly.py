"""perfsuite.nightly.night with a fake runner that writes synthetic runs (known truth): the
interleaving order, verdicts, outputs, history, sequential stops, the throttle wrapper."""

import subprocess
from pathlib import Path
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from click.testing import CliRunner

from perfsuite.nightly import history as H
from perfsuite.nightly import night as N
import synthetic
from perfsuite.commands.nightly import history as history_cmd
from perfsuite.commands.nightly import nightly as nightly_cmd
from perfsuite.analysis.fio import parse_file
from perfsuite.matrix.config import Config
from perfsuite.run.runner import RepOutcome


def pairs(smps=(1, 2)):
    base = [Config(label="baseline", qemu="/opt/a/qemu", smp=s, runtime=2, ramp=0) for s in smps]
    cand = [Config(label="candidate", qemu="/opt/b/qemu", smp=s, runtime=2, ramp=0) for s in smps]
    return N.pair_configs(base, cand)


class FakeRunner:
    """run_one(config, runs_dir, reps, boot): one boot of len(reps) repetitions around
    truth(config) (boot-to-boot CV boot_cv), written to the runs dir and returned as the
    runner's outcomes; logs the calls (name, boot, reps)."""

    def __init__(self, truth, cv=0.03, seed=0, boot_cv=0.0):
        self.truth, self.cv, self.boot_cv, self.calls = truth, cv, boot_cv, []
        self.rng = np.random.default_rng(seed)

    def __call__(self, config, runs_dir, reps, boot):
        self.calls.append((config.name, boot, list(reps)))
        synthetic.write_runs(runs_dir, config.name, self.truth(config), self.cv, len(reps), seed=self.rng,
                             config=config.to_meta(), first_rep=reps[0], per_boot=len(reps),
                             first_boot=boot, boot_cv=self.boot_cv)
        # what run_config returns: one outcome per repetition, with its boot and fio record
        return [RepOutcome(config.name, n, "ok", boot=boot,
                           record=parse_file(Path(runs_dir) / config.name / f"{n}.json")) for n in reps]


def test_pairs_must_differ_only_in_the_build():
    a = [Config(label="x", smp=1)]
    with pytest.raises(N.NightlyError, match="differ beyond"):
        N.pair_configs(a, [Config(label="y", smp=2)])
    with pytest.raises(N.NightlyError, match="collide"):
        N.pair_configs(a, [Config(label="x", smp=1, qemu="/other")])


def test_interleaved_order_and_an_aa_night(tmp_path):
    fake = FakeRunner(lambda c: 1e5 * c.smp)
    res = N.run_night(pairs(), tmp_path / "res", tmp_path / "runs", N.NightlyOptions(boots=3),
                      fake, night="2026-03-01", html=False)
    assert fake.calls[:6] == [("baseline-smp-1-dataplane", 1, [1]), ("candidate-smp-1-dataplane", 1, [1]),
                              ("baseline-smp-1-dataplane", 2, [2]), ("candidate-smp-1-dataplane", 2, [2]),
                              ("baseline-smp-1-dataplane", 3, [3]), ("candidate-smp-1-dataplane", 3, [3])]
    assert res.exit_code == 0 and "regression" not in set(res.comparison.rows["verdict"])
    assert set(res.outputs) == {"summary", "junit", "json"}
    assert res.outputs["summary"].read_text().startswith("# perfsuite nightly 2026-03-01: no regression")
    db = H.open_history(tmp_path / "res" / H.FILENAME)
    assert H.results(db)["base_n"].tolist() == [3, 3]


def test_regression_night_fails_junit_and_exit(tmp_path):
    fake = FakeRunner(lambda c: 1e5 * (0.8 if c.label == "candidate" and c.smp == 2 else 1))
    res = N.run_night(pairs(), tmp_path / "res", tmp_path / "runs", N.NightlyOptions(boots=5),
                      fake, night="n1", html=True)
    assert res.exit_code == 1
    assert res.outputs["html"].stat().st_size > 0  # the night's HTML report is made
    assert not any(w.startswith("no HTML report") for w in res.warnings)
    assert dict(zip(res.comparison.rows["config"], res.comparison.rows["verdict"]))["smp-2-dataplane"] == "regression"
    assert ET.parse(res.outputs["junit"]).getroot().get("failures") == "1"
    assert "REGRESSION" in res.outputs["summary"].read_text()


def test_sequential_stops_early_when_clear(tmp_path):
    fake = FakeRunner(lambda c: 1e5 * (0.7 if c.label == "candidate" and c.smp == 2 else 1), cv=0.01)
    opts = N.NightlyOptions(boots=2, sequential=True, max_boots=30)
    res = N.run_night(pairs(), tmp_path / "res", tmp_path / "runs", opts, fake, night="n1", html=False)
    # Huge drop: the first look at which the Bayes factor can reach 2 configs / alpha = 40
    # at all (its ceiling is (1 + n tau^2)^((n-1)/2): 36 at 5 pairs, 130 at 6).
    assert res.stops["baseline-smp-2-dataplane"] == ("change", 6)
    decision, n = res.stops["baseline-smp-1-dataplane"]
    assert decision == "no change" and n < 30
    assert res.exit_code == 1
    rows = res.comparison.rows.set_index("config")
    assert rows.loc["smp-2-dataplane", "verdict"] == "regression"
    assert rows.loc["smp-1-dataplane", "verdict"] == "no change"
    assert res.comparison.params["test"] == "sequential mixture t"
    # the reported ratio is the bias-adjusted one, near the true 0.7, inside its interval
    r = rows.loc["smp-2-dataplane"]
    assert abs(r.ratio - 0.7) < 0.02 and r.ci_low < r.ratio < r.ci_high


def test_sequential_stop_decides_from_what_the_runner_returned(tmp_path):
    """run_pairs reads the runs dir once per configuration (a resumed night), then only the
    outcomes run_one returns: a runner that writes nothing still gets its stop."""
    rng = np.random.default_rng(1)

    def run_one(config, runs_dir, reps, boot):
        level = 1e5 * (0.7 if config.label == "candidate" else 1.0)
        return [RepOutcome(config.name, n, "ok", boot=boot, record={"iops": level * (1 + 0.01 * rng.standard_normal())})
                for n in reps]

    opts = N.NightlyOptions(boots=2, sequential=True, max_boots=30)
    stops, failures = N.run_pairs(pairs((2,)), tmp_path / "a", tmp_path / "b", opts, run_one)
    assert stops == {"baseline-smp-2-dataplane": ("change", 5)} and failures == []
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_slow_creep_over_nights_is_named(tmp_path):
    """0.5% slower every night from night 8: no night alone is a regression at first,
    but the history names night 8 as the start of a creep."""
    creep = {"f": 1.0}
    fake = FakeRunner(lambda c: 1e5 * (creep["f"] if c.label == "candidate" else 1.0), cv=0.005, seed=3)
    verdicts, reported = [], []
    for i in range(20):
        creep["f"] = 1.0 - 0.005 * max(0, i - 7)
        res = N.run_night(pairs((1,)), tmp_path / "res", tmp_path / f"runs{i}", N.NightlyOptions(boots=4),
                          fake, night=f"2026-04-{i + 1:02d}", html=False)
        verdicts.append(res.comparison.rows["verdict"].iloc[0])
        reported += [(i, r.kind, r.night) for r in res.changes.itertuples()]
    assert "regression" not in verdicts[:12]
    # Reported once, on the night it is first seen, not again every night after.
    assert len(reported) == 1, reported
    db = H.open_history(tmp_path / "res" / H.FILENAME)
    cp = H.detect(H.results(db))
    assert len(cp) == 1 and cp.iloc[0]["kind"] == "creep"
    assert abs(int(cp.iloc[0]["night"][-2:]) - 9) <= 2  # night index 8 = 2026-04-09
    r = CliRunner().invoke(history_cmd, ["--results-dir", str(tmp_path / "res")])
    assert r.exit_code == 0 and "first night of a creep" in r.output and "2026-04-20" in r.output


def test_throttle_wrapper_rewrites_only_the_disk(tmp_path):
    from perfsuite.qemu.argv import build_argv

    fake_qemu = tmp_path / "qemu"
    fake_qemu.write_text("#!/bin/sh\nfor a in \"$@\"; do echo \"$a\"; done\n")
    fake_qemu.chmod(0o755)
    wrapper = N.throttle_wrapper(str(fake_qemu), 1234, tmp_path / "w" / "qemu-throttled")
    argv = build_argv(Config(smp=2), ["-kernel", "k"], tmp_path, accel="tcg")
    out = subprocess.run([str(wrapper)] + argv[1:], capture_output=True, text=True, check=True).stdout.split("\n")
    assert "throttle-group,id=perfsuite-tg0,x-iops-total=1234" in out
    assert "driver=throttle,node-name=disk0,throttle-group=perfsuite-tg0,file=disk0-raw" in out
    assert any(a.startswith("driver=null-co,node-name=disk0-raw,") for a in out)
    assert [a for a in out if a.startswith("virtio-blk-pci")] == [a for a in argv if a.startswith("virtio-blk-pci")]
    plain = subprocess.run([str(wrapper), "-version"], capture_output=True, text=True, check=True).stdout
    assert plain.split() == ["-version"]


def test_cli_errors_are_one_line(tmp_path):
    r = CliRunner().invoke(nightly_cmd, ["--baseline-qemu", "q", "--candidate-qemu", "q",
                                         "--matrix", str(tmp_path / "none.toml")])
    assert r.exit_code == 2 and "error:" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(nightly_cmd, ["--baseline-qemu", "q", "--candidate-qemu", "q",
                                         "--baseline-label", "x", "--candidate-label", "x"])
    assert r.exit_code == 2 and "must differ" in r.output
    (tmp_path / H.FILENAME).write_bytes(b"garbage" * 200)
    r = CliRunner().invoke(history_cmd, ["--results-dir", str(tmp_path)])
    assert r.exit_code == 2 and "not an SQLite database" in r.output
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    r = CliRunner().invoke(history_cmd, ["--db", str(empty)])
    assert r.exit_code == 2 and "empty file" in r.output
    assert empty.stat().st_size == 0  # viewing never writes a schema into it


def test_schedule_is_runs_boot_plan_a_then_b_per_boot():
    (a, b), = pairs((1,))
    assert N.schedule(a, b, 3, 2) == [(a, 1, [1, 2]), (b, 1, [1, 2]), (a, 2, [3, 4]), (b, 2, [3, 4]),
                                      (a, 3, [5, 6]), (b, 3, [5, 6])]


def test_boots_and_repetitions_per_boot_are_honoured(tmp_path):
    fake = FakeRunner(lambda c: 1e5, cv=0.02, boot_cv=0.02, seed=5)
    res = N.run_night(pairs((1,)), tmp_path / "res", tmp_path / "runs", N.NightlyOptions(boots=4, repeat=3),
                      fake, night="n1", html=False)
    assert [c[1:] for c in fake.calls] == [(k, [3 * k - 2, 3 * k - 1, 3 * k]) for k in (1, 2, 3, 4)
                                           for _ in (0, 1)]
    assert [c[0].split("-")[0] for c in fake.calls] == ["baseline", "candidate"] * 4
    row = res.comparison.rows.iloc[0]
    assert (row.runs_base, row.runs_cand, row.n_base, row.n_cand) == (12, 12, 4, 4)  # unit: the boot
    db = H.open_history(tmp_path / "res" / H.FILENAME)
    assert H.results(db)["base_n"].tolist() == [4]
    assert res.stops == {"baseline-smp-1-dataplane": ("fixed", 4)}


def test_sequential_looks_at_pairs_of_boot_means(tmp_path):
    fake = FakeRunner(lambda c: 1e5 * (0.7 if c.label == "candidate" else 1), cv=0.01, seed=6)
    opts = N.NightlyOptions(boots=2, repeat=2, sequential=True, max_boots=30)
    res = N.run_night(pairs((1,)), tmp_path / "res", tmp_path / "runs", opts, fake, night="n1", html=False)
    # one configuration: alpha 0.05, the Bayes factor's ceiling passes 20 at 5 pairs of boots
    decision, k = res.stops["baseline-smp-1-dataplane"]
    assert decision == "change" and len(fake.calls) == 2 * k
    assert fake.calls[-1][1:] == (k, [2 * k - 1, 2 * k])


def test_cli_needs_two_boots():
    r = CliRunner().invoke(nightly_cmd, ["--baseline-qemu", "q", "--candidate-qemu", "q", "--boots", "1"])
    assert r.exit_code == 2 and "--boots 2 or more" in r.output


def test_repeat_alone_keeps_its_old_meaning_with_a_warning():
    from perfsuite.commands.nightly import night_design

    assert night_design(5, 1, False, False) == (5, 1, None)
    assert night_design(4, 3, True, True) == (4, 3, None)
    assert night_design(5, 3, True, False) == (5, 3, None)
    boots, reps, note = night_design(5, 7, False, True)  # `perfsuite lab nightly` passes --repeat
    assert (boots, reps) == (7, 1) and "--boots 7" in note
    r = CliRunner().invoke(nightly_cmd, ["--baseline-qemu", "q", "--candidate-qemu", "q", "--repeat", "1"])
    assert r.exit_code == 2 and "without --boots" in r.output and "--boots 2 or more" in r.output
