"""Atomic file writes: a reader sees the old file or the new one, never half of one.

:func:`atomic_path` writes to a hidden temporary file in the target's directory
(``.<name>.<random>.tmp``), flushes it to disk, renames it over the target and flushes
the directory entry. A process killed in the middle (SIGKILL, power loss) leaves at
most such a temporary file behind, never a half-written target;
:func:`remove_stale_temporaries` deletes those leftovers.
"""
import contextlib
import glob
import os
import tempfile

TMP_SUFFIX = ".tmp"
# The programs' exit code when a file cannot be written or read for a reason of the
# system's (a full disk, permissions): sysexits.h's EX_IOERR
EXIT_IO = 74


def describe_os_error(e):
    """An OSError as one line naming the file and the system's reason."""
    if getattr(e, "filename", None) is not None and e.strerror:
        return f"{e.filename}: {e.strerror}"
    return str(e)


def _temporary_pattern(path):
    """Glob pattern of the temporary files :func:`atomic_path` makes for ``path``."""
    directory, base = os.path.split(os.path.abspath(path))
    return os.path.join(glob.escape(directory), "." + glob.escape(base) + ".*" + TMP_SUFFIX)


def fsync_directory(directory):
    """Flush a directory entry (a rename) to disk; a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path, previous=None, between=None):
    """Yield a temporary path in the same directory; rename it to ``path`` on success.

    On any exception (KeyboardInterrupt included) the temporary file is removed and
    ``path`` is left untouched.

    ``previous``: where an existing ``path`` is moved once the new file is complete on
    disk, just before the new file takes its name (a rotation that never leaves the
    newest complete file missing while the next one is still being written; a full disk
    fails before anything was renamed). ``between()``, when given, is called just before
    the new file takes its name (after the rotation, if any): a test hook.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=TMP_SUFFIX,
                               dir=directory)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
    try:
        yield tmp
        with open(tmp, "rb") as f:  # data on disk before the rename makes it visible
            os.fsync(f.fileno())
        if previous is not None and os.path.exists(path):
            os.replace(path, previous)
        if between is not None:
            between()
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    fsync_directory(directory)  # the rename itself survives a crash


def write_text(path, text):
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)


def remove_stale_temporaries(paths, older_than=None):
    """Delete the temporary files a killed :func:`atomic_path` left for any of ``paths``.

    Only call this while no other process can be writing these paths (see
    :class:`stick_breaking_dgms.runfiles.RunLock`), or with ``older_than`` (seconds since
    the temporary was last written) longer than any write takes. Returns the removed paths.
    """
    import time
    removed = []
    for path in paths:
        for tmp in glob.glob(_temporary_pattern(path)):
            with contextlib.suppress(FileNotFoundError):
                if older_than is not None and time.time() - os.path.getmtime(tmp) < older_than:
                    continue
                os.remove(tmp)
                removed.append(tmp)
    return removed
