"""An exclusive lock held by the operating system on an open file.

The kernel releases it when the file is closed or the process dies in any way (kill -9, power
loss, a crash), so there is no stale lock to take over and no window in which two processes can
both believe they hold it - unlike a lock *file* whose existence is the lock, which another
process must judge stale and delete.
"""

from __future__ import annotations

import os
import sys

#: Windows locks a byte range; lock one byte far beyond the file's text so that other
#: processes can still read who holds the lock.
_WINDOWS_LOCK_OFFSET = 1 << 20


def try_lock(fd: int) -> bool:
    """Take the exclusive lock on ``fd`` without waiting; False if another process holds it."""
    if sys.platform == "win32":  # pragma: no cover - Windows only
        import msvcrt  # noqa: PLC0415

        position = os.lseek(fd, 0, os.SEEK_CUR)
        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        finally:
            os.lseek(fd, position, os.SEEK_SET)
        return True
    import fcntl  # noqa: PLC0415

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
