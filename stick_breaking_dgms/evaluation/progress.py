"""Progress lines for long evaluation steps, on stderr.

On a terminal the line is redrawn in place (at most every ``interval`` seconds); in a
log file a line is written at every tenth of the work, so logs stay short.
"""
import sys
import time


class StepProgress:
    """Report ``done`` out of ``total`` units of a named step, with the elapsed time and an ETA.

    ``mode``: ``"auto"`` or ``"always"`` (a live line on a terminal, a line per tenth
    otherwise) or ``"never"`` (silent).
    """

    def __init__(self, name, total, unit="examples", mode="auto", stream=None, interval=0.5):
        self.name, self.total, self.unit = name, int(total), unit
        self.stream = stream if stream is not None else sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.enabled = mode != "never"
        self.interval = interval
        self.started = time.time()
        self.last_draw = 0.0
        self.next_tenth = 1
        self.done = 0

    def update(self, done):
        self.done = done
        if not self.enabled or self.total <= 0:
            return
        now = time.time()
        elapsed = now - self.started
        eta = elapsed / max(done, 1) * (self.total - done)
        text = (f"{self.name}: {done:,}/{self.total:,} {self.unit} "
                f"({100.0 * done / self.total:.0f}%), {elapsed:.0f}s elapsed, eta {eta:.0f}s")
        if self.tty:
            if now - self.last_draw >= self.interval or done >= self.total:
                self.stream.write("\r" + text + "\033[K")
                self.stream.flush()
                self.last_draw = now
        else:
            crossed = False
            while self.next_tenth <= 10 and done * 10 >= self.next_tenth * self.total:
                self.next_tenth += 1
                crossed = True
            if crossed and done < self.total:
                self.stream.write(text + "\n")
                self.stream.flush()

    def finish(self):
        seconds = time.time() - self.started
        if self.enabled:
            prefix = "\r" if self.tty else ""
            self.stream.write(f"{prefix}{self.name}: {self.total:,} {self.unit} in "
                              f"{seconds:.1f}s" + ("\033[K" if self.tty else "") + "\n")
            self.stream.flush()
        return seconds
