#!/usr/bin/env python3
"""Benchmark of `git:` builds: a clean build, a rebuild after a one-file change, a cache hit.

    .venv/bin/python benchmarks/bench_builds.py --repo PATH --ref REF [--jobs 2] [--file hw/block/virtio-blk.c]
                                                [--out benchmarks/RESULTS-builds.md]

  clean build   the build record of git:REPO@REF (configure + ninja from an empty build dir),
                made now if it is not cached (rerun with the cache's work dir removed to remeasure)
  one-file      a commit on top of REF that appends a comment to FILE (made with git
                commit-tree on a throwaway branch, the checkout untouched), resolved through
                the same build directory: what a bisect step costs when one file changed
  cache hit     `perfsuite build git:REPO@REF` in a fresh process (median of 5), and
                builds.resolve() with the in-process memo cleared (median of 5)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
BRANCH = "perfsuite-bench-onefile"


def one_file_commit(repo: Path, ref: str, path: str) -> str:
    """A commit on top of REF whose only change is a comment appended to PATH."""
    def git(*a, **kw):
        return subprocess.run(["git", *a], cwd=repo, check=True, capture_output=True, text=True, **kw).stdout.strip()
    base = git("rev-parse", f"{ref}^{{commit}}")
    blob = git("show", f"{base}:{path}") + f"\n/* perfsuite bench_builds {time.time()} */\n"
    new_blob = git("hash-object", "-w", "--stdin", input=blob)
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(tmp) / "index")}
        subprocess.run(["git", "read-tree", base], cwd=repo, env=env, check=True)
        subprocess.run(["git", "update-index", "--cacheinfo", f"100644,{new_blob},{path}"], cwd=repo, env=env, check=True)
        tree = subprocess.run(["git", "write-tree"], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout.strip()
    env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost"}
    commit = subprocess.run(["git", "commit-tree", tree, "-p", base, "-m", f"bench: touch {path}"], cwd=repo,
                            env=env, check=True, capture_output=True, text=True).stdout.strip()
    git("branch", "-f", BRANCH, commit)
    return commit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo", required=True)
    ap.add_argument("--ref", default="HEAD")
    ap.add_argument("--jobs", type=int, default=os.cpu_count())
    ap.add_argument("--file", default="hw/block/virtio-blk.c")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "RESULTS-builds.md"))
    a = ap.parse_args()
    from perfsuite import builds

    spec = f"git:{a.repo}@{a.ref}"
    clean = builds.resolve(spec, jobs=a.jobs, log=print)
    rec = __import__("orjson").loads((clean.entry / "build.json").read_bytes())
    commit = one_file_commit(Path(a.repo), a.ref, a.file)
    builds._RESOLVED.clear()
    t0 = time.monotonic()
    one = builds.resolve(f"git:{a.repo}@{commit}", jobs=a.jobs, log=print)
    one_s = time.monotonic() - t0
    one_rec = __import__("orjson").loads((one.entry / "build.json").read_bytes())
    hits_cli, hits_api = [], []
    for _ in range(5):
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-m", "perfsuite.cli", "build", spec], check=True, capture_output=True)
        hits_cli.append(time.monotonic() - t0)
        builds._RESOLVED.clear()
        t0 = time.monotonic()
        assert not builds.resolve(spec).built_now
        hits_api.append(time.monotonic() - t0)
    load = os.getloadavg()
    lines = [
        "# Builds: `git:` clean build, one-file rebuild, cache hit", "",
        f"Machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        f"Python {platform.python_version()}, load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
        "(the host was shared with other agents' guests and test suites while this ran: "
        "wall times are upper bounds).", "",
        f"Source: `{spec}` = commit {rec['commit'][:12]} ({rec.get('tag') or 'no tag'}), "
        f"recipe {rec['recipe']}, `ninja -j {rec['jobs']}`.", "",
        "| step | wall | ninja steps | notes |", "|---|---:|---:|---|",
        f"| clean build (configure + ninja qemu-system-x86_64) | {rec['build_seconds']:.0f} s | "
        f"{rec['steps'].get('ninja_steps')} | configure {rec['steps'].get('configure_s', 0):.0f} s, "
        f"ninja {rec['steps'].get('ninja_s', 0):.0f} s, built {rec['built']} |",
        f"| one-file change ({a.file}), same build dir | {one_s:.1f} s | {one_rec['steps'].get('ninja_steps')} | "
        f"ninja {one_rec['steps'].get('ninja_s', 0):.1f} s; the rest is checkout, install, sha256 |",
        f"| cache hit, `perfsuite build SPEC` (fresh process) | {statistics.median(hits_cli):.2f} s | 0 | median of 5 |",
        f"| cache hit, `builds.resolve(SPEC)` | {statistics.median(hits_api) * 1000:.0f} ms | 0 | median of 5; git rev-parse + probe of the binary |",
        "",
    ]
    Path(a.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
