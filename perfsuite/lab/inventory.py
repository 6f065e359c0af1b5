"""A standard Ansible inventory (YAML or INI) -> the lab's hosts and their hardware classes.

Ansible parses the file (`ansible-inventory --list`), so every inventory form it accepts
works here; this module only reads its JSON. A host's class is its `perfsuite_class`
variable, else its one direct group, else "default": results are compared within a class.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perfsuite.errors import BadInput

DEFAULT_DIR = "/var/tmp/perfsuite-lab"
DEFAULT_CLASS = "default"
_META_GROUPS = {"all", "ungrouped", "_meta"}


class InventoryError(BadInput):
    pass


@dataclass(frozen=True)
class LabHost:
    name: str
    cls: str = DEFAULT_CLASS
    vars: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def dir(self) -> str:
        """The host's lab directory: venv, guest image cache, runs (perfsuite_dir)."""
        return str(self.vars.get("perfsuite_dir") or DEFAULT_DIR)


def parse_inventory_json(data: dict[str, Any]) -> list[LabHost]:
    """`ansible-inventory --list` output -> hosts in inventory order (pure)."""
    hostvars = data.get("_meta", {}).get("hostvars", {})
    direct: dict[str, list[str]] = {}
    order: list[str] = []

    def walk(group: str) -> None:
        entry = data.get(group, {})
        for h in entry.get("hosts", []):
            if h not in direct:
                direct[h] = []
                order.append(h)
            if group not in _META_GROUPS:
                direct[h].append(group)
        for child in entry.get("children", []):
            walk(child)

    walk("all")
    hosts = []
    for h in order:
        hv = hostvars.get(h, {})
        cls = hv.get("perfsuite_class")
        if not cls:
            groups = sorted(set(direct[h]))
            if len(groups) > 1:
                raise InventoryError(f"host {h} is in groups {', '.join(groups)}: set its "
                                     "perfsuite_class variable to say which is its hardware class")
            cls = groups[0] if groups else DEFAULT_CLASS
        hosts.append(LabHost(h, str(cls), dict(hv)))
    return hosts


def ansible_bin(tool: str) -> str:
    """An Ansible tool from the same environment as this Python, else from PATH."""
    import shutil
    import sys
    beside = Path(sys.executable).parent / tool
    if beside.exists():
        return str(beside)
    found = shutil.which(tool)
    if not found:
        raise BadInput(f"{tool} not found: install ansible-core (pip install ansible-core)")
    return found


def load_inventory(path: str | os.PathLike) -> list[LabHost]:
    p = Path(path)
    if not p.exists():
        raise InventoryError(f"inventory {p} not found")
    out = subprocess.run([ansible_bin("ansible-inventory"), "-i", str(p), "--list"],
                         capture_output=True, text=True, env={**os.environ, "ANSIBLE_NOCOLOR": "1"})
    warn = [ln for ln in out.stderr.splitlines() if "Unable to parse" in ln or "ERROR" in ln]
    if out.returncode != 0 or warn:
        why = (warn or out.stderr.strip().splitlines() or ["unknown error"])[0]
        raise InventoryError(f"inventory {p}: {why.strip()}")
    hosts = parse_inventory_json(json.loads(out.stdout))
    if not hosts:
        raise InventoryError(f"inventory {p}: no hosts")
    return hosts


def by_class(hosts: list[LabHost]) -> dict[str, list[LabHost]]:
    out: dict[str, list[LabHost]] = {}
    for h in hosts:
        out.setdefault(h.cls, []).append(h)
    return out
