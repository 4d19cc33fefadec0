"""Bringing the sources' folder listings and file metadata into the operating system's cache
before the backup's walk needs them.

On a cold cache, listing a folder and ``lstat``-ing its entries waits for the disk once per
folder and per inode block. The walk itself asks one folder at a time (its order is fixed by
the trees it builds), so it waits for every one of them in turn. Several threads walking the
same sources in any order keep many such reads in flight at once; measured on the bench's
55 000 files in 11 000 folders, a cold sequential ``find`` takes 1.3 s and a parallel one
0.4 s. The walk that follows finds everything cached.

Not every file is looked at: one ``lstat`` per folder (and one per :data:`SAMPLE` entries of
large ones) reads an inode-table block from the disk, and the file system reads ahead well
beyond it (ext4: 32 blocks, 512 inodes). The walk's own ``lstat`` of the other entries finds
those blocks cached. ``lstat``-ing every entry here as well cost 0.35 s of system time on the
bench and made the nightly run 0.15-0.2 s slower (four interleaved pairs).

This only reads metadata, never file contents, and follows no links. It lists only folders
whose access time it can leave as it is (``O_NOATIME``: the owner or root), so that the walk
still records the original time of the others. It starts with the
command (the key derivation takes a good part of a second and releases the interpreter) and
ends when the backup ends or after :data:`ENTRY_LIMIT` entries, so that a huge tree does not
push out of the cache what the walk has yet to use.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import deque

from praxisbackup import platform
from praxisbackup.engine.listing import scan

#: Threads listing folders at once (they wait for the disk, not for a core).
THREADS = 8
#: Of a folder's files, the first and every SAMPLE-th are looked at (see above).
SAMPLE = 16
#: Entries after which the prewalk stops.
ENTRY_LIMIT = 400_000


class Prewalk:
    """A parallel metadata walk of some folders, in the background."""

    def __init__(
        self, sources: list[str], threads: int = THREADS, limit: int = ENTRY_LIMIT
    ) -> None:
        self._folders: deque[str] = deque(sources)
        self._limit = limit
        self._busy = 0
        self._entries = 0
        self._cond = threading.Condition()
        self._stopped = False
        for number in range(threads):
            threading.Thread(target=self._run, daemon=True, name=f"prewalk-{number}").start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    @property
    def done(self) -> bool:
        """Everything is walked, or the walk was stopped."""
        return self._stopped

    @property
    def entries(self) -> int:
        """Entries looked at so far."""
        return self._entries

    def _next(self) -> str | None:
        with self._cond:
            while not self._stopped:
                if self._folders:
                    self._busy += 1
                    return self._folders.pop()
                if not self._busy:
                    self._stopped = True  # everything is walked
                    self._cond.notify_all()
                    break
                self._cond.wait()
            return None

    def _run(self) -> None:
        platform.background_thread()
        while (folder := self._next()) is not None:
            count, found = _look_into(folder)
            with self._cond:
                self._busy -= 1
                self._entries += count
                if self._entries >= self._limit:
                    self._stopped = True
                self._folders.extend(found)
                self._cond.notify_all()


def _look_into(folder: str) -> tuple[int, list[str]]:
    """List a folder and ``lstat`` a sample of its files; returns the number of entries and
    the sub-folders seen. A folder that cannot be read (or not without changing its access time)
    ends with what was seen: the backup itself reports it."""
    found: list[str] = []
    count = 0
    with contextlib.suppress(OSError), scan(folder, touch=False) as it:
        for entry in it:
            count += 1
            if entry.is_dir(follow_symlinks=False):
                found.append(os.path.join(folder, entry.name))
            elif count % SAMPLE == 1:
                entry.stat(follow_symlinks=False)
    return count, found
