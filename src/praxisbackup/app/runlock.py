"""One nightly run at a time: a lock file in the state folder, taken over when stale."""

from __future__ import annotations

import json
import os
import time
from types import TracebackType

import psutil

from praxisbackup.errors import PraxisError


class RunLockedError(PraxisError):
    """Another run is in progress."""


class RunLock:
    def __init__(self, state_dir: str) -> None:
        self.path = os.path.join(state_dir, "run.lock")

    def _holder(self) -> dict[str, float] | None:
        try:
            with open(self.path, encoding="utf-8") as fh:
                doc: dict[str, float] = json.load(fh)
                return doc
        except (OSError, ValueError):
            return None

    def __enter__(self) -> RunLock:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        me = {"pid": os.getpid(), "started": psutil.Process().create_time(), "time": time.time()}
        for _attempt in range(2):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                holder = self._holder()
                if holder is not None and _alive(holder):
                    raise RunLockedError(
                        f"another praxisbackup run is in progress (pid {int(holder['pid'])})"
                    ) from None
                os.unlink(self.path)  # stale: its process is gone
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(me, fh)
            return self
        raise RunLockedError("could not take the run lock")

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            return


def _alive(holder: dict[str, float]) -> bool:
    try:
        proc = psutil.Process(int(holder["pid"]))
        return abs(proc.create_time() - float(holder["started"])) < 1.0
    except (psutil.Error, KeyError, ValueError, TypeError):
        return False
