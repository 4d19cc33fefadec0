"""A storage backend that crashes its own process at a chosen storage step, and one that also
"loses" the last directory entry that was not yet made durable (power-loss simulation).

Every write has three steps (before the temporary file, between temporary file and rename,
after the rename); every delete one. ``kill_at`` counts them; ``kill_before_kind`` kills right
before the first write of a kind (e.g. ``snapshots``); ``kill_at_read`` kills at the n-th
blob read (a restore in the middle of writing its files).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence

from praxisbackup.platform import ReadBuffer
from praxisbackup.storage import LocalBackend


class CrashingBackend(LocalBackend):
    def __init__(
        self,
        root: str,
        kill_at: int = 0,
        kill_before_kind: str | None = None,
        power_loss: bool = False,
        kill_at_read: int = 0,
    ) -> None:
        super().__init__(root)
        self.kill_at = kill_at
        self.kill_at_read = kill_at_read
        self.reads = 0
        self.kill_before_kind = kill_before_kind
        self.power_loss = power_loss
        self.steps = 0

    def _step(self, renamed: str | None = None, tmp: str | None = None) -> None:
        self.steps += 1
        if self.kill_at and self.steps >= self.kill_at:
            if self.power_loss and renamed and tmp:
                # The rename reached the page cache but not the disk: after the power cut the
                # object is back under its temporary name (never listed, cleaned by prune).
                os.replace(renamed, tmp)
            os.kill(os.getpid(), signal.SIGKILL)

    def write(self, kind: str, name: str, data: bytes | Sequence[bytes]) -> None:
        if kind == self.kill_before_kind:
            os.kill(os.getpid(), signal.SIGKILL)
        self._step()
        final = self._path(kind, name)
        directory = os.path.dirname(final)
        os.makedirs(directory, exist_ok=True)
        tmp = os.path.join(directory, ".tmp-crash" + os.urandom(4).hex())
        with open(tmp, "wb") as fh:
            for part in [data] if isinstance(data, bytes) else data:
                fh.write(part)
            fh.flush()
            os.fsync(fh.fileno())
        self._step()
        os.replace(tmp, final)
        self._step(renamed=final, tmp=tmp)

    def commit(self, kind: str, name: str, staged: str) -> None:
        """A pack staged by a backup worker: killed between temporary file and rename, or
        after the rename (with power loss: the rename undone)."""
        self._step()
        final = self._path(kind, name)
        tmp = os.path.join(os.path.dirname(final), staged)
        os.replace(tmp, final)
        self._step(renamed=final, tmp=tmp)

    def read_range(self, kind: str, name: str, offset: int, length: int) -> bytes:
        """Reads are counted too, so a restore can be killed in the middle of its work."""
        self.reads += 1
        if self.kill_at_read and self.reads >= self.kill_at_read:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().read_range(kind, name, offset, length)

    def read_ranges(
        self,
        kind: str,
        name: str,
        ranges: Sequence[tuple[int, int]],
        buffer: ReadBuffer | None = None,
    ) -> Sequence[memoryview]:
        """Every blob of a pack read counts as one read, as with read_range."""
        self.reads += len(ranges)
        if self.kill_at_read and self.reads >= self.kill_at_read:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().read_ranges(kind, name, ranges, buffer)

    def delete(self, kind: str, name: str) -> None:
        self._step()
        super().delete(kind, name)
