"""Locks that protect readers (issue #11): restore and check hold a shared lock that prune
respects; a lock whose refresh fails stops its holder; an unreadable lock is never removed as
stale; a failure is reported as itself, not as the lock cleanup after it; one nightly run at
a time through an operating-system lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import blake3
import pytest

from conftest import reopen, run_cli
from fsimages import ext4_image, remount_readonly
from praxisbackup.app.runlock import RunLock, RunLockedError
from praxisbackup.engine import lock as lockmod
from praxisbackup.engine.archiver import Archiver, BackupOptions
from praxisbackup.engine.checker import Checker
from praxisbackup.engine.lock import RepositoryLock, lock_repository
from praxisbackup.engine.objects import ObjectKind
from praxisbackup.engine.progress import Progress
from praxisbackup.engine.restorer import RestoreOptions, Restorer
from praxisbackup.engine.snapshot import find_snapshot
from praxisbackup.errors import RepositoryLockedError, StorageError


class Gate(Progress):
    """Holds the first worker that reports progress until the test opens the gate."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.open = threading.Event()

    def advance(self, files: int = 0, size: int = 0) -> None:
        if not self.reached.is_set():
            self.reached.set()
            self.open.wait(120)


def make_repo(base: Path) -> tuple[Path, Path]:
    src = base / "praxis"
    src.mkdir()
    for i in range(20):
        (src / f"akte-{i}.bin").write_bytes(os.urandom(40_000))
    repo = base / "repo"
    run_cli("init", repo=repo, check=True)
    run_cli("backup", str(src), repo=repo, check=True)
    return repo, src


def run_in_thread(target: object) -> tuple[threading.Thread, list[BaseException], list[object]]:
    errors: list[BaseException] = []
    results: list[object] = []

    def body() -> None:
        try:
            results.append(target())  # type: ignore[operator]
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            errors.append(exc)

    thread = threading.Thread(target=body)
    thread.start()
    return thread, errors, results


def test_prune_refuses_while_a_restore_or_a_check_reads(tmp_path: Path) -> None:
    repo_path, _src = make_repo(tmp_path)
    repo = reopen(repo_path)
    gate = Gate()
    snap = find_snapshot(repo, "latest")
    restorer = Restorer(repo, snap, RestoreOptions(target=str(tmp_path / "t")), gate)
    thread, errors, results = run_in_thread(restorer.run)
    assert gate.reached.wait(60)
    prune = run_cli("prune", repo=repo_path)
    forget = run_cli("forget", "--keep-last", "1", "--prune", repo=repo_path)
    gate.open.set()
    thread.join()
    assert not errors and results
    assert prune.returncode == 4 and "shared lock by 'restore'" in prune.stderr
    assert forget.returncode == 4
    assert restorer.result.ok and restorer.result.files == 20
    checker_gate = Gate()
    checker = Checker(reopen(repo_path), checker_gate)
    thread, errors, _ = run_in_thread(lambda: checker.run(read_data=True))
    assert checker_gate.reached.wait(60)
    prune = run_cli("prune", repo=repo_path)
    checker_gate.open.set()
    thread.join()
    assert not errors and checker.result.ok
    assert prune.returncode == 4 and "shared lock by 'check'" in prune.stderr
    assert run_cli("prune", repo=repo_path).returncode == 0  # readers are gone, locks too


def plant_lock(repo_path: Path, exclusive: bool, command: str) -> str:
    """A valid lock of a live process (this test) on this host."""
    repo = reopen(repo_path)
    info = {
        "host": lockmod.platform.hostname(),
        "pid": os.getpid(),
        "process_start": lockmod._process_start(os.getpid()),
        "time": time.time(),
        "exclusive": exclusive,
        "command": command,
    }
    return repo.write_object("locks", ObjectKind.LOCK, json.dumps(info).encode())


def test_every_reader_refuses_to_run_under_an_exclusive_lock(tmp_path: Path) -> None:
    repo_path, src = make_repo(tmp_path)
    plant_lock(repo_path, exclusive=True, command="prune")
    for args in (
        ["restore", "latest", "--target", str(tmp_path / "a")],
        ["restore-file", "latest", f"{src}/akte-1.bin", "--to", str(tmp_path / "b")],
        ["check"],
    ):
        out = run_cli(*args, repo=repo_path)
        assert out.returncode == 4, (args, out.stderr)
        assert "exclusive lock by 'prune'" in out.stderr
    assert not (tmp_path / "b").exists() or not list((tmp_path / "b").rglob("akte-1.bin"))


def test_a_lost_lock_stops_its_holder(tmp_path: Path) -> None:
    repo_path, _src = make_repo(tmp_path)
    repo = reopen(repo_path)
    gate = Gate()
    restorer = Restorer(
        repo, find_snapshot(repo, "latest"), RestoreOptions(target=str(tmp_path / "t")), gate
    )
    thread, errors, _ = run_in_thread(restorer.run)
    assert gate.reached.wait(60)
    # Another process took the lock for stale and removed it; the next refresh notices.
    for lock_file in (repo_path / "locks").iterdir():
        lock_file.unlink()
    held = repo.held_locks[0]
    assert isinstance(held, RepositoryLock)
    held.refresh()
    gate.open.set()
    thread.join()
    assert len(errors) == 1 and isinstance(errors[0], RepositoryLockedError)
    assert "was removed by another process" in str(errors[0])
    assert restorer.result.files < 20  # it stopped instead of reading on


@pytest.mark.parametrize("refreshed", [True, False], ids=["refreshed", "not-yet-refreshed"])
def test_a_backup_whose_lock_was_taken_away_stops_before_its_snapshot(
    tmp_path: Path, refreshed: bool
) -> None:
    """Whether the lock's refresh (every few minutes) noticed it or not: a backup whose lock
    was removed saves neither an index file nor a snapshot (a prune may have deleted what it
    wrote: the outsider saw a green backup whose snapshot could not be restored)."""
    src = tmp_path / "praxis"
    src.mkdir()
    for i in range(30):
        (src / f"akte-{i}.bin").write_bytes(os.urandom(200_000))
    repo_path = tmp_path / "repo"
    run_cli("init", repo=repo_path, check=True)
    repo = reopen(repo_path)
    gate = Gate()

    def backup() -> object:
        with lock_repository(repo, exclusive=False, command="backup"):
            return Archiver(repo, BackupOptions([str(src)]), gate).run()

    thread, errors, _ = run_in_thread(backup)
    assert gate.reached.wait(60)
    for lock_file in (repo_path / "locks").iterdir():
        lock_file.unlink()  # e.g. a prune on another PC took the lock for stale
    held = repo.held_locks[0]
    assert isinstance(held, RepositoryLock)
    index_before = sorted((repo_path / "index").iterdir())
    if refreshed:
        held.refresh()
    gate.open.set()
    thread.join()
    assert len(errors) == 1 and isinstance(errors[0], RepositoryLockedError), errors
    assert "stopped to protect the data" in str(errors[0])
    assert list((repo_path / "snapshots").iterdir()) == []
    assert sorted((repo_path / "index").iterdir()) == index_before


def test_a_lock_that_cannot_be_refreshed_is_lost(tmp_path: Path) -> None:
    with ext4_image(tmp_path, 16) as mnt:
        repo_path = mnt / "repo"
        run_cli("init", repo=repo_path, check=True)
        repo = reopen(repo_path)
        with (
            pytest.raises(RepositoryLockedError, match="could not be refreshed") as caught,
            lock_repository(repo, exclusive=False, command="check") as held,
        ):
            remount_readonly(mnt)
            held.refresh()
            repo.check_lock()
        assert "read-only" in str(caught.value)


def test_the_original_write_error_is_reported_not_the_lock_cleanup(tmp_path: Path) -> None:
    src = tmp_path / "praxis"
    src.mkdir()
    for i in range(30):
        (src / f"akte-{i}.bin").write_bytes(os.urandom(200_000))
    with ext4_image(tmp_path, 32) as mnt:
        repo_path = mnt / "repo"
        run_cli("init", repo=repo_path, check=True)
        repo = reopen(repo_path)

        class TurnsReadOnly(Progress):
            done = False

            def advance(self, files: int = 0, size: int = 0) -> None:
                if not self.done:
                    self.done = True
                    remount_readonly(mnt)

        with (
            pytest.raises(StorageError) as caught,
            lock_repository(repo, exclusive=False, command="backup"),
        ):
            Archiver(repo, BackupOptions([str(src)]), TurnsReadOnly()).run()
        message = str(caught.value)
        assert "the backup medium is read-only" in message
        assert "cannot write" in message and "cannot delete locks" not in message
        assert any("lock could not be removed" in n for n in caught.value.__notes__)


def test_a_lock_that_cannot_be_read_is_never_removed_as_stale(world_dir: Path) -> None:
    repo_path, _src = make_repo(world_dir)
    for p in [repo_path, *repo_path.rglob("*")]:
        p.chmod(0o777 if p.is_dir() else 0o666)
    unreadable = plant_lock(repo_path, exclusive=False, command="restore on another PC")
    (repo_path / "locks" / unreadable).chmod(0o600)  # root's: user nobody cannot read it
    junk = os.urandom(100)
    junk_name = blake3.blake3(junk).hexdigest()
    (repo_path / "locks" / junk_name).write_bytes(junk)
    (repo_path / "locks" / junk_name).chmod(0o666)
    out = run_cli("prune", repo=repo_path, user="nobody")
    assert out.returncode == 4, out.stderr
    assert f"lock {unreadable[:12]} cannot be read" in out.stderr
    assert "it is not removed" in out.stderr
    assert (repo_path / "locks" / unreadable).exists()
    # Junk that can never be a lock is removed like a stale lock.
    assert not (repo_path / "locks" / junk_name).exists()


HOLDER = """
import sys
from praxisbackup.app.runlock import RunLock
with RunLock(sys.argv[1]):
    print("locked", flush=True)
    sys.stdin.read()
"""


def test_one_run_at_a_time_with_a_lock_that_dies_with_its_process(tmp_path: Path) -> None:
    state = tmp_path / "state"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(state)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        # The moment between creating and writing a lock file: the lock holds all the same.
        (state / "run.lock").write_bytes(b"")
        with pytest.raises(RunLockedError, match="another praxisbackup run is in progress"):
            RunLock(str(state)).__enter__()
    finally:
        holder.kill()
        holder.wait()
    with RunLock(str(state)):  # killed: its lock is gone with it, nothing to clean up
        pass
    with RunLock(str(state)), pytest.raises(RunLockedError):
        RunLock(str(state)).__enter__()
