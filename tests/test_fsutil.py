"""Atomic writes: a reader sees the old file or the new one, never a part, and no temp is left."""

import os
import stat

import pytest

from perfsuite import fsutil


def test_writes_content_and_creates_parents(tmp_path):
    target = tmp_path / "runs" / "cfg" / "1.meta.json"
    fsutil.atomic_write_json(target, {"b": 1, "a": [1.5, None]})
    assert target.read_text() == '{\n  "a": [\n    1.5,\n    null\n  ],\n  "b": 1\n}\n'
    assert [p.name for p in target.parent.iterdir()] == ["1.meta.json"]


def test_mode_follows_umask_not_mkstemp(tmp_path):
    old = os.umask(0o022)
    try:
        fsutil.atomic_write_text(tmp_path / "index.html", "<p>")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "index.html").stat().st_mode) == 0o644


def test_failed_rename_keeps_old_file_and_removes_temp(tmp_path, monkeypatch):
    target = tmp_path / "1.json"
    target.write_text("old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(fsutil.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        fsutil.atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["1.json"]
