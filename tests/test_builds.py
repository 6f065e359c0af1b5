"""Build specs and the build cache, with a stand-in source repository.

The stand-in's `configure` writes a build.ninja whose one target, `qemu-system-x86_64`, is a
wrapper around the system QEMU: what is tested is the recipe (mirror, worktree, configure
once, ninja per commit, install, cache, locks), not QEMU's size. The real QEMU source build
is measured once in BENCHMARKS.md; a real debian: fetch is in test_builds_qemu.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from perfsuite import builds
from perfsuite.builds import cache, debian, source
from perfsuite.builds.common import BuildError, wrapper_text
from perfsuite.builds.spec import BadSpec, parse_spec

REPO = Path(__file__).resolve().parent.parent
SYSTEM_QEMU = "/usr/bin/qemu-system-x86_64"
needs_qemu = pytest.mark.skipif(not os.path.exists(SYSTEM_QEMU), reason="needs qemu-system-x86 (not installed)")
needs_ninja = pytest.mark.skipif(not os.path.exists("/usr/bin/ninja"), reason="needs ninja-build (not installed)")

CONFIGURE = r"""#!/bin/sh
# stand-in for QEMU's configure: records its flags, writes build.ninja into the build dir
src=$(cd "$(dirname "$0")" && pwd)
[ -n "$STANDIN_COUNT" ] && echo configure >> "$STANDIN_COUNT"
printf '%s\n' "$@" > configure.flags
if [ -n "$STANDIN_CONFIGURE_FAIL" ]; then echo "configure: failing on purpose" >&2; exit 1; fi
cat > build.ninja <<EOT
rule wrap
  command = sh $src/make-wrapper.sh \$out $src/VERSION
build qemu-system-x86_64: wrap $src/VERSION $src/make-wrapper.sh
EOT
"""
MAKE_WRAPPER = r"""#!/bin/sh
[ -n "$STANDIN_COUNT" ] && echo build >> "$STANDIN_COUNT"
[ -n "$STANDIN_SLEEP" ] && sleep "$STANDIN_SLEEP"
printf '#!/bin/sh\n# stand-in build of %s\nexec /usr/bin/qemu-system-x86_64 "$@"\n' "$(cat "$2")" > "$1"
chmod +x "$1"
"""


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@localhost",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@localhost"}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def make_standin(tmp_path: Path) -> Path:
    """A stand-in QEMU repository with one commit (also used by test_builds_qemu.py)."""
    repo = tmp_path / "qemu-standin"
    repo.mkdir()
    (repo / "configure").write_text(CONFIGURE)
    (repo / "configure").chmod(0o755)
    (repo / "make-wrapper.sh").write_text(MAKE_WRAPPER)
    (repo / "VERSION").write_text("one\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "one")
    return repo


@pytest.fixture
def standin(tmp_path, monkeypatch) -> Path:
    """A stand-in QEMU repository with one commit, and a private build cache."""
    monkeypatch.setenv("PERFSUITE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("STANDIN_COUNT", str(tmp_path / "count"))
    monkeypatch.setattr(builds, "_RESOLVED", {})
    monkeypatch.setattr(builds, "_BY_BINARY", {})
    return make_standin(tmp_path)


def _count(tmp_path: Path) -> list[str]:
    p = tmp_path / "count"
    return p.read_text().split() if p.exists() else []


def _forget(monkeypatch) -> None:
    """A new process's view: nothing resolved yet (the cache on disk stays)."""
    monkeypatch.setattr(builds, "_RESOLVED", {})
    monkeypatch.setattr(builds, "_BY_BINARY", {})


# ----------------------------------------------------------------------------- specs

@pytest.mark.parametrize("text,kind,value,ref,suite", [
    ("system", "system", "qemu-system-x86_64", "", False),
    ("/opt/q/bin/qemu-system-x86_64", "path", "/opt/q/bin/qemu-system-x86_64", "", False),
    ("debian:bookworm-backports", "debian", "bookworm-backports", "", True),
    ("debian:1:10.0.2+ds-2+deb13u1~bpo12+1", "debian", "1:10.0.2+ds-2+deb13u1~bpo12+1", "", False),
    ("git:~/src/qemu@v10.0.2", "git", "~/src/qemu", "v10.0.2", False),
    ("git:https://gitlab.com/qemu-project/qemu.git@master", "git", "https://gitlab.com/qemu-project/qemu.git", "master", False),
    ("git:git@host:qemu.git@abc1234", "git", "git@host:qemu.git", "abc1234", False),
    ("git:/src/qemu", "git", "/src/qemu", "HEAD", False),
])
def test_parse_spec(text, kind, value, ref, suite):
    s = parse_spec(text)
    assert (s.kind, s.value, s.ref, s.suite) == (kind, value, ref, suite)


@pytest.mark.parametrize("text", ["", "debian:", "git:@v1", "git:/src/qemu@-rf", "git:/q@a b"])
def test_bad_specs_are_one_line(text):
    with pytest.raises(BadSpec) as e:
        parse_spec(text)
    assert "\n" not in str(e.value)


# ----------------------------------------------------------------------------- debian parsers

DEB822 = """Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
"""

MADISON = """qemu-system-x86 | 1:10.0.2+ds-2+deb13u1~bpo12+1 | http://deb.debian.org/debian bookworm-backports/main amd64 Packages
qemu-system-x86 | 1:7.2+dfsg-7+deb12u18+b3 | http://deb.debian.org/debian bookworm/main amd64 Packages
qemu-system-x86 | 1:7.2+dfsg-7+deb12u18 | http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
"""


def test_debian_sources_and_versions():
    assert debian.parse_os_codename('NAME="Debian"\nVERSION_CODENAME=bookworm\n') == "bookworm"
    mirror, sec = debian.parse_mirrors(DEB822, "", "bookworm")
    assert (mirror, sec) == ("http://deb.debian.org/debian", "http://deb.debian.org/debian-security")
    assert debian.parse_mirrors("", "deb [arch=amd64] http://m/debian bookworm main\n", "bookworm")[0] == "http://m/debian"
    text = debian.sources_list(mirror, sec, "bookworm", None)
    assert "deb http://deb.debian.org/debian bookworm-backports main" in text.splitlines()
    rows = debian.parse_madison(MADISON, "qemu-system-x86")
    assert debian.pick_version(rows, "bookworm-backports", True) == "1:10.0.2+ds-2+deb13u1~bpo12+1"
    assert debian.pick_version(rows, "bookworm", True) == "1:7.2+dfsg-7+deb12u18+b3"
    assert debian.pick_version(rows, "10.0.2+ds-2+deb13u1~bpo12+1", False) == "1:10.0.2+ds-2+deb13u1~bpo12+1"
    assert debian.pick_version(rows, "trixie", True) is None


def test_wrapper_passes_own_firmware_first(tmp_path):
    text = wrapper_text("root/usr/bin/qemu-system-x86_64", ["root/usr/share/qemu"], "root/mods", "t")
    assert text.index("$D/root/usr/share/qemu") < text.index("/usr/share/seabios")
    assert 'QEMU_MODULE_DIR="$D/root/mods"' in text


def test_bootstrap_lists_the_build_packages():
    text = (REPO / "bootstrap.sh").read_text()
    line = next(x for x in text.splitlines() if x.startswith("BUILD_PKGS=("))
    assert tuple(line[len("BUILD_PKGS=("):-1].split()) == source.BUILD_PACKAGES


# ----------------------------------------------------------------------------- git: recipe

@needs_qemu
@needs_ninja
def test_git_build_cache_and_incremental_rebuild(standin, tmp_path, monkeypatch):
    b = builds.resolve(f"git:{standin}@HEAD")
    head = _git(standin, "rev-parse", "HEAD")
    assert b.built_now and b.label == f"g{head[:7]}"
    out = subprocess.run([str(b.binary), "--version"], capture_output=True, text=True, check=True)
    assert "QEMU emulator version" in out.stdout
    p = b.provenance
    assert p["commit"] == head and p["kind"] == "git" and p["dirty"] is False
    assert p["configure_flags"] == list(source.CONFIGURE_FLAGS) and len(p["binary_sha256"]) == 64
    assert p["qemu_version"] and p["qemu_version"].count(".") >= 1
    assert _count(tmp_path) == ["configure", "build"]
    work = next(d for d in (tmp_path / "cache/builds/git/work").iterdir() if d.is_dir())
    assert (work / "build" / "configure.flags").read_text().split() == list(source.CONFIGURE_FLAGS)

    _forget(monkeypatch)  # the same spec again: a cache hit, nothing built
    again = builds.resolve(f"git:{standin}@HEAD")
    assert not again.built_now and again.binary == b.binary and _count(tmp_path) == ["configure", "build"]

    (standin / "VERSION").write_text("two\n")  # a second commit, tagged: same build dir, no configure
    _git(standin, "commit", "-qam", "two")
    _git(standin, "tag", "v2.0")
    _forget(monkeypatch)
    two = builds.resolve(f"git:{standin}@v2.0")
    assert two.built_now and two.label == "v2.0" and two.binary != b.binary
    assert _count(tmp_path) == ["configure", "build", "build"]
    assert "stand-in build of two" in (two.entry / "bin/qemu-system-x86_64").read_text()
    assert "stand-in build of one" in (b.entry / "bin/qemu-system-x86_64").read_text()  # kept
    assert [w.name for w in (tmp_path / "cache/builds/git/work").iterdir() if w.is_dir()] == [work.name]

    _forget(monkeypatch)  # the first commit again, by hash: cached, nothing rebuilt
    assert not builds.resolve(f"git:{standin}@{head[:10]}").built_now


@needs_qemu
@needs_ninja
def test_git_url_and_dirty_checkout(standin, tmp_path):
    (standin / "VERSION").write_text("uncommitted\n")
    b = builds.resolve(f"git:{standin}@HEAD")
    assert b.provenance["checkout_dirty"] is True and b.provenance["dirty"] is False
    assert "stand-in build of one" in (b.entry / "bin/qemu-system-x86_64").read_text()
    assert (standin / "VERSION").read_text() == "uncommitted\n"  # the user's checkout untouched
    u = builds.resolve(f"git:file://{standin}@HEAD")
    assert u.provenance["commit"] == b.provenance["commit"] and u.provenance["checkout_dirty"] is None


@needs_ninja
def test_failed_build_is_one_line_naming_the_log(standin, monkeypatch):
    monkeypatch.setenv("STANDIN_CONFIGURE_FAIL", "1")
    with pytest.raises(BuildError) as e:
        builds.resolve(f"git:{standin}@HEAD")
    msg = str(e.value)
    assert "configure failed" in msg and "\n" not in msg
    log = Path(msg.rsplit("log: ", 1)[1])
    assert "failing on purpose" in log.read_text()
    assert builds.cached() == []


def test_not_a_commit(standin):
    with pytest.raises(BuildError, match="not a commit"):
        builds.resolve(f"git:{standin}@no-such-branch")


_RESOLVE = ("import sys; from perfsuite import builds; "
            "b = builds.resolve(sys.argv[1]); print(b.binary, b.built_now, flush=True)")


def _resolver(spec: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _RESOLVE, spec], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


@needs_qemu
@needs_ninja
def test_two_commands_building_one_spec_build_it_once(standin, tmp_path, monkeypatch):
    monkeypatch.setenv("STANDIN_SLEEP", "2")
    procs = [_resolver(f"git:{standin}@HEAD") for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    lines = sorted(o.strip() for o, _ in outs)
    assert lines[0].split()[0] == lines[1].split()[0]  # the same binary
    assert sorted(x.split()[1] for x in lines) == ["False", "True"]  # one built it, one waited
    assert _count(tmp_path) == ["configure", "build"]


@needs_qemu
@needs_ninja
def test_interrupted_build_leaves_nothing_finished(standin, tmp_path, monkeypatch):
    monkeypatch.setenv("STANDIN_SLEEP", "60")
    p = _resolver(f"git:{standin}@HEAD")
    deadline = time.monotonic() + 60
    while "build" not in _count(tmp_path):
        assert time.monotonic() < deadline and p.poll() is None, p.stderr.read() if p.poll() is not None else ""
        time.sleep(0.1)
    os.killpg(p.pid, signal.SIGKILL)  # a crash: no cleanup handler runs
    p.wait()
    root = tmp_path / "cache/builds"
    assert builds.cached() == []
    assert not [d for d in (root / "git").iterdir() if (d / cache.RECORD).exists()]
    monkeypatch.setenv("STANDIN_SLEEP", "0")
    b = builds.resolve(f"git:{standin}@HEAD")  # the next attempt builds it and clears the debris
    assert b.built_now and len(builds.cached()) == 1
    assert not list((root / "git").glob(".*partial*"))


# ----------------------------------------------------------------------------- the command

@needs_qemu
@needs_ninja
def test_build_command_spec_list_rm(standin):
    from perfsuite.cli import main
    r = CliRunner()
    spec = f"git:{standin}@HEAD"
    res = r.invoke(main, ["build", spec])
    assert res.exit_code == 0, res.output
    label, binary = res.stdout.strip().splitlines()[-1].split("\t")
    assert label.startswith("g") and Path(binary).is_file()
    res = r.invoke(main, ["build", "list"])
    assert res.exit_code == 0 and spec in res.stdout and "MB" in res.stdout
    res = r.invoke(main, ["build", "rm", spec])
    assert res.exit_code == 0 and "removed" in res.stdout and not Path(binary).exists()
    res = r.invoke(main, ["build", "rm", spec])
    assert res.exit_code == 2 and "no cached build matches" in res.output
    res = r.invoke(main, ["build", "list"])
    assert "no cached builds" in res.stdout


def test_build_command_bad_spec_exit_2():
    from perfsuite.cli import main
    res = CliRunner().invoke(main, ["build", "git:/no/such/dir@HEAD"])
    assert res.exit_code == 2 and "no such directory" in res.output


def test_vq_mapping_mismatch_is_named():
    from perfsuite.matrix.config import Config
    from perfsuite.run.meta import mismatches
    c = Config(smp=4, num_queues=4, dataplane=True, iothreads=2)
    guest = {"queues": 4, "cpus_online": 4, "scheduler": "none"}
    dev = {"num-queues": 4, "queue-size": 256, "iothread": None}
    assert mismatches(c, guest, {**dev, "iothread-vq-mapping": ["io0", "io1"]}) == []
    assert mismatches(c, guest, dev) == ["iothread-vq-mapping: asked io0,io1, QEMU built none"]


@needs_qemu
@needs_ninja
def test_matrix_qemu_axis_of_specs_multiplies_and_labels_from_builds(standin, tmp_path):
    """qemu = ["system", "git:..."]: one config per build, each named by its build's label."""
    from perfsuite.cli import main
    head = _git(standin, "rev-parse", "HEAD")
    m = tmp_path / "m.toml"
    m.write_text(f'[defaults]\nfio_job = "{REPO / "jobs/fio.job"}"\nruntime = 2\nramp = 0\n'
                 f'[matrix]\nsmp = 1\nqemu = ["system", "git:{standin}@HEAD"]\n')
    res = CliRunner().invoke(main, ["run", str(m), "--dry-run", "--repeat", "1"])
    assert res.exit_code == 0, res.output
    assert "# qemu-7.2-smp-1-dataplane:" in res.stdout and f"# g{head[:7]}-smp-1-dataplane:" in res.stdout
    assert "/builds/git/" in res.stdout  # the built wrapper is what runs


@needs_qemu
@needs_ninja
def test_bisect_default_recipe_builds_commit_after_commit_in_one_build_dir(standin, tmp_path, monkeypatch):
    """perfsuite.bisect's default recipe is resolve("git:SRC@COMMIT"): each commit built, the
    build directory shared (configure once, ninja per commit)."""
    from perfsuite.bisect.build import Builder
    first = _git(standin, "rev-parse", "HEAD")
    (standin / "VERSION").write_text("two\n")
    _git(standin, "commit", "-qam", "two")
    second = _git(standin, "rev-parse", "HEAD")
    builder = Builder(standin, standin, tmp_path / "res", None)
    a, b = builder.build(first), builder.build(second)
    assert a.status == b.status == "ok" and a.binary != b.binary
    assert "stand-in build of two" in (Path(b.binary).parent / "bin/qemu-system-x86_64").read_text()
    assert _count(tmp_path) == ["configure", "build", "build"]
