"""`debian:SUITE|VERSION`: Debian's qemu-system-x86 fetched and unpacked, the system untouched.

apt runs with a private configuration under the cache (its own sources list naming the
system's Debian mirror with the release's suites plus -backports, its own package lists), so
`apt-get download` reaches bookworm-backports without enabling it system-wide. The three
packages are unpacked with `dpkg -x`; a small wrapper script runs the binary with its own
firmware (-L) and module (QEMU_MODULE_DIR) directories.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable

from perfsuite.builds import cache
from perfsuite.builds.common import BuildError, write_wrapper
from perfsuite.fsutil import sha256_file

PACKAGES = ("qemu-system-x86", "qemu-system-common", "qemu-system-data")
LISTS_MAX_AGE_S = 24 * 3600
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def parse_os_codename(text: str) -> str | None:
    """VERSION_CODENAME from /etc/os-release text (pure)."""
    m = re.search(r"^VERSION_CODENAME=\"?([a-z]+)\"?\s*$", text, re.M)
    return m.group(1) if m else None


def parse_mirrors(deb822: str, one_line: str, codename: str) -> tuple[str | None, str | None]:
    """(Debian mirror URI, security URI) of the system's apt sources (pure).

    Reads deb822 `.sources` stanzas and classic `deb URI SUITE ...` lines; the mirror is the
    URI that serves SUITE=codename, the security URI the one serving codename-security.
    """
    pairs: list[tuple[str, str]] = []
    for stanza in re.split(r"\n\s*\n", deb822):
        fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.M))
        if "deb" not in fields.get("Types", "").split():
            continue
        for uri in fields.get("URIs", "").split():
            pairs += [(uri, s) for s in fields.get("Suites", "").split()]
    for line in one_line.splitlines():
        m = re.match(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
        if m:
            pairs.append((m.group(1), m.group(2)))
    mirror = next((u for u, s in pairs if s == codename), None)
    security = next((u for u, s in pairs if s == f"{codename}-security"), None)
    return mirror, security


def parse_madison(text: str, package: str) -> list[tuple[str, str]]:
    """[(version, suite)] from `apt-cache madison PKG`, newest first as apt lists them (pure)."""
    out = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) >= 3 and parts[0] == package and "Packages" in parts[2]:
            suite = parts[2].split()[1].split("/")[0] if len(parts[2].split()) > 1 else ""
            out.append((parts[1], suite))
    return out


def pick_version(rows: list[tuple[str, str]], want: str, is_suite: bool) -> str | None:
    """The package version a `debian:` spec names among madison's rows (pure)."""
    for version, suite in rows:
        if is_suite and suite == want:
            return version
        if not is_suite and (version == want or version.split(":", 1)[-1] == want):
            return version
    return None


def sources_list(mirror: str, security: str | None, codename: str, keyring: str | None) -> str:
    opt = f"[signed-by={keyring}] " if keyring else ""
    lines = [f"deb {opt}{mirror} {codename}{s} main" for s in ("", "-updates", "-backports")]
    if security:
        lines.append(f"deb {opt}{security} {codename}-security main")
    return "\n".join(lines) + "\n"


class PrivateApt:
    """apt-get / apt-cache with the cache's own sources list and package lists."""

    def __init__(self, root: Path, log: Callable[[str], None]):
        self.root, self.log = root, log
        self.lists = root / "lists"

    def opts(self) -> list[str]:
        return ["-o", f"Dir::Etc::sourcelist={self.root / 'sources.list'}",
                "-o", "Dir::Etc::sourceparts=-", "-o", f"Dir::State::Lists={self.lists}",
                "-o", f"Dir::Cache={self.root / 'cache'}"]

    def run(self, tool: str, *args: str, cwd: Path | None = None) -> str:
        argv = [tool, *self.opts(), *args]
        try:
            p = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise BuildError(f"{tool} {' '.join(args)}: {e}") from None
        if p.returncode != 0:
            tail = (p.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise BuildError(f"{tool} {' '.join(args[:2])}: exited {p.returncode}: {tail}")
        return p.stdout

    def update(self, force: bool = False) -> None:
        with cache.locked(self.root / "apt"):
            text = _system_sources()
            src = self.root / "sources.list"
            stamp = self.lists / ".updated"
            fresh = (stamp.exists() and time.time() - stamp.stat().st_mtime < LISTS_MAX_AGE_S
                     and src.exists() and src.read_text() == text)
            if fresh and not force:
                return
            (self.lists / "partial").mkdir(parents=True, exist_ok=True)
            (self.root / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
            src.write_text(text)
            self.log("apt-get update (private lists under the build cache) ...")
            self.run("apt-get", "update", "-q")
            stamp.touch()

    def version_for(self, want: str, is_suite: bool) -> str:
        self.update()
        rows = parse_madison(self.run("apt-cache", "madison", PACKAGES[0]), PACKAGES[0])
        version = pick_version(rows, want, is_suite)
        if version is None:
            self.update(force=True)
            rows = parse_madison(self.run("apt-cache", "madison", PACKAGES[0]), PACKAGES[0])
            version = pick_version(rows, want, is_suite)
        if version is None:
            known = ", ".join(f"{v} ({s})" for v, s in rows) or "none"
            raise BuildError(f"debian:{want}: no {PACKAGES[0]} there (known: {known})")
        return version


def _system_sources() -> str:
    osr = Path("/etc/os-release").read_text() if Path("/etc/os-release").exists() else ""
    codename = parse_os_codename(osr)
    if not codename:
        raise BuildError("debian: builds need a Debian system (no VERSION_CODENAME in /etc/os-release)")
    deb822 = "\n\n".join(p.read_text() for p in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")))
    classic = "\n".join(p.read_text() for p in [Path("/etc/apt/sources.list"),
                                                  *sorted(Path("/etc/apt/sources.list.d").glob("*.list"))]
                        if p.exists())
    mirror, security = parse_mirrors(deb822, classic, codename)
    if not mirror:
        raise BuildError(f"debian: no apt source serves {codename}; cannot find the Debian mirror")
    return sources_list(mirror, security, codename, KEYRING if Path(KEYRING).exists() else None)


def entry_for(root: Path, version: str) -> Path:
    return root / "debian" / re.sub(r"[^A-Za-z0-9.+~-]", "_", version)


def make(partial: Path, apt: PrivateApt, version: str, spec: str) -> dict:
    """Download and unpack the packages into `partial`; return the build record."""
    debs = partial / "debs"
    debs.mkdir()
    apt.log(f"apt-get download qemu-system-x86 {version} (+ -common, -data) ...")
    apt.run("apt-get", "download", "-q", *(f"{p}={version}" for p in PACKAGES), cwd=debs)
    for deb in sorted(debs.glob("*.deb")):
        subprocess.run(["dpkg", "-x", str(deb), str(partial / "root")], check=True)
    shutil.rmtree(debs)
    real = partial / "root/usr/bin/qemu-system-x86_64"
    if not real.exists():
        raise BuildError(f"{spec}: the packages hold no usr/bin/qemu-system-x86_64")
    write_wrapper(partial / "qemu-system-x86_64", "root/usr/bin/qemu-system-x86_64",
                  firmware=["root/usr/share/qemu"], module_dir="root/usr/lib/x86_64-linux-gnu/qemu",
                  note=f"Debian qemu-system-x86 {version}, unpacked with dpkg -x")
    return {"kind": "debian", "spec": spec, "package_version": version,
            "binary": "root/usr/bin/qemu-system-x86_64", "wrapper": "qemu-system-x86_64",
            "binary_sha256": sha256_file(real)}
