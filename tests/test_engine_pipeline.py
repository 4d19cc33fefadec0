"""The parallel engine (issue #15): backup worker processes, packs staged by the workers and
committed by the archiver, the nightly fast path, pack-ordered restore windows, ranged reads.
Behaviour only - no timings."""

from __future__ import annotations

import collections
import errno
import json
import os
import pickle
import queue
import random
import stat
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import psutil
import pytest

from conftest import PASSWORD, reopen, run_cli, tree_state
from praxisbackup import platform
from praxisbackup.engine import archiver as archiver_module
from praxisbackup.engine import pipeline
from praxisbackup.engine import prewalk as prewalk_module
from praxisbackup.engine import readahead as readahead_module
from praxisbackup.engine import restorer as restorer_module
from praxisbackup.engine.archiver import Archiver, BackupOptions
from praxisbackup.engine.checker import Checker
from praxisbackup.engine.index import BlobLocation
from praxisbackup.engine.pack import TREE
from praxisbackup.engine.packverify import read_pack
from praxisbackup.engine.repository import Repository
from praxisbackup.engine.restorer import RestoreOptions, Restorer
from praxisbackup.engine.restorewindow import (
    FileMeta,
    FilePlan,
    MetadataWriter,
    NeedPlan,
    WindowPlan,
    WriteSettings,
)
from praxisbackup.engine.snapshot import Snapshot, find_snapshot, list_snapshots
from praxisbackup.engine.tree import FILE, decode_tree
from praxisbackup.errors import PraxisError, StorageError
from praxisbackup.platform import direct as direct_module
from praxisbackup.storage import LocalBackend
from praxisbackup.torture.faults import CrashingBackend
from test_source_read import packer_params


def make_source(base: Path, seed: int = 1, folders: int = 6, files: int = 12) -> Path:
    rnd = random.Random(seed)
    src = base / "praxis"
    for f in range(folders):
        folder = src / f"Patient-{f:03d}"
        folder.mkdir(parents=True)
        for i in range(files):
            size = rnd.choice([0, 10, 3_000, 90_000, 400_000])
            (folder / f"brief-{i:03d}.txt").write_bytes(rnd.randbytes(size // 2) * 2)
    (src / "datenbank.dbf").write_bytes(rnd.randbytes(5 << 20))
    return src


def restore_state(repo_path: Path, target: Path, src: Path) -> dict[str, tuple[object, ...]]:
    repo = reopen(repo_path)
    result = Restorer(
        repo, find_snapshot(repo, "latest"), RestoreOptions(target=str(target), verify=True)
    ).run()
    assert result.ok, (result.errors, result.verify_failures)
    return tree_state(target.joinpath(*src.parts[1:]), with_atime=False)


def folder_trees(repo: Repository, snap_tree: bytes, src: Path) -> dict[str, bytes]:
    """The tree ids of the folders directly below the source, by name."""
    tree = snap_tree
    for part in src.parts[1:]:
        nodes = decode_tree(repo.read_blob(TREE, tree), "tree")
        tree = next(n.subtree for n in nodes if n.name == part and n.subtree is not None)
    nodes = decode_tree(repo.read_blob(TREE, tree), "tree")
    return {n.name: n.subtree for n in nodes if n.subtree is not None}


@pytest.fixture
def small_repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    Repository.init(LocalBackend(str(path)), PASSWORD, pack_size=1 << 20)
    return path


def test_worker_processes_back_up_exactly_and_leave_no_staged_file(
    small_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(archiver_module, "INLINE_FILES", 0)  # workers from the first batch
    src = make_source(tmp_path, folders=24, files=4)  # more folders than are listed ahead
    repo = reopen(small_repo)
    result = Archiver(repo, BackupOptions([str(src)], workers=2)).run()
    assert result.snapshot.summary.files_new == 24 * 4 + 1
    assert result.snapshot.summary.dirs == 24 + 1
    packs = list((small_repo / "data").rglob("*"))
    assert not [p for p in packs if p.name.startswith(".tmp-")], "a staged pack was left"
    assert len([p for p in packs if p.is_file()]) > 3  # 1 MiB packs from both workers
    assert Checker(reopen(small_repo)).run(read_data=True).ok
    assert restore_state(small_repo, tmp_path / "t", src) == tree_state(src, with_atime=False)


def test_workers_skip_what_the_repository_holds_and_trees_match_reading_in_process(
    small_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = make_source(tmp_path, seed=2)
    first = Archiver(reopen(small_repo), BackupOptions([str(src)], workers=0)).run().snapshot
    monkeypatch.setattr(archiver_module, "INLINE_FILES", 0)
    repo = reopen(small_repo)
    data_blobs = repo.index.count(0)
    forced = Archiver(repo, BackupOptions([str(src)], force=True, workers=2)).run().snapshot
    assert forced.summary.bytes_read == first.summary.bytes_read > 5 << 20
    assert reopen(small_repo).index.count(0) == data_blobs  # every chunk was known: none stored
    # Same chunks, same metadata: the same folder trees (folder access times aside, which
    # the first backup's listing may have moved).
    assert folder_trees(repo, forced.tree_id, src) == folder_trees(repo, first.tree_id, src)


def test_a_worker_that_dies_fails_the_backup_and_keeps_earlier_snapshots(
    small_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = make_source(tmp_path, seed=3)
    Archiver(reopen(small_repo), BackupOptions([str(src)], workers=0)).run()
    (src / "neu.bin").write_bytes(os.urandom(3 << 20))
    monkeypatch.setattr(archiver_module, "INLINE_FILES", 0)
    monkeypatch.setattr(pipeline, "_WORKER_COMMAND", "import sys; sys.exit(3)")
    with pytest.raises(PraxisError, match="worker process"):
        Archiver(reopen(small_repo), BackupOptions([str(src)], workers=2)).run()
    repo = reopen(small_repo)
    assert len(list((small_repo / "snapshots").iterdir())) == 1
    assert Checker(repo).run(read_data=True).ok


def test_a_full_medium_in_a_worker_is_the_backup_s_storage_error(
    small_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker's StorageError (medium full, read-only, gone) reaches the caller as itself."""
    src = make_source(tmp_path, seed=4)
    monkeypatch.setattr(archiver_module, "INLINE_FILES", 0)
    # The workers stage into data/xx/ folders; a file where one must be makes that fail.
    for folder in (small_repo / "data").iterdir():
        folder.rmdir()
        folder.write_bytes(b"")
    with pytest.raises(StorageError, match="cannot write data/"):
        Archiver(reopen(small_repo), BackupOptions([str(src)], workers=2)).run()


def test_prepared_workers_are_used_by_the_next_backup(small_repo: Path, tmp_path: Path) -> None:
    src = make_source(tmp_path, seed=5, folders=2)
    archiver_module.prepare([str(src)])
    assert pipeline._prestarted is not None
    repo = reopen(small_repo)
    result = Archiver(repo, BackupOptions([str(src)])).run()
    assert pipeline._prestarted is None  # taken (and closed) by the backup
    assert result.snapshot.summary.files_new == 2 * 12 + 1


@pytest.mark.parametrize("uses_workers", [True, False])
def test_prepared_workers_write_the_next_restore_or_are_ended(
    small_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, uses_workers: bool
) -> None:
    """Workers started before the repository is opened (as the command line does) write the
    restore; a restore too small for them ends them - none is left running either way."""
    src = make_source(tmp_path, seed=5, folders=2)
    Archiver(reopen(small_repo), BackupOptions([str(src)])).run()
    if uses_workers:
        monkeypatch.setattr(restorer_module, "WINDOW_FILES", 3)  # full windows: workers write
    restorer_module.prepare(None)
    pool = pipeline._prestarted
    assert pool is not None
    windows: list[object] = []
    send = pool.request

    def request(header: Any, folders: Any = (), to: int | None = None) -> int:
        windows.append(header[0])
        return send(header, folders, to)

    monkeypatch.setattr(pool, "request", request)
    monkeypatch.setattr(pipeline, "WorkerPool", None)  # no other pool may be started
    state = restore_state(small_repo, tmp_path / "t", src)
    assert state == tree_state(src, with_atime=False)
    assert pipeline._prestarted is None
    assert ("restore-window" in windows) == uses_workers
    assert all(w.proc.poll() is not None for w in pool.workers), "a worker was left running"


@pytest.mark.parametrize("examined_by", ["this-process", "worker-processes"])
def test_nightly_fast_path_takes_over_unchanged_folders_and_sees_every_change(
    small_repo: Path, tmp_path: Path, examined_by: str
) -> None:
    """Unchanged folders keep their previous trees, every change is seen - whether the
    archiver's process compares the folders or (as the command line does) the worker
    processes examine them."""
    src = make_source(tmp_path, seed=6)
    repo = reopen(small_repo)

    def nightly(**options: object) -> Snapshot:
        if examined_by == "worker-processes":
            pipeline.prestart(2)  # as the command line starts them: the run takes them over
        return Archiver(repo, BackupOptions([str(src)], **options)).run().snapshot  # type: ignore[arg-type]

    first = Archiver(repo, BackupOptions([str(src)])).run().snapshot
    unchanged = nightly()
    assert unchanged.summary.files_unmodified == first.summary.files_new
    assert unchanged.summary.bytes_read == 0
    assert unchanged.summary.total_bytes == first.summary.total_bytes
    changed = src / "Patient-002" / "brief-001.txt"
    changed.chmod(0o600)  # metadata only: content unchanged, the mode must be new
    time.sleep(0.01)
    second = nightly()
    assert second.summary.files_changed == 1
    old, new = folder_trees(repo, first.tree_id, src), folder_trees(repo, second.tree_id, src)
    assert old["Patient-000"] == new["Patient-000"]  # unchanged folder: the same tree
    assert old["Patient-002"] != new["Patient-002"]
    entries = {n.name: n for n in decode_tree(repo.read_blob(TREE, new["Patient-002"]), "")}
    assert stat.S_IMODE(entries["brief-001.txt"].mode) == 0o600
    assert restore_state(small_repo, tmp_path / "t", src) == tree_state(src, with_atime=False)
    # A name excluded now, in a folder that did not change: the folder is not taken over.
    third = nightly(excludes=["brief-005.txt"])
    after = folder_trees(repo, third.tree_id, src)
    assert after["Patient-000"] != new["Patient-000"]
    entries = {n.name for n in decode_tree(repo.read_blob(TREE, after["Patient-000"]), "")}
    assert "brief-005.txt" not in entries and "brief-004.txt" in entries
    assert third.summary.total_files == second.summary.total_files - 6


def test_a_worker_lost_during_the_nightly_examination_fails_the_run_at_once(
    small_repo: Path, tmp_path: Path
) -> None:
    """Folder examinations travel in batches: a worker that is gone when its batch is sent,
    or before it answers, ends the run with one clear error - nothing waits for answers
    that cannot come - and the earlier snapshot is intact."""
    src = make_source(tmp_path, seed=8)
    repo = reopen(small_repo)
    first = Archiver(repo, BackupOptions([str(src)])).run().snapshot
    pipeline.prestart(2)
    pool = pipeline._prestarted
    assert pool is not None
    pool.workers[1].proc.kill()
    pool.workers[1].proc.wait()
    with pytest.raises(pipeline.WorkerError, match="worker process"):
        Archiver(repo, BackupOptions([str(src)])).run()
    left = [p for p in psutil.Process().children() if "worker_main" in " ".join(p.cmdline())]
    assert not left, "the other worker was not ended"
    again = reopen(small_repo)
    assert [s.id for s in list_snapshots(again)] == [first.id]
    assert Checker(again).run(read_data=True).ok


def test_restore_in_many_small_windows_with_files_across_packs(
    small_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Windows of three files: packs are read once per window, a 5 MiB file spans several
    1 MiB packs, empty files are created, every file is exact."""
    src = make_source(tmp_path, seed=7)
    Archiver(reopen(small_repo), BackupOptions([str(src)])).run()
    monkeypatch.setattr(restorer_module, "WINDOW_FILES", 3)
    backend = CrashingBackend(str(small_repo))  # never kills: counts the blob reads
    repo = Repository.open(backend, PASSWORD)
    repo.load_index()
    target = tmp_path / "t"
    options = RestoreOptions(target=str(target), processes=0)  # reads counted in this process
    result = Restorer(repo, find_snapshot(repo, "latest"), options).run()
    assert result.ok and result.files == 6 * 12 + 1
    data_blobs = repo.index.count(0)
    assert backend.reads >= data_blobs  # every blob counted once per read (crash campaigns)
    restored = target.joinpath(*src.parts[1:])
    assert tree_state(restored, with_atime=False) == tree_state(src, with_atime=False)


def test_read_ranges_returns_each_part_in_the_order_asked(tmp_path: Path) -> None:
    backend = LocalBackend(str(tmp_path / "repo"))
    backend.create()
    data = os.urandom(5 << 20)
    name = "ab" + "0" * 62
    backend.write("data", name, data)
    ranges = [(4 << 20, 100), (0, 10), (200, 50), (3 << 20, 1 << 20)]  # one gap over 1 MiB
    for buffer in (None, platform.ReadBuffer()):
        parts = backend.read_ranges("data", name, ranges, buffer)
        assert [bytes(p) for p in parts] == [data[o : o + n] for o, n in ranges]
    with pytest.raises(StorageError, match="shorter than expected"):
        backend.read_ranges("data", name, [(len(data) - 10, 20)])


def test_a_staged_object_is_invisible_until_committed(tmp_path: Path) -> None:
    backend = LocalBackend(str(tmp_path / "repo"))
    backend.create()
    name = "cd" + "1" * 62
    staged = backend.stage("data", name, [b"part one ", b"part two"])
    assert staged.startswith(".tmp-")
    assert [info.name for info in backend.list("data")] == []
    backend.commit("data", name, staged)
    assert [info.name for info in backend.list("data")] == [name]
    assert backend.read("data", name) == b"part one part two"
    with pytest.raises(ValueError, match="invalid staged name"):
        backend.commit("data", name, "../escape")


def test_known_ids_are_found_also_when_their_first_bytes_are_shared() -> None:
    """The workers' table of stored ids bisects over the ids' first 8 bytes: ids sharing
    them must all be found, and an id differing only after them must not be."""
    rnd = random.Random(7)
    shared = rnd.randbytes(8)
    ids = sorted(
        [rnd.randbytes(32) for _ in range(2000)] + [shared + rnd.randbytes(24) for _ in range(5)]
    )
    known = pipeline._Known(b"".join(ids))
    assert len(known) == 2005
    assert all(blob_id in known for blob_id in ids)
    assert shared + bytes(24) not in known
    assert not any(rnd.randbytes(32) in known for _ in range(2000))
    assert ids[0][:31] not in known  # not an id at all
    assert ids[0] not in pipeline._Known(b"")


def test_the_prewalk_looks_at_every_entry_once_and_follows_no_link(tmp_path: Path) -> None:
    """The metadata walk before a backup counts each entry of the sources once, does not
    descend through a link to a folder elsewhere, and stops at its entry limit."""
    src = make_source(tmp_path, folders=9, files=7)
    outside = tmp_path / "outside"
    outside.mkdir()
    for i in range(50):
        (outside / f"f{i}").write_bytes(b"x")
    (src / "Patient-000" / "link").symlink_to(outside)
    (src / "unreadable").mkdir()
    os.chmod(src / "unreadable", 0)
    try:
        expected = sum(len(dirs) + len(files) for _root, dirs, files in os.walk(src))
        walk = prewalk_module.Prewalk([str(src)], threads=3)
        deadline = time.monotonic() + 30
        while not walk.done and time.monotonic() < deadline:
            time.sleep(0.01)
        assert walk.done
        assert walk.entries == expected == 9 * 7 + 9 + 1 + 1 + 1

        limited = prewalk_module.Prewalk([str(src)], threads=2, limit=20)
        deadline = time.monotonic() + 30
        while not limited.done and time.monotonic() < deadline:
            time.sleep(0.01)
        assert limited.done
        assert 20 <= limited.entries < expected
    finally:
        os.chmod(src / "unreadable", 0o755)


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, (3 << 20) + 5])
def test_a_direct_read_gives_the_file_s_bytes_or_says_it_cannot(
    tmp_path: Path, size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """check --read-data reads packs past the page cache (O_DIRECT) into a reused aligned
    buffer: the bytes must be the file's, whatever its length. Where direct reads cannot be
    done (here: as on Windows), the pack is read normally into the same buffer."""
    data = random.Random(size).randbytes(size)
    path = tmp_path / "pack"
    path.write_bytes(data)
    buffer = platform.ReadBuffer()
    got = platform.read_direct(str(path), buffer)
    assert got is not None, "ext4 (the test machines' file system) reads directly"
    assert bytes(got) == data
    again = platform.read_direct(str(path), buffer)  # the buffer is reused
    assert again is not None and bytes(again) == data
    backend = LocalBackend(str(tmp_path / "repo"))
    backend.create()
    backend.write("data", "ab" * 32, data)
    assert bytes(backend.read_uncached("data", "ab" * 32, buffer)) == data
    assert bytes(backend.read_uncached("data", "ab" * 32)) == data
    monkeypatch.setattr(direct_module, "_O_DIRECT", 0)
    assert platform.read_direct(str(path), buffer) is None
    assert bytes(backend.read_uncached("data", "ab" * 32, buffer)) == data


def test_worker_processes_import_nothing_from_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backup started from a folder others can write to (a shared practice folder) must not
    run a module lying there in its worker processes (found by an outsider: a ``blake3.py``
    in the current folder ran as root in every worker)."""
    marker = tmp_path / "imported"
    planted = tmp_path / "planted"
    planted.mkdir()
    for module in ("blake3", "zstandard", "pyfastcdc", "signal"):
        (planted / f"{module}.py").write_text(
            f"open({str(marker)!r}, 'a').write({module!r} + '\\n')\nraise ImportError\n"
        )
    monkeypatch.chdir(planted)
    pool = pipeline.WorkerPool(1)
    worker = pool.workers[0]
    pool.close()
    assert worker.proc.returncode == 0
    assert not marker.exists(), marker.read_text()


def test_a_backup_leaves_folder_access_times_as_they_were_and_records_them(
    tmp_path: Path,
) -> None:
    """Listing a folder updates its access time (relatime: once a day); the prewalk and the
    walk list every folder before its metadata is recorded, so the snapshot held the backup's
    own time and the folder's original time was lost (found by an outsider). Folders are now
    listed without touching their access time."""
    src = make_source(tmp_path, folders=3, files=2)
    folders = [src, *sorted(p for p in src.iterdir() if p.is_dir())]  # (listing src: before)
    now = time.time_ns()
    old_atime, old_mtime = now - 3 * 86_400 * 10**9, now - 4 * 86_400 * 10**9
    for folder in folders:
        os.utime(folder, ns=(old_atime, old_mtime))
    repo_path = tmp_path / "repo"
    run_cli("init", repo=repo_path, check=True)
    run_cli("backup", str(src), repo=repo_path, check=True)
    for folder in folders:
        assert os.stat(folder).st_atime_ns == old_atime, folder
    repo = reopen(repo_path)
    tree = bytes.fromhex(find_snapshot(repo, "latest").tree)
    for part in src.parts[1:]:  # down to the source: its node holds its own times
        nodes = decode_tree(repo.read_blob(TREE, tree), "tree")
        node = next(n for n in nodes if n.name == part)
        assert node.subtree is not None
        tree = node.subtree
    assert node.atime_ns == old_atime
    inside = [n for n in decode_tree(repo.read_blob(TREE, tree), "tree") if n.subtree is not None]
    assert len(inside) == 3 and all(n.atime_ns == old_atime for n in inside)


def test_a_pack_swapped_for_a_fifo_a_device_link_or_another_file_is_reported_not_read(
    tmp_path: Path,
) -> None:
    """Packs swapped during a check (outsider): a FIFO hung every worker, a link to /dev/zero
    was read without end. Now a repository object is opened without following a link or
    waiting for a writer, must be a regular file, and - for the check - have the index's
    size; otherwise the read is an error, at once."""
    backend = LocalBackend(str(tmp_path / "repo"))
    backend.create()
    name = "cd" * 32
    data = random.Random(5).randbytes(100_000)
    backend.write("data", name, data)
    path = tmp_path / "repo" / "data" / name[:2] / name
    assert path.is_file()
    buffer = platform.ReadBuffer()
    assert bytes(read_pack(backend, name, buffer, len(data))) == data  # type: ignore[arg-type]

    def outcome(size: int | None) -> str:
        found: list[object] = []
        reader = threading.Thread(
            target=lambda: found.append(read_pack(backend, name, buffer, size)), daemon=True
        )
        reader.start()
        reader.join(20)
        assert not reader.is_alive(), "the read waits"
        (got,) = found
        assert isinstance(got, StorageError), got
        return str(got)

    path.unlink()
    os.mkfifo(path)
    assert "not a regular file" in outcome(len(data))
    assert "not a regular file" in outcome(None)
    path.unlink()
    path.symlink_to("/dev/zero")
    assert "symbolic links" in outcome(len(data))  # ELOOP: a link is not followed
    path.unlink()
    path.write_bytes(data + data)
    assert f"{2 * len(data)} bytes instead of {len(data)}" in outcome(len(data))
    with pytest.raises(StorageError, match="not a regular file"):
        path.unlink()
        os.mkfifo(path)
        backend.read_range("data", name, 0, 10)  # (a restore's reads too)


def test_an_examination_the_archiver_cancelled_takes_no_answer_and_raises_nothing() -> None:
    """After a failure or a stop the archiver cancels the examinations it waits for; a
    worker's late answer or its end must not raise in the reader thread (found by an
    outsider: "InvalidStateError: CANCELLED" tracebacks when a nightly run was stopped)."""
    pool = pipeline.WorkerPool(0)
    cancelled: Future[Any] = Future()
    answered: Future[Any] = Future()
    pool._examinations.update({0: cancelled, 1: answered})
    assert cancelled.cancel()
    pool.examined([(0, "late answer"), (1, "answer")])  # type: ignore[list-item]
    assert answered.result() == "answer"
    again: Future[Any] = Future()
    pool._examinations[2] = again
    again.cancel()
    pool.fail_examinations(pipeline.WorkerError("a worker process ended unexpectedly"))
    assert again.cancelled()


# -- restore plans and scheduling --------------------------------------------------------------
class _TimesFolder:
    """A target folder that keeps times to ``grain`` ns and counts how often they are read."""

    def __init__(self, grain: int) -> None:
        self.grain = grain
        self.times: dict[str, tuple[int, int]] = {}
        self.stats = 0

    def utime(self, name: str, fd: int | None, atime_ns: int, mtime_ns: int) -> None:
        self.times[name] = (atime_ns - atime_ns % self.grain, mtime_ns - mtime_ns % self.grain)

    def stat(self, name: str, fd: int | None) -> os.stat_result:
        self.stats += 1
        atime, mtime = self.times[name]
        return os.stat_result((0o100644, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, atime, mtime, 0))


def _file_meta(mtime_ns: int) -> FileMeta:
    return FileMeta(FILE, 0o644, 0, 0, mtime_ns, mtime_ns, None, None, 1)


def _settings() -> WriteSettings:
    return WriteSettings(chown=False, own_ids=(0, 0), umask=0o022, special=False, target="/t")


def _apply(meta: MetadataWriter, folder: _TimesFolder, name: str, mtime_ns: int) -> None:
    meta.apply_times(folder, name, 3, _file_meta(mtime_ns))  # type: ignore[arg-type]


ODD_SECOND = 1_700_000_001_000_000_000


def test_whole_second_files_are_read_back_only_until_enough_matched() -> None:
    meta = MetadataWriter(_settings())
    folder = _TimesFolder(grain=1)
    for i in range(100):  # odd seconds: a 2 s target would have shown on them
        _apply(meta, folder, f"f{i}", ODD_SECOND + 2 * i * 10**9)
    assert folder.stats == 64
    # Sub-second times are still read back (a 1-second target would lose them) ...
    for i in range(70):
        _apply(meta, folder, f"s{i}", ODD_SECOND + 1 + i)
    assert folder.stats == 64 + 64
    # ... and once the target is known to be precise, nothing more is.
    _apply(meta, folder, "late", ODD_SECOND + 123)
    assert folder.stats == 128 and meta.time_lost_ns == 0


def test_a_coarse_target_is_caught_on_whole_second_files_and_then_measured_throughout() -> None:
    meta = MetadataWriter(_settings())
    folder = _TimesFolder(grain=2 * 10**9)  # FAT
    for i in range(100):
        _apply(meta, folder, f"f{i}", ODD_SECOND + i * 10**9)
    assert folder.stats == 100  # the first odd second showed it: every file is measured
    assert meta.time_lost_ns == 10**9


def test_even_seconds_prove_nothing_about_a_coarse_target() -> None:
    """Found by an outsider: files with even whole seconds survive a 2 s target exactly; they
    must not use up the read-backs that the odd-second files after them need."""
    meta = MetadataWriter(_settings())
    folder = _TimesFolder(grain=2 * 10**9)
    for i in range(100):
        _apply(meta, folder, f"even{i}", ODD_SECOND - 10**9 + 2 * i * 10**9)
    assert folder.stats == 100 and meta.time_lost_ns == 0
    _apply(meta, folder, "odd", ODD_SECOND)
    assert meta.time_lost_ns == 10**9


def test_window_plans_travel_as_plain_tuples_and_come_back_equal() -> None:
    first = BlobLocation("a" * 64, 10, 20, 30, True)
    other = BlobLocation("b" * 64, 40, 50, 30, False)
    plan = WindowPlan(
        [
            FilePlan(_file_meta(5), 0, "Brief.txt", ".t1", "/p/Brief.txt", False, 2),
            FilePlan(FileMeta(FILE, 0o600, 1, 2, 3, 4, 5, 6, 7), 1, "b", ".t2", "/p/b", True, 1),
        ],
        [[NeedPlan(b"x" * 32, first, (first, other), [(0, 0), (1, 0)])]],
        [(0, "data blob 0123 is missing")],
    )
    wire = plan.to_wire()
    back = WindowPlan.from_wire(pickle.loads(pickle.dumps(wire)))
    assert back == plan
    assert type(back.files[1].meta) is FileMeta and type(back.packs[0][0].loc) is BlobLocation
    assert "FilePlan" not in repr(wire) and "BlobLocation(" not in repr(wire)


def test_wake_messages_are_ignored_by_who_waits_for_answers() -> None:
    pool = pipeline.WorkerPool.__new__(pipeline.WorkerPool)
    pool.results = queue.Queue()
    future: Future[int] = Future()
    pool.wake_on(future)
    assert pool.results.empty()
    future.set_result(1)
    assert pool.results.get_nowait()[1] == (pipeline.WAKE,)
    pool.wake_on(future)  # done already: the wake comes at once, and is ignored
    assert pool.next_answer(lambda: None, "restore") is None


def test_large_windows_left_at_the_walk_s_end_go_out_before_the_folder_pass(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scans at the end of the walk, held back while a worker writes large windows: when the
    walk is done they all go to the workers (both of them) before the folders' metadata is
    set, so that pass runs while they are written. Everything comes back exactly."""
    monkeypatch.setattr(restorer_module, "WINDOW_BYTES", 2 << 20)
    monkeypatch.setattr(restorer_module, "LARGE_WINDOW", 1 << 20)
    monkeypatch.setattr(restorer_module, "LOOKS_PER_WINDOW", 0)  # no restoring ahead
    src = tmp_path / "praxis"
    rnd = random.Random(9)
    for d in range(3):
        (src / "docs" / str(d)).mkdir(parents=True)
        for i in range(100):
            (src / "docs" / str(d) / f"Brief-{i}.txt").write_bytes(rnd.randbytes(3_000 + i))
    (src / "scans").mkdir()
    for i in range(10):
        (src / "scans" / f"Scan-{i:02d}.tif").write_bytes(rnd.randbytes(1_100_000 + i))
    before = tree_state(src)
    snap = find_snapshot(repo, Archiver(repo, BackupOptions([str(src)])).run().snapshot.id)

    at_folder_pass: list[tuple[int, list[int]]] = []
    finish_early = Restorer._finish_dirs_early

    def spy(self: Restorer) -> None:
        pool = self._workers
        assert pool is not None
        large = [self._large_at(w.index) for w in pool.workers]
        at_folder_pass.append((len(self._held), large))
        finish_early(self)

    monkeypatch.setattr(Restorer, "_finish_dirs_early", spy)
    target = tmp_path / "restore"
    result = Restorer(repo, snap, RestoreOptions(str(target), processes=2, verify=True)).run()
    assert result.ok and result.files == 310
    assert tree_state(target.joinpath(*src.parts[1:])) == before
    [(held, large)] = at_folder_pass
    assert held == 0, "large windows were still held back during the folder pass"
    assert sum(large) >= 2 and all(large), large  # (handed to both workers)


def test_large_windows_leave_a_worker_for_the_small_files(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With two worker processes, large windows (database files) go to one of them at a time
    and the walk plans on: the small files after them are written by the other meanwhile, and
    never queued behind a large window while a worker has none. Everything comes back."""
    monkeypatch.setattr(restorer_module, "WINDOW_BYTES", 2 << 20)
    monkeypatch.setattr(restorer_module, "LARGE_WINDOW", 1 << 20)
    src = tmp_path / "praxis"
    rnd = random.Random(7)
    (src / "a-db").mkdir(parents=True)
    for i in range(8):
        (src / "a-db" / f"M1DATA{i:02d}.DBF").write_bytes(rnd.randbytes(1_200_000 + i))
    for d in range(4):
        (src / "b-docs" / str(d)).mkdir(parents=True)
        for i in range(150):
            (src / "b-docs" / str(d) / f"Brief-{i}.txt").write_bytes(rnd.randbytes(2_000 + i))
    before = tree_state(src)
    snap = find_snapshot(repo, Archiver(repo, BackupOptions([str(src)])).run().snapshot.id)

    sends: list[tuple[bool, int, list[int], int]] = []
    original = Restorer._send_window

    def spy(
        self: Restorer, window: Any, plan: Any, folders: Any, large: bool, to: Any = None
    ) -> None:
        pool = self._workers
        assert pool is not None
        original(self, window, plan, folders, large, to)
        index = next(i for i, sent in self._sent.items() if sent and sent[-1][0] is window)
        # (what each worker had before this window, the windows still held back)
        had = [self._large_at(w.index) - (large and w.index == index) for w in pool.workers]
        sends.append((large, index, had, len(self._held)))

    monkeypatch.setattr(Restorer, "_send_window", spy)
    target = tmp_path / "restore"
    result = Restorer(repo, snap, RestoreOptions(str(target), processes=2, verify=True)).run()
    assert result.ok and result.files == 608
    assert tree_state(target.joinpath(*src.parts[1:])) == before
    large = [s for s in sends if s[0]]
    small = [s for s in sends if not s[0]]
    assert len(large) == 4 and len(small) >= 3
    # While the walk went on, one worker at a time had large windows; the rest were held ...
    walk = sends[: sends.index(small[-1]) + 1]
    assert all(sum(n > 0 for n in had) <= 1 for is_large, _to, had, _held in walk if is_large)
    assert any(held for is_large, _to, _had, held in small)
    # ... and a small window went to a worker without a large one whenever there was one.
    for _large, to, had, _held in small:
        assert had[to] == 0 or all(had)


def test_folders_done_with_are_finished_while_the_last_windows_are_written(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the walk, folders that no pending window or hard link touches (in them or below
    them) get their times and modes at once; the others - the pending windows' folders, their
    parents, a hard link's place and source - only at the end. Every folder's times and mode
    come back exactly, also for a read-only folder finished early."""
    monkeypatch.setattr(restorer_module, "WINDOW_BYTES", 2 << 20)
    monkeypatch.setattr(restorer_module, "LARGE_WINDOW", 1 << 20)
    src = tmp_path / "praxis"
    rnd = random.Random(11)
    for d in range(3):
        (src / "a-docs" / str(d)).mkdir(parents=True)
        for i in range(120):
            (src / "a-docs" / str(d) / f"Brief-{i}.txt").write_bytes(rnd.randbytes(1_500 + i))
    (src / "b-links").mkdir()
    os.link(src / "a-docs" / "1" / "Brief-7.txt", src / "b-links" / "Brief-7.txt")
    (src / "z-scans" / "2026").mkdir(parents=True)
    for i in range(6):
        (src / "z-scans" / "2026" / f"Scan-{i}.jpg").write_bytes(rnd.randbytes(1_300_000))
    (src / "a-docs" / "0").chmod(0o555)
    for n, folder in enumerate(sorted(p for p in src.rglob("*") if p.is_dir())):
        os.utime(folder, ns=(1_600_000_000_123_456_789 + n, 1_500_000_000_987_654_321 + n))
    before = tree_state(src)
    snap = find_snapshot(repo, Archiver(repo, BackupOptions([str(src)])).run().snapshot.id)

    early: list[list[str]] = []
    original = Restorer._set_dir_metadata

    def spy(self: Restorer, dirs: list[Any]) -> None:
        early.append(["/".join(parts[-2:]) for parts, _node, _spath in dirs])
        original(self, dirs)

    monkeypatch.setattr(Restorer, "_set_dir_metadata", spy)
    early_pass = Restorer._finish_dirs_early

    def settled(self: Restorer) -> None:
        # (deterministic: the small windows are written, the large ones still pending)
        while any(not large for sent in self._sent.values() for _window, large in sent):
            self._take_result()
        early_pass(self)

    monkeypatch.setattr(Restorer, "_finish_dirs_early", settled)
    target = tmp_path / "restore"
    result = Restorer(repo, snap, RestoreOptions(str(target), processes=2)).run()
    assert result.ok and result.links == 1
    assert tree_state(target.joinpath(*src.parts[1:])) == before
    first, last = early
    # a-docs/0 (read-only) was written in the first window: finished early, exactly. The hard
    # link's place and source wait for the end (the scans' folders too while their windows
    # are still being written, which depends on the machine's speed).
    assert "a-docs/0" in first
    assert {"praxis/b-links", "a-docs/1"} <= set(last)
    assert not set(first) & set(last)


def test_no_folder_is_finished_early_where_a_followed_link_can_join_two_folders(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by an outsider: with a followed link, a pending snapshot folder and a finished one
    can be the same folder on disk; finished early, its time was then changed by the files
    written through the link. With links to follow (or a path mapping) nothing is finished
    early, and the folder keeps its time."""
    monkeypatch.setattr(restorer_module, "WINDOW_BYTES", 2 << 20)
    monkeypatch.setattr(restorer_module, "LARGE_WINDOW", 1 << 20)
    src = tmp_path / "praxis"
    rnd = random.Random(5)
    (src / "d00" / "s0").mkdir(parents=True)
    for i in range(300):
        (src / "d00" / "s0" / f"Brief-{i}.txt").write_bytes(rnd.randbytes(1_000 + i))
    (src / "zz-scans" / "2026").mkdir(parents=True)
    for i in range(3):
        (src / "zz-scans" / "2026" / f"Scan-{i}.jpg").write_bytes(rnd.randbytes(1_300_000))
    os.utime(src / "d00" / "s0", ns=(1_534_662_206_259_388_204, 1_534_662_206_259_388_204))
    snap = find_snapshot(repo, Archiver(repo, BackupOptions([str(src)])).run().snapshot.id)
    target = tmp_path / "restore"
    restored = target.joinpath(*src.parts[1:])
    (restored / "zz-scans").mkdir(parents=True)
    (restored / "zz-scans" / "2026").symlink_to("../d00/s0")
    passes: list[int] = []
    original = Restorer._set_dir_metadata

    def spy(self: Restorer, dirs: list[Any]) -> None:
        passes.append(len(dirs))
        original(self, dirs)

    monkeypatch.setattr(Restorer, "_set_dir_metadata", spy)
    options = RestoreOptions(
        str(target),
        processes=2,
        includes=[str(src / "d00"), *(str(p) for p in (src / "zz-scans" / "2026").iterdir())],
        follow_links=[str(restored / "zz-scans" / "2026")],
    )
    result = Restorer(repo, snap, options).run()
    assert result.ok and result.files == 303
    assert len(passes) == 1 and passes[0] > 0  # only the final pass
    assert (restored / "d00" / "s0").stat().st_mtime_ns == 1_534_662_206_259_388_204


def scans_behind_documents(tmp_path: Path, folders: int = 3) -> Path:
    """Folders of 60 small letters each, then one of large incompressible scans (one of them
    excluded, two hard-linked), the shape whose scans came last in the bench."""
    rnd = random.Random(11)
    src = tmp_path / "praxis"
    for d in range(folders):
        (src / "a-briefe" / str(d)).mkdir(parents=True)
        for i in range(60):
            (src / "a-briefe" / str(d) / f"Brief-{i}.txt").write_bytes(b"Befund %d\n" % i * 40)
    (src / "b-scans").mkdir()
    for i in range(5):
        (src / "b-scans" / f"Scan-{i}.tif").write_bytes(rnd.randbytes(pipeline.SMALL_FILE + i))
    (src / "b-scans" / "Scan-x.tmp").write_bytes(rnd.randbytes(pipeline.SMALL_FILE + 9))
    (src / "b-scans" / "Doppel.tif").write_bytes(rnd.randbytes(pipeline.SMALL_FILE + 17))
    os.link(src / "b-scans" / "Doppel.tif", src / "b-scans" / "Doppel-2.tif")
    return src


def test_large_files_listed_ahead_are_read_while_the_walk_waits_for_the_workers(
    small_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the walk waits for the workers (its batches of letters), the scans of a folder
    listed ahead are sent to a worker one at a time; the walk takes their answers when it gets
    there. Excluded and hard-linked files are not read ahead; everything comes back exactly."""
    monkeypatch.setattr(archiver_module, "INLINE_FILES", 0)
    monkeypatch.setattr(archiver_module, "BATCH_FILES", 4)
    monkeypatch.setattr(archiver_module, "WAITING", 1)
    src = scans_behind_documents(tmp_path)
    sent: list[tuple[str, ...]] = []  # the paths of each batch, in the order sent
    entered: dict[str, int] = {}  # folder -> batches sent when the walk got there
    submit = pipeline.WorkerPool.submit
    archive_dir = Archiver._archive_dir

    def spy_submit(self: pipeline.WorkerPool, batch: list[tuple[int, str, int]]) -> None:
        sent.append(tuple(str(Path(path).relative_to(src)) for _token, path, _size in batch))
        submit(self, batch)

    def spy_dir(self: Archiver, folder: Any, path: str, spath: str, parent: Any) -> None:
        entered[Path(path).name] = len(sent)
        archive_dir(self, folder, path, spath, parent)

    monkeypatch.setattr(pipeline.WorkerPool, "submit", spy_submit)
    monkeypatch.setattr(Archiver, "_archive_dir", spy_dir)
    repo = reopen(small_repo)
    result = Archiver(repo, BackupOptions([str(src)], excludes=["*.tmp"], workers=2)).run()
    summary = result.snapshot.summary
    assert summary.files_new == 180 + 6 and summary.total_files == 187  # (one is a link)
    assert not result.snapshot.warnings

    before_walk = sent[: entered["b-scans"]]
    ahead = [names for names in before_walk if names[0].startswith("b-scans")]
    assert ahead, f"no scan was read ahead of the walk: {sent}"
    assert all(len(names) == 1 and "/Scan-" in names[0] for names in ahead)
    flat = [name for names in sent for name in names]
    assert "b-scans/Scan-x.tmp" not in flat  # excluded: never read
    assert len(flat) == len(set(flat)) == 180 + 6  # nothing read twice
    assert Checker(reopen(small_repo)).run(read_data=True).ok
    expected = tree_state(src, with_atime=False)
    del expected["b-scans/Scan-x.tmp"]
    assert restore_state(small_repo, tmp_path / "t", src) == expected


def test_a_folder_the_walk_will_skip_is_not_read_ahead(
    small_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder listed while the walk waits, but nested too deep to be walked: nothing in it is
    read (an outsider saw 29 of 30 such scans read and stored for nothing), and the snapshot,
    its summary and the repository are as without it."""
    monkeypatch.setattr(archiver_module, "INLINE_FILES", 0)
    monkeypatch.setattr(archiver_module, "BATCH_FILES", 4)
    monkeypatch.setattr(archiver_module, "WAITING", 1)
    monkeypatch.setattr(archiver_module, "MAX_DEPTH", 2)
    src = scans_behind_documents(tmp_path)
    deep = src / "a-briefe" / "0" / "tief"  # listed while the walk waits in a-briefe/0
    deep.mkdir()
    (deep / "Scan-9.tif").write_bytes(random.randbytes(pipeline.SMALL_FILE + 5))
    sent: list[str] = []
    submit = pipeline.WorkerPool.submit

    def spy_submit(self: pipeline.WorkerPool, batch: list[tuple[int, str, int]]) -> None:
        sent.extend(Path(path).name for _token, path, _size in batch)
        submit(self, batch)

    monkeypatch.setattr(pipeline.WorkerPool, "submit", spy_submit)
    result = Archiver(reopen(small_repo), BackupOptions([str(src)], workers=2)).run()
    assert any(name.startswith("Scan-") for name in sent)
    assert "Scan-9.tif" not in sent
    assert [s.path for s in result.snapshot.skipped] == [str(deep).replace(os.sep, "/")]
    summary = result.snapshot.summary
    assert summary.files_new == 180 + 7 and summary.total_files == 188  # (nothing excluded)
    assert summary.bytes_read == summary.total_bytes - (pipeline.SMALL_FILE + 17)  # (the link)
    assert Checker(reopen(small_repo)).run(read_data=True).ok
    expected = tree_state(src, with_atime=False)
    assert {k: v for k, v in expected.items() if not k.startswith("a-briefe/0/tief")} == (
        restore_state(small_repo, tmp_path / "t", src)
    )


def test_read_aheads_of_a_folder_the_walk_passed_are_dropped_and_claims_are_exact() -> None:
    """The bookkeeping: one read-ahead with a worker at a time; a file the walk reaches before
    its read-ahead was sent is the walk's again; a folder the walk is past drops what it had
    queued; an answer is kept until the walk takes it."""
    ahead = readahead_module.ReadAhead()
    for token, name in enumerate(("a", "b", "c")):
        ahead.add(token, "/s/scans", f"/s/scans/{name}", 2 << 20)
    ahead.add(3, "/s/deep", "/s/deep/x", 2 << 20)
    assert ahead.next_batch() == [(0, "/s/scans/a", 2 << 20)]
    assert ahead.next_batch() is None  # (one with a worker at a time)
    assert ahead.claim("/s/scans/b") is None  # not sent yet: read by the walk
    ahead.answered(0)
    assert ahead.next_batch() == [(2, "/s/scans/c", 2 << 20)]
    ahead.answered(2)
    result = pipeline.FileRead("ok", [b"x" * 32], 2 << 20)
    ahead.keep(2, result)
    ahead.passed("/s/deep")
    assert ahead.next_batch() is None  # /s/deep/x was dropped
    assert ahead.claim("/s/scans/a") == 0 and ahead.take(0) is None  # (its answer: pending)
    assert ahead.claim("/s/scans/c") == 2 and ahead.take(2) is result
    assert ahead.claim("/s/deep/x") is None


def test_the_reading_thread_opens_the_next_batch_ahead_and_leaks_no_descriptor(
    tmp_path: Path,
) -> None:
    """A worker's reading thread opens the next batch's small files before it reads the current
    one; the answers keep the order of the batches, a file deleted after it was opened ahead is
    still read whole, and no descriptor stays open."""
    files = []
    for i in range(12):
        path = tmp_path / f"Brief-{i}.txt"
        path.write_bytes(b"Befund %d " % i * (100 + i))
        files.append(path)
    answers: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()

    class Outbox:
        def send(self, header: tuple[Any, ...]) -> None:
            answers.put(header)

        def fail(self, exc: BaseException) -> None:
            answers.put(("failure", exc))

    opened_before = len(os.listdir("/proc/self/fd"))
    packer = pipeline.FilePacker(packer_params(), lambda pack: None)
    original_open = packer.open_batch
    gone: list[Path] = []

    def open_then_delete(batch: Any) -> dict[int, int | OSError]:
        opened = original_open(batch)
        if batch[0][0] == 4:  # the second batch, opened ahead of the first's reading
            files[4].unlink()
            gone.append(files[4])
        return opened

    packer.open_batch = open_then_delete  # type: ignore[method-assign]
    reading = pipeline._ReadingThread(packer, Outbox())  # type: ignore[arg-type]
    batches = [
        [(i, str(files[i]), files[i].stat().st_size) for i in range(b, b + 4)] for b in (0, 4, 8)
    ]
    for batch in batches:
        reading.submit(("files", batch))
    reading.submit(("flush",))
    got = [answers.get(timeout=30) for _ in range(4)]
    assert [a[0] for a in got] == ["files", "files", "files", "flushed"]
    assert [[token for token, _r in a[1]] for a in got[:3]] == [
        [0, 1, 2, 3],
        [4, 5, 6, 7],
        [8, 9, 10, 11],
    ]
    assert gone and all(r.status == "ok" for a in got[:3] for _t, r in a[1])
    assert got[1][1][0][1].size == len(b"Befund 4 " * 104)
    assert len(os.listdir("/proc/self/fd")) == opened_before


def test_a_worker_takes_more_batches_of_small_files_than_of_large_ones() -> None:
    """Room for another batch: always below two unanswered, up to four while they are small."""

    class Worker:
        def __init__(self, *sizes: int) -> None:
            self.batches = collections.deque(sizes)

    room = pipeline._room_for_files
    assert room(Worker()) and room(Worker(900 << 20))
    assert not room(Worker(900 << 20, 1 << 10))
    assert room(Worker(1 << 20, 1 << 20, 1 << 20))
    assert not room(Worker(1 << 20, 1 << 20, 1 << 20, 1 << 20))
    assert not room(Worker(1 << 20, 15 << 20, 1 << 20))


def test_a_file_s_later_chunks_are_sampled_only_after_one_that_did_not_compress(
    tmp_path: Path,
) -> None:
    """The first new chunk of a file is sampled for compressibility; the next ones are
    compressed at once while they compress, and sampled again after one that did not."""
    rnd = random.Random(3)
    text = tmp_path / "datenbank.dbf"
    text.write_bytes(b"".join(b"Patient %08d;Befund unauffaellig;" % i for i in range(200_000)))
    noise = tmp_path / "scan.tif"
    noise.write_bytes(rnd.randbytes(6 << 20))
    packer = pipeline.FilePacker(packer_params(), lambda pack: None)
    samples: list[int] = []
    probe = packer._probe

    class CountingProbe:
        def compress(self, data: bytes) -> bytes:
            samples.append(len(data))
            return probe.compress(data)

    packer._probe = CountingProbe()  # type: ignore[assignment]
    read = packer.read_file(str(text))
    assert read.status == "ok" and len(read.ids) >= 2 and len(samples) == 1
    samples.clear()
    read = packer.read_file(str(noise))
    assert read.status == "ok" and len(samples) == len(read.ids) > 3


def test_large_files_ahead_of_the_restore_walk_are_written_beside_the_small_ones(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the restore's walk hands windows of letters to the workers, the scans of a folder
    it has not entered yet are planned and written beside them; the walk skips them when it
    gets there. Every file is planned once, hard links and all come back exactly."""
    monkeypatch.setattr(restorer_module, "WINDOW_FILES", 16)
    src = scans_behind_documents(tmp_path)
    before = tree_state(src)
    snap = find_snapshot(repo, Archiver(repo, BackupOptions([str(src)])).run().snapshot.id)
    planned: list[str] = []
    made: dict[str, int] = {}  # folder -> files planned when the walk made it
    plan_file, make_dir = Restorer._plan_file, Restorer._make_dir

    def spy_plan(self: Restorer, folder: Any, parts: Any, name: str, node: Any, spath: str) -> Any:
        planned.append(spath.rsplit("/praxis/", 1)[1])
        return plan_file(self, folder, parts, name, node, spath)

    def spy_dir(self: Restorer, place: Any, node: Any, spath: str) -> bool:
        made[place[1]] = len(planned)
        return make_dir(self, place, node, spath)

    monkeypatch.setattr(Restorer, "_plan_file", spy_plan)
    monkeypatch.setattr(Restorer, "_make_dir", spy_dir)
    target = tmp_path / "restore"
    result = Restorer(repo, snap, RestoreOptions(str(target), processes=2, verify=True)).run()
    assert result.ok and result.files == 187 and result.links == 1
    ahead = [p for p in planned[: made["b-scans"]] if p.startswith("b-scans/")]
    assert ahead and all("/Scan-" in p or "/Doppel" in p for p in ahead), planned
    assert len(planned) == len(set(planned)) == 187  # (the second link is linked, not planned)
    assert tree_state(target.joinpath(*src.parts[1:])) == before


def test_nothing_is_restored_ahead_of_the_walk_with_an_include(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With --include only what matches is restored: nothing is looked up ahead of the walk,
    whose matching decides (and likewise with a path mapping or links to follow)."""
    monkeypatch.setattr(restorer_module, "WINDOW_FILES", 16)
    src = scans_behind_documents(tmp_path)
    snap = find_snapshot(repo, Archiver(repo, BackupOptions([str(src)])).run().snapshot.id)
    include = (src / "a-briefe").as_posix()
    options = RestoreOptions(str(tmp_path / "r"), processes=2, includes=[include])
    restorer = Restorer(repo, snap, options)
    assert restorer._ahead is None
    result = restorer.run()
    assert result.ok and result.files == 180
    assert not (tmp_path / "r").joinpath(*src.parts[1:], "b-scans").exists()


def test_opening_ahead_leaves_descriptors_free_and_gives_up_when_they_run_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch opens at most ``open_ahead`` files ahead; out of descriptors it holds none (the
    next batch, the pack, a large file need them) and every file is opened when it is read -
    none is skipped."""
    files = [tmp_path / f"Brief-{i}.txt" for i in range(10)]
    for i, path in enumerate(files):
        path.write_bytes(b"Befund %d " % i * 50)
    batch = [(i, str(p), p.stat().st_size) for i, p in enumerate(files)]
    packer = pipeline.FilePacker(packer_params(), lambda pack: None)
    packer.open_ahead = 3
    opened = packer.open_batch(batch)
    assert sorted(opened) == [0, 1, 2]
    pipeline.close_opened(opened)
    packer.open_ahead = 100
    real_open = pipeline.open_source
    opens = {"n": 0}

    def scarce(path: str) -> int:
        opens["n"] += 1
        if opens["n"] > 4:
            raise OSError(errno.EMFILE, "Too many open files")
        return real_open(path)

    monkeypatch.setattr(pipeline, "open_source", scarce)
    in_use = len(os.listdir("/proc/self/fd"))
    assert packer.open_batch(batch) == {}
    assert len(os.listdir("/proc/self/fd")) == in_use  # (the four it had opened: closed)
    monkeypatch.setattr(pipeline, "open_source", real_open)
    results = packer.read_batch(batch, {})
    assert [r.status for _t, r in results] == ["ok"] * 10
    assert [r.size for _t, r in results] == [p.stat().st_size for p in files]


def test_a_backup_under_a_low_descriptor_limit_skips_nothing(tmp_path: Path) -> None:
    """``ulimit -n 40`` (soft and hard: nothing to raise): the worker processes open nothing
    ahead, and every file is read (an outsider saw thousands skipped at 24-64)."""
    src = scans_behind_documents(tmp_path, folders=40)
    repo = tmp_path / "repo"
    assert run_cli("init", repo=repo).returncode == 0
    limited = (
        "import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40)); "
        "sys.argv = ['praxisbackup'] + sys.argv[1:]; "
        "runpy.run_module('praxisbackup.cli.main', run_name='__main__')"
    )
    env = dict(os.environ, PRAXISBACKUP_PASSWORD=PASSWORD, PRAXISBACKUP_KDF_N="1024")
    proc = subprocess.run(
        [sys.executable, "-c", limited, "-r", str(repo), "--json", "backup", str(src)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    snapshot = json.loads(proc.stdout)["snapshot"]
    assert snapshot["skipped"] == [] and snapshot["warnings"] == []
    assert snapshot["summary"]["files_new"] == 40 * 60 + 7  # (and one hard link)
    assert snapshot["summary"]["total_files"] == 40 * 60 + 8


def test_a_file_swapped_for_a_fifo_is_skipped_without_waiting_for_a_writer(
    tmp_path: Path,
) -> None:
    """A file replaced by a FIFO after the walk saw it: the open does not wait for a writer
    (a night would hang), the file is skipped as no longer a regular file."""
    fifo = tmp_path / "Befund.pdf"
    os.mkfifo(fifo)
    packer = pipeline.FilePacker(packer_params(), lambda pack: None)
    done: list[pipeline.FileRead] = []
    reader = threading.Thread(target=lambda: done.append(packer.read_file(str(fifo))))
    reader.start()
    reader.join(timeout=20)
    if reader.is_alive():  # (let the test end: a writer releases the blocked open)
        with open(fifo, "wb"):
            pass
        reader.join()
    assert done and done[0].status == "skipped"
    assert done[0].reason == "is no longer a regular file"


@pytest.mark.parametrize("in_the_way", ["file", "link"])
def test_a_folder_that_cannot_be_made_is_reported_once_also_ahead_of_the_walk(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_the_way: str
) -> None:
    """The scans' folder is a file or a link (to outside) in the target: the restore with
    workers, which would restore the scans ahead of the walk, reports it exactly as the one
    without (one error, "nothing was written through it" once) - not once per scan (an
    outsider saw 22 error lines and "17 folders refused")."""
    monkeypatch.setattr(restorer_module, "WINDOW_FILES", 16)
    src = scans_behind_documents(tmp_path)
    snap = find_snapshot(repo, Archiver(repo, BackupOptions([str(src)])).run().snapshot.id)
    outside = tmp_path / "outside"
    outside.mkdir()
    reports = {}
    for processes in (0, 2):
        target = tmp_path / f"r{processes}"
        below = target.joinpath(*src.parts[1:])
        below.mkdir(parents=True)
        if in_the_way == "file":
            (below / "b-scans").write_text("im Weg")
        else:
            (below / "b-scans").symlink_to(outside)
        options = RestoreOptions(str(target), processes=processes, overwrite="always")
        result = Restorer(repo, snap, options).run()
        assert result.files == 180 and not result.ok
        reports[processes] = sorted(
            (e.path.replace(str(target), "T"), e.reason.replace(str(target), "T"))
            for e in result.errors
        )
    assert reports[2] == reports[0] and len(reports[0]) == 1, reports
    assert not list(outside.iterdir())


def test_a_file_swapped_for_a_link_or_a_folder_is_no_longer_a_regular_file(
    tmp_path: Path,
) -> None:
    """Swapped after the walk saw it: skipped as "no longer a regular file", not as a link loop
    (``O_NOFOLLOW`` answers ELOOP) - and nothing is read through the link."""
    (tmp_path / "geheim.txt").write_bytes(b"nicht sichern")
    (tmp_path / "Befund.pdf").symlink_to(tmp_path / "geheim.txt")
    (tmp_path / "Brief.txt").mkdir()
    packer = pipeline.FilePacker(packer_params(), lambda pack: None)
    for name in ("Befund.pdf", "Brief.txt"):
        read = packer.read_file(str(tmp_path / name))
        assert (read.status, read.reason, read.ids) == ("skipped", pipeline.NOT_REGULAR, [])


def test_a_ctrl_c_while_workers_start_prints_nothing_and_ends_nothing(tmp_path: Path) -> None:
    """Ctrl-C reaches the terminal's whole process group, also workers whose interpreter is
    still starting (a restore starts them while the key is derived): each is sent SIGINT the
    moment it exists. None prints a traceback or ends; they still work and end cleanly."""
    script = tmp_path / "start.py"
    script.write_text(
        "import os, signal, sys, time\n"
        "from praxisbackup.engine import pipeline\n"
        "pool = pipeline.WorkerPool(3)\n"
        "workers = list(pool.workers)\n"
        "for w in workers:\n"
        "    os.kill(w.proc.pid, signal.SIGINT)\n"
        "time.sleep(1.5)\n"
        "alive = [w.proc.poll() is None for w in workers]\n"
        "pool.close()\n"
        "print(alive, [w.proc.returncode for w in workers])\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[True, True, True] [0, 0, 0]"
    assert "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stderr, done.stderr
