"""Restore tests (drills) known to this server, with their full records.

Why a table of its own: the medium keeps a drill's record (it may run on a machine without the
practice's catalog), and the register keeps only "a drill happened, ok/failed". An auditor asks
for more: which machine, how much came back, how long it took. The nightly job copies every
record it finds on a medium into this table, so the evidence report has them all even when the
medium is off-site.
"""

from __future__ import annotations

from praxisbackup.catalog.store import SqliteStore
from praxisbackup.model.drill import DrillRecord

SCHEMA = """
CREATE TABLE IF NOT EXISTS drills (
    medium_id TEXT NOT NULL, time TEXT NOT NULL, machine TEXT NOT NULL, record TEXT NOT NULL,
    PRIMARY KEY (medium_id, time, machine)
);
"""


class Drills(SqliteStore):
    SCHEMA = SCHEMA

    def record(self, drill: DrillRecord) -> None:
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO drills VALUES (?,?,?,?)",
                (drill.medium_id, drill.time, drill.machine, drill.to_json().decode()),
            )

    def all(self) -> list[DrillRecord]:
        """Every known drill, oldest first."""
        with self._db() as db:
            rows = db.execute("SELECT record FROM drills ORDER BY time").fetchall()
        return [DrillRecord.from_json(r[0].encode()) for r in rows]
