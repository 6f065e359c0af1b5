#!/usr/bin/env python3
"""`./analyze.py runs/` is `perfsuite analyze runs/` (the seed's entry point).

Runs under the repository's .venv when there is one (made by ./bootstrap.sh), so that a
plain `./analyze.py` works without activating it first.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
VENV_PYTHON = os.path.join(HERE, ".venv", "bin", "python")

if os.path.exists(VENV_PYTHON) and os.path.realpath(sys.prefix) != os.path.realpath(os.path.join(HERE, ".venv")):
    os.execv(VENV_PYTHON, [VENV_PYTHON, os.path.abspath(__file__), *sys.argv[1:]])

sys.path.insert(0, HERE)

from perfsuite.commands.analyze import analyze  # noqa: E402

if __name__ == "__main__":
    analyze(sys.argv[1:], prog_name="analyze.py")
