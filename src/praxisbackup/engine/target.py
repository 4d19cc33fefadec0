"""Where a restore writes: the target root and the folders below it, opened without following
links.

Every destination is expressed as (folder components below the root, name). The folders are
opened one component at a time from the root by :mod:`praxisbackup.platform.targetdir` (an
``openat`` walk with ``O_NOFOLLOW`` on POSIX, reparse-point checks on Windows), so a symbolic
link or junction planted anywhere below the root is refused, never followed - except the links
the caller allows by their exact path (a practice whose program folder is a junction to another
drive). Open folders are shared by the restore's threads with reference counts and closed when
unused (at most :data:`OPEN_LIMIT` are kept).

This is the one place a restore turns paths into open folders; anything that writes into a
restore target goes through it.
"""

from __future__ import annotations

import collections
import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from praxisbackup.errors import PraxisError, UnsafeTargetError
from praxisbackup.platform.targetdir import FdDir, TargetDir, open_root

OPEN_LIMIT = 384
Parts = tuple[str, ...]


class OutsideTargetError(PraxisError):
    """A destination lies outside the restore target."""


@dataclass
class _Entry:
    folder: TargetDir
    users: int = 0


def _norm(path: str) -> str:
    return os.path.normcase(os.path.abspath(path))


class TargetTree:
    """The restore target: ``acquire`` a folder below the root, use it, ``release`` it."""

    def __init__(self, root: str, follow: Iterable[str] = (), open_limit: int = OPEN_LIMIT) -> None:
        self.root = os.path.abspath(root)
        #: Folders kept open at most, unless in use (sized to the process's file limit).
        self.open_limit = open_limit
        self._follow = {_norm(p) for p in follow}
        self._lock = threading.Lock()
        try:
            root_dir = open_root(self.root)
        except OSError as exc:
            why = exc.strerror or str(exc)
            if os.path.lexists(self.root) and not os.path.isdir(self.root):
                why = "it is a file, not a folder"
            raise PraxisError(f"cannot use {self.root} as restore target: {why}") from None
        # parts -> open folder and its number of users; the root is never evicted. Folders
        # without users wait in ``_idle`` (least recently used first) to be closed.
        self._open: dict[Parts, _Entry] = {}
        self._idle: collections.OrderedDict[Parts, None] = collections.OrderedDict()
        #: Folders this restore created: nothing is in them that it did not put there.
        self.fresh: set[Parts] = set()
        self._root_dir = root_dir
        #: Links that were refused: their path -> how many entries below them were skipped.
        self.refused: dict[str, tuple[UnsafeTargetError, int]] = {}

    @property
    def by_descriptor(self) -> bool:
        """Folders are open descriptors (POSIX), which worker processes can be handed."""
        return isinstance(self._root_dir, FdDir)

    # -- paths -----------------------------------------------------------------------------
    def path(self, parts: Parts, name: str | None = None) -> str:
        full = os.path.join(self.root, *parts)
        return os.path.join(full, name) if name is not None else full

    def place(self, dest: str) -> tuple[Parts, str] | None:
        """(folder components, name) of an absolute destination; None for the root itself.
        A destination outside the root raises OutsideTargetError."""
        try:
            rel = os.path.relpath(os.path.abspath(dest), self.root)
        except ValueError:  # another drive on Windows
            rel = os.pardir
        if rel == os.curdir:
            return None
        parts = tuple(rel.split(os.sep))
        if parts[0] == os.pardir or os.path.isabs(rel):
            raise OutsideTargetError(f"{dest} lies outside the restore target {self.root}")
        return parts[:-1], parts[-1]

    # -- folders ------------------------------------------------------------------------------
    def acquire(self, parts: Parts, create: bool = True, quiet: bool = False) -> TargetDir:
        """The open folder ``root/parts`` (missing folders are created when ``create``).
        Raises UnsafeTargetError for a link on the way, OSError for anything else. A refused
        link is counted for its report unless ``quiet`` (a restore ahead of the walk tries a
        folder the walk reports on when it gets there)."""
        with self._lock:
            return self._acquire(parts, create, quiet)

    def _acquire(self, parts: Parts, create: bool, quiet: bool) -> TargetDir:
        entry = self._open.get(parts)
        if entry is None and parts:
            # Walk down from the deepest folder already open (iteratively: any depth).
            known = len(parts) - 1
            while known and parts[:known] not in self._open:
                known -= 1
            folder = self._root_dir if not known else self._open[parts[:known]].folder
            for depth in range(known + 1, len(parts) + 1):
                fresh = depth > 1 and parts[: depth - 1] in self.fresh
                folder = self._open_child(folder, parts[:depth], create, fresh, quiet)
                if folder.created:
                    self.fresh.add(parts[:depth])
                if depth < len(parts):
                    self._open[parts[:depth]] = _Entry(folder)  # evicted later, never now
                    self._idle[parts[:depth]] = None
            entry = _Entry(folder)
            self._open[parts] = entry
        if entry is None:
            return self._root_dir
        if entry.users == 0:
            self._idle.pop(parts, None)
        entry.users += 1
        self._evict()
        return entry.folder

    def _open_child(
        self, parent: TargetDir, parts: Parts, create: bool, fresh: bool, quiet: bool
    ) -> TargetDir:
        path = _norm(self.path(parts))
        for refused in self.refused:
            if path.startswith(_norm(refused) + os.sep):
                error, count = self.refused[refused]
                if not quiet:
                    self.refused[refused] = (error, count + 1)
                raise error
        try:
            return parent.child(parts[-1], create, path in self._follow, fresh)
        except UnsafeTargetError as exc:
            if not quiet:
                error, count = self.refused.get(exc.path, (exc, 0))
                self.refused[exc.path] = (error, count + 1)
            raise

    def release(self, parts: Parts) -> None:
        with self._lock:
            self._release(parts)

    def _release(self, parts: Parts) -> None:
        if not parts:
            return
        entry = self._open[parts]
        entry.users -= 1
        if entry.users == 0:
            self._idle[parts] = None
        self._evict()

    def _evict(self) -> None:
        while len(self._open) > self.open_limit and self._idle:
            parts, _ = self._idle.popitem(last=False)
            self._open.pop(parts).folder.close()

    @contextmanager
    def folder(self, parts: Parts, create: bool = True) -> Iterator[TargetDir]:
        folder = self.acquire(parts, create)
        try:
            yield folder
        finally:
            self.release(parts)

    def close(self) -> None:
        with self._lock:
            for entry in self._open.values():
                entry.folder.close()
            self._open.clear()
            self._idle.clear()
            self._root_dir.close()
