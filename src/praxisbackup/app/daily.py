"""The daily check (seed S6): one named person confirms each morning; a deputy takes over
without further action; missed backups are noticed and reported until fixed.

All times come from an injectable clock. Deadlines count on working days only (the rotation
plan's calendar with holidays and closing days, or Monday-Friday without one).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from praxisbackup.catalog.runs import Catalog
from praxisbackup.catalog.store import SqliteStore
from praxisbackup.media.rotation import WorkingCalendar
from praxisbackup.model.config import Config
from praxisbackup.model.locations import catalog_path
from praxisbackup.model.protocol import RunProtocol
from praxisbackup.notify.alerts import first_line_recipients
from praxisbackup.notify.mail import build_message, short_date
from praxisbackup.notify.outbox import Outbox
from praxisbackup.report.i18n import text, when

SCHEMA = """
CREATE TABLE IF NOT EXISTS acks (
    time TEXT NOT NULL, by_whom TEXT NOT NULL, note TEXT NOT NULL, runs TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS absences (
    id INTEGER PRIMARY KEY AUTOINCREMENT, role TEXT NOT NULL, first TEXT NOT NULL,
    last TEXT NOT NULL, entered_by TEXT NOT NULL, note TEXT NOT NULL, entered TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS escalations (
    day TEXT NOT NULL, kind TEXT NOT NULL, time TEXT NOT NULL, recipients TEXT NOT NULL
);
"""
MISSED_REPEAT = timedelta(hours=6)


def _at(day: date, hhmm: str, tz: object) -> datetime:
    h, m = (int(x) for x in hhmm.split(":"))
    return datetime.combine(day, time(h, m), tzinfo=tz)  # type: ignore[arg-type]


@dataclass
class CheckState:
    """What ``evaluate`` decided (for ``today`` and the tests)."""

    missed: bool = False
    back_to_normal: bool = False
    acknowledged: bool = True
    escalated_to: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)  # subjects queued
    acting: bool = True  # False: only assess, queue and record nothing


class DailyCheck(SqliteStore):
    SCHEMA = SCHEMA

    def __init__(self, config: Config) -> None:
        self.config = config
        self.db_path = catalog_path(config)
        super().__init__(self.db_path)
        self.catalog = Catalog(self.db_path)
        self.outbox = Outbox(self.db_path)
        closed = tuple(config.rotation.closed) if config.rotation else ()
        self.calendar = WorkingCalendar(config.practice.state, closed)

    # -- calendar ----------------------------------------------------------------------
    def is_working_day(self, day: date) -> bool:
        return self.calendar.is_working_day(day)

    def previous_working_day(self, day: date) -> date:
        d = day - timedelta(days=1)
        while not self.is_working_day(d):
            d -= timedelta(days=1)
        return d

    # -- absences and acknowledgments -----------------------------------------------------
    def add_absence(
        self, first: date, last: date, entered_by: str, note: str, now: datetime
    ) -> None:
        with self._db() as db:
            db.execute(
                "INSERT INTO absences (role, first, last, entered_by, note, entered) "
                "VALUES (?,?,?,?,?,?)",
                (
                    "responsible",
                    first.isoformat(),
                    last.isoformat(),
                    entered_by,
                    note,
                    now.isoformat(),
                ),
            )

    def remove_absence(self, absence_id: int) -> dict[str, str] | None:
        """Remove an absence entered by mistake; returns it (None if there is none)."""
        entry = next((a for a in self.absences() if int(a["id"]) == absence_id), None)
        if entry is not None:
            with self._db() as db:
                db.execute("DELETE FROM absences WHERE id = ?", (absence_id,))
        return entry

    def absences(self) -> list[dict[str, str]]:
        with self._db() as db:
            rows = db.execute(
                "SELECT id, first, last, entered_by, note FROM absences ORDER BY first"
            ).fetchall()
        return [
            dict(zip(("id", "first", "last", "entered_by", "note"), r, strict=True)) for r in rows
        ]

    def responsible_absent(self, day: date) -> bool:
        iso = day.isoformat()
        with self._db() as db:
            row = db.execute(
                "SELECT 1 FROM absences WHERE first <= ? AND last >= ?", (iso, iso)
            ).fetchone()
        return row is not None

    def ack(self, by_whom: str, note: str, now: datetime) -> list[str]:
        """Confirm "protocol checked, medium changed"; returns the run ids it covers."""
        last = self.last_ack()
        runs = [
            r.run_id for r in self.catalog.runs(limit=100) if last is None or r.finished > last[0]
        ]
        with self._db() as db:
            db.execute(
                "INSERT INTO acks VALUES (?,?,?,?)",
                (now.isoformat(), by_whom, note, json.dumps(runs)),
            )
        return runs

    def last_ack(self) -> tuple[str, str] | None:
        with self._db() as db:
            row = db.execute("SELECT time, by_whom FROM acks ORDER BY time DESC LIMIT 1").fetchone()
        return (row[0], row[1]) if row else None

    def acks(self) -> list[dict[str, str]]:
        with self._db() as db:
            rows = db.execute("SELECT time, by_whom, note, runs FROM acks ORDER BY time").fetchall()
        return [dict(zip(("time", "by", "note", "runs"), r, strict=True)) for r in rows]

    def escalations(self) -> list[dict[str, str]]:
        with self._db() as db:
            rows = db.execute(
                "SELECT day, kind, time, recipients FROM escalations ORDER BY time"
            ).fetchall()
        return [dict(zip(("day", "kind", "time", "recipients"), r, strict=True)) for r in rows]

    def _escalated(self, day: date, kind: str) -> str | None:
        with self._db() as db:
            row = db.execute(
                "SELECT time FROM escalations WHERE day=? AND kind=? ORDER BY time DESC LIMIT 1",
                (day.isoformat(), kind),
            ).fetchone()
        return row[0] if row else None

    def _queue(
        self,
        state: CheckState,
        day: date,
        kind: str,
        recipients: list[str],
        subject: str,
        body: str,
        now: datetime,
    ) -> None:
        recipients = list(dict.fromkeys(r for r in recipients if r))
        if not recipients or self.config.notify.smtp is None or not state.acting:
            return
        msg = build_message(self.config.notify.smtp.sender, recipients, subject, body)
        self.outbox.enqueue(kind, msg, now)
        with self._db() as db:
            db.execute(
                "INSERT INTO escalations VALUES (?,?,?,?)",
                (day.isoformat(), kind, now.isoformat(), ", ".join(recipients)),
            )
        state.messages.append(subject)

    # -- the evaluation ---------------------------------------------------------------------
    def evaluate(self, now: datetime, act: bool = True) -> CheckState:
        """Decide, and (with ``act``) queue messages for missed backups and missing
        confirmations. ``act=False`` only looks: what ``today`` and the web page show."""
        state = CheckState(acting=act)
        cfg, lang = self.config, self.config.practice.language
        r = cfg.notify.recipients
        today = now.date()
        absent = self.responsible_absent(today)
        first_line = first_line_recipients(cfg, absent)
        runs = [x for x in self.catalog.runs(limit=50) if x.counts]
        if not self.is_working_day(today):
            return state
        window_start = _at(self.previous_working_day(today), "12:00", now.tzinfo)
        good = [
            x
            for x in runs
            if x.status in ("green", "yellow")
            and x.finished
            and datetime.fromisoformat(x.finished) >= window_start
        ]
        missed_at = _at(today, cfg.daily_check.missed_by, now.tzinfo)
        if now >= missed_at and not good:
            state.missed = True
            last_alert = self._escalated(today, "missed")
            if last_alert is None or now - datetime.fromisoformat(last_alert) >= MISSED_REPEAT:
                cause = self._likely_cause(runs, window_start, lang)
                subject = self._subject("mail.missed", now, "red")
                body = f"{text('mail.missed', lang)}\n\n{cause}\n\n{text('todo.red', lang)}\n"
                self._queue(
                    state, today, "missed", first_line + r.service_partner, subject, body, now
                )
        elif good and self._open_missed_alert():
            state.back_to_normal = True
            subject = self._subject("mail.back_to_normal", now, "green")
            self._queue(
                state,
                today,
                "back-to-normal",
                first_line + r.service_partner,
                subject,
                text("mail.back_to_normal_body", lang) + "\n",
                now,
            )
        # The morning check covers the runs finished before today's deadline (last night's).
        ack_deadline = _at(today, cfg.daily_check.ack_by, now.tzinfo)
        due = [x for x in runs if x.finished and datetime.fromisoformat(x.finished) < ack_deadline]
        if due:
            newest = due[0]
            last = self.last_ack()
            state.acknowledged = last is not None and last[0] >= newest.finished
            if not state.acknowledged:
                for kind, hhmm, people in (
                    ("ack-deputy", cfg.daily_check.ack_by, [] if absent else r.deputy),
                    ("ack-owner", cfg.daily_check.escalate_by, r.owner + r.service_partner),
                ):
                    if (
                        now >= _at(today, hhmm, now.tzinfo)
                        and self._escalated(today, kind) is None
                        and people
                    ):
                        who = (
                            cfg.contacts.deputy_name(lang)
                            if kind == "ack-deputy"
                            else cfg.practice.name
                        )
                        failed = newest.status == "red"
                        subject = self._subject(
                            "mail.unconfirmed", now, "red" if failed else "yellow"
                        )
                        body = self._unconfirmed_body(who, due, last, failed)
                        self._queue(state, today, kind, people, subject, body, now)
                        state.escalated_to += people
        return state

    def _unconfirmed_body(
        self, who: str, due: list[RunProtocol], last_ack: tuple[str, str] | None, failed: bool
    ) -> str:
        """What the deputy must know: whose check is open, which nights it covers (with their
        status), and whether last night failed."""
        cfg, lang = self.config, self.config.practice.language
        open_runs = [r for r in due if last_ack is None or r.finished > last_ack[0]]
        lines = [
            text(
                "mail.unconfirmed_body",
                lang,
                person=cfg.contacts.responsible_name(lang),
                who=who,
            ),
            "",
            text("mail.unconfirmed_runs", lang),
            *(
                "  – "
                + text(
                    "mail.unconfirmed_run",
                    lang,
                    time=when(r.started, lang),
                    status=text("report.status." + r.status, lang),
                    medium=r.medium_label or "–",
                )
                for r in open_runs[:7]
            ),
        ]
        if failed:
            lines += ["", text("mail.unconfirmed_failed", lang), text("todo.red", lang)]
        return "\n".join(lines) + "\n"

    def _subject(self, key: str, now: datetime, status: str) -> str:
        lang = self.config.practice.language
        name = self.config.practice.name
        tag = text(f"mail.tag.{status}", lang)
        return f"{tag} {text(key, lang)} – {name} – {short_date(now, lang)}"

    def _open_missed_alert(self) -> bool:
        with self._db() as db:
            row = db.execute(
                "SELECT kind FROM escalations WHERE kind IN ('missed', 'back-to-normal') "
                "ORDER BY time DESC LIMIT 1"
            ).fetchone()
        return bool(row and row[0] == "missed")

    def _likely_cause(self, runs: list, window_start: datetime, lang: str) -> str:  # type: ignore[type-arg]
        recent = [x for x in runs if datetime.fromisoformat(x.started) >= window_start]
        if recent and recent[0].status == "red":
            codes = [f.code for f in recent[0].findings if f.level == "red"]
            if "no_medium" in codes:
                return text("cause.no_medium", lang)
            return text("cause.red", lang, reason=", ".join(codes))
        if not recent:
            return text("cause.not_run", lang)
        return text("cause.unknown", lang)
