"""Child process for crash tests: runs a backup or prune against a backend that kills its own
process with SIGKILL at a chosen storage step (like a power cut at that instant).

Usage: python crashchild.py REPO PASSWORD (backup SRC | prune) KILL_AT
KILL_AT counts storage steps (each write has three: before the temp file, between temp file and
rename, after the rename; each delete one); 0 means never; "snapshot" kills right before the
snapshot object is written (everything else of the backup is stored).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence

from praxisbackup.engine.archiver import Archiver, BackupOptions
from praxisbackup.engine.lock import lock_repository
from praxisbackup.engine.prune import prune
from praxisbackup.engine.repository import Repository
from praxisbackup.storage import LocalBackend


class CrashingBackend(LocalBackend):
    def __init__(self, root: str, kill_at: int, kill_before_kind: str | None = None) -> None:
        super().__init__(root)
        self.kill_at = kill_at
        self.kill_before_kind = kill_before_kind
        self.steps = 0

    def _step(self) -> None:
        self.steps += 1
        if self.kill_at and self.steps >= self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    def write(self, kind: str, name: str, data: bytes | Sequence[bytes]) -> None:
        # Crash before anything, between temp file and rename, and after the rename.
        if kind == self.kill_before_kind:
            os.kill(os.getpid(), signal.SIGKILL)
        self._step()
        final = self._path(kind, name)
        tmp = os.path.join(os.path.dirname(final), ".tmp-crashtest" + os.urandom(4).hex())
        with open(tmp, "wb") as fh:
            for part in [data] if isinstance(data, bytes) else data:
                fh.write(part)
            fh.flush()
            os.fsync(fh.fileno())
        self._step()
        os.replace(tmp, final)
        self._step()

    def delete(self, kind: str, name: str) -> None:
        self._step()
        super().delete(kind, name)


def main() -> None:
    repo_path, password, action = sys.argv[1], sys.argv[2], sys.argv[3]
    spec = sys.argv[-1]
    if spec == "snapshot":
        backend = CrashingBackend(repo_path, 0, kill_before_kind="snapshots")
    else:
        backend = CrashingBackend(repo_path, int(spec))
    repo = Repository.open(backend, password)
    if action == "backup":
        with lock_repository(repo, exclusive=False, command="backup"):
            repo.load_index()
            Archiver(repo, BackupOptions([sys.argv[4]])).run()
    else:
        with lock_repository(repo, exclusive=True, command="prune"):
            prune(repo)
    print(f"steps={backend.steps}")


if __name__ == "__main__":
    main()
