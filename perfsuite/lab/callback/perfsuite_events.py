"""Ansible callback: every task result of a playbook as one JSON line in $PERFSUITE_LAB_EVENTS.

perfsuite reads these lines instead of Ansible's screen output (perfsuite.lab.ansible).
"""

from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: perfsuite_events
    type: notification
    short_description: task results as JSON lines for perfsuite
    description: writes one JSON object per task result to the file named by PERFSUITE_LAB_EVENTS
"""

_KEEP = ("msg", "rc", "stdout", "stderr", "changed", "skipped", "unreachable", "failed",
         "module_stderr", "module_stdout", "ansible_job_id", "ansible_facts", "stat")


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "perfsuite_events"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        path = os.environ.get("PERFSUITE_LAB_EVENTS")
        self._out = open(path, "a", encoding="utf-8") if path else None

    def _emit(self, kind: str, result) -> None:
        if self._out is None:
            return
        res = result._result
        row = {"kind": kind, "host": result._host.get_name(), "task": result._task.get_name(),
               "action": result._task.action,
               "result": {k: res[k] for k in _KEEP if k in res}}
        self._out.write(json.dumps(row, default=str) + "\n")
        self._out.flush()

    def v2_runner_on_ok(self, result) -> None:
        self._emit("ok", result)

    def v2_runner_on_failed(self, result, ignore_errors=False) -> None:
        self._emit("ignored" if ignore_errors else "failed", result)

    def v2_runner_on_unreachable(self, result) -> None:
        self._emit("unreachable", result)

    def v2_runner_on_skipped(self, result) -> None:
        self._emit("skipped", result)
