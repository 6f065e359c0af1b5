"""A private clone of the user's repository and the real `git bisect` that runs in it.

`git clone --shared` makes the clone in an instant (it borrows the source's objects through
alternates, copying none) and gives the bisect a checkout, refs and bisect state of its own:
nothing is written into the user's repository, its checkout or its own bisect.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from perfsuite.errors import PerfsuiteError


class GitError(PerfsuiteError):
    pass


def git(repo: str | Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    try:
        p = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise GitError("git is not installed") from None
    if check and p.returncode != 0:
        why = (p.stderr.strip() or p.stdout.strip()).splitlines()
        raise GitError(f"git {' '.join(args)} in {repo}: {why[-1] if why else 'failed'}")
    return p


def resolve(repo: str | Path, ref: str) -> str:
    if not Path(repo).is_dir():
        raise GitError(f"--src {repo}: not a directory")
    if git(repo, "rev-parse", "--git-dir", check=False).returncode != 0:
        raise GitError(f"--src {repo}: not a git repository")
    p = git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
    if p.returncode != 0:
        raise GitError(f"{ref!r} is not a commit in {repo}")
    return p.stdout.strip()


def candidates(repo: str | Path, good: str, bad: str) -> int:
    """Commits in good..bad (the ones that could be the first bad one)."""
    if git(repo, "merge-base", "--is-ancestor", good, bad, check=False).returncode != 0:
        raise GitError(f"the good commit {good[:12]} is not an ancestor of the bad one {bad[:12]}")
    n = int(git(repo, "rev-list", "--count", f"{good}..{bad}").stdout.strip())
    if n < 1:
        raise GitError("good and bad are the same commit")
    return n


def history(repo: str | Path, good: str, bad: str) -> list[str]:
    """good..bad oldest first (first-parent order is git's; merges are listed once)."""
    return git(repo, "rev-list", "--reverse", "--topo-order", f"{good}..{bad}").stdout.split()


@dataclass(frozen=True)
class CommitInfo:
    hash: str
    subject: str
    author_date: str

    @property
    def short(self) -> str:
        return self.hash[:12]


def info(repo: str | Path, commit: str) -> CommitInfo:
    out = git(repo, "show", "-s", "--format=%H%x00%s%x00%aI", commit).stdout.strip()
    h, subject, date = out.split("\x00")
    return CommitInfo(h, subject, date)


@dataclass(frozen=True)
class Verdict:
    """What `git bisect good|bad|skip` said: the next commit, or the end."""

    next: str | None            # the commit to test next (None: finished)
    first_bad: str | None       # found
    could_be: tuple[str, ...] = ()  # only skipped commits left: one of these


_FIRST = re.compile(r"^([0-9a-f]{40}) is the first bad commit", re.M)


class Bisect:
    """`git bisect` in a clone of `src` at `path` (made on first use, kept for resume)."""

    def __init__(self, src: str | Path, path: Path) -> None:
        self.src, self.path = Path(src), Path(path)

    def prepare(self, good: str, bad: str) -> Verdict:
        """A fresh bisect between the two commits (a resumed run replays its calls after)."""
        if not (self.path / ".git").exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".part")
            if tmp.exists():
                import shutil
                shutil.rmtree(tmp)
            p = subprocess.run(["git", "clone", "--quiet", "--shared", "--no-checkout",
                                str(self.src.resolve()), str(tmp)], capture_output=True, text=True)
            if p.returncode != 0:
                raise GitError(f"cannot clone {self.src}: {p.stderr.strip().splitlines()[-1:]}")
            tmp.rename(self.path)
        git(self.path, "bisect", "reset", "--quiet", check=False)
        self._clean()
        git(self.path, "checkout", "--quiet", "--detach", bad)
        return self._verdict(git(self.path, "bisect", "start", bad, good))

    def _clean(self) -> None:
        # a recipe may touch tracked files; untracked build trees stay (incremental builds)
        git(self.path, "reset", "--quiet", "--hard", check=False)

    def git_checkout(self, commit: str) -> None:
        """Put the checkout at `commit` for its build (bisect calls name their commit)."""
        self._clean()
        git(self.path, "checkout", "--quiet", "--detach", commit)

    def mark(self, commit: str, decision: str) -> Verdict:
        """decision: good | bad | skip, for `commit` (the one checked out)."""
        self._clean()
        p = git(self.path, "bisect", decision, commit, check=False)
        if p.returncode != 0 and "only 'skip'ped commits left" not in p.stdout:
            git(self.path, "bisect", decision, commit)  # raises with git's message
        return self._verdict(p)

    def _verdict(self, p: subprocess.CompletedProcess) -> Verdict:
        out = p.stdout
        m = _FIRST.search(out)
        if m:
            return Verdict(None, m.group(1))
        if "only 'skip'ped commits left" in out:
            could = tuple(re.findall(r"^([0-9a-f]{40})$", out, re.M))
            return Verdict(None, None, could)
        return Verdict(git(self.path, "rev-parse", "HEAD").stdout.strip(), None)

    def log(self) -> str:
        return git(self.path, "bisect", "log", check=False).stdout
