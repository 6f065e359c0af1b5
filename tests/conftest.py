"""Shared pytest setup: paths to the repository's real example data."""

import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture
def data_dir() -> Path:
    return DATA


# In CI every tool the tests need is installed by .ci/run, so a test that skips because a
# tool is missing would hide a broken install step: there it fails instead.
_MISSING_TOOL = re.compile(r"\bneeds [a-z]|not installed")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not (os.environ.get("CI") and report.skipped and isinstance(report.longrepr, tuple)):
        return
    reason = str(report.longrepr[2])
    if _MISSING_TOOL.search(reason):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where every tool must be installed: {reason}"
