"""Restore one file or folder (a deleted letter, yesterday's version of a document) into a
separate folder - directly into it, never over the original and never seven folders deep."""

from __future__ import annotations

import os
from dataclasses import dataclass

from praxisbackup.engine.paths import normalize_snapshot_path
from praxisbackup.engine.repository import Repository
from praxisbackup.engine.restorer import RestoreOptions, Restorer, RestoreResult
from praxisbackup.engine.snapshot import Snapshot
from praxisbackup.errors import PraxisError
from praxisbackup.practice.restore import path_mapper


@dataclass
class RestoredFile:
    result: RestoreResult
    placed: str  # where the file or folder now is


def restore_into(repo: Repository, snap: Snapshot, path: str, folder: str) -> RestoredFile:
    """``path`` (as backed up: ``C:\\\\Praxis\\\\Brief.txt`` or ``/C/Praxis/Brief.txt``) is
    restored as ``folder/Brief.txt`` with its dates, and verified."""
    spath = normalize_snapshot_path(path)
    name = spath.rstrip("/").rsplit("/", 1)[-1]
    if not name:
        raise PraxisError(
            "name a file or folder inside the snapshot, not its root", code="error.restore_root"
        )
    folder = os.path.abspath(folder)
    created = not os.path.isdir(folder)
    os.makedirs(folder, exist_ok=True)
    placed = os.path.join(folder, name)
    if os.path.lexists(placed):
        raise PraxisError(
            f"{placed} exists already; choose another folder with --to",
            code="error.restore_file_exists",
            path=placed,
        )
    options = RestoreOptions(
        target=folder,
        includes=[spath],
        verify=True,
        path_map=path_mapper({spath: placed}, stop_at=folder),
    )
    result = Restorer(repo, snap, options).run()
    if created and not os.listdir(folder):
        os.rmdir(folder)  # nothing came back: leave no empty folder behind
    return RestoredFile(result, placed)
