"""Run trees that exercise every branch of `./analyze.py`'s output (for the tests that hold
the plain-column path against the DataFrame path): seed-style names with and without meta,
one-boot and many-boot names, an mq / no-mq pair with an impossible gain, a single run,
mixed builds, a guest that saw other queues, a malformed file, a fio error, a run without
disk_util, and a multi-job fio output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from synthetic import write_runs

DATA = Path(__file__).parent / "data" / "fio"


def _edit_meta(path: Path, **changes) -> None:
    meta = json.loads(path.read_text())
    for dotted, v in changes.items():
        node = meta
        *parents, last = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = v
    path.write_text(json.dumps(meta))


def with_meta(root: Path) -> Path:
    """Synthetic runs with meta: boots, twins, singles, mixed versions, a malformed file."""
    write_runs(root, "v1-smp-4-dataplane", 40000, 0.02, 6, seed=1, per_boot=2,
               config={"smp": 4, "num_queues": 4, "dataplane": True, "label": "v1"})
    write_runs(root, "v1-smp-4-dataplane-no-mq", 10000, 0.02, 6, seed=2, per_boot=2,
               config={"smp": 4, "num_queues": 1, "dataplane": True, "label": "v1"})
    write_runs(root, "v1-smp-1-dataplane", 20000, 0.2, 4, seed=3, per_boot=4,
               config={"smp": 1, "num_queues": 1, "dataplane": True, "label": "v1"})
    write_runs(root, "v1-smp-2-no-dataplane", 15000, 0.01, 1, seed=4,
               config={"smp": 2, "num_queues": 4, "label": "v1"})
    write_runs(root, "v1-smp-8-no-dataplane", 30000, 0.01, 5, seed=5,
               config={"smp": 8, "num_queues": 16, "label": "v1"})
    _edit_meta(root / "v1-smp-8-no-dataplane" / "2.meta.json", **{"versions.qemu": "7.1.0"})
    _edit_meta(root / "v1-smp-8-no-dataplane" / "3.meta.json", **{"guest.queues": 3})
    (root / "v1-smp-8-no-dataplane" / "5.json").write_text('{"jobs": [{"read": {"iops": "x"}}]}')
    return root


def without_meta(root: Path) -> Path:
    """Other tools' data: real fio files, no meta; a fio error, a file without disk_util,
    text before the JSON, a multi-job output, names that only the name's axes identify."""
    runs = {
        "v4-smp-4-dataplane": ["fio3-randread-null.json", "fio3-randread-null-jsonplus.json",
                               "fio3-psync-note-diskutil.json"],
        "v4-smp-4-dataplane-no-mq": ["fio3-libaio-randrw-diskutil-jsonplus.json", "fio3-error-enospc.json",
                                     "fio3-numjobs3.json"],
        "v4-smp-1-no-dataplane": ["fio2-2.2.10-libaio-write-diskutil.json", "fio3-null-2jobs-jsonplus.json"],
        "other-tool-output": ["fio3-group-reporting.json", "fio3-gtod-reduce.json", "fio3-randrw-jsonplus.json"],
    }
    for name, files in runs.items():
        for i, f in enumerate(files, 1):
            (root / name).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(DATA / f, root / name / f"{i}.json")
    (root / "v4-smp-1-no-dataplane" / "3.json").write_text("")
    return root
