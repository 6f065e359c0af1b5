"""Build specs: what `--qemu`, a matrix's `qemu` and `perfsuite build` accept (pure parsing).

    system                    qemu-system-x86_64 from PATH
    /path/to/qemu-system-...  a binary (or any name with a slash / found in PATH)
    debian:bookworm-backports the newest qemu-system-x86 of that suite (private apt config)
    debian:1:10.0.2+ds-2...   that package version
    git:REPO@REF              REPO is a local checkout or any URL git can clone; REF a commit,
                              tag or branch (default HEAD)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from perfsuite.errors import BadInput

SYSTEM_BINARY = "qemu-system-x86_64"
_SUITE = re.compile(r"^[a-z][a-z0-9]*(-[a-z]+)*$")


class BadSpec(BadInput):
    pass


@dataclass(frozen=True)
class Spec:
    kind: str          # "system" | "path" | "debian" | "git"
    text: str          # the spec as given
    value: str = ""    # path, suite/version, or repo
    ref: str = ""      # git only
    suite: bool = False  # debian only: value is a suite name, not a package version


def parse_spec(text: str) -> Spec:
    """Parse a build spec; a clear one-line error for a malformed one."""
    t = (text or "").strip()
    if not t:
        raise BadSpec("empty QEMU build spec (give system, a path, debian:SUITE|VERSION or git:REPO@REF)")
    if t == "system":
        return Spec("system", t, SYSTEM_BINARY)
    if t.startswith("debian:"):
        v = t[len("debian:"):]
        if not v:
            raise BadSpec(f"{t!r}: give a suite (debian:bookworm-backports) or a package version")
        return Spec("debian", t, v, suite=bool(_SUITE.match(v)))
    if t.startswith("git:"):
        rest = t[len("git:"):]
        repo, sep, ref = rest.rpartition("@")
        if not sep or "/" in ref and not repo:
            repo, ref = rest, "HEAD"
        if not repo:
            raise BadSpec(f"{t!r}: give git:REPO@REF (a checkout or URL, then a commit, tag or branch)")
        if not ref or ref.startswith("-") or any(c in ref for c in " \t~^:"):
            raise BadSpec(f"{t!r}: {ref!r} is not a git ref (use a commit, tag or branch)")
        return Spec("git", t, repo, ref)
    return Spec("path", t, t)


def is_build_spec(text: str) -> bool:
    """True when the spec needs resolving (debian:, git:, system), False for a plain binary."""
    return isinstance(text, str) and (text == "system" or text.startswith(("debian:", "git:")))
