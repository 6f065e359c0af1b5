"""perfsuite.bisect.git and .build on real generated repositories (real git, real recipes)."""

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from bisect_repo import make_repo, write_recipe  # noqa: E402

from perfsuite.bisect.build import Builder  # noqa: E402
from perfsuite.bisect.git import Bisect, GitError, candidates, info, resolve  # noqa: E402


def _git(repo, *a):
    return subprocess.run(["git", "-C", str(repo), *a], capture_output=True, text=True).stdout


def test_resolve_and_candidates(tmp_path):
    h = make_repo(tmp_path / "r", 5, 3)
    assert resolve(tmp_path / "r", "HEAD~4") == h[0]
    assert candidates(tmp_path / "r", h[0], h[4]) == 4
    with pytest.raises(GitError, match="not a commit"):
        resolve(tmp_path / "r", "nope")
    with pytest.raises(GitError, match="not an ancestor"):
        candidates(tmp_path / "r", h[4], h[0])
    with pytest.raises(GitError, match="not a git repository"):
        resolve(tmp_path, "HEAD")
    c = info(tmp_path / "r", h[3])
    assert c.subject == "commit 3: disk completion latency" and c.author_date.startswith("2026-01-04")


def test_bisect_in_a_private_clone_leaves_the_users_repo_alone(tmp_path):
    src = tmp_path / "r"
    h = make_repo(src, 9, 6)
    # the user is in the middle of a bisect of their own, on a branch, with a local edit
    _git(src, "bisect", "start", h[8], h[0])
    before = (_git(src, "bisect", "log"), _git(src, "rev-parse", "HEAD"), _git(src, "status", "--porcelain"),
              sorted(os.listdir(src / ".git")))
    b = Bisect(src, tmp_path / "res" / "repo")
    v = b.prepare(h[0], h[8])
    tested = []
    while v.next:
        tested.append(v.next)
        v = b.mark(v.next, "bad" if h.index(v.next) >= 6 else "good")
    assert v.first_bad == h[6]
    assert len(tested) <= 3
    assert "git bisect good" in b.log() and "git bisect bad" in b.log()
    after = (_git(src, "bisect", "log"), _git(src, "rev-parse", "HEAD"), _git(src, "status", "--porcelain"),
             sorted(os.listdir(src / ".git")))
    assert after == before


def test_skips_until_only_skipped_commits_are_left(tmp_path):
    src = tmp_path / "r"
    h = make_repo(src, 4, 2)
    b = Bisect(src, tmp_path / "repo")
    v = b.prepare(h[0], h[3])
    while v.next:
        v = b.mark(v.next, "skip" if v.next in h[1:3] else "bad")
    assert v.first_bad is None and set(v.could_be) >= {h[2]}


def test_recipe_builds_once_copies_the_binary_out_and_records_failures(tmp_path):
    src = tmp_path / "r"
    h = make_repo(src, 4, 2, broken=(1,))
    recipe = write_recipe(tmp_path / "recipe.sh")
    b = Bisect(src, tmp_path / "res" / "repo")
    b.prepare(h[0], h[3])
    builder = Builder(src, b.path, tmp_path / "res", str(recipe))
    b.git_checkout(h[2])
    ok = builder.build(h[2])
    assert ok.status == "ok" and not ok.cached
    binary = Path(ok.binary)
    assert binary.is_relative_to((tmp_path / "res" / "builds" / h[2]).resolve())
    assert "latency-ns" in binary.read_text() and "LATENCY_NS = 2000000" in binary.read_text()
    b.git_checkout(h[0])  # the checkout moves on; the build stays, and is not redone
    again = builder.build(h[2])
    assert again.cached and again.binary == ok.binary and builder.made == 1
    b.git_checkout(h[1])
    broken = builder.build(h[1])
    assert broken.status == "failed" and "status" in broken.error
    rec = orjson.loads((tmp_path / "res" / "builds" / f"{h[1]}.json").read_bytes())
    assert rec["status"] == "failed"
    assert builder.build(h[1]).cached  # a failed build is not retried


def test_a_build_without_its_record_is_redone(tmp_path):
    src = tmp_path / "r"
    h = make_repo(src, 2, 1)
    b = Bisect(src, tmp_path / "res" / "repo")
    b.prepare(h[0], h[1])
    builder = Builder(src, b.path, tmp_path / "res", str(write_recipe(tmp_path / "recipe.sh")))
    b.git_checkout(h[0])
    builder.build(h[0])
    (tmp_path / "res" / "builds" / f"{h[0]}.json").unlink()   # as if interrupted before the record
    assert not builder.build(h[0]).cached and builder.made == 2


