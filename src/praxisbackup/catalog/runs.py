"""The local catalog: an SQLite database in the state folder.

It keeps the history that audits and the daily check need: every run with its full protocol.
(The media register, acknowledgments and the alert outbox join it in later issues.)
"""

from __future__ import annotations

from praxisbackup.catalog.store import SqliteStore
from praxisbackup.model.protocol import RunProtocol

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    started TEXT NOT NULL,
    finished TEXT NOT NULL,
    status TEXT NOT NULL,
    medium_id TEXT NOT NULL,
    medium_label TEXT NOT NULL,
    snapshot_id TEXT NOT NULL,
    new_bytes INTEGER NOT NULL,
    protocol TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_started ON runs(started);
"""


class Catalog(SqliteStore):
    SCHEMA = SCHEMA

    def record_run(self, p: RunProtocol) -> None:
        new_bytes = sum(s.new_bytes for s in p.sources)
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    p.run_id,
                    p.started,
                    p.finished,
                    p.status,
                    p.medium_id,
                    p.medium_label,
                    p.snapshot_id,
                    new_bytes,
                    p.to_json(),
                ),
            )

    def runs(self, limit: int = 50) -> list[RunProtocol]:
        with self._db() as db:
            rows = db.execute(
                "SELECT protocol FROM runs ORDER BY started DESC LIMIT ?", (limit,)
            ).fetchall()
        return [RunProtocol.from_json(r[0]) for r in rows]

    def runs_between(self, first: str, last: str) -> list[RunProtocol]:
        """Runs started from ``first`` up to, not including, ``last`` (ISO times with the
        same offset as stored), oldest first: the nights of an audit period."""
        with self._db() as db:
            rows = db.execute(
                "SELECT protocol FROM runs WHERE started >= ? AND started < ? ORDER BY started",
                (first, last),
            ).fetchall()
        return [RunProtocol.from_json(r[0]) for r in rows]

    def run(self, run_id: str) -> RunProtocol | None:
        with self._db() as db:
            rows = db.execute(
                "SELECT protocol FROM runs WHERE id LIKE ? ORDER BY started DESC", (run_id + "%",)
            ).fetchall()
        return RunProtocol.from_json(rows[0][0]) if rows else None

    def snapshots_written(self, medium_id: str) -> tuple[set[str], set[str]]:
        """(snapshots this server's runs wrote to a medium, snapshots its runs forgot there)."""
        with self._db() as db:
            rows = db.execute(
                "SELECT snapshot_id, protocol FROM runs WHERE medium_id = ?", (medium_id,)
            ).fetchall()
        written, forgotten = set(), set()
        for snapshot_id, protocol in rows:
            if snapshot_id:
                written.add(snapshot_id)
            for f in RunProtocol.from_json(protocol).findings:
                if f.code == "snapshot_forgotten" and f.params.get("id"):
                    forgotten.add(str(f.params["id"]))
        return written, forgotten

    def last_new_bytes(self) -> int:
        """New data of the last successful run (estimate for the free-space check)."""
        with self._db() as db:
            row = db.execute(
                "SELECT new_bytes FROM runs WHERE status != 'red' ORDER BY started DESC LIMIT 1"
            ).fetchone()
        return int(row[0]) if row else 0
