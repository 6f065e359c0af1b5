"""`lab check`: per-host outcome of the check playbook -> one row of the lab's table (pure)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from perfsuite.lab.ansible import HostOutcome
from perfsuite.lab.inventory import LabHost

# What Ansible says when the host's Python cannot run its modules (missing, too old, broken)
_PYTHON_BAD = re.compile(r"interpreter|python[\d.]*: (not found|No such file)|No such file or directory"
                         r"|SyntaxError|ModuleNotFoundError|MODULE FAILURE|not found", re.I)


@dataclass
class CheckRow:
    host: str
    cls: str
    status: str            # ok | unreachable | python | failed
    cpu: str = ""
    cores: int | None = None
    memory_mb: int | None = None
    kernel: str = ""
    kvm: str = ""
    perfsuite: str = ""
    note: str = ""


def row(h: LabHost, o: HostOutcome | None) -> CheckRow:
    r = CheckRow(h.name, h.cls, "ok")
    if o is None:
        return _bad(r, "unreachable", "no result from Ansible (host skipped?)")
    if o.unreachable:
        return _bad(r, "unreachable", f"unreachable: {o.unreachable}")
    facts = (o.results.get("facts") or {}).get("ansible_facts") or {}
    if o.failed and not facts:
        interp = h.vars.get("ansible_python_interpreter", "auto-discovered python")
        if _PYTHON_BAD.search(o.failed):
            return _bad(r, "python", f"Python {interp} unusable: {o.failed.split(': ', 1)[-1]} "
                                     "(set ansible_python_interpreter to a working python3 >= 3.8)")
        return _bad(r, "failed", o.failed)
    proc = facts.get("ansible_processor") or []
    r.cpu = next((p for p in reversed(proc) if not str(p).isdigit() and p not in ("GenuineIntel", "AuthenticAMD")), "")
    r.cores = facts.get("ansible_processor_vcpus")
    r.memory_mb = facts.get("ansible_memtotal_mb")
    r.kernel = facts.get("ansible_kernel", "")
    kvm = _kvm(o.results.get("kvm") or {})
    r.kvm, r.perfsuite = kvm.get("kvm"), kvm.get("perfsuite")
    if kvm.get("note"):
        r.note = kvm["note"]
    if o.failed:
        r.status, r.note = "failed", o.failed
    return r


def _bad(r: CheckRow, status: str, note: str) -> CheckRow:
    r.status, r.note = status, note
    return r


def _kvm(res: dict) -> dict:
    try:
        info = json.loads(res.get("stdout") or "")
    except ValueError:
        return {"kvm": "?", "perfsuite": "", "note": res.get("stderr", "")[:200]}
    dev = info.get("kvm_device")
    accel = info.get("accel")
    if accel:
        kvm = "kvm" if accel == "kvm" else f"tcg ({info.get('accel_note') or 'KVM probe failed'})"
    elif dev == "rw":
        kvm = "/dev/kvm rw (no probe boot)"
    else:
        kvm = f"no ({dev})"
    ver = info.get("perfsuite")
    return {"kvm": kvm, "perfsuite": ver or "not set up",
            "note": info.get("qemu_error") or ""}


def table(rows: list[CheckRow]) -> str:
    head = ("host", "class", "status", "cpu", "cores", "mem MB", "kernel", "kvm", "perfsuite")
    body = [(r.host, r.cls, r.status, r.cpu, "" if r.cores is None else str(r.cores),
             "" if r.memory_mb is None else str(r.memory_mb), r.kernel, r.kvm, r.perfsuite)
            for r in rows]
    width = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    fmt = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, width)).rstrip()  # noqa: E731
    lines = [fmt(head)] + [fmt(b) for b in body]
    lines += [f"{r.host}: {r.note}" for r in rows if r.note]
    return "\n".join(lines) + "\n"
