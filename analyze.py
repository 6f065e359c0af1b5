#!/usr/bin/env python3
"""`./analyze.py runs/` is `perfsuite analyze runs/` (the seed's entry point)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from perfsuite.cli import main  # noqa: E402

if __name__ == "__main__":
    main(["analyze", *sys.argv[1:]], prog_name="analyze.py")
