"""Find a file by name across every snapshot, with the versions that differ (e.g. to restore
yesterday's version of a letter)."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import datetime

from praxisbackup.engine.browse import walk
from praxisbackup.engine.repository import Repository
from praxisbackup.engine.snapshot import list_snapshots


@dataclass(frozen=True)
class FileVersion:
    snapshot: str  # short id of the first snapshot holding this version
    changed: str  # modification time, ISO
    size: int
    content_key: str


def find_versions(repo: Repository, pattern: str) -> dict[str, list[FileVersion]]:
    """Path -> its distinct versions, oldest first; ``pattern`` is a case-insensitive glob on
    the file name."""
    folded = pattern.casefold()
    versions: dict[str, list[FileVersion]] = {}
    for snap in list_snapshots(repo):
        for path, node in walk(repo, snap.tree_id):
            if node.type != "file" or not fnmatch.fnmatch(node.name.casefold(), folded):
                continue
            key = b"".join(node.content).hex()[:16]
            entry = versions.setdefault(path, [])
            if not entry or entry[-1].content_key != key:
                when = datetime.fromtimestamp(node.mtime_ns / 1e9).isoformat(timespec="seconds")
                entry.append(FileVersion(snap.short_id, when, node.size, key))
    return dict(sorted(versions.items()))
