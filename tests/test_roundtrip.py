"""Backup -> restore round trips: restored trees equal the source byte for byte, time for time."""

from __future__ import annotations

import os
import random
import tempfile
import time
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import reopen, tree_state
from praxisbackup.engine.archiver import Archiver, BackupOptions
from praxisbackup.engine.repository import Repository
from praxisbackup.engine.restorer import RestoreOptions, Restorer
from praxisbackup.engine.snapshot import find_snapshot
from praxisbackup.storage import LocalBackend

NOW_NS = time.time_ns()


def backup(repo: Repository, src: Path, **kw: object) -> str:
    result = Archiver(repo, BackupOptions([str(src)], **kw)).run()  # type: ignore[arg-type]
    return result.snapshot.id


def restore(repo: Repository, snap_id: str, target: Path, **kw: object) -> Path:
    """Restore exactly, special entries included (like ``tar -p`` as root)."""
    snap = find_snapshot(repo, snap_id)
    kw.setdefault("special", True)
    result = Restorer(repo, snap, RestoreOptions(target=str(target), verify=True, **kw)).run()  # type: ignore[arg-type]
    assert result.ok, (result.errors, result.verify_failures)
    return target


def restored_root(target: Path, src: Path) -> Path:
    return target.joinpath(*[p for p in str(src).split("/") if p])


def set_times(path: Path, mtime_ns: int) -> None:
    # atime after mtime and recent: relatime then never touches it when files are read.
    os.utime(path, ns=(NOW_NS - 1_000_000_123, mtime_ns), follow_symlinks=False)


def build_zoo(src: Path) -> None:
    """Every kind of entry a practice server has, and the awkward ones it might have."""
    src.mkdir(parents=True)
    (src / "empty.txt").write_bytes(b"")
    (src / "letter.txt").write_text("Sehr geehrte Frau Müller,\n" * 100, encoding="utf-8")
    (src / "big.db").write_bytes(os.urandom(3 << 20) + bytes(2 << 20) + os.urandom(1 << 20))
    sparse = src / "sparse.img"
    with open(sparse, "wb") as fh:
        fh.seek(6 << 20)
        fh.write(b"end")
        fh.truncate(9 << 20)
    nfc = unicodedata.normalize("NFC", "Praxis-Café")
    nfd = unicodedata.normalize("NFD", "Praxis-Café")
    (src / nfc).write_bytes(b"nfc")
    (src / nfd).write_bytes(b"nfd")
    (src / ("L" * 255)).write_bytes(b"long name")
    deep = src
    for i in range(30):
        deep = deep / f"ebene-{i:02d}-{'x' * 100}"
    deep.mkdir(parents=True)
    (deep / "tief.txt").write_bytes(b"deep")
    (src / "Leerer Ordner").mkdir()
    ro = src / "readonly.txt"
    ro.write_bytes(b"ro")
    ro.chmod(0o444)
    odd = src / "odd.sh"
    odd.write_bytes(b"#!/bin/sh\n")
    odd.chmod(0o4751)
    os.symlink("letter.txt", src / "link-to-letter")
    os.symlink("does/not/exist", src / "dangling")
    os.link(src / "letter.txt", src / "hardlink-to-letter")
    os.mkfifo(src / "pipe")
    times = 1_500_000_000_123_456_789
    for dirpath, dirnames, filenames in os.walk(src, topdown=False):
        for name in filenames + dirnames:
            set_times(Path(dirpath) / name, times)
            times += 86_400_000_000_007
    set_times(src, times)


@pytest.mark.parametrize("processes", [0, 2], ids=["threads", "worker-processes"])
def test_zoo_round_trip(repo: Repository, tmp_path: Path, processes: int) -> None:
    src = tmp_path / "praxis"
    build_zoo(src)
    before = tree_state(src)
    snap_id = backup(repo, src)
    reopened = reopen(Path(repo.backend.location))
    target = restore(reopened, snap_id, tmp_path / "restore", processes=processes)
    after = tree_state(restored_root(target, src))
    assert after == before
    restored = restored_root(target, src)
    # Hard links are re-linked, not copied.
    assert (
        os.stat(restored / "letter.txt").st_ino == os.stat(restored / "hardlink-to-letter").st_ino
    )
    # The sparse file's hole stays a hole on a file system that supports it.
    assert os.stat(restored / "sparse.img").st_blocks * 512 < 1 << 20


def test_second_backup_reads_only_changes(repo: Repository, tmp_path: Path) -> None:
    src = tmp_path / "praxis"
    build_zoo(src)
    first = Archiver(repo, BackupOptions([str(src)])).run().snapshot
    second = Archiver(repo, BackupOptions([str(src)])).run().snapshot
    assert second.parent == first.id
    assert second.summary.bytes_read == 0
    assert second.summary.files_unmodified == first.summary.files_new
    # A database file of 16 MiB of random pages; one page changes in place in the middle.
    db = src / "pages.db"
    db.write_bytes(random.Random(3).randbytes(16 << 20))
    Archiver(repo, BackupOptions([str(src)])).run()
    with open(db, "r+b") as fh:
        fh.seek(8 << 20)
        fh.write(b"x" * 100)
    third = Archiver(repo, BackupOptions([str(src)])).run().snapshot
    assert third.summary.files_changed == 1
    assert third.summary.bytes_read == 16 << 20
    # Only the one or two chunks around the change are new (chunks average ~1 MiB).
    assert 0 < third.summary.data_added < 5 << 20
    forced = Archiver(repo, BackupOptions([str(src)], force=True)).run().snapshot
    assert forced.summary.bytes_read > 16 << 20
    assert forced.summary.data_added < 64 << 10  # everything was already stored


def test_every_snapshot_restores_on_its_own(repo: Repository, tmp_path: Path) -> None:
    src = tmp_path / "praxis"
    src.mkdir()
    states = []
    ids = []
    for night in range(4):
        (src / f"night-{night}.txt").write_text(f"Nacht {night}")
        (src / "changing.txt").write_text("v" * night)
        for p in src.iterdir():
            set_times(p, 1_600_000_000_000_000_000 + night)
        set_times(src, 1_600_000_000_000_000_000)
        states.append(tree_state(src))
        ids.append(backup(repo, src))
    for i, snap_id in enumerate(ids):
        target = restore(repo, snap_id, tmp_path / f"r{i}")
        assert tree_state(restored_root(target, src)) == states[i]


name_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00")
names = st.one_of(
    st.text(name_chars, min_size=1, max_size=30),
    st.sampled_from(["ä", "Ä", "ß", "日本語", "emoji-😀", " space ", "a" * 200, "-dash", "#hash"]),
).filter(lambda n: n not in (".", "..") and len(n.encode()) <= 255)
file_entry = st.tuples(
    names,
    st.one_of(
        st.binary(max_size=2000),
        st.integers(0, 3 << 20).map(lambda n: random.Random(n).randbytes(n)),
    ),
    st.sampled_from([0o644, 0o600, 0o444, 0o755, 0o700, 0o2755]),
    st.integers(0, 4_000_000_000_000_000_000),
)
tree_spec = st.recursive(
    st.lists(file_entry, max_size=6, unique_by=lambda e: e[0]),
    lambda children: st.lists(st.tuples(names, children), max_size=3, unique_by=lambda e: e[0]),
    max_leaves=12,
)


def materialize(base: Path, spec: object) -> None:
    base.mkdir(parents=True, exist_ok=True)
    assert isinstance(spec, list)
    for entry in spec:
        if len(entry) == 4:
            name, data, mode, mtime = entry
            p = base / name
            if p.exists():
                continue
            p.write_bytes(data)
            p.chmod(mode)
            set_times(p, mtime)
        else:
            name, children = entry
            p = base / ("d-" + name)[:255]
            if p.exists():
                continue
            materialize(p, children)
            set_times(p, 1_234_567_890_123_456_789)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(spec=tree_spec)
def test_generated_trees_round_trip(spec: object) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        src = base / "src"
        materialize(src, spec)
        before = tree_state(src)
        repo = Repository.init(LocalBackend(str(base / "repo")), "pw")
        repo.load_index()
        snap_id = backup(repo, src)
        target = restore(repo, snap_id, base / "out")
        assert tree_state(restored_root(target, src)) == before


def test_restore_from_many_packs_with_parallel_workers(tmp_path: Path) -> None:
    """More packs than cached read handles: handles are recycled while workers read."""
    src = tmp_path / "viele"
    src.mkdir()
    rnd = random.Random(5)
    for i in range(300):
        (src / f"f{i:03d}.bin").write_bytes(rnd.randbytes(rnd.randint(20_000, 120_000)))
    repo = Repository.init(LocalBackend(str(tmp_path / "repo")), "pw", pack_size=64 << 10)
    repo.load_index()
    snap_id = backup(repo, src)
    assert sum(1 for _ in repo.index.packs()) > 100
    target = restore(reopen(tmp_path / "repo", "pw"), snap_id, tmp_path / "out")
    assert tree_state(restored_root(target, src), with_atime=False) == tree_state(
        src, with_atime=False
    )


def test_existing_files_are_kept_unless_overwrite_is_asked(
    repo: Repository, tmp_path: Path
) -> None:
    src = tmp_path / "praxis"
    src.mkdir()
    (src / "brief.txt").write_text("original")
    snap_id = backup(repo, src)
    target = tmp_path / "out"
    restore(repo, snap_id, target)
    restored = restored_root(target, src) / "brief.txt"
    restored.write_text("changed by the user")
    snap = find_snapshot(repo, snap_id)
    kept = Restorer(repo, snap, RestoreOptions(target=str(target))).run()
    assert kept.existing_kept == [str(src / "brief.txt")] and kept.files == 0
    assert restored.read_text() == "changed by the user"
    if_changed = Restorer(
        repo, snap, RestoreOptions(target=str(target), overwrite="if-changed")
    ).run()
    assert if_changed.files == 1 and restored.read_text() == "original"
    again = Restorer(repo, snap, RestoreOptions(target=str(target), overwrite="if-changed")).run()
    assert again.files == 0 and again.existing_kept
    forced = Restorer(repo, snap, RestoreOptions(target=str(target), overwrite="always")).run()
    assert forced.files == 1 and restored.read_text() == "original"
    assert not list(restored.parent.glob(".praxisbackup-*"))
