"""Backup behaviour with the awkward inputs a practice server produces."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

from conftest import reopen, run_cli
from fsimages import ext4_image, fat_image, remount_readonly
from praxisbackup.engine.checker import Checker


def make_source(base: Path, files: int = 5) -> Path:
    src = base / "praxis"
    src.mkdir()
    for i in range(files):
        (src / f"brief-{i}.txt").write_text(f"Brief {i}\n" * 50)
    return src


def test_missing_source_is_an_error(tmp_path: Path) -> None:
    run_cli("init", repo=tmp_path / "repo", check=True)
    out = run_cli("backup", str(tmp_path / "nicht-da"), repo=tmp_path / "repo")
    assert out.returncode == 2
    assert f"the source path {tmp_path / 'nicht-da'} does not exist" in out.stderr
    assert json.loads(run_cli("--json", "snapshots", repo=tmp_path / "repo").stdout) == []


def test_unreadable_files_and_folders_are_recorded_and_backup_continues(world_dir: Path) -> None:
    repo = world_dir / "repo"
    run_cli("init", repo=repo, check=True)
    for p in [repo, *repo.rglob("*")]:
        p.chmod(0o777 if p.is_dir() else 0o666)
    src = make_source(world_dir)
    secret = src / "gesperrt.txt"
    secret.write_text("no access")
    secret.chmod(0o000)
    closed = src / "Verschlossen"
    closed.mkdir()
    (closed / "inside.txt").write_text("x")
    closed.chmod(0o000)
    src.chmod(0o755)
    out = run_cli("--json", "backup", str(src), repo=repo, user="nobody")
    assert out.returncode == 1, out.stderr
    snap = json.loads(out.stdout)["snapshot"]
    skipped = {s["path"]: s["reason"] for s in snap["skipped"]}
    assert "Permission denied" in skipped[str(secret)]
    assert "cannot list folder" in skipped[str(closed)]
    assert snap["summary"]["total_files"] == 5
    listing = run_cli("ls", "latest", repo=repo, check=True).stdout.splitlines()
    assert str(src / "brief-0.txt") in listing and str(secret) not in listing


def test_file_changing_during_backup_gives_a_warning(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    run_cli("init", repo=repo, check=True)
    src = make_source(tmp_path)
    growing = src / "protokoll.log"
    growing.write_bytes(os.urandom(60 << 20))
    stop = threading.Event()

    def writer() -> None:
        with open(growing, "ab") as fh:
            while not stop.is_set():
                fh.write(b"neue Zeile\n")
                fh.flush()
                time.sleep(0.001)

    t = threading.Thread(target=writer)
    t.start()
    try:
        out = run_cli("--json", "backup", str(src), repo=repo)
    finally:
        stop.set()
        t.join()
    assert out.returncode == 1, out.stderr
    warnings = json.loads(out.stdout)["snapshot"]["warnings"]
    assert any(
        w["path"] == str(growing) and "changed while being read" in w["reason"] for w in warnings
    )


def test_excludes_and_tags(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    run_cli("init", repo=repo, check=True)
    src = make_source(tmp_path)
    (src / "cache").mkdir()
    (src / "cache" / "x.tmp").write_text("x")
    (src / "keep.tmp").write_text("x")
    out = run_cli(
        "--json",
        "backup",
        str(src),
        "--exclude",
        "*.tmp",
        "--exclude",
        f"{src}/cache",
        "--tag",
        "abend",
        repo=repo,
        check=True,
    )
    assert json.loads(out.stdout)["snapshot"]["tags"] == ["abend"]
    listing = run_cli("ls", "latest", str(src), repo=repo, check=True).stdout
    assert "keep.tmp" not in listing and "cache" not in listing and "brief-0.txt" in listing


def test_no_progress_output_when_not_a_terminal(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    run_cli("init", repo=repo, check=True)
    out = run_cli("backup", str(make_source(tmp_path)), repo=repo, check=True)
    assert "\x1b[" not in out.stdout + out.stderr
    assert out.stdout.startswith("snapshot ") and out.stderr == ""


def test_full_medium_fails_clearly_and_keeps_earlier_snapshots(tmp_path: Path) -> None:
    src = make_source(tmp_path)
    with ext4_image(tmp_path, 24) as mnt:
        repo = mnt / "repo"
        run_cli("init", repo=repo, check=True)
        run_cli("backup", str(src), repo=repo, check=True)
        (src / "scan.tif").write_bytes(os.urandom(40 << 20))
        out = run_cli("backup", str(src), repo=repo)
        assert out.returncode == 2
        assert "the backup medium is full" in out.stderr
        assert "Traceback" not in out.stderr
        snaps = json.loads(run_cli("--json", "snapshots", repo=repo, check=True).stdout)
        assert len(snaps) == 1
        assert Checker(reopen(repo)).run(read_data=True).ok
        restored = run_cli(
            "restore", "latest", "--target", str(tmp_path / "r"), "--verify", repo=repo
        )
        assert restored.returncode == 0, restored.stderr


def test_read_only_medium_is_reported(tmp_path: Path) -> None:
    src = make_source(tmp_path)
    with ext4_image(tmp_path, 16) as mnt:
        repo = mnt / "repo"
        run_cli("init", repo=repo, check=True)
        run_cli("backup", str(src), repo=repo, check=True)
        remount_readonly(mnt)
        out = run_cli("backup", str(src), repo=repo)
        assert out.returncode == 2 and "read-only" in out.stderr
        # Reading still works, without a lock when asked (readers lock otherwise).
        locked = run_cli("check", "--read-data", repo=repo)
        assert locked.returncode == 2 and "use --no-lock" in locked.stderr
        assert run_cli("check", "--read-data", "--no-lock", repo=repo).returncode == 0
        restored = run_cli(
            "restore", "latest", "--target", str(tmp_path / "r"), "--no-lock", repo=repo
        )
        assert restored.returncode == 0, restored.stderr


def test_removed_medium_is_reported(tmp_path: Path) -> None:
    repo = tmp_path / "usb" / "repo"
    run_cli("init", repo=repo, check=True)
    shutil.rmtree(tmp_path / "usb")
    out = run_cli("backup", str(make_source(tmp_path)), repo=repo)
    assert out.returncode == 2 and "is the medium attached" in out.stderr.replace(
        "no praxisbackup repository", "is the medium attached"
    )


def test_whole_second_times_still_show_a_coarse_target(tmp_path: Path) -> None:
    """Files with whole-second times (copied from FAT, unpacked from ZIP) are read back only
    until enough matched; odd seconds on a FAT target (2 s) are still caught and reported."""
    src = make_source(tmp_path, files=8)
    for i, f in enumerate(sorted(src.iterdir())):
        os.utime(f, ns=(1_700_000_001_000_000_000 + 2_000_000_000 * i, 1_600_000_001_000_000_000))
    repo = tmp_path / "repo"
    run_cli("init", repo=repo, check=True)
    run_cli("backup", str(src), repo=repo, check=True)
    fat_base = tmp_path / "fat"
    fat_base.mkdir()
    with fat_image(fat_base) as fat:
        out = run_cli("--json", "restore", "latest", "--target", str(fat), repo=repo)
        assert out.returncode == 1, out.stderr
        doc = json.loads(out.stdout)
        assert doc["files"] == 8 and not doc["errors"]
        assert 0 < doc["time_precision_lost_ns"] <= 2_000_000_000
        assert any("less precisely" in w["reason"] for w in doc["warnings"])


def test_restore_to_coarse_time_file_systems_reports_precision(tmp_path: Path) -> None:
    src = make_source(tmp_path)
    for i, f in enumerate(sorted(src.iterdir())):
        os.utime(f, ns=(1_700_000_000_987_654_321 + i, 1_600_000_001_987_654_321 + i))
    repo = tmp_path / "repo"
    run_cli("init", repo=repo, check=True)
    run_cli("backup", str(src), repo=repo, check=True)
    with ext4_image(tmp_path, 16, coarse_times=True) as mnt:
        out = run_cli("--json", "restore", "latest", "--target", str(mnt), "--verify", repo=repo)
        assert out.returncode == 1, out.stderr
        doc = json.loads(out.stdout)
        assert 0 < doc["time_precision_lost_ns"] < 1_000_000_000
        assert doc["verified_files"] == 5 and not doc["verify_failures"]
        assert any("less precisely" in w["reason"] for w in doc["warnings"])
    fat_base = tmp_path / "fat"
    fat_base.mkdir()
    with fat_image(fat_base) as fat:
        out = run_cli("--json", "restore", "latest", "--target", str(fat), "--verify", repo=repo)
        assert out.returncode == 1, out.stderr
        doc = json.loads(out.stdout)
        assert doc["files"] == 5 and not doc["errors"]
        assert 0 < doc["time_precision_lost_ns"] <= 2_000_000_000
        reasons = " ".join(w["reason"] for w in doc["warnings"])
        assert "less precisely" in reasons and "permissions/owner not supported" in reasons
