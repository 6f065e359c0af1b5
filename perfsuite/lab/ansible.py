"""Run one of perfsuite's shipped playbooks with ansible-playbook; read back per-host outcomes.

Results come through perfsuite's own callback plugin as JSON lines (one per task result),
not from Ansible's screen output, which goes to a log file. `parse_events` is pure.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from perfsuite.errors import PerfsuiteError
from perfsuite.lab.inventory import ansible_bin

HERE = Path(__file__).resolve().parent
PLAYBOOKS = HERE / "playbooks"
CALLBACKS = HERE / "callback"


class AnsibleError(PerfsuiteError, RuntimeError):
    pass


@dataclass
class HostOutcome:
    host: str
    unreachable: str | None = None          # why, when ssh did not get through
    failed: str | None = None               # the first failed task: "task: message"
    changed: list[str] = field(default_factory=list)   # names of tasks that changed something
    results: dict[str, dict] = field(default_factory=dict)  # task name -> result (last wins)

    @property
    def ok(self) -> bool:
        return self.unreachable is None and self.failed is None


def _why(res: dict[str, Any]) -> str:
    text = res.get("msg") or res.get("stderr") or res.get("module_stderr") or res.get("module_stdout") or ""
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    return lines[0][:300] if lines else "failed"


def parse_events(lines: Iterable[str]) -> dict[str, HostOutcome]:
    """JSON lines of the perfsuite_events callback -> host -> outcome (pure)."""
    out: dict[str, HostOutcome] = {}
    for line in lines:
        if not line.strip():
            continue
        ev = json.loads(line)
        o = out.setdefault(ev["host"], HostOutcome(ev["host"]))
        res = ev.get("result", {})
        o.results[ev["task"]] = {**res, "_kind": ev["kind"], "_action": ev.get("action")}
        if ev["kind"] == "unreachable" and o.unreachable is None:
            o.unreachable = _why(res)
        elif ev["kind"] == "failed" and o.failed is None:
            o.failed = f"{ev['task']}: {_why(res)}"
        elif ev["kind"] == "ok" and res.get("changed"):
            o.changed.append(ev["task"])
    return out


@dataclass
class Ansible:
    """How to call ansible-playbook for one inventory."""

    inventory: str
    forks: int = 50
    timeout: int = 10            # ssh connect timeout, seconds
    log_dir: str | None = None   # where Ansible's screen output goes (default: a temp dir)
    elapsed: list[tuple[str, int, float]] = field(default_factory=list)  # (playbook, hosts, s)

    def env(self, events: str) -> dict[str, str]:
        return {**os.environ,
                "ANSIBLE_CALLBACK_PLUGINS": str(CALLBACKS),
                "ANSIBLE_CALLBACKS_ENABLED": "perfsuite_events",
                "PERFSUITE_LAB_EVENTS": events,
                "ANSIBLE_HOST_KEY_CHECKING": "False",
                "ANSIBLE_PIPELINING": "True",
                # one ssh connection per host for the whole run: a collection round every few
                # seconds must not pay a new handshake each time
                "ANSIBLE_SSH_ARGS": "-C -o ControlMaster=auto -o ControlPersist=900s",
                "ANSIBLE_RETRY_FILES_ENABLED": "False",
                "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_TIMEOUT": str(self.timeout),
                "ANSIBLE_FORKS": str(self.forks),
                "ANSIBLE_DEPRECATION_WARNINGS": "False"}

    def play(self, name: str, extra_vars: dict[str, Any] | None = None,
             limit: Sequence[str] | None = None) -> dict[str, HostOutcome]:
        """Run playbooks/NAME.yml; host -> outcome for every host it touched."""
        if limit is not None and not limit:
            return {}
        log_dir = Path(self.log_dir or tempfile.gettempdir())
        log_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="perfsuite-ansible-") as tmp:
            events = Path(tmp) / "events.jsonl"
            events.touch()
            argv = [ansible_bin("ansible-playbook"), "-i", self.inventory, str(PLAYBOOKS / f"{name}.yml")]
            if extra_vars:
                vars_file = Path(tmp) / "vars.json"
                vars_file.write_text(json.dumps(extra_vars))
                argv += ["-e", f"@{vars_file}"]
            if limit is not None:
                argv += ["--limit", ",".join(limit)]
            t0 = time.monotonic()
            with open(log_dir / f"ansible-{name}.log", "a") as log:
                proc = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, env=self.env(str(events)))
            self.elapsed.append((name, len(limit) if limit is not None else -1, time.monotonic() - t0))
            outcomes = parse_events(events.read_text().splitlines())
        # rc 2: some host failed, 4: some unreachable: both are in the outcomes
        if proc.returncode not in (0, 2, 4) and not outcomes:
            raise AnsibleError(f"ansible-playbook {name}.yml exited {proc.returncode} "
                               f"(see {log_dir / f'ansible-{name}.log'})")
        return outcomes
