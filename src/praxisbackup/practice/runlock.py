"""One nightly run at a time: an operating-system lock on ``run.lock`` in the state folder.

The lock dies with its process (no stale lock after a crash, no window in which another run
reads a half-written lock file); the file itself stays and names the last holder.
"""

from __future__ import annotations

import json
import os
import time
from types import TracebackType

from praxisbackup.errors import PraxisError
from praxisbackup.platform.filelock import try_lock
from praxisbackup.platform.private import private_dir


class RunLockedError(PraxisError):
    """Another run is in progress."""


class RunLock:
    def __init__(self, state_dir: str) -> None:
        self.path = os.path.join(state_dir, "run.lock")
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        private_dir(os.path.dirname(self.path))
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o600)
        if not try_lock(fd):
            try:
                holder = json.loads(os.read(fd, 4096) or b"{}").get("pid", "?")
            except (OSError, ValueError):  # Windows: the holder's locked byte cannot be read
                holder = "?"
            os.close(fd)
            raise RunLockedError(f"another praxisbackup run is in progress (pid {holder})")
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
