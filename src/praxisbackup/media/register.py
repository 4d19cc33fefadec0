"""The media register: every medium, its role, where it is, and what was checked when.

Kept in the local catalog (SQLite) and copied, encrypted, onto every medium at each run, so a
medium read on another machine tells which media exist, what it holds and when it was verified.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime

from praxisbackup.catalog.store import SqliteStore
from praxisbackup.errors import PraxisError

LOCATIONS = ("attached", "practice", "offsite", "archive", "retired")

SCHEMA = """
CREATE TABLE IF NOT EXISTS media (
    id TEXT PRIMARY KEY, label TEXT NOT NULL, role TEXT NOT NULL, capacity INTEGER NOT NULL,
    registered TEXT NOT NULL, repository_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS media_events (
    medium_id TEXT NOT NULL, time TEXT NOT NULL, kind TEXT NOT NULL, location TEXT NOT NULL,
    by_whom TEXT NOT NULL, note TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS media_events_medium ON media_events(medium_id, time);
"""


class RegisterError(PraxisError):
    """A medium is unknown or an action on it is not allowed."""


@dataclass
class MediumRecord:
    id: str
    label: str
    role: str
    capacity: int
    registered: str
    repository_id: str
    location: str = "practice"
    location_since: str = ""
    location_by: str = ""
    last_seen: str = ""
    last_full_verify: str = ""
    last_drill: str = ""


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


class Register(SqliteStore):
    SCHEMA = SCHEMA

    def add(self, medium_id: str, label: str, role: str, capacity: int, repository_id: str) -> None:
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO media VALUES (?,?,?,?,?,?)",
                (medium_id, label, role, capacity, _now(), repository_id),
            )
        self.event(medium_id, "registered", "practice", "", "")

    def event(
        self,
        medium_id: str,
        kind: str,
        location: str,
        by_whom: str,
        note: str,
        when: str | None = None,
    ) -> None:
        if location not in LOCATIONS:
            raise RegisterError(f"unknown location {location!r}; allowed: {', '.join(LOCATIONS)}")
        with self._db() as db:
            db.execute(
                "INSERT INTO media_events VALUES (?,?,?,?,?,?)",
                (medium_id, when or _now(), kind, location, by_whom, note),
            )

    def find(self, ref: str) -> MediumRecord:
        matches = [
            m for m in self.all() if m.id.startswith(ref) or m.label.casefold() == ref.casefold()
        ]
        if len(matches) != 1:
            raise RegisterError(
                f"no single registered medium matches {ref!r} ({len(matches)} found)",
                code="error.unknown_medium",
                medium=ref,
                count=len(matches),
            )
        return matches[0]

    def get(self, medium_id: str) -> MediumRecord | None:
        return next((m for m in self.all() if m.id == medium_id), None)

    def all(self) -> list[MediumRecord]:
        with self._db() as db:
            media = db.execute(
                "SELECT id, label, role, capacity, registered, repository_id "
                "FROM media ORDER BY label"
            ).fetchall()
            out = []
            for row in media:
                rec = MediumRecord(*row)
                events = db.execute(
                    "SELECT time, kind, location, by_whom FROM media_events "
                    "WHERE medium_id=? ORDER BY time",
                    (rec.id,),
                ).fetchall()
                for time, kind, location, by_whom in events:
                    if kind in ("registered", "moved", "retired", "used"):
                        rec.location, rec.location_since, rec.location_by = location, time, by_whom
                    if kind == "used":
                        rec.last_seen = time
                    if kind == "verified-full":
                        rec.last_full_verify = time
                    if kind == "drill":
                        rec.last_drill = time
                out.append(rec)
            return out

    def history(self, medium_id: str) -> list[dict[str, str]]:
        with self._db() as db:
            rows = db.execute(
                "SELECT time, kind, location, by_whom, note FROM media_events "
                "WHERE medium_id=? ORDER BY time",
                (medium_id,),
            ).fetchall()
        return [dict(zip(("time", "kind", "location", "by", "note"), r, strict=True)) for r in rows]

    def export(self) -> bytes:
        """The register as JSON, for the encrypted copy on every medium."""
        doc = [asdict(m) | {"history": self.history(m.id)} for m in self.all()]
        return json.dumps(
            {"format": 1, "exported": _now(), "media": doc}, ensure_ascii=False
        ).encode()
