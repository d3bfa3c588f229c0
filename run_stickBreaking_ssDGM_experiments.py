#!/usr/bin/env python
"""Entry point with the original's name and flags; see `python run_stickBreaking_ssDGM_experiments.py --help`."""
import sys

from stick_breaking_dgms.cli import main

if __name__ == "__main__":
    sys.exit(main("sb_ssdgm"))
