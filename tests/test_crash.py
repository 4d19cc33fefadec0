"""Crash safety: killing a backup or prune at any instant keeps every earlier snapshot intact
and the repository usable; the next backup reuses what the killed one wrote."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import PASSWORD, reopen, run_cli, tree_state
from praxisbackup.engine.checker import Checker
from praxisbackup.engine.repository import Repository
from praxisbackup.engine.restorer import RestoreOptions, Restorer
from praxisbackup.engine.snapshot import list_snapshots
from praxisbackup.storage import LocalBackend

CHILD_MODULE = "praxisbackup.torture.child"


def child(repo: Path, *args: str, workers: bool = False) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PRAXISBACKUP_KDF_N="1024")
    if workers:
        env["PRAXISBACKUP_CHILD_WORKERS"] = "1"
    return subprocess.run(
        [sys.executable, "-m", CHILD_MODULE, str(repo), PASSWORD, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def make_source(base: Path, seed: int, files: int = 40) -> Path:
    rnd = random.Random(seed)
    src = base / "praxis"
    src.mkdir(exist_ok=True)
    for i in range(files):
        (src / f"doc-{seed}-{i}.bin").write_bytes(rnd.randbytes(rnd.randint(10_000, 400_000)))
    return src


def assert_repository_sound(
    repo_path: Path, expected: dict[str, dict[str, tuple[object, ...]]], tmp: Path
) -> None:
    """check --read-data passes and each expected snapshot restores to exactly its state."""
    repo = reopen(repo_path)
    try:  # closed: a test that checks hundreds of crashes must not collect open pack files
        result = Checker(repo).run(read_data=True)
        assert result.ok, result.errors
        snaps = {s.id: s for s in list_snapshots(repo)}
        for snap_id, state in expected.items():
            assert snap_id in snaps, "an earlier snapshot was lost"
            target = tmp / f"restore-{snap_id[:8]}-{time.monotonic_ns()}"
            options = RestoreOptions(target=str(target), verify=True)
            res = Restorer(repo, snaps[snap_id], options).run()
            assert res.ok, res.errors
            roots = [p for p in target.rglob("praxis") if p.is_dir()]
            assert tree_state(roots[0], with_atime=False) == state
    finally:
        repo.close()


@pytest.fixture
def base_repo(tmp_path: Path) -> tuple[Path, Path, dict[str, dict[str, tuple[object, ...]]]]:
    repo_path = tmp_path / "repo"
    Repository.init(LocalBackend(str(repo_path)), PASSWORD, pack_size=1 << 20)
    src = make_source(tmp_path, seed=1)
    out = run_cli("--json", "backup", str(src), repo=repo_path, check=True)
    snap_id = json.loads(out.stdout)["snapshot"]["id"]
    return repo_path, src, {snap_id: tree_state(src, with_atime=False)}


@pytest.mark.parametrize("workers", [False, True], ids=["in-process", "worker-processes"])
def test_backup_killed_at_every_storage_step(
    base_repo: tuple[Path, Path, dict],  # type: ignore[type-arg]
    tmp_path: Path,
    workers: bool,
) -> None:
    repo_path, src, expected = base_repo
    make_source(tmp_path, seed=2)  # new data for the interrupted backups
    pristine = tmp_path / "pristine"
    shutil.copytree(repo_path, pristine)
    full = child(repo_path, "backup", "0", str(src), workers=workers)
    assert full.returncode == 0, full.stderr
    total_steps = int(full.stdout.split("steps=")[1])
    rnd = random.Random(7)
    points = sorted(
        {1, 2, 3, total_steps - 2, total_steps - 1, *rnd.sample(range(1, total_steps), 6)}
    )
    for kill_at in points:
        shutil.rmtree(repo_path)
        shutil.copytree(pristine, repo_path)
        proc = child(repo_path, "backup", str(kill_at), str(src), workers=workers)
        # Parallel compression fills packs in a different order under load: a run may need
        # one pack (three steps) fewer than the counting run - with worker processes, which
        # each end with a pack of their own, a few - so a point near the end can lie after it;
        # then the backup completes, which is as sound.
        completed = proc.returncode == 0 and kill_at > total_steps - (10 if workers else 4)
        assert completed or proc.returncode == -signal.SIGKILL, (kill_at, proc.stderr)
        assert_repository_sound(repo_path, expected, tmp_path)
    # Killed just before the snapshot is written: the next backup completes and reuses the
    # data the killed run stored instead of writing it again.
    shutil.rmtree(repo_path)
    shutil.copytree(pristine, repo_path)
    killed = child(repo_path, "backup", "snapshot", str(src), workers=workers)
    assert killed.returncode == -signal.SIGKILL
    assert_repository_sound(repo_path, expected, tmp_path)
    out = json.loads(run_cli("--json", "backup", str(src), repo=repo_path, check=True).stdout)
    assert out["snapshot"]["summary"]["data_added"] < out["snapshot"]["summary"]["bytes_read"] / 10
    expected[out["snapshot"]["id"]] = tree_state(src, with_atime=False)
    assert_repository_sound(repo_path, expected, tmp_path)


def test_backup_killed_at_random_times(base_repo: tuple[Path, Path, dict], tmp_path: Path) -> None:  # type: ignore[type-arg]
    repo_path, src, expected = base_repo
    make_source(tmp_path, seed=3, files=80)
    rnd = random.Random(11)
    env = dict(os.environ, PRAXISBACKUP_KDF_N="1024", PRAXISBACKUP_PASSWORD=PASSWORD)
    for _ in range(5):
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "praxisbackup.cli.main",
                "-r",
                str(repo_path),
                "backup",
                str(src),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rnd.uniform(0.2, 1.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # A kill may come after completion; such a snapshot is complete and must restore too.
        repo = reopen(repo_path)
        for s in list_snapshots(repo):
            if s.id not in expected:
                expected[s.id] = tree_state(src, with_atime=False)
        assert_repository_sound(repo_path, expected, tmp_path)
    # Stale locks of the killed processes do not block the next run.
    run_cli("backup", str(src), repo=repo_path, check=True)


def test_prune_killed_at_every_step(tmp_path: Path) -> None:
    repo_path = tmp_path / "repo"
    Repository.init(LocalBackend(str(repo_path)), PASSWORD, pack_size=512 << 10)
    src = tmp_path / "praxis"
    snapshots: list[str] = []
    states: dict[str, dict[str, tuple[object, ...]]] = {}
    for night in range(4):
        make_source(tmp_path, seed=100 + night, files=10)
        victim = sorted(src.iterdir())[0]
        victim.unlink()
        out = json.loads(run_cli("--json", "backup", str(src), repo=repo_path, check=True).stdout)
        snapshots.append(out["snapshot"]["id"])
        states[out["snapshot"]["id"]] = tree_state(src, with_atime=False)
    run_cli("forget", "--keep-last", "2", repo=repo_path, check=True)
    kept = {s: states[s] for s in snapshots[-2:]}
    pristine = tmp_path / "pristine"
    shutil.copytree(repo_path, pristine)
    full = child(repo_path, "prune", "0")
    assert full.returncode == 0, full.stderr
    total = int(full.stdout.split("steps=")[1])
    assert total > 5
    for kill_at in range(1, total + 1):
        shutil.rmtree(repo_path)
        shutil.copytree(pristine, repo_path)
        proc = child(repo_path, "prune", str(kill_at))
        assert proc.returncode == -signal.SIGKILL, (kill_at, proc.stderr)
        assert_repository_sound(repo_path, kept, tmp_path)
        # A second prune after the crash finishes the job.
        again = child(repo_path, "prune", "0")
        assert again.returncode == 0, again.stderr
        assert_repository_sound(repo_path, kept, tmp_path)


def test_prune_after_adopting_leftover_packs_keeps_the_index_consistent(tmp_path: Path) -> None:
    """Packs left by a backup killed before its index was written are adopted at the start of
    prune; the repository stays consistent through that prune."""
    repo_path = tmp_path / "repo"
    Repository.init(LocalBackend(str(repo_path)), PASSWORD, pack_size=128 << 10)
    src = make_source(tmp_path, seed=21, files=20)
    run_cli("backup", str(src), repo=repo_path, check=True)
    make_source(tmp_path, seed=22, files=20)
    # Killed after its packs were written but before any index file named them.
    assert child(repo_path, "backup", "before-index", str(src)).returncode == -signal.SIGKILL
    proc = child(repo_path, "prune", "0")
    assert proc.returncode == 0, proc.stderr
    assert Checker(reopen(repo_path)).run(read_data=True).ok


def test_second_prune_after_an_interrupted_one_supersedes_leftover_index_files(
    tmp_path: Path,
) -> None:
    """Regression (found by the torture harness): prune #1 wrote its new index and was killed
    before deleting the superseded ones; prune #2 must supersede those too, or they revive and
    name the packs prune #2 deletes."""
    repo_path = tmp_path / "repo"
    Repository.init(LocalBackend(str(repo_path)), PASSWORD, pack_size=128 << 10)
    src = make_source(tmp_path, seed=31, files=15)
    for night in range(3):
        make_source(tmp_path, seed=40 + night, files=10)
        run_cli("backup", str(src), repo=repo_path, check=True)
    old = tmp_path / "old-index"
    shutil.copytree(repo_path / "index", old)
    run_cli("forget", "--keep-last", "2", "--prune", repo=repo_path, check=True)
    for f in old.iterdir():  # as if prune #1 had been killed before deleting these
        shutil.copy(f, repo_path / "index" / f.name)
    run_cli("forget", "--keep-last", "1", "--prune", repo=repo_path, check=True)
    result = Checker(reopen(repo_path)).run(read_data=True)
    assert result.ok, result.errors
