"""`git:REPO@REF`: QEMU built from source, one reusable build directory per source + flags.

    CACHE/builds/git/src/<repo>.git            a bare mirror of REPO (the user's checkout is
                                               only read: rev-parse, status)
    CACHE/builds/git/work/<repo>-<flags>/      src/ (a worktree of the mirror, moved from commit
                                               to commit) + build/ (configured once): successive
                                               commits rebuild incrementally, as a bisect wants
    CACHE/builds/git/<commit12>-<key8>/        one commit's installed result, keyed by commit +
                                               configure flags + RECIPE_VERSION
    CACHE/builds/git/logs/<commit12>-<key8>.log the build log (kept when the build fails)

The recipe: QEMU's `configure` with CONFIGURE_FLAGS (x86_64-softmmu, no default features, then
what the matrix uses: TCG, KVM, virtfs for the 9p work dir, linux-aio, io_uring, attr), then
`ninja qemu-system-x86_64`. meson picks up ccache by itself when it is installed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import orjson

from perfsuite.builds import cache
from perfsuite.builds.common import BuildError, write_wrapper
from perfsuite.fsutil import sha256_file
from perfsuite.builds.spec import Spec

RECIPE_VERSION = 1
CONFIGURE_FLAGS = (
    "--target-list=x86_64-softmmu", "--without-default-features",
    "--enable-tcg", "--enable-kvm", "--enable-virtfs", "--enable-attr",
    "--enable-linux-aio", "--enable-linux-io-uring", "--disable-docs", "--disable-install-blobs",
)
# Debian packages a QEMU source build needs (kept equal to bootstrap.sh's BUILD_PKGS).
BUILD_PACKAGES = (
    "git", "gcc", "make", "ninja-build", "pkg-config", "flex", "bison", "bzip2", "python3-venv",
    "libglib2.0-dev", "libpixman-1-dev", "libaio-dev", "liburing-dev", "libfdt-dev", "zlib1g-dev",
    "libattr1-dev", "libcap-ng-dev",
)
# Python tools configure needs: Debian 12's meson (1.0) is older than QEMU 10 accepts (1.5);
# configure's offline venv does not fetch pycotap itself.
PYTHON_TOOLS = ("meson>=1.5,<2", "pycotap==1.3.1")
BINARY = "qemu-system-x86_64"


def _h(obj: object, n: int = 12) -> str:
    return hashlib.sha256(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)).hexdigest()[:n]


def git(*args: str, cwd: Path | None = None, check: bool = True) -> str:
    try:
        p = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=3600)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BuildError(f"git {args[0]}: {e}") from None
    if check and p.returncode != 0:
        tail = (p.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise BuildError(f"git {' '.join(args[:2])}: {tail}")
    return p.stdout.strip() if p.returncode == 0 else ""


def repo_id(repo: str) -> tuple[str, bool]:
    """(identity of the source repository, is it a local path)."""
    p = Path(os.path.expanduser(repo))
    if p.exists():
        return str(p.resolve()), True
    if "://" in repo or ("@" in repo and ":" in repo) or repo.endswith(".git"):
        return repo, False
    raise BuildError(f"git:{repo}: no such directory, and not a URL git can clone")


def ensure_mirror(root: Path, repo: str, rid: str, ref: str, local: bool) -> Path:
    """The cache's bare mirror of `repo`, fetched when `ref` may have moved or is missing."""
    mirror = root / "git" / "src" / f"{_h(rid)}.git"
    with cache.locked(mirror):
        if not (mirror / "HEAD").exists():
            shutil.rmtree(mirror, ignore_errors=True)
            tmp = mirror.with_name(mirror.name + f".partial-{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            git("clone", "--quiet", "--bare", rid if local else repo, str(tmp))
            os.replace(tmp, mirror)
        if not (_is_full_sha(ref) and _has(mirror, ref)):
            git("fetch", "--quiet", "--force", "--tags", rid if local else repo,
                "+refs/heads/*:refs/heads/*", cwd=mirror)
            if local and not _has(mirror, ref):  # a detached HEAD on no branch
                git("fetch", "--quiet", rid, "HEAD", cwd=mirror)
    return mirror


def _is_full_sha(ref: str) -> bool:
    return len(ref) == 40 and all(c in "0123456789abcdef" for c in ref.lower())


def _has(mirror: Path, ref: str) -> bool:
    return subprocess.run(["git", "cat-file", "-e", f"{ref}^{{commit}}"], cwd=mirror,
                          capture_output=True).returncode == 0


def resolve_commit(spec: Spec, root: Path) -> dict:
    """The commit `spec` names, whether the user's checkout is dirty, its tag, the mirror."""
    rid, local = repo_id(spec.value)
    if local:  # REF as the user's checkout means it (HEAD is *their* HEAD)
        commit = git("rev-parse", "--verify", "--quiet", f"{spec.ref}^{{commit}}", cwd=Path(rid), check=False)
        if not commit:
            raise BuildError(f"{spec.text}: {spec.ref!r} is not a commit of {rid}")
        status = git("status", "--porcelain", "--untracked-files=no", cwd=Path(rid), check=False)
        dirty = bool(status) and git("rev-parse", "HEAD", cwd=Path(rid), check=False) == commit
    else:
        dirty = None
    mirror = ensure_mirror(root, spec.value, rid, spec.ref if not local else commit, local)
    if not local:
        commit = git("rev-parse", "--verify", "--quiet", f"{spec.ref}^{{commit}}", cwd=mirror, check=False)
        if not commit:
            raise BuildError(f"{spec.text}: {spec.ref!r} is not a commit of {spec.value}")
    tag = git("describe", "--exact-match", "--tags", commit, cwd=mirror, check=False) or None
    return {"repo": rid, "commit": commit, "checkout_dirty": dirty, "tag": tag, "mirror": mirror}


def entry_for(root: Path, commit: str, flags: tuple[str, ...] = CONFIGURE_FLAGS) -> Path:
    key = _h({"commit": commit, "flags": list(flags), "recipe": RECIPE_VERSION}, 8)
    return root / "git" / f"{commit[:12]}-{key}"


def label_for(commit: str, tag: str | None) -> str:
    return tag or f"g{commit[:7]}"


def is_qemu_tree(src: Path) -> bool:
    try:
        return "project('qemu'" in (src / "meson.build").read_text(errors="replace")[:4000]
    except OSError:
        return False


def ensure_packages(packages: tuple[str, ...], log: Callable[[str], None]) -> None:
    """Install the Debian packages a source build needs, the first time one is asked for."""
    missing = [p for p in packages if subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True).stdout != "install ok installed"]
    if not missing:
        return
    prefix = [] if os.geteuid() == 0 else (["sudo", "-n"] if shutil.which("sudo") else None)
    if prefix is None:
        raise BuildError(f"a source build needs Debian packages {' '.join(missing)} "
                         "(./bootstrap.sh build-deps, as root)")
    log(f"installing the source build's Debian packages: {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],):
        p = subprocess.run(prefix + argv, capture_output=True, text=True, env=env)
        if p.returncode != 0:  # the lists may be stale: update once, then retry
            subprocess.run(prefix + ["apt-get", "update", "-q"], capture_output=True, env=env)
            p = subprocess.run(prefix + argv, capture_output=True, text=True, env=env)
        if p.returncode != 0:
            raise BuildError(f"apt-get install {' '.join(missing)} failed: "
                             f"{(p.stderr.strip().splitlines() or ['?'])[-1]}")


def ensure_python_tools(root: Path, log: Callable[[str], None]) -> Path:
    """A venv under the cache with a meson QEMU accepts; returns its python."""
    venv = root / "tools" / "venv"
    py = venv / "bin" / "python3"
    with cache.locked(venv):
        if not (venv / ".complete").exists():
            shutil.rmtree(venv, ignore_errors=True)
            log(f"creating the build tools venv ({', '.join(PYTHON_TOOLS)}) ...")
            subprocess.run(["python3", "-m", "venv", str(venv)], check=True, capture_output=True)
            p = subprocess.run([str(py), "-m", "pip", "install", "-q", *PYTHON_TOOLS],
                               capture_output=True, text=True)
            if p.returncode != 0:
                raise BuildError(f"pip install {' '.join(PYTHON_TOOLS)}: {p.stderr.strip()[-200:]}")
            (venv / ".complete").touch()
    return py


def _step(argv: list[str], cwd: Path, log_path: Path, what: str, spec: str) -> float:
    """Run one build step, its output appended to the log; one error line naming the log."""
    t0 = time.monotonic()
    with open(log_path, "ab") as logf:
        logf.write(f"\n$ (cd {cwd} && {' '.join(argv)})\n".encode())
        logf.flush()
        p = subprocess.run(argv, cwd=cwd, stdout=logf, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise BuildError(f"{spec}: {what} failed (exit {p.returncode}); log: {log_path}")
    return round(time.monotonic() - t0, 2)


def _checkout(mirror: Path, src: Path, commit: str) -> None:
    if src.exists() and not (src / ".git").exists():
        shutil.rmtree(src)  # an interrupted `worktree add`
    if not src.exists():
        git("worktree", "prune", cwd=mirror)
        git("worktree", "add", "--quiet", "--detach", "--force", str(src), commit, cwd=mirror)
        return
    gitdir = Path(git("rev-parse", "--absolute-git-dir", cwd=src))
    (gitdir / "index.lock").unlink(missing_ok=True)  # left by an interrupted checkout; we hold the lock
    # checkout rewrites only the files that differ, so ninja rebuilds only what they touch
    git("checkout", "--quiet", "--force", "--detach", commit, cwd=src)
    if git("rev-parse", "HEAD", cwd=src) != commit:
        raise BuildError(f"{src}: checkout of {commit} did not take")


def make(partial: Path, root: Path, spec: Spec, info: dict, jobs: int | None,
         log: Callable[[str], None]) -> dict:
    """Check out, configure (once per build dir), ninja, install into `partial`; the record."""
    commit, mirror = info["commit"], info["mirror"]
    work = root / "git" / "work" / f"{_h(info['repo'])}-{_h(list(CONFIGURE_FLAGS), 8)}"
    log_path = root / "git" / "logs" / f"{partial.name.split('.partial')[0].lstrip('.')}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text(f"perfsuite build {spec.text}: commit {commit}\n")
    steps: dict[str, float] = {}
    with cache.locked(work):
        work.mkdir(parents=True, exist_ok=True)
        src, build = work / "src", work / "build"
        _checkout(mirror, src, commit)
        qemu_tree = is_qemu_tree(src)
        ensure_packages(BUILD_PACKAGES if qemu_tree else ("ninja-build",), log)
        extra = [f"--python={ensure_python_tools(root, log)}"] if qemu_tree else []
        stamp = build / ".perfsuite-configured"
        want = orjson.dumps([*CONFIGURE_FLAGS, *extra]).decode()
        if not (stamp.exists() and stamp.read_text() == want):
            shutil.rmtree(build, ignore_errors=True)
            build.mkdir()
            log(f"configure {' '.join(CONFIGURE_FLAGS)} ...")
            steps["configure_s"] = _step([str(src / "configure"), *CONFIGURE_FLAGS, *extra],
                                         build, log_path, "configure", spec.text)
            stamp.write_text(want)
        n = jobs or os.cpu_count() or 1
        log(f"ninja -j {n} {BINARY} (commit {commit[:12]}; log {log_path}) ...")
        steps["ninja_s"] = _step(["ninja", "-j", str(n), BINARY], build, log_path, "ninja", spec.text)
        steps["ninja_steps"] = _count_steps(log_path)
        _install(build, partial)
    write_wrapper(partial / BINARY, f"bin/{BINARY}", firmware=["share/qemu"], module_dir=None,
                  note=f"{spec.text} at {commit}")
    shutil.copy2(log_path, partial / "build.log")
    return {"kind": "git", "spec": spec.text, "repo": info["repo"], "ref": spec.ref,
            "commit": commit, "tag": info["tag"], "dirty": False,
            "checkout_dirty": info["checkout_dirty"], "configure_flags": list(CONFIGURE_FLAGS),
            "recipe": RECIPE_VERSION, "ccache": bool(shutil.which("ccache")),
            "binary": f"bin/{BINARY}", "wrapper": BINARY,
            "binary_sha256": sha256_file(partial / "bin" / BINARY), "steps": steps,
            "jobs": n, "python": sys.version.split()[0]}


def _count_steps(log_path: Path) -> int | None:
    """How many steps the last ninja ran ("[N/M]" of its last progress line), or None."""
    import re
    last = None
    with open(log_path, "rb") as f:
        for m in re.finditer(rb"^\[(\d+)/(\d+)\]", f.read(), re.M):
            last = int(m.group(2))
    return last


def _install(build: Path, partial: Path) -> None:
    """The binary and the firmware the build made (pc-bios, links resolved) into `partial`."""
    binary = build / BINARY
    if not binary.is_file():
        raise BuildError(f"the build left no {BINARY} in {build}")
    (partial / "bin").mkdir()
    shutil.copy2(binary, partial / "bin" / BINARY)
    share = partial / "share" / "qemu"
    if (build / "pc-bios").is_dir():
        shutil.copytree(build / "pc-bios", share, symlinks=False, ignore_dangling_symlinks=True,
                        ignore=shutil.ignore_patterns("*.o", "*.d", "*.img", "meson*", "optionrom"))
        for rom in (build / "pc-bios" / "optionrom").glob("*.bin"):
            shutil.copy2(rom, share / rom.name)
    else:
        share.mkdir(parents=True)
