"""Backup -> restore -> check on Windows paths (Windows lane only): drive letters in snapshot
paths, case-insensitive excludes and restore selections, file attributes, exact times."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from conftest import reopen, restored_path
from praxisbackup import platform
from praxisbackup.engine import pipeline
from praxisbackup.engine.archiver import Archiver, BackupOptions
from praxisbackup.engine.checker import Checker
from praxisbackup.engine.repository import Repository
from praxisbackup.engine.restorer import RestoreOptions, Restorer
from praxisbackup.engine.snapshot import find_snapshot

READONLY, HIDDEN, SYSTEM, ARCHIVE = 0x1, 0x2, 0x4, 0x20
KEPT = READONLY | HIDDEN | SYSTEM | ARCHIVE


def build_practice(src: Path) -> None:
    """A small M1 server folder: mixed-case names, umlauts, attributes, old file dates."""
    (src / "CompuMED" / "M1" / "Orant" / "Database").mkdir(parents=True)
    (src / "CompuMED" / "M1" / "Orant" / "Database" / "M1DATA00.DBF").write_bytes(
        os.urandom(300_000) + bytes(200_000)
    )
    (src / "Briefe" / "2026").mkdir(parents=True)
    (src / "Briefe" / "2026" / "Befund Müller.txt").write_bytes(b"Befund\r\n")
    (src / "Briefe" / "Überweisung-Weiß.txt").write_text("Überweisung", encoding="cp1252")
    (src / "Briefe" / "entwurf.TMP").write_bytes(b"scratch")
    usys = src / "CompuMED" / "M1" / "Uniface.wnt" / "Bin"
    usys.mkdir(parents=True)
    (usys / "usys.ini").write_text("[SETTINGS]\r\n", encoding="ascii")
    platform.set_file_attributes(str(usys / "usys.ini"), READONLY | ARCHIVE)
    platform.set_file_attributes(str(src / "Briefe" / "2026" / "Befund Müller.txt"), HIDDEN)
    platform.set_file_attributes(
        str(src / "CompuMED" / "M1" / "Orant" / "Database" / "M1DATA00.DBF"), SYSTEM | ARCHIVE
    )
    when = 1_450_000_000_123_456_700  # 100-ns precision: what NTFS (and FILETIME) keeps
    for dirpath, dirnames, filenames in os.walk(src, topdown=False):
        for name in filenames + dirnames:
            p = os.path.join(dirpath, name)
            if name == "usys.ini":
                continue  # read-only: its times are set before the attribute (below)
            os.utime(p, ns=(when + 7_000_000_000, when))
            when += 86_400_000_000_000
    os.utime(src, ns=(when + 7_000_000_000, when))


def state(root: Path) -> dict[str, tuple[object, ...]]:
    """Per relative path (lower case: names compare case-insensitively on Windows): the name as
    spelled, content, attributes that a restore sets, modification and access time."""
    found: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = os.stat(p)
            rel = str(p.relative_to(root))
            content = p.read_bytes() if stat.S_ISREG(st.st_mode) else None
            attrs = (platform.file_attributes(st) or 0) & KEPT
            found[rel.lower()] = (rel, content, attrs, st.st_mtime_ns, st.st_atime_ns)
    return found


def test_drive_letter_attributes_and_times_round_trip(repo: Repository, tmp_path: Path) -> None:
    src = tmp_path / "Praxis"
    src.mkdir()
    build_practice(src)
    # usys.ini: times first, then read-only (a read-only file's times cannot be set afterwards).
    ini = src / "CompuMED" / "M1" / "Uniface.wnt" / "Bin" / "usys.ini"
    platform.set_file_attributes(str(ini), ARCHIVE)
    os.utime(ini, ns=(1_400_000_007_000_000_000, 1_400_000_000_000_000_000))
    platform.set_file_attributes(str(ini), READONLY | ARCHIVE)
    before = state(src)
    assert before["compumed\\m1\\uniface.wnt\\bin\\usys.ini"][2] == READONLY | ARCHIVE

    result = Archiver(repo, BackupOptions([str(src)], excludes=["*.tmp"])).run()
    snap = result.snapshot
    drive = str(src)[0]
    assert snap.summary.files_new == len([v for v in before.values() if v[1] is not None]) - 1

    target = tmp_path / "Wiederherstellung"
    fresh = reopen(Path(repo.backend.location))
    restored = Restorer(fresh, snap, RestoreOptions(target=str(target), verify=True)).run()
    assert restored.ok, (restored.errors, restored.verify_failures)
    root = restored_path(target, src)
    assert root == target / drive / Path(*src.parts[1:])
    after = state(root)
    expected = {k: v for k, v in before.items() if not k.endswith(".tmp")}
    assert after == expected
    assert Checker(fresh).run(read_data=True).ok
    fresh.close()


def test_restore_selection_and_excludes_ignore_case(repo: Repository, tmp_path: Path) -> None:
    src = tmp_path / "Praxis"
    src.mkdir()
    build_practice(src)
    snap = Archiver(repo, BackupOptions([str(src)], excludes=["*.tmp"])).run().snapshot
    # The service partner types the folder in another case than it has on disk.
    selection = str(src / "BRIEFE" / "2026")
    target = tmp_path / "Auswahl"
    found = find_snapshot(repo, snap.id[:8])
    result = Restorer(repo, found, RestoreOptions(target=str(target), includes=[selection])).run()
    assert result.ok and result.files == 1
    root = restored_path(target, src)
    assert (root / "Briefe" / "2026" / "Befund Müller.txt").read_bytes() == b"Befund\r\n"
    assert not (root / "CompuMED").exists()
    assert not (root / "Briefe" / "entwurf.TMP").exists()


def test_the_nightly_walk_in_worker_processes_sees_every_change(
    repo: Repository, tmp_path: Path
) -> None:
    """The nightly run's folder examinations in worker processes (spawned Windows Pythons,
    batches over pipes): untouched folders are taken over, a changed file is seen, and the
    examination's entries carry the file ids and link counts of a Windows lstat."""
    src = tmp_path / "Praxis"
    src.mkdir()
    build_practice(src)
    for i in range(40):  # more folders than one batch of examinations
        folder = src / "Archiv" / f"Patient-{i:03d}"
        folder.mkdir(parents=True)
        for j in range(3):
            (folder / f"Brief-{j}.txt").write_bytes(b"Befund %d %d\r\n" % (i, j))
    first = Archiver(repo, BackupOptions([str(src)])).run().snapshot
    pipeline.prestart(2)
    unchanged = Archiver(repo, BackupOptions([str(src)])).run().snapshot
    assert pipeline._prestarted is None  # the run took the workers
    assert unchanged.summary.files_unmodified == first.summary.files_new
    assert unchanged.summary.bytes_read == 0
    changed = src / "Archiv" / "Patient-017" / "Brief-1.txt"
    changed.write_bytes(b"Befund geaendert\r\n")
    os.utime(changed, ns=(1_500_000_000_000_000_000, 1_500_000_000_000_000_000))
    pipeline.prestart(2)
    second = Archiver(repo, BackupOptions([str(src)])).run().snapshot
    assert second.summary.files_changed == 1
    assert second.summary.files_unmodified == first.summary.files_new - 1
