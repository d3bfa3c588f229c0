"""The sweep folder's record of its runs: ``<sweep>/sweep.json``.

Written (atomically) when a sweep starts, read by :mod:`.aggregate`: which run
directory belongs to which cell (model, data set, label fraction), which swept setting
and which seed, and the command that trains it. The grid file is copied beside it
(``grid.toml``) so the folder says what it holds on its own.
"""
import json
import os
import shutil
import time

from ..fileio import atomic_path, write_text
from .grid import Run

MANIFEST = "sweep.json"
GRID_COPY = "grid.toml"
FORMAT = "stick_breaking_dgms sweep"


def write_manifest(sweep_dir, grid, runs):
    """Record ``runs`` (and a copy of the grid file) in ``sweep_dir``."""
    os.makedirs(sweep_dir, exist_ok=True)
    doc = {"format": FORMAT, "format_version": 1, "grid": os.path.abspath(grid.path),
           "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "swept": list(grid.swept), "runs": [r.to_dict() for r in runs]}
    write_text(os.path.join(sweep_dir, MANIFEST), json.dumps(doc, indent=1) + "\n")
    copy = os.path.join(sweep_dir, GRID_COPY)
    if os.path.abspath(grid.path) != os.path.abspath(copy):
        with atomic_path(copy) as tmp:
            shutil.copyfile(grid.path, tmp)


def read_manifest(sweep_dir):
    """(swept flag names, runs) of a sweep folder; ValueError naming the file if unusable."""
    path = os.path.join(sweep_dir, MANIFEST)
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file (not a sweep folder, or the sweep never "
                         f"started)") from None
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: unreadable sweep record: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"{path}: not a sweep record (expected format {FORMAT!r})")
    try:
        return list(doc.get("swept", [])), [Run.from_dict(r) for r in doc["runs"]]
    except (KeyError, TypeError) as e:
        raise ValueError(f"{path}: malformed run entry ({e})") from None
