"""What runs ON a lab host, inside its venv: `python -m perfsuite.lab.remote probe|pack|stop`.

Each prints one JSON object on stdout for the controller to read through Ansible.
  probe  KVM (as `perfsuite run --accel auto` decides it), QEMU and perfsuite versions
  pack   tar the results of one dispatch that changed since a time; report the job's state
  stop   SIGTERM the dispatch's `perfsuite run`, wait, and make sure none of its QEMU is left
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tarfile
import time
from pathlib import Path

RESULT_SUFFIXES = (".json", ".meta.json", ".log")


def probe(boot: bool) -> dict:
    import perfsuite
    from perfsuite.qemu.accel import kvm_usable
    from perfsuite.qemu.features import QemuNotRunnable, probe as qemu_probe
    info: dict = {"perfsuite": getattr(perfsuite, "__version__", None) or _version(),
                  "python": sys.version.split()[0]}
    why = kvm_usable()
    info["kvm_device"] = "rw" if why is None else why
    try:
        info["qemu"] = qemu_probe("qemu-system-x86_64").version
    except QemuNotRunnable as e:
        info["qemu"] = None
        info["qemu_error"] = str(e)
    if boot and info["qemu"]:
        from perfsuite.guest import ensure_image
        from perfsuite.qemu.accel import resolve_accel
        try:
            choice = resolve_accel("auto", "qemu-system-x86_64", ensure_image())
            info["accel"], info["accel_note"] = choice.accel, choice.note
        except Exception as e:  # noqa: BLE001 - reported in the check's table, not raised
            info["accel"], info["accel_note"] = None, f"{type(e).__name__}: {e}"
    return info


def _version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("perfsuite")
    except PackageNotFoundError:
        return None


def _results(runs: Path, host: str, since: float) -> list[Path]:
    """Files of results made by this host (its meta names it) that changed after `since`."""
    files: list[Path] = []
    for meta in runs.rglob("*.meta.json"):   # NAME/N, or SIDE/NAME/N for a night
        try:
            m = json.loads(meta.read_bytes())
        except (OSError, ValueError):
            continue  # being written: next time
        if (m.get("lab") or {}).get("host") != host:
            continue  # pushed by the controller (made elsewhere), or not from a lab run
        n = meta.name[: -len(".meta.json")]
        group = [meta.parent / f"{n}{s}" for s in RESULT_SUFFIXES]
        group = [p for p in group if p.exists()]
        if max(p.stat().st_mtime for p in group) > since:
            files += group
    return files


def _job_state(d: Path) -> dict:
    pid = rc = None
    alive = False
    try:
        pid = int((d / "pid").read_text().strip())
        alive = _alive(pid)
    except (OSError, ValueError):
        pass
    try:
        rc = int((d / "rc").read_text().strip())
    except (OSError, ValueError):
        pass
    return {"pid": pid, "alive": alive, "rc": rc}


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def pack(d: Path, host: str, since: float, seq: int) -> dict:
    """Tar this dispatch's new results as d/pack-SEQ.tar (older packs removed)."""
    state = _job_state(d)  # before the scan: a job that is done now has written everything
    started = time.time()
    for old in d.glob("pack-*.tar"):
        old.unlink()
    files = _results(d / "runs", host, since)
    out = d / f"pack-{seq}.tar"
    if files:
        with tarfile.open(out, "w") as tar:
            for p in files:
                tar.add(p, arcname=str(p.relative_to(d / "runs")))
    n = len({(p.parent, p.name.split(".")[0]) for p in files})
    return {**state, "results": n, "files": len(files), "tar": str(out) if files else None,
            "bytes": out.stat().st_size if files else 0,
            # a file written during the scan has mtime >= started: it is sent again next time
            "next_since": started - 1.0}


def stop(d: Path, grace: float) -> dict:
    state = _job_state(d)
    if state["alive"]:
        os.kill(state["pid"], signal.SIGTERM)   # perfsuite stops its guest and exits
        deadline = time.monotonic() + grace
        while _alive(state["pid"]) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(state["pid"]):
            os.kill(state["pid"], signal.SIGKILL)
    # QEMU dies with its runner (PR_SET_PDEATHSIG); anything left under this dispatch's work
    # root is ours alone, so it may be killed by that path.
    left = _qemu_under(d / "work")
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return {**state, "stopped": True, "qemu_killed": len(left)}


def _qemu_under(work: Path) -> list[int]:
    found = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd and b"qemu-system" in cmd[0] and any(str(work).encode() in a for a in cmd):
            found.append(int(p.name))
    return found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m perfsuite.lab.remote")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("probe")
    p.add_argument("--boot", action="store_true", help="boot the KVM probe guest")
    p = sub.add_parser("pack")
    p.add_argument("dir", type=Path)
    p.add_argument("--host", required=True)
    p.add_argument("--since", type=float, default=0.0)
    p.add_argument("--seq", type=int, default=0)
    p = sub.add_parser("stop")
    p.add_argument("dir", type=Path)
    p.add_argument("--grace", type=float, default=30.0)
    a = ap.parse_args(argv)
    if a.cmd == "probe":
        out = probe(a.boot)
    elif a.cmd == "pack":
        out = pack(a.dir, a.host, a.since, a.seq)
    else:
        out = stop(a.dir, a.grace)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
