"""Repository locks.

Backups take a shared lock, prune/repair/key removal an exclusive one. A lock is an encrypted
object in ``locks/`` naming host, process id, process start time and the time it was last
refreshed. A holder refreshes it every few minutes; a lock is *stale* (and is removed by the
next writer without human help) when its process is dead on this same host, or when it has not
been refreshed for :data:`STALE_AFTER` seconds (its machine crashed or the medium moved).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psutil

from praxisbackup import platform
from praxisbackup.engine.objects import ObjectKind
from praxisbackup.engine.repository import Repository
from praxisbackup.errors import IntegrityError, RepositoryLockedError, StorageError
from praxisbackup.platform import stops

REFRESH_EVERY = 300.0
STALE_AFTER = 1800.0


@dataclass(frozen=True)
class LockInfo:
    host: str
    pid: int
    process_start: float
    time: float
    exclusive: bool
    command: str

    def describe(self) -> str:
        kind = "exclusive" if self.exclusive else "shared"
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.time))
        return f"{kind} lock by '{self.command}' (pid {self.pid} on {self.host}, refreshed {when})"


def _process_start(pid: int) -> float:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return 0.0


def is_stale(lock: LockInfo, now: float | None = None) -> bool:
    """A lock is stale if its holder is provably gone or it has not been refreshed in time."""
    now = time.time() if now is None else now
    if now - lock.time > STALE_AFTER:
        return True
    if lock.host == platform.hostname():
        if not psutil.pid_exists(lock.pid):
            return True
        started = _process_start(lock.pid)
        # A recycled pid: a different process now has the number.
        if started and abs(started - lock.process_start) > 1.0:
            return True
    return False


def read_locks(repo: Repository) -> Iterator[tuple[str, LockInfo | None]]:
    """All lock objects; None for one that cannot be read or is not a lock."""
    for name, info, _problem in scan_locks(repo):
        yield name, info


UNREADABLE = "cannot be read"


def scan_locks(repo: Repository) -> Iterator[tuple[str, LockInfo | None, str | None]]:
    """Every lock object as (name, info, problem). ``problem`` says why there is no info:
    junk content (it can never be a lock: treated as stale) or a read that failed (the file
    may be a valid lock: it is never removed as stale)."""
    for name in list(repo.list_names("locks")):
        try:
            raw = repo.read_object("locks", name, ObjectKind.LOCK)
        except StorageError as exc:
            yield name, None, f"{UNREADABLE}: {exc}"
            continue
        except IntegrityError as exc:
            yield name, None, f"is not a lock: {exc}"
            continue
        try:
            yield name, LockInfo(**json.loads(raw)), None
        except (ValueError, TypeError) as exc:
            yield name, None, f"is not a lock: {exc}"


class _Refresher(threading.Thread):
    def __init__(self, holder: RepositoryLock) -> None:
        super().__init__(daemon=True, name="lock-refresh")
        self._holder = holder
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(REFRESH_EVERY):
            self._holder.refresh()


class RepositoryLock:
    """A held lock; use :func:`lock_repository`."""

    def __init__(self, repo: Repository, exclusive: bool, command: str) -> None:
        self.repo = repo
        self.exclusive = exclusive
        self.command = command
        self.name: str | None = None
        self._mutex = threading.Lock()

    def _write(self) -> str:
        info = LockInfo(
            host=platform.hostname(),
            pid=os.getpid(),
            process_start=_process_start(os.getpid()),
            time=time.time(),
            exclusive=self.exclusive,
            command=self.command,
        )
        return self.repo.write_object("locks", ObjectKind.LOCK, json.dumps(info.__dict__).encode())

    def _conflicts(self) -> list[str]:
        found = []
        for name, info, problem in scan_locks(self.repo):
            if name == self.name:
                continue
            if problem is not None and problem.startswith(UNREADABLE):
                found.append(
                    f"lock {name[:12]} {problem}; it is not removed - check the medium, and "
                    "delete the file by hand only if no other process uses the repository"
                )
                continue
            if info is None or is_stale(info):
                self.repo.backend.delete("locks", name)
                continue
            if self.exclusive or info.exclusive:
                found.append(info.describe())
        return found

    def acquire(self) -> None:
        conflicts = self._conflicts()
        if not conflicts:
            self.name = self._write()
            # Another process may have written its lock at the same moment: look again.
            conflicts = self._conflicts()
            if not conflicts:
                return
            self.release()
        raise RepositoryLockedError(
            f"the repository at {self.repo.backend.location} is in use: " + "; ".join(conflicts)
        )

    def refresh(self) -> None:
        """Write a fresh lock and remove the old one. If that fails, or the old one is gone
        (another process judged this one stale and removed it), the lock is *lost*: the
        repository then refuses further work in this process (see Repository.check_lock)."""
        with self._mutex:
            if self.name is None or self.repo.lock_lost is not None:
                return
            old = self.name
            try:
                if old not in set(self.repo.list_names("locks")):
                    raise RepositoryLockedError(
                        f"the {self.command} lock on {self.repo.backend.location} was removed "
                        "by another process (it was taken for stale); stopped to protect the data"
                    )
                self.name = self._write()
                self.repo.backend.delete("locks", old)
            except StorageError as exc:
                self.repo.lock_lost = RepositoryLockedError(
                    f"the {self.command} lock on {self.repo.backend.location} could not be "
                    f"refreshed ({exc}); stopped to protect the data"
                )
            except RepositoryLockedError as exc:
                self.repo.lock_lost = exc

    def confirm(self) -> None:
        """Before work becomes visible (an index file, a snapshot): the lock must still be on
        the medium. One removed by another process (taken for stale, or deleted by hand) may
        mean a prune deleted what this run wrote - the run stops instead of saving a snapshot
        that points at it. (Refreshing notices too, but only every few minutes.)"""
        with self._mutex:
            if self.name is None or self.repo.lock_lost is not None:
                return
            where = self.repo.backend.location
            try:
                present = self.name in set(self.repo.list_names("locks"))
            except StorageError as exc:
                self.repo.lock_lost = RepositoryLockedError(
                    f"the {self.command} lock on {where} could not be checked ({exc}); "
                    "stopped to protect the data"
                )
                return
            if not present:
                self.repo.lock_lost = RepositoryLockedError(
                    f"the {self.command} lock on {where} was removed by another process; "
                    "stopped to protect the data (nothing of this run was saved)"
                )

    def release(self) -> None:
        with self._mutex, stops.uninterrupted():
            if self.name is not None:
                name, self.name = self.name, None
                self.repo.backend.delete("locks", name)


@contextmanager
def lock_repository(
    repo: Repository, exclusive: bool, command: str, reader: bool = False
) -> Iterator[RepositoryLock]:
    """Hold a lock for the duration of a block, refreshing it in the background.

    If the block fails, that failure is what the caller sees: a lock that cannot be removed
    afterwards (the medium turned read-only, or is gone) is only added as a note - it becomes
    stale and the next writer removes it."""
    lock = RepositoryLock(repo, exclusive, command)
    refresher: _Refresher | None = None
    try:
        # A stop request waits until the lock is written and held here, where it is removed
        # again on the way out (else a lock could be left on the medium).
        with stops.uninterrupted():
            try:
                lock.acquire()
            except StorageError as exc:
                if not reader:
                    raise
                raise StorageError(
                    f"{exc}; to read a medium that cannot be written, use --no-lock (then "
                    "nothing keeps a prune from deleting data while it is read)"
                ) from None
            repo.held_locks.append(lock)
            refresher = _Refresher(lock)
            refresher.start()
        yield lock
    except BaseException as exc:
        if refresher is not None:
            refresher.stop.set()
            try:
                lock.release()
            except StorageError as cleanup:
                exc.add_note(f"the lock could not be removed afterwards: {cleanup}")
        raise
    else:
        refresher.stop.set()
        lock.release()
    finally:
        if refresher is not None:
            repo.held_locks.remove(lock)


def assert_no_exclusive_lock(repo: Repository) -> None:
    """Readers running without a lock (read-only media) still refuse to run while a live
    exclusive lock (prune, repair) exists."""
    for _name, info in read_locks(repo):
        if info is not None and info.exclusive and not is_stale(info):
            raise RepositoryLockedError(
                f"the repository at {repo.backend.location} is being changed: {info.describe()}"
            )
