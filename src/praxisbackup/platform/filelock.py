"""Locks on local files that the operating system releases when the process ends.

Used for the nightly job's run lock in the state folder: unlike a lock *file* that is created
and later removed, an OS lock cannot be left behind by a crash and has no window in which
another process sees a half-written lock (``flock`` on POSIX, ``msvcrt.locking`` on Windows).
"""

from __future__ import annotations

import os
import sys


def try_lock(fd: int) -> bool:
    """Take an exclusive lock on an open file without waiting; False if another process
    holds it. The lock ends when the descriptor is closed or the process exits."""
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt  # noqa: PLC0415

        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl  # noqa: PLC0415

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
