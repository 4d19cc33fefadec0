"""Small facts the installation remembers about itself (e.g. "the e-mail settings were
tested successfully"), each with when it was recorded. One table in the local catalog."""

from __future__ import annotations

from datetime import datetime

from praxisbackup.catalog.store import SqliteStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS facts (key TEXT PRIMARY KEY, value TEXT NOT NULL, time TEXT NOT NULL);
"""


class Facts(SqliteStore):
    SCHEMA = SCHEMA

    def set(self, key: str, value: str, now: datetime | None = None) -> None:
        when = (now or datetime.now().astimezone()).isoformat(timespec="seconds")
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO facts VALUES (?,?,?)", (key, value, when))

    def get(self, key: str) -> tuple[str, str] | None:
        """(value, time) or None."""
        with self._db() as db:
            row = db.execute("SELECT value, time FROM facts WHERE key = ?", (key,)).fetchone()
        return (str(row[0]), str(row[1])) if row else None
