"""Fixtures of the lab tests: real sshd instances on loopback ports, a generated key."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from labhosts import SSHD, Sshd, free_port, inventory_yaml


def _need_tools() -> None:
    if not Path(SSHD).exists():
        pytest.skip("lab tests need sshd (Debian openssh-server): not installed")
    if shutil.which("ssh-keygen") is None:
        pytest.skip("lab tests need ssh-keygen (openssh-client): not installed")


@pytest.fixture(scope="session")
def client_key(tmp_path_factory) -> Path:
    _need_tools()
    d = tmp_path_factory.mktemp("labkey")
    key = d / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


class Lab:
    def __init__(self, root: Path, key: Path, names: list[str]):
        self.root, self.key = root, key
        self.hosts = [Sshd(n, root / n, free_port()) for n in names]

    def start(self) -> "Lab":
        for h in self.hosts:
            h.start(Path(f"{self.key}.pub"))
        return self

    def host(self, name: str) -> Sshd:
        return next(h for h in self.hosts if h.name == name)

    def inventory(self, name: str = "inventory.yml", **kw) -> Path:
        p = self.root / name
        p.write_text(inventory_yaml(self.hosts, self.key, **kw))
        return p

    def stop(self) -> None:
        for h in self.hosts:
            h.kill()


@pytest.fixture
def make_lab(tmp_path, client_key):
    labs: list[Lab] = []

    def make(names=("h1", "h2"), root: Path | None = None) -> Lab:
        lab = Lab(root or tmp_path / "lab", client_key, list(names)).start()
        labs.append(lab)
        return lab

    yield make
    for lab in labs:
        lab.stop()


def perfsuite_env() -> dict[str, str]:
    return {**os.environ, "PERFSUITE_DEBUG": "1"}
