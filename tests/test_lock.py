"""Locks keep writers apart; stale locks are taken over without a human."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import PASSWORD, reopen, run_cli
from praxisbackup.engine import lock as lockmod
from praxisbackup.engine.lock import LockInfo, is_stale, lock_repository, read_locks
from praxisbackup.engine.objects import ObjectKind
from praxisbackup.errors import RepositoryLockedError


def plant_lock(repo_path: Path, **overrides: object) -> str:
    repo = reopen(repo_path)
    info = {
        "host": lockmod.platform.hostname(),
        "pid": os.getpid(),
        "process_start": lockmod._process_start(os.getpid()),
        "time": time.time(),
        "exclusive": True,
        "command": "prune",
    } | overrides
    return repo.write_object("locks", ObjectKind.LOCK, json.dumps(info).encode())


def test_exclusive_lock_blocks_backup_with_a_clear_message(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    run_cli("init", repo=repo, check=True)
    plant_lock(repo)  # this test process is alive: the lock is valid
    src = tmp_path / "src"
    src.mkdir()
    out = run_cli("backup", str(src), repo=repo)
    assert out.returncode == 4
    assert "exclusive lock by 'prune'" in out.stderr
    assert run_cli("check", repo=repo).returncode == 4


def test_dead_process_lock_is_taken_over(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    run_cli("init", repo=repo, check=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    plant_lock(repo, pid=dead.pid, process_start=1.0)
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_text("a")
    run_cli("backup", str(src), repo=repo, check=True)
    assert list(read_locks(reopen(repo))) == []


def test_old_unrefreshed_lock_from_other_host_is_stale(tmp_path: Path) -> None:
    info = LockInfo("anderer-server", 1, 0.0, time.time() - lockmod.STALE_AFTER - 5, True, "backup")
    assert is_stale(info)
    fresh = LockInfo("anderer-server", 1, 0.0, time.time(), True, "backup")
    assert not is_stale(fresh)


def test_shared_locks_coexist_but_exclusive_waits(tmp_path: Path) -> None:
    from praxisbackup.engine.repository import Repository
    from praxisbackup.storage import LocalBackend

    r = Repository.init(LocalBackend(str(tmp_path / "repo")), PASSWORD)
    with (
        lock_repository(r, exclusive=False, command="backup"),
        lock_repository(r, exclusive=False, command="backup"),
    ):
        assert len(list(read_locks(r))) == 2
        with (
            pytest.raises(RepositoryLockedError),
            lock_repository(r, exclusive=True, command="prune"),
        ):
            pass
    assert list(read_locks(r)) == []
    with (
        lock_repository(r, exclusive=True, command="prune"),
        pytest.raises(RepositoryLockedError),
        lock_repository(r, exclusive=False, command="backup"),
    ):
        pass
