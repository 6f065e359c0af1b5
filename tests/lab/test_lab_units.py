"""The pure parts of the lab: inventory JSON, scheduling, Ansible event parsing, check rows."""

import json

import pytest
from hypothesis import given, settings, strategies as st

from perfsuite.lab.ansible import parse_events
from perfsuite.lab.check import row
from perfsuite.lab.inventory import InventoryError, LabHost, parse_inventory_json
from perfsuite.lab.schedule import assign, expected_seconds, makespan


def test_class_from_variable_group_or_default():
    data = {"_meta": {"hostvars": {"a": {"perfsuite_class": "epyc"}, "b": {}, "c": {}}},
            "all": {"children": ["ungrouped", "skylake"]},
            "ungrouped": {"hosts": ["c"]}, "skylake": {"hosts": ["a", "b"]}}
    hosts = {h.name: h.cls for h in parse_inventory_json(data)}
    assert hosts == {"a": "epyc", "b": "skylake", "c": "default"}


def test_two_groups_without_class_is_one_clear_error():
    data = {"_meta": {"hostvars": {"a": {}}}, "all": {"children": ["x", "y"]},
            "x": {"hosts": ["a"]}, "y": {"hosts": ["a"]}}
    with pytest.raises(InventoryError, match="host a is in groups x, y: set its perfsuite_class"):
        parse_inventory_json(data)


def test_assign_balances_by_expected_time_and_keeps_matrix_order():
    costs = {"big": 100.0, "m1": 50.0, "m2": 50.0, "s": 10.0}
    plan = assign(costs, ["h1", "h2"])
    assert plan == {"h1": ["big", "s"], "h2": ["m1", "m2"]}
    assert makespan(costs, plan) == 110.0


def test_assign_counts_existing_load():
    plan = assign({"x": 5.0}, ["busy", "idle"], load={"busy": 100.0})
    assert plan == {"busy": [], "idle": ["x"]}


@settings(deadline=None)  # a shared 2-core machine: time per example is not the property
@given(st.dictionaries(st.text(min_size=1, max_size=5), st.floats(0, 1000), max_size=30),
       st.integers(1, 6))
def test_assign_places_every_item_exactly_once_within_lpt_bound(costs, n):
    hosts = [f"h{i}" for i in range(n)]
    plan = assign(costs, hosts)
    placed = [i for items in plan.values() for i in items]
    assert sorted(placed) == sorted(costs)
    top = max(costs.values(), default=0.0)
    # greedy onto the least loaded host: at most the mean load plus (1 - 1/n) of the longest
    assert makespan(costs, plan) <= sum(costs.values()) / n + top * (1 - 1 / n) + 1e-6 * (1 + top)
    if n ** len(costs) <= 2000:  # small enough to know the best makespan: LPT is within 4/3 of it
        best = _best_makespan(list(costs.values()), n)
        assert makespan(costs, plan) <= best * 4 / 3 + 1e-6 * (1 + best)


def _best_makespan(costs: list[float], n: int) -> float:
    import itertools
    return min((max(sum(c for c, h in zip(costs, hs) if h == k) for k in range(n))
                for hs in itertools.product(range(n), repeat=len(costs))), default=0.0)


@settings(deadline=None)
@given(st.integers(1, 4), st.integers(1, 5), st.integers(1, 4))
def test_spread_puts_a_configurations_boots_on_different_hosts(configs, boots, n):
    from perfsuite.lab.dispatch import boot_numbers
    hosts = [f"h{i}" for i in range(n)]
    costs = {("default", f"c{c}", b): 10.0 + c for b in range(1, boots + 1) for c in range(configs)}
    plan = assign(costs, hosts, group=lambda k: k[1])
    assert sorted(k for ks in plan.values() for k in ks) == sorted(costs)
    for c in range(configs):
        per_host = [sum(1 for k in plan[h] if k[1] == f"c{c}") for h in hosts]
        # as many hosts as there are boots (or hosts), and no host with two boots more than another
        assert sum(1 for x in per_host if x) == min(boots, n)
        assert max(per_host) - min(per_host) <= 1
    for h in hosts:  # what the host is told to run: exactly its boots, per configuration
        want: dict = {}
        for _, name, b in plan[h]:
            want.setdefault(name, []).append(b)
        assert boot_numbers(plan[h]) == {k: sorted(v) for k, v in want.items()}


def test_boot_plan_keeps_only_the_chosen_boots_and_their_repetitions():
    from types import SimpleNamespace as NS

    from perfsuite.commands.base import parse_boot_numbers
    from perfsuite.errors import BadInput
    from perfsuite.run.runner import boot_plan, continuation_boot
    a, b = NS(name="a"), NS(name="b")
    full = boot_plan([a, b], 3, 2)
    assert [(c.name, k, r) for c, k, r in full] == [
        ("a", 1, [1, 2]), ("b", 1, [1, 2]), ("a", 2, [3, 4]), ("b", 2, [3, 4]),
        ("a", 3, [5, 6]), ("b", 3, [5, 6])]
    numbers = parse_boot_numbers(("a=3,2", "1"), 3)
    assert numbers == {"a": (2, 3), None: (1,)}
    part = boot_plan([a, b], 3, 2, numbers)
    assert [(c.name, k, r) for c, k, r in part] == [("b", 1, [1, 2]), ("a", 2, [3, 4]), ("a", 3, [5, 6])]
    assert parse_boot_numbers((), 3) is None
    for bad in ("a=4", "0", "a=x", "=1"):
        with pytest.raises(BadInput, match="--boot-numbers"):
            parse_boot_numbers((bad,), 3)
    # a boot continued after a timeout keeps its slot's residue: two hosts never collide
    assert continuation_boot(2, 3, {1, 2, 3}) == 5
    assert continuation_boot(2, 3, {2, 5}) == 8
    assert continuation_boot(3, 3, {3}) != continuation_boot(1, 3, {1})


def test_expected_seconds_grows_with_repetitions():
    assert expected_seconds(2, 1, 0) == 0.0
    assert expected_seconds(2, 1, 4) > expected_seconds(2, 1, 2) > 0


def test_events_and_check_row_for_unreachable_and_bad_python():
    lines = [json.dumps({"kind": "unreachable", "host": "a", "task": "facts", "action": "setup",
                         "result": {"msg": "ssh: connect to host 127.0.0.1 port 1: Connection refused"}}),
             json.dumps({"kind": "failed", "host": "b", "task": "facts", "action": "setup",
                         "result": {"msg": "The module interpreter '/x/python3' was not found."}})]
    out = parse_events(lines)
    assert out["a"].unreachable.endswith("Connection refused") and not out["a"].ok
    ra = row(LabHost("a"), out["a"])
    rb = row(LabHost("b", vars={"ansible_python_interpreter": "/x/python3"}), out["b"])
    assert (ra.status, rb.status) == ("unreachable", "python")
    assert "Python /x/python3 unusable" in rb.note


def _pack(tmp_path, host, name="cfg", rep=1, log=b"console", status="ok", tag="a"):
    import tarfile
    src = tmp_path / f"src-{host}-{tag}"
    (src / name).mkdir(parents=True)
    meta = {"name": name, "rep": rep, "status": status, "lab": {"host": host, "class": "default"}}
    if status == "ok":
        (src / name / f"{rep}.json").write_text('{"jobs": []}')
    (src / name / f"{rep}.meta.json").write_text(json.dumps(meta))
    (src / name / f"{rep}.log").write_bytes(log)
    (src / "evil").write_text("x")
    tar = tmp_path / f"{host}-{tag}.tar"
    with tarfile.open(tar, "w") as t:
        for p in src.rglob("*"):
            if p.is_file():
                t.add(p, arcname=str(p.relative_to(src)))
        t.add(src / "evil", arcname="../evil")
    return tar


def test_unpack_counts_a_repetition_once_and_refreshes_its_own_console(tmp_path):
    from perfsuite.lab.collect import unpack
    dest = tmp_path / "runs"
    first = unpack(_pack(tmp_path, "h1"), dest, "h1")
    assert [(a.name, a.rep, a.status) for a in first] == [("cfg", 1, "ok")]
    again = unpack(_pack(tmp_path, "h1", log=b"console + poweroff", tag="b"), dest, "h1")
    assert again == [] and (dest / "cfg" / "1.log").read_bytes() == b"console + poweroff"
    other = unpack(_pack(tmp_path, "h2", log=b"h2's", tag="c"), dest, "h2")
    assert [a.status for a in other] == ["duplicate"]
    assert json.loads((dest / "cfg" / "1.meta.json").read_text())["lab"]["host"] == "h1"
    assert not (tmp_path / "evil").exists()
    # a pack whose metas name another host (e.g. results pushed to resume from) brings nothing
    assert unpack(_pack(tmp_path, "h3", rep=2, tag="d"), dest, "h1") == []


def test_matrix_folder_on_the_host_keeps_the_relative_path_run_records(tmp_path, monkeypatch):
    from pathlib import Path

    from perfsuite.lab.dispatch import input_dir
    monkeypatch.chdir(tmp_path)
    (tmp_path / "jobs").mkdir()
    assert input_dir(Path("jobs/m.toml")) == "jobs"
    assert input_dir(tmp_path / "jobs" / "m.toml") == "jobs"
    assert input_dir(Path("m.toml")) == "."
    assert input_dir(Path("../m.toml")) == "input" == input_dir(Path("/elsewhere/m.toml"))


class _FakeLab:
    """Ansible's side of a lab run, played by hosts in memory (the controller loop is real):
    a dispatched share makes its boots' repetitions by the next collection and ends (rc 0);
    a host in `down` for a collection round is unreachable, its disk kept."""

    def __init__(self, down: dict[str, set[int]]):
        self.down, self.round, self.cmds = down, 0, []
        self.disk: dict[str, list[tuple[str, int]]] = {}   # dispatch dir -> results made there
        self.host_of: dict[str, str] = {}

    def play(self, name, extra, limit):
        from perfsuite.lab.ansible import HostOutcome
        plan, out = extra["perfsuite_plan"], {}
        if name == "collect":
            self.round += 1
        for host in limit:
            if self.round in self.down.get(host, set()):
                out[host] = HostOutcome(host, unreachable="ssh: Connection refused")
                continue
            p = plan[host]
            if name == "run":
                self.cmds.append((host, p["cmd"]))
                self.host_of[p["dir"]] = host
                boots = [int(b) for arg in p["cmd"].split() if arg.startswith("cfg=")
                         for b in arg[4:].split(",")]
                self.disk[p["dir"]] = [("cfg", b) for b in boots]   # repeat 1: boot k is rep k
                out[host] = HostOutcome(host)
            elif name == "collect":
                tar = self._tar(host, p, extra["perfsuite_inbox"])
                info = {"tar": tar, "alive": False, "pid": 1, "rc": 0, "next_since": 1e12}
                out[host] = HostOutcome(host, results={"pack": {"stdout": json.dumps(info)}})
        return out

    def _tar(self, host, p, inbox):
        import io
        import tarfile
        made = self.disk.pop(p["dir"], [])
        if not made:
            return None
        path = f"{inbox}/{host}-{p['seq']}.tar"
        with tarfile.open(path, "w") as t:
            for name, rep in made:
                meta = {"name": name, "rep": rep, "boot": rep, "status": "ok",
                        "lab": {"host": host, "class": "default"}}
                for suffix, body in ((".json", b'{"jobs": []}'), (".meta.json", json.dumps(meta).encode())):
                    info = tarfile.TarInfo(f"{name}/{rep}{suffix}")
                    info.size = len(body)
                    t.addfile(info, io.BytesIO(body))
        return path


def test_a_lost_host_that_comes_back_brings_its_results_and_nothing_counts_twice(tmp_path):
    """--spread, 2 boots: h2 goes silent after dispatch (its boot 2 done on its disk), is lost,
    boot 2 moves to h1; h2 answers again before h1 reports: h2's copy counts (it came home
    first), h1's is dropped as a duplicate, and h2 takes work again."""
    from types import SimpleNamespace as NS

    from perfsuite.commands.base import RunArgs
    from perfsuite.lab.dispatch import LabOptions, LabRun
    from perfsuite.rundir import complete_reps
    matrix = tmp_path / "m.toml"
    matrix.write_text("")
    args = RunArgs(runs_dir=str(tmp_path / "runs"), repeat=1, boots=2, runtime=2, ramp=0)
    fake = _FakeLab(down={"h2": {1, 2}})
    hosts = [LabHost(h, vars={"perfsuite_dir": f"/lab/{h}"}) for h in ("h1", "h2")]
    notes = []
    run = LabRun(hosts, [NS(name="cfg", runtime=2, ramp=0)],
                 LabOptions(matrix, args, poll=0, spread=True), fake,
                 on_event=lambda kind, **d: notes.append(d.get("text", "")))
    try:
        run.run()
    finally:
        run.cleanup()
    first = {h: c for h, c in fake.cmds[:2]}
    assert "cfg=1" in first["h1"] and "cfg=2" in first["h2"]       # one boot on each host
    assert fake.cmds[2][0] == "h1" and "cfg=2" in fake.cmds[2][1]   # h2's boot moved to h1
    assert complete_reps(tmp_path / "runs" / "cfg") == {1, 2}
    meta = json.loads((tmp_path / "runs" / "cfg" / "2.meta.json").read_text())
    assert meta["lab"]["host"] == "h2"
    assert run.duplicates == 1 and run.back == ["h2"] and run.lost == {}
    assert any("h2 is back" in n for n in notes) and not run.not_run and not run.failed


def test_lab_run_of_a_build_spec_without_label_is_one_clear_error(tmp_path):
    from click.testing import CliRunner

    from perfsuite.cli import main
    inv = tmp_path / "inv.yml"
    inv.write_text("all:\n  hosts:\n    h1: {ansible_host: 127.0.0.1, ansible_port: 1}\n")
    m = tmp_path / "m.toml"
    m.write_text('[defaults]\nqemu = "debian:bookworm-backports"\n[matrix]\nsmp = 1\n')
    res = CliRunner().invoke(main, ["lab", "run", str(inv), str(m), "--runs-dir", str(tmp_path / "r")])
    assert res.exit_code == 2, res.output
    assert "is a build spec: give the matrix a `label`" in res.output
    assert not (tmp_path / "r").exists()


def test_old_wheels_are_pruned_but_the_current_and_recent_ones_stay(tmp_path):
    import os

    from perfsuite.lab.provision import prune_wheels

    for i in range(6):
        d = tmp_path / f"hash{i}"
        d.mkdir()
        (d / "perfsuite-0.1.0-py3-none-any.whl").write_bytes(b"w")
        os.utime(d, (1000 + i, 1000 + i))  # hash5 the most recently used
    gone = prune_wheels(tmp_path, keep={"hash0"}, newest=2)
    assert sorted(p.name for p in gone) == ["hash1", "hash2", "hash3"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hash0", "hash4", "hash5"]
    assert prune_wheels(tmp_path / "missing", keep=set()) == []
