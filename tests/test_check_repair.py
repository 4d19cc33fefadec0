"""Damage on the medium is detected by check, named by file, and repair saves every intact file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import PASSWORD, reopen, restored_path, run_cli, snap_path
from praxisbackup.engine.archiver import Archiver, BackupOptions
from praxisbackup.engine.browse import walk
from praxisbackup.engine.checker import Checker
from praxisbackup.engine.pack import DATA, TREE
from praxisbackup.engine.paths import native_path
from praxisbackup.engine.repository import Repository
from praxisbackup.storage import LocalBackend


@pytest.fixture
def filled(tmp_path: Path) -> tuple[Path, Path, str]:
    """A repository with 40 files of 100 KiB in packs of ~256 KiB (about 16 data packs)."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(40):
        (src / f"doc-{i:02d}.pdf").write_bytes(os.urandom(100_000))
    repo_path = tmp_path / "repo"
    repo = Repository.init(LocalBackend(str(repo_path)), PASSWORD, pack_size=256 << 10)
    repo.load_index()
    snap = Archiver(repo, BackupOptions([str(src)])).run().snapshot
    return src, repo_path, snap.id


def file_packs(repo_path: Path, snap_id: str) -> dict[str, str]:
    """Snapshot path -> pack id of its (single) chunk."""
    repo = reopen(repo_path)
    snap = next(
        s for s in __import__("praxisbackup.engine.snapshot", fromlist=["x"]).list_snapshots(repo)
    )
    out = {}
    for path, node in walk(repo, snap.tree_id):
        if node.type == "file":
            loc = repo.index.lookup(DATA, node.content[0])
            assert loc is not None
            out[path] = loc.pack_id
    return out


def pack_file(repo_path: Path, pack_id: str) -> Path:
    return repo_path / "data" / pack_id[:2] / pack_id


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


def check_json(repo_path: Path, *args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    proc = run_cli("--json", "check", *args, repo=repo_path)
    return proc.returncode, json.loads(proc.stdout)


def test_clean_repository_checks_green(filled: tuple[Path, Path, str]) -> None:
    _src, repo_path, _ = filled
    code, doc = check_json(repo_path, "--read-data")
    assert code == 0 and doc["ok"] and doc["packs_read"] == doc["packs_total"] > 10
    code, doc = check_json(repo_path, "--read-data-subset", "1/3")
    assert code == 0 and 0 < doc["packs_read"] < doc["packs_total"]


def test_bit_flip_in_pack_is_found_named_and_repaired(
    filled: tuple[Path, Path, str], tmp_path: Path
) -> None:
    src, repo_path, snap_id = filled
    packs = file_packs(repo_path, snap_id)
    victim_pack = sorted(packs.items())[5][1]
    victims = {p for p, k in packs.items() if k == victim_pack}
    flip_byte(pack_file(repo_path, victim_pack), 100)
    # The structure check cannot see a flipped bit; reading the data does.
    assert check_json(repo_path)[0] == 0
    code, doc = check_json(repo_path, "--read-data")
    assert code == 5 and not doc["ok"]
    named = set(doc["affected"][snap_id])
    # Offset 100 lies in the pack's first blob: exactly one of the pack's files is hit.
    assert len(named) == 1 and named <= victims
    victim_path = named.pop()
    named.add(victim_path)
    # Restore without repair: every other file comes back, the damaged one is named.
    out = run_cli("restore", "latest", "--target", str(tmp_path / "r1"), repo=repo_path)
    assert out.returncode == 2 and native_path(victim_path) in out.stderr  # D:\\... on Windows
    # The same when worker processes write the files (as in large restores).
    workers = run_cli(
        "restore", "latest", "--target", str(tmp_path / "r1w"), "--processes", "2", repo=repo_path
    )
    assert workers.returncode == 2 and native_path(victim_path) in workers.stderr
    assert sorted(workers.stderr.splitlines()) == sorted(out.stderr.splitlines())
    # repair drops the damaged blob from the index and lists what is lost.
    rep = run_cli("repair", repo=repo_path)
    assert rep.returncode == 5 and victim_path in rep.stdout
    code, doc = check_json(repo_path, "--read-data")
    assert code == 5 and victim_path in doc["affected"][snap_id]
    out = run_cli("restore", "latest", "--target", str(tmp_path / "r2"), "--verify", repo=repo_path)
    restored = restored_path(tmp_path / "r2", src)
    intact = 0
    for f in src.iterdir():
        if snap_path(f) in named:
            assert not (restored / f.name).exists()
            continue
        assert (restored / f.name).read_bytes() == f.read_bytes()
        intact += 1
    assert intact == 40 - len(named) >= 38


def test_truncated_and_deleted_packs_are_named(filled: tuple[Path, Path, str]) -> None:
    _src, repo_path, snap_id = filled
    packs = file_packs(repo_path, snap_id)
    ordered = sorted(set(packs.values()))
    truncated, deleted = ordered[0], ordered[1]
    p = pack_file(repo_path, truncated)
    p.write_bytes(p.read_bytes()[:-50])
    pack_file(repo_path, deleted).unlink()
    code, doc = check_json(repo_path)
    assert code == 5
    messages = {(e["object"], e["message"]) for e in doc["errors"]}
    assert any(o == deleted and "missing" in m for o, m in messages)
    assert any(o == truncated and "bytes, the index says" in m for o, m in messages)
    expected = {path for path, k in packs.items() if k in (truncated, deleted)}
    assert set(doc["affected"][snap_id]) == expected


def test_damaged_index_is_detected_and_rebuilt_without_loss(
    filled: tuple[Path, Path, str], tmp_path: Path
) -> None:
    src, repo_path, _ = filled
    index_files = list((repo_path / "index").iterdir())
    assert index_files
    flip_byte(index_files[0], 40)
    code, doc = check_json(repo_path)
    assert code == 5 and any(e["kind"] == "index" for e in doc["errors"])
    refused = run_cli("restore", "latest", "--target", str(tmp_path / "x"), repo=repo_path)
    assert refused.returncode == 5 and "repair" in refused.stderr
    rep = run_cli("repair", repo=repo_path)
    assert rep.returncode == 0, rep.stdout + rep.stderr
    assert check_json(repo_path, "--read-data")[0] == 0
    run_cli(
        "restore",
        "latest",
        "--target",
        str(tmp_path / "ok"),
        "--verify",
        repo=repo_path,
        check=True,
    )
    restored = restored_path(tmp_path / "ok", src)
    assert sorted(p.name for p in restored.iterdir()) == sorted(p.name for p in src.iterdir())


def test_deleted_index_is_rebuilt_from_packs(
    filled: tuple[Path, Path, str], tmp_path: Path
) -> None:
    _src, repo_path, _ = filled
    for f in (repo_path / "index").iterdir():
        f.unlink()
    code, doc = check_json(repo_path)
    assert code == 5
    assert any("pack is in no index" in w["message"] for w in doc["warnings"])
    assert run_cli("repair", repo=repo_path).returncode == 0
    assert check_json(repo_path, "--read-data")[0] == 0


def test_damaged_snapshot_and_tree_are_named(filled: tuple[Path, Path, str]) -> None:
    src, repo_path, snap_id = filled
    repo = reopen(repo_path)
    tree_packs = {repo.index.pack_of(TREE, t) for t in repo.index.blob_ids(TREE)}
    for pack in tree_packs:
        assert pack is not None
        flip_byte(pack_file(repo_path, pack), 30)
    code, doc = check_json(repo_path, "--read-data")
    assert code == 5
    # A damaged folder listing is reported as that folder (here: the source or one above it).
    affected = doc["affected"][snap_id]
    assert affected and all(p == "/" or snap_path(src).startswith(p) for p in affected)
    snap_file = repo_path / "snapshots" / snap_id
    flip_byte(snap_file, 20)
    code, doc = check_json(repo_path)
    assert code == 5 and any(
        e["kind"] == "snapshot" and e["object"] == snap_id for e in doc["errors"]
    )


def test_check_changes_nothing_on_the_medium(filled: tuple[Path, Path, str]) -> None:
    _src, repo_path, _ = filled

    def listing() -> dict[str, tuple[int, int]]:
        return {
            str(p.relative_to(repo_path)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in repo_path.rglob("*")
            if p.is_file()
        }

    before = listing()
    assert Checker(reopen(repo_path)).run(read_data=True).ok
    assert listing() == before


def test_worker_processes_and_the_checking_process_find_the_same_damage(
    filled: tuple[Path, Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``check --read-data`` verifies packs in worker processes (the command starts them while
    the key is derived); small verifications run in the checking process. Both report the
    same damage with the same affected files."""
    from praxisbackup.engine import checker

    _src, repo_path, snap_id = filled
    packs = file_packs(repo_path, snap_id)
    ordered = sorted(set(packs.values()))
    flip_byte(pack_file(repo_path, ordered[2]), 100)  # the first blob's ciphertext
    flip_byte(pack_file(repo_path, ordered[4]), pack_file(repo_path, ordered[4]).stat().st_size - 8)
    code, doc = check_json(repo_path, "--read-data")  # worker processes
    assert code == 5 and doc["packs_read"] == doc["packs_total"]
    monkeypatch.setattr(checker, "WORKER_BYTES", 1 << 40)
    here = Checker(reopen(repo_path)).run(read_data=True, record_damage=False)
    assert doc["affected"] == here.affected
    assert sorted(e["message"] for e in doc["errors"]) == sorted(e.message for e in here.errors)
    assert any("failed authentication" in e.message for e in here.errors)
    # A damaged pack header is reported, but the pack's blobs are checked where the index
    # places them (where a restore reads them): its intact files are not counted as damaged.
    assert any(
        e.object == ordered[4] and "where the index places them" in e.message for e in here.errors
    )
    header_files = {p for p, k in packs.items() if k == ordered[4]}
    assert len(here.affected[snap_id]) == 1 and not header_files & set(here.affected[snap_id])
