"""The record of a practice restore (seed S13): what came back from where, by whom.

Why a record of its own: the restore protocol is the paper a practice files after the worst
day (and shows an auditor); it must name the medium, the snapshot, the services that were
stopped and started, the person who did it and every item that did NOT come back. The
application fills this record; the report layer renders it (text, HTML, PDF).
"""

from __future__ import annotations

import builtins
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from praxisbackup.errors import IntegrityError

COMPLETE, INCOMPLETE, FAILED = "complete", "incomplete", "failed"


@dataclass
class RestoreRecord:
    practice: str
    started: str  # ISO 8601 with offset
    finished: str
    by: str  # the person who ran the restore
    machine: str
    medium_label: str
    snapshot_id: str
    snapshot_time: str
    target_root: str
    restored: bool = False  # every planned item restored and verified
    files: int = 0
    dirs: int = 0
    bytes: int = 0
    verified: int = 0
    seconds: float = 0.0
    services: list[dict[str, str]] = field(default_factory=list)  # service timeline events
    renamed: list[tuple[str, str]] = field(default_factory=list)  # (existing, renamed to)
    items: list[dict[str, str]] = field(default_factory=list)  # path, target, kind
    missing: list[str] = field(default_factory=list)  # required items absent in the snapshot
    warnings: list[dict[str, str]] = field(default_factory=list)  # path, reason
    errors: list[dict[str, str]] = field(default_factory=list)  # path, reason

    @property
    def status(self) -> str:
        """failed (errors), incomplete (required items were not in the backup), complete."""
        if not self.restored or self.errors:
            return FAILED
        return INCOMPLETE if self.missing else COMPLETE

    def to_json(self) -> str:
        doc = asdict(self)
        doc["status"] = self.status
        return json.dumps(doc, ensure_ascii=False, indent=1)

    @classmethod
    def from_json(cls, raw: str | builtins.bytes) -> RestoreRecord:
        """Parse a stored record (``restores/*.json``); anything malformed is an
        IntegrityError."""
        try:
            doc: Any = json.loads(raw)
            if not isinstance(doc, dict):
                raise TypeError("not an object")
            known = {f.name for f in fields(cls)}
            record = cls(**{k: v for k, v in doc.items() if k in known})
            record.renamed = [(str(a), str(b)) for a, b in record.renamed]
            return record
        except (ValueError, TypeError) as exc:
            raise IntegrityError(f"a restore record is malformed: {exc}") from None
