"""Snapshot objects: one small encrypted JSON document per backup, pointing to a root tree.

The root tree mirrors the absolute source paths (``/srv/praxis`` becomes ``srv`` -> ``praxis``;
``C:\\CompuMED`` becomes ``C:`` -> ``CompuMED``), so several sources live side by side in one
snapshot and restores can name paths as they were on the server.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from praxisbackup.engine.objects import ObjectKind
from praxisbackup.engine.repository import Repository
from praxisbackup.errors import IntegrityError, SnapshotNotFoundError, StorageError


@dataclass
class Skipped:
    """A path that was not (completely) backed up, and why."""

    path: str
    reason: str


@dataclass
class Summary:
    files_new: int = 0
    files_changed: int = 0
    files_unmodified: int = 0
    dirs: int = 0
    other: int = 0
    total_files: int = 0
    total_bytes: int = 0
    bytes_read: int = 0
    data_added: int = 0
    data_added_stored: int = 0
    blobs_new: int = 0
    duration_seconds: float = 0.0


@dataclass
class Snapshot:
    time: str  # ISO 8601 with UTC offset
    host: str
    user: str
    paths: list[str]
    tree: str  # hex id of the root tree blob
    tags: list[str] = field(default_factory=list)
    parent: str | None = None
    program_version: str = ""
    summary: Summary = field(default_factory=Summary)
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[Skipped] = field(default_factory=list)
    id: str = ""  # not stored: the object's name

    def to_json(self) -> bytes:
        doc = asdict(self)
        doc.pop("id")
        return json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")

    @classmethod
    def from_json(cls, raw: bytes, snapshot_id: str) -> Snapshot:
        try:
            doc: dict[str, Any] = json.loads(raw.decode("utf-8", "surrogatepass"))
            snap = cls(
                time=str(doc["time"]),
                host=str(doc["host"]),
                user=str(doc["user"]),
                paths=[str(p) for p in doc["paths"]],
                tree=str(doc["tree"]),
                tags=[str(t) for t in doc.get("tags", [])],
                parent=doc.get("parent"),
                program_version=str(doc.get("program_version", "")),
                summary=Summary(**doc.get("summary", {})),
                skipped=[Skipped(**s) for s in doc.get("skipped", [])],
                warnings=[Skipped(**s) for s in doc.get("warnings", [])],
                id=snapshot_id,
            )
            if snap.datetime.tzinfo is None:
                raise ValueError(f"time {snap.time!r} has no UTC offset")
            if len(snap.tree) != 64:
                raise ValueError(f"tree id {snap.tree!r} is malformed")
            snap.tree_id  # noqa: B018 - must be hex
            if snap.parent is not None and not isinstance(snap.parent, str):
                raise ValueError("parent is not an id")
            return snap
        except (ValueError, KeyError, TypeError, OverflowError, AttributeError) as exc:
            raise IntegrityError(f"snapshot {snapshot_id[:12]} is malformed: {exc}") from None

    @property
    def datetime(self) -> datetime:
        return datetime.fromisoformat(self.time)

    @property
    def short_id(self) -> str:
        return self.id[:8]

    @property
    def tree_id(self) -> bytes:
        return bytes.fromhex(self.tree)


def save_snapshot(repo: Repository, snap: Snapshot) -> str:
    snap.id = repo.write_object("snapshots", ObjectKind.SNAPSHOT, snap.to_json())
    return snap.id


def forget_snapshot(repo: Repository, snapshot_id: str) -> None:
    """Remove a snapshot from the repository (its data stays until ``prune``). The one way
    snapshots are deleted: forget, the nightly job's space policy and tools call this."""
    repo.backend.delete("snapshots", snapshot_id)


def load_snapshot(repo: Repository, snapshot_id: str) -> Snapshot:
    return Snapshot.from_json(
        repo.read_object("snapshots", snapshot_id, ObjectKind.SNAPSHOT), snapshot_id
    )


def list_snapshots(
    repo: Repository, errors: dict[str, str] | None = None, strict_io: bool = False
) -> list[Snapshot]:
    """All readable snapshots, oldest first.

    A snapshot file that cannot be read - damaged, empty, junk, from another repository - is
    skipped, so one bad file never hides the intact snapshots; it is recorded in ``errors``
    (if given) and in ``repo.unreadable_snapshots`` for warnings, and ``check`` reports it.
    With ``strict_io`` an input/output error (the file may be fine, the read failed) raises
    instead: prune must not decide what is unused while a snapshot could not be read."""
    snaps = []
    for name in list(repo.list_names("snapshots")):
        try:
            snaps.append(load_snapshot(repo, name))
        except IntegrityError as exc:
            repo.unreadable_snapshots[name] = str(exc)
            if errors is not None:
                errors[name] = str(exc)
        except StorageError as exc:
            if strict_io:
                raise
            repo.unreadable_snapshots[name] = str(exc)
            if errors is not None:
                errors[name] = str(exc)
    snaps.sort(key=lambda s: (s.datetime.timestamp(), s.id))
    return snaps


def find_snapshot(
    repo: Repository, ref: str, host: str | None = None, paths: list[str] | None = None
) -> Snapshot:
    """Resolve ``latest`` or an id prefix to one snapshot."""
    snaps = list_snapshots(repo)
    if ref == "latest":
        candidates = [
            s
            for s in snaps
            if (host is None or s.host == host)
            and (paths is None or sorted(s.paths) == sorted(paths))
        ]
        if not candidates:
            raise SnapshotNotFoundError(
                "the repository holds no snapshot yet", code="error.no_snapshot_yet"
            )
        return candidates[-1]
    matches = [s for s in snaps if s.id.startswith(ref.lower())]
    if not matches:
        bad = [n for n in repo.unreadable_snapshots if n.startswith(ref.lower())]
        if len(bad) == 1:
            raise IntegrityError(repo.unreadable_snapshots[bad[0]])
        raise SnapshotNotFoundError(
            f"no snapshot with id {ref!r}", code="error.no_snapshot", snapshot=ref
        )
    if len(matches) > 1:
        raise SnapshotNotFoundError(
            f"snapshot id {ref!r} is ambiguous ({len(matches)} match)",
            code="error.snapshot_ambiguous",
            snapshot=ref,
            count=len(matches),
        )
    return matches[0]
