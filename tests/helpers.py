"""Helpers shared by several test modules (not fixtures)."""
import faulthandler


class Watchdog:
    """Abort the whole test process with a traceback if the block hangs (even in C code)."""

    def __init__(self, seconds=60):
        self.seconds = seconds

    def __enter__(self):
        faulthandler.dump_traceback_later(self.seconds, exit=True)

    def __exit__(self, *exc):
        faulthandler.cancel_dump_traceback_later()
