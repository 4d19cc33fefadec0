"""One nightly run at a time, per installation.

The lock is an operating-system lock on ``run.lock`` in the state folder (see
:mod:`praxisbackup.platform.oslock`): it dies with its process, so a crashed run never blocks
the next night, and the file is never deleted (deleting it would let a third process lock a new
file while the second still holds the old one). The file's text names the holder for messages.
"""

from __future__ import annotations

import json
import os
import time
from types import TracebackType

from praxisbackup.errors import ExitCode, PraxisError
from praxisbackup.platform.oslock import try_lock
from praxisbackup.platform.private import open_private_fd, private_dir


class RunLockedError(PraxisError):
    """Another run is in progress."""

    exit_code = ExitCode.LOCKED


class RunLock:
    def __init__(self, state_dir: str) -> None:
        self.path = os.path.join(state_dir, "run.lock")
        self._fd: int | None = None

    def holder(self) -> str:
        """Who holds the lock, as far as the file says (for messages only)."""
        try:
            with open(self.path, encoding="utf-8") as fh:
                doc = json.loads(fh.read() or "{}")
            return f"pid {int(doc['pid'])}"
        except (OSError, ValueError, KeyError, TypeError):
            return "unknown process"

    def __enter__(self) -> RunLock:
        private_dir(os.path.dirname(self.path))
        fd = open_private_fd(self.path, os.O_RDWR | os.O_CREAT)
        if not try_lock(fd):
            os.close(fd)
            holder = self.holder()
            raise RunLockedError(
                f"another praxisbackup run is in progress ({holder})",
                code="error.run_locked",
                holder=holder,
            )
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "time": time.time()}).encode())
        self._fd = fd
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the lock
            self._fd = None
