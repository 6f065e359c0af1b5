"""What `lab setup` ships: a wheel of the controller's checkout, the controller's exact
dependency versions as pip constraints, the controller's cached guest image, and which QEMU
builds each host gets (by its own `perfsuite build`)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path


from perfsuite.errors import PerfsuiteError
from perfsuite.fsutil import sha256_file

# Debian packages a lab host needs to run perfsuite (bootstrap.sh's RUN_PKGS)
HOST_PACKAGES = ["python3", "python3-venv", "qemu-system-x86", "fio", "busybox-static", "cpio",
                 "zstd", "xz-utils", "kmod", "binutils", "procps"]


class ProvisionError(PerfsuiteError, RuntimeError):
    pass


def checkout() -> Path:
    """The source tree perfsuite runs from (an editable install of a checkout)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").exists():
        raise ProvisionError("lab setup builds a wheel from the controller's checkout: install "
                             "perfsuite with `pip install -e .` from one")
    return root


def source_hash(root: Path) -> str:
    """Hash of everything that goes into the wheel: a changed file means a new wheel."""
    h = hashlib.sha256()
    files = [root / "pyproject.toml"] + sorted(
        p for p in (root / "perfsuite").rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for p in files:
        h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def wheel(log=lambda m: None) -> Path:
    """The wheel of this checkout, built once per source hash (so a second setup ships the
    same bytes and changes nothing)."""
    from perfsuite.guest.image import cache_root

    root = checkout()
    out = cache_root() / "lab" / "wheels" / source_hash(root)
    found = sorted(out.glob("perfsuite-*.whl"))
    if found:
        return found[0]
    out.mkdir(parents=True, exist_ok=True)
    prune_wheels(out.parent, keep={out.name})
    log(f"building the perfsuite wheel from {root}")
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                        "-w", str(out), str(root)], capture_output=True, text=True)
    found = sorted(out.glob("perfsuite-*.whl"))
    if p.returncode != 0 or not found:
        raise ProvisionError(f"building the wheel failed: {(p.stderr.strip().splitlines() or ['?'])[-1]}")
    return found[0]


KEEP_WHEELS = 3  # older checkouts' wheels kept beside the current one (another lab may still ship one)


def prune_wheels(wheels: Path, keep: set[str], newest: int = KEEP_WHEELS) -> list[Path]:
    """Remove the wheel directories of older source hashes, all but the `newest` most
    recently used and those in `keep`; every edit of the checkout makes a new one."""
    try:
        dirs = sorted((d for d in wheels.iterdir() if d.is_dir() and d.name not in keep),
                      key=lambda d: d.stat().st_mtime, reverse=True)
    except OSError:
        return []
    gone = dirs[newest:]
    for d in gone:
        shutil.rmtree(d, ignore_errors=True)
    return gone


def constraints() -> str:
    """`name==version` of every distribution beside the controller's perfsuite, so a host
    installs exactly the dependency versions the controller runs with."""
    pins = set()
    for d in metadata.distributions():
        name = d.metadata["Name"]
        if name and name.lower() != "perfsuite":
            pins.add(f"{name}=={d.version}")
    return "\n".join(sorted(pins, key=str.lower)) + "\n"


def build_specs(matrix: str | None, given: tuple[str, ...] = ()) -> list[str]:
    """The QEMU builds setup installs on the hosts: the build specs (debian:, git:) a matrix's
    `qemu` names, and each --build SPEC. A plain binary or `system` is not installed (it must
    be on the host already; the packages step installs the system QEMU). Nothing is resolved
    here: the controller does not fetch or build anything itself."""
    from perfsuite.builds.spec import is_build_spec, parse_spec
    specs = [parse_spec(s).text for s in given]   # a malformed spec: one line, exit 2
    if matrix:
        from perfsuite.matrix.config import load_matrix
        specs += [c.qemu for c in load_matrix(matrix, None, lambda q: "lab-setup")]
    return sorted({s for s in specs if is_build_spec(s) and s != "system"})


def setup_vars(staging: Path, apt: bool, log=lambda m: None, builds: list[str] | None = None) -> dict:
    """Build what the setup playbook copies; its extra vars."""
    from perfsuite.guest import ensure_image
    whl = wheel(log)
    staging.mkdir(parents=True, exist_ok=True)
    cons = staging / "constraints.txt"
    cons.write_text(constraints())
    image = ensure_image(log=log)
    return {"perfsuite_wheel": str(whl), "perfsuite_wheel_sha": sha256_file(whl),
            "perfsuite_constraints": str(cons), "perfsuite_image_dir": str(image.directory),
            "perfsuite_image_key": image.key, "perfsuite_apt": apt,
            "perfsuite_packages": HOST_PACKAGES, "perfsuite_builds": list(builds or [])}


def summarize(outcomes: dict, hosts: list) -> tuple[list[str], bool]:
    """Lines saying what setup did per host, and whether every host is set up (pure)."""
    lines, ok = [], True
    for h in hosts:
        o = outcomes.get(h.name)
        if o is None or not o.ok:
            ok = False
            why = "no result" if o is None else (f"unreachable: {o.unreachable}" if o.unreachable else o.failed)
            lines.append(f"{h.name}: FAILED: {why}")
        elif o.changed:
            lines.append(f"{h.name}: changed: {', '.join(o.changed)}")
        else:
            lines.append(f"{h.name}: already set up, nothing changed")
    return lines, ok
