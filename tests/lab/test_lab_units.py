"""The pure parts of the lab: inventory JSON, scheduling, Ansible event parsing, check rows."""

import json

import pytest
from hypothesis import given, strategies as st

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


@given(st.dictionaries(st.text(min_size=1, max_size=5), st.floats(0, 1000), max_size=30),
       st.integers(1, 6))
def test_assign_places_every_item_exactly_once_within_lpt_bound(costs, n):
    hosts = [f"h{i}" for i in range(n)]
    plan = assign(costs, hosts)
    placed = [i for items in plan.values() for i in items]
    assert sorted(placed) == sorted(costs)
    lower = max(sum(costs.values()) / n, max(costs.values(), default=0.0))
    assert makespan(costs, plan) <= lower * 4 / 3 + 1e-6 * (1 + lower)


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
