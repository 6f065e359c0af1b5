"""How every command fails: one line on stderr and an exit status, never a traceback.

`BadInput` is a mistake the user can fix (exit 2). Anything else that escapes a command is
reported as "unexpected ..." in one line, unless PERFSUITE_DEBUG is set: then the traceback
is shown, for a bug report.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import click


class BadInput(Exception):
    """Something the user can fix: printed as one line, exit status 2."""


def fail(msg: str, status: int = 2, prefix: str = "error") -> NoReturn:
    click.echo(f"{prefix}: {msg}", err=True)
    sys.exit(status)


def fail_unexpected(exc: BaseException, status: int, prefix: str = "error") -> NoReturn:
    """For a command's last `except Exception`: one line, or the traceback under PERFSUITE_DEBUG."""
    if os.environ.get("PERFSUITE_DEBUG"):
        raise exc
    fail(f"unexpected {type(exc).__name__}: {exc} (set PERFSUITE_DEBUG=1 for a traceback)", status, prefix)
