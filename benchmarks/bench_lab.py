#!/usr/bin/env python3
"""Benchmark of the lab's controller costs: dispatch per host, collection per 100 results.

    .venv/bin/python benchmarks/bench_lab.py [--hosts 3] [--rounds 3] [--out benchmarks/RESULTS-lab.md]

A test lab on this machine (one real sshd per "host" on a loopback port, as in
tests/lab/), set up with `perfsuite lab setup` (a no-op when --root holds a set-up lab).
Measured through the shipped playbooks with real Ansible, median of --rounds:

  dispatch   run.yml for 1..N hosts, starting a trivial asynchronous command (`true`)
             instead of `perfsuite run`: what handing out a share costs, per playbook and per host
  collect-0  collect.yml when nothing new is on any host: the cost of one polling round
  collect-R  collect.yml when each host holds 100 new results (a real fio JSON, meta and
             console copied from examples/), plus unpacking them into the controller's runs dir

Wall time and the controller's CPU time (ansible-playbook and its ssh children) are reported;
every "host" shares this machine's CPUs with the controller, so the wall figures include the
hosts' side and overstate what a controller talking to real machines waits for.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "lab"))

from labhosts import Sshd, free_port, inventory_yaml  # noqa: E402

from perfsuite.lab.ansible import Ansible  # noqa: E402
from perfsuite.lab.collect import unpack  # noqa: E402

EXAMPLE = REPO / "examples" / "seed-qemu-7.2" / "qemu-7.2-smp-1-dataplane"


def children_cpu() -> float:
    """CPU of this process (unpacking) and of its children (ansible-playbook, ssh)."""
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_CHILDREN),
                                                 resource.getrusage(resource.RUSAGE_SELF)))


def timed(fn) -> tuple[float, float]:
    c0, t0 = children_cpu(), time.monotonic()
    fn()
    return time.monotonic() - t0, children_cpu() - c0


def fill(host: Sshd, d: Path, n: int) -> None:
    """n results made "by" this host in dispatch dir d (what a finished share leaves)."""
    runs = d / "runs"
    shutil.rmtree(runs, ignore_errors=True)
    meta = json.loads((EXAMPLE / "1.meta.json").read_text())
    meta["lab"] = {"host": host.name, "class": "default"}
    for i in range(n):
        cfg = runs / f"bench-{i // 5:03d}"
        cfg.mkdir(parents=True, exist_ok=True)
        rep = i % 5 + 1
        shutil.copy(EXAMPLE / "1.json", cfg / f"{rep}.json")
        (cfg / f"{rep}.meta.json").write_text(json.dumps({**meta, "rep": rep}))
        shutil.copy(EXAMPLE / "1.log", cfg / f"{rep}.log")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hosts", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--results", type=int, default=100, help="new results per host for collect-R")
    ap.add_argument("--root", type=Path, default=Path("/tmp/perfsuite-bench-lab"))
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "RESULTS-lab.md")
    a = ap.parse_args()
    a.root.mkdir(parents=True, exist_ok=True)
    key = a.root / "id_ed25519"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    hosts = [Sshd(f"b{i}", a.root / f"b{i}", free_port()) for i in range(1, a.hosts + 1)]
    try:
        for h in hosts:
            h.start(Path(f"{key}.pub"))
        inv = a.root / "inventory.yml"
        inv.write_text(inventory_yaml(hosts, key))
        setup = subprocess.run([sys.executable, "-m", "perfsuite.cli", "lab", "setup", str(inv), "--no-apt"],
                               capture_output=True, text=True)
        if setup.returncode != 0:
            print(setup.stdout, setup.stderr, file=sys.stderr)
            return 1
        rows = measure(a, hosts, str(inv))
    finally:
        for h in hosts:
            h.kill()
    write(a, rows)
    return 0


def measure(a, hosts: list[Sshd], inv: str) -> dict:
    ans = Ansible(inv, forks=50)
    inputs = a.root / "inputs"
    inputs.mkdir(exist_ok=True)
    (inputs / "m.toml").write_text("# bench\n")
    rows: dict = {}
    for k in range(1, len(hosts) + 1):
        sub = hosts[:k]
        plan = {h.name: {"dir": str(h.lab_dir / "runs" / "bench" / "d"), "inputs": str(inputs),
                         "input_dir": "input", "push": "", "cmd": "true"} for h in sub}

        def dispatch(plan=plan, sub=sub):
            out = ans.play("run", {"perfsuite_plan": plan}, limit=[h.name for h in sub])
            for h in sub:  # a failed play is fast: only a successful one is a figure
                assert out[h.name].ok, out[h.name]

        rows[f"dispatch {k} host(s)"] = [timed(dispatch) for _ in range(a.rounds)]
    names = [h.name for h in hosts]
    inbox = a.root / "inbox"
    for label, n in (("collect-0", 0), (f"collect-{a.results}", a.results)):
        samples = []
        for r in range(a.rounds):
            for h in hosts:
                fill(h, h.lab_dir / "runs" / "bench" / "d", n)
            shutil.rmtree(inbox, ignore_errors=True)
            inbox.mkdir()
            dest = a.root / "controller-runs"
            shutil.rmtree(dest, ignore_errors=True)
            plan = {h.name: {"dir": str(h.lab_dir / "runs" / "bench" / "d"), "since": 0, "seq": r}
                    for h in hosts}

            def one(plan=plan, r=r, dest=dest, n=n):
                out = ans.play("collect", {"perfsuite_plan": plan, "perfsuite_inbox": str(inbox)}, limit=names)
                for h in hosts:
                    assert out[h.name].ok, out[h.name]
                    tar = inbox / f"{h.name}-{r}.tar"
                    if tar.exists():
                        got = unpack(tar, dest, h.name)
                        assert len(got) == n, (len(got), n)
            samples.append(timed(one))
        rows[f"{label} x {len(hosts)} host(s)"] = samples
    return rows


def write(a, rows: dict) -> None:
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in rows.items()}
    n = a.hosts
    d1, dn = med["dispatch 1 host(s)"], med[f"dispatch {n} host(s)"]
    c0, cr = med[f"collect-0 x {n} host(s)"], med[f"collect-{a.results} x {n} host(s)"]
    per_host_wall = (dn[0] - d1[0]) / max(n - 1, 1)
    per_host_cpu = (dn[1] - d1[1]) / max(n - 1, 1)
    per100_wall = (cr[0] - c0[0]) / n * 100 / a.results
    per100_cpu = (cr[1] - c0[1]) / n * 100 / a.results
    load = os.getloadavg()
    lines = ["# Lab controller costs (bench_lab.py)", "",
             f"Machine: {os.cpu_count()} vCPUs, {platform.platform()}, Python {platform.python_version()}; "
             f"{n} sshd \"hosts\" on loopback ports of the same machine; load average at the end "
             f"{load[0]:.1f} (the sshd hosts share this machine with the controller). Median of {a.rounds} rounds.", "",
             "| what | wall s | controller CPU s |", "|---|---|---|"]
    lines += [f"| {k} | {w:.2f} | {c:.2f} |" for k, (w, c) in med.items()]
    lines += ["", "Derived:", "",
              f"- dispatch: {d1[0]:.2f} s wall for one host; each further host in the same playbook "
              f"adds {per_host_wall:.2f} s wall, {per_host_cpu:.2f} s controller CPU",
              f"- a polling round with nothing new: {c0[0]:.2f} s wall for {n} hosts "
              f"({c0[1] / n:.2f} s controller CPU per host)",
              f"- collection per 100 results (one tar per host and round, fetched, unpacked): "
              f"{per100_wall:.2f} s wall, {per100_cpu:.2f} s controller CPU, beyond the round itself"]
    a.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
