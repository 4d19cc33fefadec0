"""A persistent outbox (SQLite): no alert is lost while the SMTP server is unreachable, and
none is sent twice.

Messages are stored before the first attempt and retried with exponential backoff by later
runs, ``serve`` and ``today``. Delivery is tracked *per recipient*: an address the server
accepted is never sent the message again; an address it refuses for good (5xx) is a finding
(shown in the protocol and on ``today``) and not retried; a temporary refusal (4xx) or a
failed connection is retried. A message still undelivered after ``smtp.max_attempts`` tries or
``smtp.give_up_after_hours`` stops retrying and becomes a red finding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage

from praxisbackup.catalog.store import SqliteStore
from praxisbackup.model.config import SmtpSection
from praxisbackup.notify.mail import MailError, deliver, recipients_of

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, created TEXT NOT NULL, kind TEXT NOT NULL,
    subject TEXT NOT NULL, message BLOB NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    next_try TEXT NOT NULL, delivered TEXT, last_error TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS outbox_recipient (
    message INTEGER NOT NULL, address TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',   -- pending, delivered, refused, given-up
    reason TEXT NOT NULL DEFAULT '', updated TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (message, address)
);
"""
FIRST_RETRY = timedelta(minutes=2)
MAX_RETRY = timedelta(hours=6)
#: Defaults when the configuration does not say (``[notify.smtp]`` max_attempts,
#: give_up_after_hours).
MAX_ATTEMPTS = 20
GIVE_UP_AFTER = timedelta(hours=72)
#: Refused addresses and given-up messages stay visible (``today``) this long.
SHOW_FINDINGS_FOR = timedelta(days=7)

RED = "red"
YELLOW = "yellow"


@dataclass
class Pending:
    id: int
    created: str
    kind: str
    subject: str
    attempts: int
    last_error: str
    #: Addresses the server refused for good (not retried).
    refused: list[str] = field(default_factory=list)
    #: Retrying stopped (too many attempts or too old): a red finding.
    gave_up: bool = False


@dataclass
class Finding:
    severity: str  # red or yellow
    text: str


def _limits(smtp: SmtpSection | None) -> tuple[int, timedelta]:
    attempts = getattr(smtp, "max_attempts", None) or MAX_ATTEMPTS
    hours = getattr(smtp, "give_up_after_hours", None)
    return int(attempts), timedelta(hours=hours) if hours else GIVE_UP_AFTER


class Outbox(SqliteStore):
    SCHEMA = SCHEMA

    def enqueue(self, kind: str, msg: EmailMessage, now: datetime) -> int:
        with self._db() as db:
            cur = db.execute(
                "INSERT INTO outbox (created, kind, subject, message, next_try) VALUES (?,?,?,?,?)",
                (now.isoformat(), kind, str(msg["Subject"]), msg.as_bytes(), now.isoformat()),
            )
            msg_id = int(cur.lastrowid or 0)
            db.executemany(
                "INSERT OR IGNORE INTO outbox_recipient (message, address, updated) VALUES (?,?,?)",
                [(msg_id, a, now.isoformat()) for a in recipients_of(msg)],
            )
            return msg_id

    def _recipients(self, msg_id: int, raw: bytes) -> dict[str, tuple[str, str, str]]:
        """address -> (status, reason, updated); messages queued by an older version get
        their rows now (all pending)."""
        with self._db() as db:
            rows = db.execute(
                "SELECT address, status, reason, updated FROM outbox_recipient WHERE message=?",
                (msg_id,),
            ).fetchall()
            if not rows:
                msg = message_from_bytes(raw, policy=policy.default)
                rows = [(a, "pending", "", "") for a in recipients_of(msg)]
                db.executemany(
                    "INSERT OR IGNORE INTO outbox_recipient (message, address) VALUES (?,?)",
                    [(msg_id, a) for a, *_ in rows],
                )
        return {a: (s, r, u) for a, s, r, u in rows}

    def pending(self, now: datetime | None = None) -> list[Pending]:
        """Messages not yet delivered to every recipient, and - for a week - messages with a
        refused address or that were given up (findings for ``today``)."""
        now = now or datetime.now().astimezone()
        with self._db() as db:
            rows = db.execute(
                "SELECT id, created, kind, subject, attempts, last_error, message, delivered "
                "FROM outbox ORDER BY id"
            ).fetchall()
        result = []
        for msg_id, created, kind, subject, attempts, error, raw, delivered in rows:
            recipients = self._recipients(msg_id, raw)
            waiting = [a for a, (st, _r, _u) in recipients.items() if st == "pending"]
            refused = sorted(a for a, (st, _r, _u) in recipients.items() if st == "refused")
            gave_up = any(st == "given-up" for st, _r, _u in recipients.values())
            if delivered is not None and not waiting:
                if not (refused or gave_up):
                    continue
                if now - datetime.fromisoformat(delivered) > SHOW_FINDINGS_FOR:
                    continue
            last_error = error
            if refused:
                reasons = "; ".join(f"{a} ({recipients[a][1]})" for a in refused)
                last_error = f"recipient refused by the mail server: {reasons}" + (
                    f"; {error}" if error and waiting else ""
                )
            if gave_up:
                last_error = f"given up after {attempts} attempts: {error}"
            result.append(
                Pending(msg_id, created, kind, subject, attempts, last_error, refused, gave_up)
            )
        return result

    def delivered(self) -> list[tuple[int, str, str]]:
        with self._db() as db:
            return db.execute(
                "SELECT id, kind, delivered FROM outbox WHERE delivered IS NOT NULL"
            ).fetchall()

    def delivered_to(self, msg_id: int) -> list[str]:
        with self._db() as db:
            rows = db.execute(
                "SELECT address FROM outbox_recipient WHERE message=? AND status='delivered'",
                (msg_id,),
            ).fetchall()
        return sorted(r[0] for r in rows)

    def _set(self, msg_id: int, addresses: dict[str, str], status: str, now: datetime) -> None:
        with self._db() as db:
            db.executemany(
                "UPDATE outbox_recipient SET status=?, reason=?, updated=? "
                "WHERE message=? AND address=?",
                [(status, why, now.isoformat(), msg_id, a) for a, why in addresses.items()],
            )

    def deliver_due(
        self, smtp: SmtpSection | None, now: datetime, force: bool = False
    ) -> list[str]:
        """Try every due message; returns the problems (empty when all went out)."""
        return [f.text for f in self.deliver(smtp, now, force)]

    def deliver(
        self, smtp: SmtpSection | None, now: datetime, force: bool = False
    ) -> list[Finding]:
        """Try every due message for the recipients still waiting for it. Returns findings:
        yellow for a delivery that failed this time (retried later) or an address refused for
        good, red for a message given up."""
        if smtp is None:
            return [Finding(YELLOW, "no SMTP server configured")] if self.pending(now) else []
        max_attempts, give_up_after = _limits(smtp)
        findings: list[Finding] = []
        with self._db() as db:
            rows = db.execute(
                "SELECT id, subject, message, attempts, next_try, created, last_error FROM outbox "
                "WHERE delivered IS NULL ORDER BY id"
            ).fetchall()
        for msg_id, subject, raw, attempts, next_try, created, last_error in rows:
            recipients = self._recipients(msg_id, raw)
            waiting = [a for a, (st, _r, _u) in recipients.items() if st == "pending"]
            too_old = now - datetime.fromisoformat(created) > give_up_after
            if waiting and (attempts >= max_attempts or too_old):
                why = f"{attempts} attempts" if attempts >= max_attempts else "too old"
                self._set(msg_id, {a: why for a in waiting}, "given-up", now)
                self._finish(msg_id, attempts, now)
                findings.append(
                    Finding(
                        RED,
                        f"alert given up after {attempts} attempts, never delivered to "
                        f"{', '.join(waiting)}: {subject} ({last_error})",
                    )
                )
                continue
            if not waiting:
                self._finish(msg_id, attempts, now)
                continue
            if not force and datetime.fromisoformat(next_try) > now:
                continue
            msg = message_from_bytes(raw, policy=policy.default)
            assert isinstance(msg, EmailMessage)
            try:
                result = deliver(smtp, msg, waiting)
            except MailError as exc:
                self._retry_later(msg_id, attempts, now, str(exc))
                findings.append(Finding(YELLOW, str(exc)))
                continue
            self._set(msg_id, {a: "" for a in result.accepted}, "delivered", now)
            self._set(msg_id, result.refused, "refused", now)
            for address, why in result.refused.items():
                findings.append(
                    Finding(
                        YELLOW,
                        f"recipient {address} refused by the mail server ({why}); the alert "
                        f"did not reach this address: {subject}",
                    )
                )
            if result.deferred:
                problem = "recipient deferred: " + ", ".join(
                    f"{a} ({why})" for a, why in result.deferred.items()
                )
                self._retry_later(msg_id, attempts, now, problem)
                findings.append(Finding(YELLOW, problem))
            else:
                self._finish(msg_id, attempts + 1, now)
        return findings

    def _retry_later(self, msg_id: int, attempts: int, now: datetime, error: str) -> None:
        delay = min(FIRST_RETRY * (2**attempts), MAX_RETRY)
        with self._db() as db:
            db.execute(
                "UPDATE outbox SET attempts=?, next_try=?, last_error=? WHERE id=?",
                (attempts + 1, (now + delay).isoformat(), error, msg_id),
            )

    def _finish(self, msg_id: int, attempts: int, now: datetime) -> None:
        """No recipient waits any more (delivered, refused or given up)."""
        with self._db() as db:
            db.execute(
                "UPDATE outbox SET delivered=?, attempts=? WHERE id=?",
                (now.isoformat(), attempts, msg_id),
            )
