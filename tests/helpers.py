"""Helpers shared by several test modules (not fixtures)."""
import faulthandler
import glob
import os
import re
import subprocess
import sys


class Watchdog:
    """Abort the whole test process with a traceback if the block hangs (even in C code)."""

    def __init__(self, seconds=60):
        self.seconds = seconds

    def __enter__(self):
        faulthandler.dump_traceback_later(self.seconds, exit=True)

    def __exit__(self, *exc):
        faulthandler.cancel_dump_traceback_later()


# -- the SB-VAE script on real MNIST with a small network, as a subprocess -----------------
# (test_resume.py and test_failures.py interrupt it with SBDGM_TEST_INTERRUPT)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "run_stickBreaking_VAE_experiments.py")
N_BATCHES = 450  # 45,000 MNIST training images / batch 100
SMALL_RUN = ["--hidden-size", "50", "--truncation-level", "10", "--max-epoch", "2",
             "--progress", "never", "--blas-threads", "1"]
TIMING = re.compile(r"(, )?(training )?time [0-9.]+[sm]")  # the log's timings


def run_small(directory, hook="", extra=()):
    """Run the script with SMALL_RUN in ``directory``; ``hook``: SBDGM_TEST_INTERRUPT's value."""
    env = dict(os.environ)
    env.pop("SBDGM_TEST_INTERRUPT", None)
    if hook:
        env["SBDGM_TEST_INTERRUPT"] = hook
    return subprocess.run([sys.executable, SCRIPT, *SMALL_RUN, *extra, "--experiment-dir",
                           str(directory)], capture_output=True, text=True, env=env,
                          timeout=600, cwd=ROOT)


def describe(proc):
    """A finished subprocess's exit code and the tails of its outputs, for messages."""
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n" \
           f"{proc.stderr[-3000:]}"


def only(directory, pattern):
    """The one file of ``directory`` matching ``pattern`` (asserting there is one)."""
    found = glob.glob(os.path.join(str(directory), pattern))
    assert len(found) == 1, (pattern, os.listdir(directory))
    return found[0]
