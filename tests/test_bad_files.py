"""One bad file on a medium never blocks everything (issue #11): junk snapshot files, blobs
with a damaged copy, damage found by check, junk packs, garbage and expensive key slots."""

from __future__ import annotations

import base64
import json
import os
import random
from pathlib import Path

import blake3
import pytest

from conftest import PASSWORD, reopen, run_cli
from praxisbackup.engine import crypto
from praxisbackup.engine.index import IndexFile, PackRecord
from praxisbackup.engine.pack import DATA, PackBuilder
from praxisbackup.engine.repository import Repository
from praxisbackup.storage import LocalBackend


def backup_json(repo: Path, src: Path) -> dict[str, object]:
    out = run_cli("--json", "backup", str(src), repo=repo, check=True)
    doc: dict[str, object] = json.loads(out.stdout)["snapshot"]
    return doc


@pytest.fixture
def two_snapshots(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    src = tmp_path / "praxis"
    src.mkdir()
    repo = tmp_path / "repo"
    run_cli("init", repo=repo, check=True)
    ids = []
    for night in range(2):
        (src / f"nacht-{night}.txt").write_text(f"Befunde der Nacht {night}\n" * 500)
        ids.append(str(backup_json(repo, src)["id"]))
    return repo, src, ids


def plant_junk(repo: Path, kind: str) -> str:
    data = b"" if kind == "empty" else os.urandom(300)
    name = "0" * 64 if kind == "empty" else blake3.blake3(data).hexdigest()
    (repo / "snapshots" / name).write_bytes(data)
    return name


@pytest.mark.parametrize("kind", ["empty", "random-bytes-named-by-their-hash"])
def test_a_junk_snapshot_file_is_reported_and_skipped(
    two_snapshots: tuple[Path, Path, list[str]], tmp_path: Path, kind: str
) -> None:
    repo, src, ids = two_snapshots
    junk = plant_junk(repo, kind)
    listing = run_cli("snapshots", repo=repo)
    assert listing.returncode == 0, listing.stderr
    assert f"warning: snapshot file {junk[:16]} skipped" in listing.stderr
    assert "2 snapshots" in listing.stdout
    for ref in ("latest", ids[0][:8]):
        out = run_cli("restore", ref, "--target", str(tmp_path / f"r-{ref}"), repo=repo)
        assert out.returncode == 0, out.stderr
    restored = tmp_path / "r-latest" / str(src).lstrip("/") / "nacht-1.txt"
    assert restored.read_text().startswith("Befunde der Nacht 1")
    unreadable = run_cli("restore", junk[:10], "--target", str(tmp_path / "x"), repo=repo)
    assert unreadable.returncode == 5 and "Traceback" not in unreadable.stderr
    check = run_cli("check", repo=repo)
    assert check.returncode == 5 and f"error: snapshot {junk[:16]}" in check.stderr
    forget = run_cli("forget", "--keep-last", "1", "--prune", repo=repo)
    assert forget.returncode == 0, forget.stderr
    assert f"forget {ids[0][:8]}" in forget.stdout
    assert run_cli("prune", repo=repo).returncode == 0
    assert (repo / "snapshots" / junk).exists()  # not deleted: check keeps reporting it
    out = run_cli("restore", "latest", "--target", str(tmp_path / "after"), "--verify", repo=repo)
    assert out.returncode == 0, out.stderr


def test_a_snapshot_file_that_cannot_be_read_stops_prune_but_not_restore(
    world_dir: Path,
) -> None:
    """An input/output error is not junk: the file may be fine, the read failed. Prune then
    deletes nothing; every other snapshot still restores."""
    src = world_dir / "praxis"
    src.mkdir()
    repo = world_dir / "repo"
    run_cli("init", repo=repo, check=True)
    ids = []
    for night in range(3):
        (src / f"nacht-{night}.bin").write_bytes(os.urandom(60_000))
        ids.append(str(backup_json(repo, src)["id"]))
    for p in [repo, *repo.rglob("*")]:
        p.chmod(0o777 if p.is_dir() else 0o666)
    (repo / "snapshots" / ids[0]).chmod(0o600)  # root's: user nobody cannot read it
    (repo / "snapshots" / ids[1]).unlink()  # forgotten: its data is unused now
    packs_before = sorted(p.name for p in (repo / "data").rglob("*") if p.is_file())
    target = world_dir / "target"
    out = run_cli("restore", "latest", "--target", str(target), repo=repo, user="nobody")
    assert out.returncode == 0, out.stderr
    assert f"warning: snapshot file {ids[0][:16]} skipped" in out.stderr
    pruned = run_cli("prune", repo=repo, user="nobody")
    assert pruned.returncode == 2, pruned.stderr
    assert "prune stopped, nothing was deleted" in pruned.stderr
    assert sorted(p.name for p in (repo / "data").rglob("*") if p.is_file()) == packs_before


def test_a_blob_with_a_damaged_copy_is_read_from_its_other_copy(tmp_path: Path) -> None:
    src = tmp_path / "praxis"
    src.mkdir()
    (src / "akte.bin").write_bytes(random.Random(1).randbytes(200_000))
    repo_path = tmp_path / "repo"
    run_cli("init", repo=repo_path, check=True)
    backup_json(repo_path, src)
    repo = reopen(repo_path)
    # Store every data blob a second time in a pack of its own, indexed like any other.
    builder = PackBuilder()
    for blob_id in list(repo.index.blob_ids(DATA)):
        data = repo.read_blob(DATA, blob_id)
        builder.add(DATA, 0, blob_id, repo.cipher.seal(data, bytes([DATA]) + blob_id), len(data))
    pack = builder.finish(repo.cipher)
    repo.backend.write("data", pack.id, pack.parts)
    repo.write_index(IndexFile(packs=[PackRecord(pack.id, pack.size, pack.entries)]))
    repo = reopen(repo_path)
    blob_id = next(repo.index.blob_ids(DATA))
    copies = repo.index.locations(DATA, blob_id)
    assert len(copies) == 2
    first = copies[0]
    path = repo_path / "data" / first.pack_id[:2] / first.pack_id
    raw = bytearray(path.read_bytes())
    raw[first.offset + 20] ^= 0xFF
    path.write_bytes(bytes(raw))
    out = run_cli("restore", "latest", "--target", str(tmp_path / "r"), "--verify", repo=repo_path)
    assert out.returncode == 0, out.stderr
    restored = tmp_path / "r" / str(src).lstrip("/") / "akte.bin"
    assert restored.read_bytes() == (src / "akte.bin").read_bytes()


def flip_blob(repo_path: Path, repo: Repository, blob_type: int, blob_id: bytes, at: int) -> str:
    """Flip a bit ``at`` bytes into a blob's stored copy; returns its pack."""
    loc = repo.index.lookup(blob_type, blob_id)
    assert loc is not None
    path = repo_path / "data" / loc.pack_id[:2] / loc.pack_id
    raw = bytearray(path.read_bytes())
    raw[loc.offset + at] ^= 0x01
    path.write_bytes(bytes(raw))
    return loc.pack_id


def flip_first_data_pack(repo_path: Path) -> str:
    repo = reopen(repo_path)
    return flip_blob(repo_path, repo, DATA, next(repo.index.blob_ids(DATA)), 30)


def test_damage_found_by_check_makes_the_next_backup_store_the_data_again(
    tmp_path: Path,
) -> None:
    src = tmp_path / "praxis"
    src.mkdir()
    for i in range(3):
        (src / f"akte-{i}.bin").write_bytes(random.Random(i).randbytes(150_000))
    repo = tmp_path / "repo"
    run_cli("init", repo=repo, check=True)
    backup_json(repo, src)
    damaged_pack = flip_first_data_pack(repo)
    check = run_cli("check", "--read-data", repo=repo)
    assert check.returncode == 5
    assert list((repo / "meta").glob("damage-*")), "check recorded what it found"
    second = backup_json(repo, src)
    summary = second["summary"]
    assert isinstance(summary, dict) and summary["blobs_new"] > 0, "damaged data stored again"
    out = run_cli("restore", "latest", "--target", str(tmp_path / "r"), "--verify", repo=repo)
    assert out.returncode == 0, out.stderr
    structure = run_cli("check", repo=repo)
    assert structure.returncode == 1 and "another copy is intact" in structure.stdout
    assert run_cli("prune", repo=repo).returncode == 0
    assert not (repo / "data" / damaged_pack[:2] / damaged_pack).exists()
    assert not list((repo / "meta").glob("damage-*"))
    final = run_cli("check", "--read-data", repo=repo)
    assert final.returncode == 0, final.stdout + final.stderr


def test_prune_removes_junk_in_the_data_folder(tmp_path: Path) -> None:
    src = tmp_path / "praxis"
    src.mkdir()
    (src / "a.bin").write_bytes(os.urandom(50_000))
    repo = tmp_path / "repo"
    run_cli("init", repo=repo, check=True)
    backup_json(repo, src)
    real = next(p for p in (repo / "data").rglob("*") if p.is_file())
    copy = repo / "data" / "00" / ("00" + real.name[2:])  # a pack under another name
    misfiled = repo / "data" / "ff" / ("00" + real.name[2:])  # unreachable: wrong folder
    misfiled.write_bytes(real.read_bytes())
    copy.write_bytes(real.read_bytes())
    junk_data = os.urandom(4000)
    junk_name = blake3.blake3(junk_data).hexdigest()
    junk = repo / "data" / junk_name[:2] / junk_name  # random bytes named by their hash
    junk.write_bytes(junk_data)
    assert run_cli("check", repo=repo).returncode == 1  # warnings: packs in no index
    assert run_cli("backup", str(src), repo=repo).returncode == 0  # neither is adopted
    pruned = run_cli("--json", "prune", repo=repo)
    assert pruned.returncode == 0, pruned.stderr
    assert json.loads(pruned.stdout)["junk_files_removed"] == 2
    assert not copy.exists() and not junk.exists() and not misfiled.exists()
    assert real.exists()
    assert run_cli("check", "--read-data", repo=repo).returncode == 0


def crafted_slot(n: int, r: int, p: int) -> bytes:
    doc = {
        "version": 1,
        "kdf": {
            "name": "scrypt",
            "n": n,
            "r": r,
            "p": p,
            "salt": base64.b64encode(os.urandom(32)).decode(),
        },
        "data": base64.b64encode(os.urandom(120)).decode(),
    }
    return json.dumps(doc).encode()


def plant_slot(repo: Path, raw: bytes) -> str:
    name = crypto.storage_id(raw)
    (repo / "keys" / name).write_bytes(raw)
    return name


def test_check_flags_a_key_slot_whose_content_is_garbage(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    run_cli("init", repo=repo, check=True)
    garbage = plant_slot(repo, os.urandom(200))
    assert run_cli("snapshots", repo=repo).returncode == 0  # still opens with the real slot
    out = run_cli("check", repo=repo)
    assert out.returncode == 5 and f"error: key {garbage[:16]}" in out.stderr


def test_expensive_key_slots_are_refused_and_cheap_ones_tried_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo_path = tmp_path / "repo"
    Repository.init(LocalBackend(str(repo_path)), PASSWORD)
    huge = plant_slot(repo_path, crafted_slot(1 << 24, 64, 1))  # 128 GiB
    slow = plant_slot(repo_path, crafted_slot(1 << 16, 8, 64))  # 32 x the default work
    allowed_but_costly = plant_slot(repo_path, crafted_slot(1 << 17, 8, 16))  # 16 x: allowed
    derived: list[crypto.KdfParams] = []
    real_derive = crypto._derive

    def recording_derive(passphrase: str, salt: bytes, params: crypto.KdfParams) -> bytes:
        derived.append(params)
        return real_derive(passphrase, salt, params)

    monkeypatch.setattr(crypto, "_derive", recording_derive)
    repo = Repository.open(LocalBackend(str(repo_path)), PASSWORD)
    assert derived == [crypto.KdfParams(n=1024)]  # the cheap, right slot first; nothing else
    assert repo.key_slot not in (huge, slow, allowed_but_costly)
    out = run_cli("check", repo=repo_path)
    assert out.returncode == 5
    assert f"error: key {huge[:16]}: key slot asks for 131072 MiB of memory" in out.stderr
    assert f"error: key {slow[:16]}: key slot asks for 32 times" in out.stderr
    assert allowed_but_costly[:16] not in out.stderr


def test_damage_found_by_the_nightly_verification_is_stored_again_next_time(
    tmp_path: Path,
) -> None:
    """The job verifies with Checker.verify_packs inside its backup lock: what it finds is
    recorded, and the next backup does not point at the damaged copy."""
    from praxisbackup.engine.archiver import Archiver, BackupOptions
    from praxisbackup.engine.checker import Checker
    from praxisbackup.engine.lock import lock_repository

    src = tmp_path / "praxis"
    src.mkdir()
    (src / "akte.bin").write_bytes(random.Random(7).randbytes(300_000))
    repo_path = tmp_path / "repo"
    run_cli("init", repo=repo_path, check=True)
    backup_json(repo_path, src)
    flip_first_data_pack(repo_path)
    repo = reopen(repo_path)
    with lock_repository(repo, exclusive=False, command="nightly job"):
        result = Checker(repo).verify_packs([p for p, _s in repo.index.packs()])
    assert not result.ok and list((repo_path / "meta").glob("damage-*"))
    repo = reopen(repo_path)
    with lock_repository(repo, exclusive=False, command="nightly job"):
        snap = Archiver(repo, BackupOptions([str(src)])).run().snapshot
    assert snap.summary.blobs_new > 0 and snap.summary.bytes_read == 300_000  # read again
    out = run_cli("restore", snap.id, "--target", str(tmp_path / "r"), "--verify", repo=repo_path)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("examined_by", ["this-process", "worker-processes"])
def test_damaged_trees_of_a_folder_and_its_parent_are_not_shared_by_the_next_snapshot(
    tmp_path: Path, examined_by: str
) -> None:
    """The previous trees of ``a`` and ``a/b`` are both damaged. ``a/b`` is then rebuilt
    without a previous listing; its new tree has the id of the damaged one and was once taken
    as "already stored" - a green night whose snapshot could not restore ``a/b`` (outsider).
    The stored copy is now read first, found damaged and stored anew."""
    from praxisbackup.engine import pipeline
    from praxisbackup.engine.archiver import Archiver, BackupOptions
    from praxisbackup.engine.browse import walk
    from praxisbackup.engine.pack import TREE
    from praxisbackup.engine.restorer import RestoreOptions, Restorer
    from praxisbackup.engine.snapshot import find_snapshot

    src = tmp_path / "praxis"
    (src / "a" / "b").mkdir(parents=True)
    (src / "a" / "b" / "f1.txt").write_text("eins")
    (src / "a" / "b" / "f2.txt").write_text("zwei")
    repo_path = tmp_path / "repo"
    repo = Repository.init(LocalBackend(str(repo_path)), PASSWORD)
    repo.load_index()
    Archiver(repo, BackupOptions([str(src)])).run()
    (src / "a" / "x.txt").write_text("neu")  # a's tree changes, a/b's does not
    latest = Archiver(repo, BackupOptions([str(src)])).run().snapshot
    subtrees = {path: node.subtree for path, node in walk(repo, latest.tree_id) if node.subtree}
    for folder in (src / "a", src / "a" / "b"):
        tree_id = subtrees[str(folder)]
        assert tree_id is not None
        flip_blob(repo_path, repo, TREE, tree_id, 20)
    repo = reopen(repo_path)
    if examined_by == "worker-processes":
        pipeline.prestart(2)
    result = Archiver(repo, BackupOptions([str(src)])).run()
    assert any("read again" in w.reason for w in result.snapshot.warnings)
    repo = reopen(repo_path)
    target = tmp_path / "target"
    restored = Restorer(
        repo, find_snapshot(repo, "latest"), RestoreOptions(target=str(target), verify=True)
    ).run()
    assert restored.ok, (restored.errors, restored.verify_failures)
    back = target.joinpath(*src.parts[1:])
    assert (back / "a" / "b" / "f1.txt").read_text() == "eins"
    assert (back / "a" / "b" / "f2.txt").read_text() == "zwei"
