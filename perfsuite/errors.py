"""How perfsuite fails: one error base with an exit status, caught once at the CLI.

Every error a user can act on derives from `PerfsuiteError` (bad input, a matrix that cannot
run, a run dir that is busy, a build that failed, ...). `perfsuite.cli.main` catches it and
prints one line, `PREFIX: message`, then exits with its `exit_code` (2 unless the class says
otherwise). Anything else that escapes a command is a bug: it is reported as one line
`error: unexpected TYPE: message (set PERFSUITE_DEBUG=1 for a traceback)`, exit 2, and
PERFSUITE_DEBUG=1 shows the traceback instead.

Exit statuses across commands: 0 success, 1 "the answer is no" (a regression, a failed
repetition, not reproduced), 2 error, 130 interrupted.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import click

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


class PerfsuiteError(Exception):
    """Base of every error a user can act on: one line on stderr and `exit_code`."""

    exit_code = EXIT_ERROR
    prefix = "error"


class BadInput(PerfsuiteError):
    """Something the user can fix (a bad option, file or matrix): exit status 2."""


def os_error_text(e: OSError) -> str:
    """`PATH: reason` with an absolute path ("[Errno 17] File exists: 'x'" -> "/abs/x: a file,
    not a directory")."""
    why = ("a file, not a directory" if isinstance(e, FileExistsError) and os.path.isfile(e.filename or "")
           else e.strerror)
    if e.filename and why:
        return f"{os.path.abspath(os.fsdecode(e.filename))}: {why}"
    return str(e) or type(e).__name__


def report_error(exc: BaseException, prefix: str | None = None) -> int:
    """Print `exc` as one line (or its traceback under PERFSUITE_DEBUG); return the exit code.

    A `PerfsuiteError` is the user's to fix; an OSError is the environment's (a full disk, a
    permission, a path that is a file): both are one line, exit 2. Anything else is a bug.
    """
    if isinstance(exc, PerfsuiteError):
        click.echo(f"{prefix or exc.prefix}: {exc}", err=True)
        return exc.exit_code
    if isinstance(exc, OSError) and not os.environ.get("PERFSUITE_DEBUG"):
        click.echo(f"{prefix or 'error'}: {os_error_text(exc)}", err=True)
        return EXIT_ERROR
    if os.environ.get("PERFSUITE_DEBUG"):
        raise exc
    click.echo(f"{prefix or 'error'}: unexpected {type(exc).__name__}: {exc} "
               "(set PERFSUITE_DEBUG=1 for a traceback)", err=True)
    return EXIT_ERROR


def fail(msg: str, status: int = EXIT_ERROR, prefix: str = "error") -> NoReturn:
    click.echo(f"{prefix}: {msg}", err=True)
    sys.exit(status)


def fail_unexpected(exc: BaseException, status: int, prefix: str = "error") -> NoReturn:
    """For a command's last `except Exception`: one line, or the traceback under PERFSUITE_DEBUG."""
    if os.environ.get("PERFSUITE_DEBUG"):
        raise exc
    fail(f"unexpected {type(exc).__name__}: {exc} (set PERFSUITE_DEBUG=1 for a traceback)", status, prefix)
