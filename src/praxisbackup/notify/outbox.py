"""A persistent outbox (SQLite): no alert is lost while the SMTP server is unreachable.

Messages are stored before the first attempt and retried with exponential backoff by later
runs, ``serve`` and ``today``; a message is marked delivered right after the server accepted it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage

from praxisbackup.catalog.store import SqliteStore
from praxisbackup.model.config import SmtpSection
from praxisbackup.notify.mail import MailError, send

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, created TEXT NOT NULL, kind TEXT NOT NULL,
    subject TEXT NOT NULL, message BLOB NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    next_try TEXT NOT NULL, delivered TEXT, last_error TEXT NOT NULL DEFAULT ''
);
"""
FIRST_RETRY = timedelta(minutes=2)
MAX_RETRY = timedelta(hours=6)


@dataclass
class Pending:
    id: int
    created: str
    kind: str
    subject: str
    attempts: int
    last_error: str


class Outbox(SqliteStore):
    SCHEMA = SCHEMA

    def enqueue(self, kind: str, msg: EmailMessage, now: datetime) -> int:
        with self._db() as db:
            cur = db.execute(
                "INSERT INTO outbox (created, kind, subject, message, next_try) VALUES (?,?,?,?,?)",
                (now.isoformat(), kind, str(msg["Subject"]), msg.as_bytes(), now.isoformat()),
            )
            return int(cur.lastrowid or 0)

    def pending(self) -> list[Pending]:
        with self._db() as db:
            rows = db.execute(
                "SELECT id, created, kind, subject, attempts, last_error FROM outbox "
                "WHERE delivered IS NULL ORDER BY id"
            ).fetchall()
        return [Pending(*r) for r in rows]

    def delivered(self) -> list[tuple[int, str, str]]:
        with self._db() as db:
            return db.execute(
                "SELECT id, kind, delivered FROM outbox WHERE delivered IS NOT NULL"
            ).fetchall()

    def deliver_due(
        self, smtp: SmtpSection | None, now: datetime, force: bool = False
    ) -> list[str]:
        """Try every due message; returns the errors (empty when all went out)."""
        if smtp is None:
            return ["no SMTP server configured"] if self.pending() else []
        errors = []
        with self._db() as db:
            rows = db.execute(
                "SELECT id, message, attempts, next_try FROM outbox "
                "WHERE delivered IS NULL ORDER BY id"
            ).fetchall()
        for msg_id, raw, attempts, next_try in rows:
            if not force and datetime.fromisoformat(next_try) > now:
                continue
            msg = message_from_bytes(raw, policy=policy.default)
            assert isinstance(msg, EmailMessage)
            try:
                send(smtp, msg)
            except MailError as exc:
                delay = min(FIRST_RETRY * (2**attempts), MAX_RETRY)
                with self._db() as db:
                    db.execute(
                        "UPDATE outbox SET attempts=?, next_try=?, last_error=? WHERE id=?",
                        (attempts + 1, (now + delay).isoformat(), str(exc), msg_id),
                    )
                errors.append(str(exc))
                continue
            with self._db() as db:
                db.execute(
                    "UPDATE outbox SET delivered=?, attempts=? WHERE id=?",
                    (now.isoformat(), attempts + 1, msg_id),
                )
        return errors
