"""A test lab on this machine: one real sshd (Debian openssh-server) per "host", each on its
own loopback port with its own host key, authorized key and lab directory."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"
SFTP = "/usr/lib/openssh/sftp-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Sshd:
    name: str
    root: Path          # this host's own files: sshd config, keys, log, lab dir
    port: int
    proc: subprocess.Popen | None = None

    @property
    def lab_dir(self) -> Path:
        return self.root / "lab"

    def start(self, client_pub: Path) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        key = self.root / "ssh_host_ed25519_key"
        if not key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        shutil.copy(client_pub, self.root / "authorized_keys")
        cfg = self.root / "sshd_config"
        cfg.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {key}",
            f"AuthorizedKeysFile {self.root / 'authorized_keys'}", f"PidFile {self.root / 'sshd.pid'}",
            "PermitRootLogin prohibit-password", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no",
            f"Subsystem sftp {SFTP}", "MaxStartups 50:30:100", "MaxSessions 50", ""]))
        Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(cfg)],
                                     stdout=open(self.root / "sshd.log", "ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"sshd {self.name} exited: {(self.root / 'sshd.log').read_text()}") from None
                time.sleep(0.1)
        raise RuntimeError(f"sshd {self.name} did not listen on {self.port}")

    def kill(self) -> None:
        """The listener and every session it serves: the host is gone."""
        if self.proc is None:
            return
        for pid in descendants(self.proc.pid):
            _signal(pid, signal.SIGKILL)
        _signal(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def processes_mentioning(text: str, exe: str = "") -> list[tuple[int, str]]:
    """(pid, cmdline) of live processes whose command line contains `text` (and `exe`)."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd and exe in cmd:
            found.append((int(d.name), cmd))
    return found


def inventory_yaml(hosts: list[Sshd], key: Path, extra: dict[str, dict] | None = None,
                   classes: dict[str, str] | None = None) -> str:
    lines = ["all:", "  vars:", "    ansible_user: root", f"    ansible_ssh_private_key_file: {key}",
             "    ansible_python_interpreter: /usr/bin/python3",
             "    ansible_ssh_common_args: '-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'",
             "  hosts:"]
    for h in hosts:
        lines += [f"    {h.name}:", "      ansible_host: 127.0.0.1", f"      ansible_port: {h.port}",
                  f"      perfsuite_dir: {h.lab_dir}"]
        if classes and h.name in classes:
            lines.append(f"      perfsuite_class: {classes[h.name]}")
        for k, v in ((extra or {}).get(h.name) or {}).items():
            lines.append(f"      {k}: {v}")
    return "\n".join(lines) + "\n"
