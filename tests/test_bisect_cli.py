"""`perfsuite bisect` bad input: one clear line, exit 2, nothing booted."""

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from bisect_repo import make_repo  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def bisect(*args, cwd):
    return subprocess.run([sys.executable, "-m", "perfsuite.cli", "bisect", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd)


@pytest.fixture
def repo(tmp_path):
    make_repo(tmp_path / "r", 4, 2)
    return tmp_path / "r"


CI = REPO / "jobs" / "ci.toml"
ONE = ["--only", "*-no-mq"]


@pytest.mark.parametrize("args, message", [
    (["--good", "nope", "--bad", "HEAD"], "'nope' is not a commit"),
    (["--good", "HEAD", "--bad", "HEAD~3"], "is not an ancestor"),
    (["--good", "HEAD~3", "--bad", "HEAD", "--threshold", "x"], "--threshold 'x'"),
    (["--good", "HEAD~3", "--bad", "HEAD", "--assume", "abc"], "--assume 'abc'"),
    (["--good", "HEAD~3", "--bad", "HEAD", "--metric", "speed"], "--metric 'speed'"),
])
def test_bad_input_is_one_line_and_exit_2(repo, tmp_path, args, message):
    p = bisect(CI, *ONE, "--src", repo, *args, "--results-dir", tmp_path / "res", cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert message in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert "Traceback" not in p.stderr


def test_too_many_configurations(repo, tmp_path):
    p = bisect(REPO / "jobs" / "matrix.toml", "--src", repo, "--good", "HEAD~3", "--bad", "HEAD",
               cwd=tmp_path)
    assert p.returncode == 2 and "choose with --only GLOB" in p.stderr


def test_not_a_repository(tmp_path):
    p = bisect(CI, *ONE, "--src", tmp_path, "--good", "a", "--bad", "b", cwd=tmp_path)
    assert p.returncode == 2 and "not a git repository" in p.stderr


def test_a_results_dir_holding_another_bisect_is_refused(repo, tmp_path):
    res = tmp_path / "res"
    # a recipe that fails on the good endpoint: the bisect stops with exit 2 after its state
    bad_recipe = tmp_path / "fail.sh"
    bad_recipe.write_text("#!/bin/sh\nexit 3\n")
    bad_recipe.chmod(0o755)
    p = bisect(CI, *ONE, "--src", repo, "--good", "HEAD~3", "--bad", "HEAD", "--recipe", bad_recipe,
               "--results-dir", res, cwd=tmp_path)
    assert p.returncode == 2 and "does not build" in p.stderr, p.stderr
    assert orjson.loads((res / "state.json").read_bytes())["fingerprint"]["threshold"] == 0.05
    p = bisect(CI, *ONE, "--src", repo, "--good", "HEAD~3", "--bad", "HEAD", "--recipe", bad_recipe,
               "--threshold", "10%", "--results-dir", res, cwd=tmp_path)
    assert p.returncode == 2 and "holds another bisect (differs in: threshold)" in p.stderr


def test_help_lists_bisect():
    p = subprocess.run([sys.executable, "-m", "perfsuite.cli", "--help"], capture_output=True, text=True)
    assert "bisect" in p.stdout
