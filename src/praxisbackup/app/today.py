"""What the practice needs to know this morning, as data: the traffic light for last night,
tonight's medium, what to take off-site and bring back, confirmations, undelivered mail,
oversight warnings. ``today`` on the command line and the web page's first page render it.

Looking never changes anything: no message is sent or queued, nothing is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from praxisbackup.app.daily import DailyCheck
from praxisbackup.catalog.runs import Catalog
from praxisbackup.media.oversight import Warning_, oversight
from praxisbackup.media.register import Register
from praxisbackup.media.selection import backup_day, plan_from_config
from praxisbackup.model.config import Config
from praxisbackup.model.locations import catalog_path
from praxisbackup.model.protocol import GREEN, RED, YELLOW, RunProtocol
from praxisbackup.notify.outbox import Outbox, Pending
from praxisbackup.platform.schedule import next_run

#: How many days ahead ``today`` looks for media to bring back.
BRING_BACK_DAYS = 2


@dataclass
class BringBack:
    day: date
    label: str
    location: str


@dataclass(frozen=True)
class Reason:
    """One reason for the traffic light, as a message code with its parameters (a finding of
    the last run, an oversight warning, or one of the ``today.reason.*`` codes)."""

    level: str  # red | yellow
    code: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Advice:
    """What to do about last night, by its cause (a message code and its parameters)."""

    code: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Undelivered:
    """Messages that could not be delivered, one entry per subject (repeats counted)."""

    subject: str
    error: str
    count: int
    refused: list[str] = field(default_factory=list)


@dataclass
class Today:
    day: date
    now: datetime
    last_run: RunProtocol | None
    tonight_label: str | None  # None: no backup tonight (see ``no_backup_reason``)
    next_label: str = ""  # the medium of the next planned night (tonight's, if one is planned)
    tonight_role: str = ""
    #: Tonight's run has been (at or after the scheduled time, on whatever medium): nothing is
    #: left to connect tonight, and the medium it wrote goes off-site.
    tonight_done: bool = False
    no_backup_reason: str = ""  # holiday name, "weekend" or "closed"
    take_offsite: list[str] = field(default_factory=list)
    #: Of those, the ones already registered off-site: label -> (by whom, since when).
    taken_offsite: dict[str, tuple[str, str]] = field(default_factory=dict)
    bring_back: list[BringBack] = field(default_factory=list)
    missed: bool = False
    acknowledged: bool = True
    last_ack: tuple[str, str] | None = None  # (time, by whom)
    undelivered: list[Undelivered] = field(default_factory=list)
    warnings: list[Warning_] = field(default_factory=list)
    advice: list[Advice] = field(default_factory=list)

    @property
    def status(self) -> str:
        """The traffic light: red when last night failed or no backup ran; yellow when
        something needs attention; green otherwise."""
        if self.missed or (self.last_run is not None and self.last_run.status == RED):
            return RED
        if (
            (self.last_run is not None and self.last_run.status == YELLOW)
            or self.undelivered
            or self.warnings
            or not self.acknowledged
        ):
            return YELLOW
        return GREEN

    @property
    def checked(self) -> bool:
        """The newest run is covered by a confirmation (the page shows "done"); unlike
        ``acknowledged`` this does not wait for the morning's deadline."""
        last = self.last_run
        return bool(self.last_ack and last is not None and self.last_ack[0] >= last.finished)

    def reasons(self) -> list[Reason]:
        """Why the light is not green, worst first, each once: a missed night, the last
        run's red and yellow findings, an open confirmation, undelivered mail, warnings."""
        found: list[Reason] = []
        if self.missed:
            found.append(Reason(RED, "today.reason.missed"))
        last = self.last_run
        if last is not None:
            found += [Reason(f.level, f.code, f.params) for f in last.findings if f.level == RED]
            found += [Reason(f.level, f.code, f.params) for f in last.findings if f.level == YELLOW]
        if not self.acknowledged:
            found.append(Reason(YELLOW, "today.reason.unconfirmed"))
        if self.undelivered:
            found.append(
                Reason(YELLOW, "today.reason.undelivered", {"count": len(self.undelivered)})
            )
        found += [Reason(YELLOW, w.code, w.params) for w in self.warnings]
        unique: list[Reason] = []
        for reason in found:
            if not any(r.code == reason.code and r.params == reason.params for r in unique):
                unique.append(reason)
        return unique

    def to_json(self) -> dict[str, Any]:
        last = self.last_run
        return {
            "day": self.day.isoformat(),
            "status": self.status,
            "last_run": None
            if last is None
            else {
                "id": last.run_id,
                "status": last.status,
                "started": last.started,
                "finished": last.finished,
                "medium": last.medium_label,
                "snapshot": last.snapshot_id,
                "red_findings": [f.code for f in last.findings if f.level == RED],
            },
            "tonight": {
                "medium": self.tonight_label,
                "role": self.tonight_role,
                "done": self.tonight_done,
            }
            if self.tonight_label
            else None,
            "no_backup_reason": self.no_backup_reason,
            "take_offsite": self.take_offsite,
            "taken_offsite": {
                label: {"by": by, "since": since}
                for label, (by, since) in self.taken_offsite.items()
            },
            "bring_back": [
                {"day": b.day.isoformat(), "medium": b.label, "location": b.location}
                for b in self.bring_back
            ],
            "missed": self.missed,
            "acknowledged": self.acknowledged,
            "last_ack": {"time": self.last_ack[0], "by": self.last_ack[1]}
            if self.last_ack
            else None,
            "undelivered": [
                {"subject": u.subject, "error": u.error, "count": u.count, "refused": u.refused}
                for u in self.undelivered
            ],
            "warnings": [{"code": w.code, **w.params} for w in self.warnings],
            "advice": [{"code": a.code, **a.params} for a in self.advice],
        }


def today(config: Config, now: datetime | None = None) -> Today:
    now = now or datetime.now().astimezone()
    db = catalog_path(config)
    register = Register(db)
    runs = [r for r in Catalog(db).runs(limit=200) if r.counts]
    day = backup_day(now)
    result = Today(day=day, now=now, last_run=runs[0] if runs else None, tonight_label=None)
    last = result.last_run
    records = {r.label: r for r in register.all()}
    rotation = plan_from_config(config)
    if rotation is not None:
        slot = rotation.slot(day)
        if slot is None:
            result.no_backup_reason = rotation.holiday_name(day, config.practice.language) or (
                "weekend" if day.weekday() >= 5 else "closed"
            )
        else:
            result.tonight_label, result.tonight_role = slot.label, slot.role
            result.tonight_done = last is not None and ran_tonight(config, day, now, last)
        upcoming_slots = rotation.slots(day, 14)
        result.next_label = upcoming_slots[0].label if upcoming_slots else ""
        # Tonight's medium too while its run is still to come (it may have gone off-site
        # after a night on the wrong medium), then the next nights'.
        due = rotation.slots(day + timedelta(days=1), 7)[:BRING_BACK_DAYS]
        if slot is not None and not result.tonight_done:
            due.insert(0, slot)
        for upcoming in due:
            rec = records.get(upcoming.label)
            if rec is not None and rec.location in ("offsite", "archive"):
                result.bring_back.append(BringBack(upcoming.day, upcoming.label, rec.location))
    # Off-site goes only a medium that holds a backup - and not tonight's medium while
    # tonight's run is still to come.
    holds_backup = last is not None and bool(last.snapshot_id) and last.verification.ok
    if (
        last is not None
        and holds_backup
        and last.medium_label
        and (result.tonight_done or last.medium_label != result.tonight_label)
    ):
        result.take_offsite.append(last.medium_label)
        taken = records.get(last.medium_label)
        if taken is not None and taken.location == "offsite":
            result.taken_offsite[last.medium_label] = (taken.location_by, taken.location_since)
    check = DailyCheck(config)
    state = check.evaluate(now, act=False)
    result.missed, result.acknowledged = state.missed, state.acknowledged
    result.last_ack = check.last_ack()
    result.undelivered = _undelivered(Outbox(db).pending())
    result.warnings = oversight(config, register, now, runs)
    result.advice = advice(config, result)
    return result


def ran_tonight(config: Config, day: date, now: datetime, run: RunProtocol) -> bool:
    """Whether the night of backup day ``day`` has had its run: the scheduler starts no
    other one for it (:func:`praxisbackup.platform.schedule.next_run`, the rule ``serve``
    follows). A run by hand before the scheduled time does not count: the night's run still
    comes."""
    started = datetime.fromisoformat(run.started)
    return backup_day(next_run(now, config.schedule.at, started)) != day


def _undelivered(pending: list[Pending]) -> list[Undelivered]:
    grouped: dict[str, Undelivered] = {}
    for p in pending:
        entry = grouped.get(p.subject)
        if entry is None:
            grouped[p.subject] = Undelivered(p.subject, p.last_error, 1, list(p.refused))
        else:
            entry.count += 1
            entry.error = p.last_error or entry.error
            entry.refused = sorted(set(entry.refused) | set(p.refused))
    return list(grouped.values())


def advice(config: Config, t: Today) -> list[Advice]:
    """What the staff should do, by cause: attach the medium they forgot and let tonight's run
    catch up - rather than "inform the service partner", who already got the e-mail."""
    partner = config.contacts.service_partner
    who = {"partner": partner.name or "-", "phone": partner.phone or "-"}
    last = t.last_run
    if last is None or (t.missed and last.status != RED):
        return [Advice("today.advice.not_run", who)] if t.missed else []
    if last.status != RED:
        return []
    codes = [f.code for f in last.findings if f.level == RED]
    found = {f.code: f.params for f in last.findings if f.level == RED}
    due = str(next((p.get("expected") for p in found.values() if p.get("expected")), ""))
    tonight = t.next_label or last.expected_medium or (due if due != "-" else "") or "-"
    if "no_medium" in codes:
        return [Advice("today.advice.no_medium", {"label": tonight})]
    if "wrong_medium" in codes:
        params = found["wrong_medium"]
        return [
            Advice("today.advice.wrong_medium", {"used": params.get("used", "-"), "label": tonight})
        ]
    if "medium_unregistered" in codes:
        return [Advice("today.advice.unregistered", {"label": tonight} | who)]
    if "service_start_failed" in codes:
        service = found["service_start_failed"].get("service", "-")
        return [Advice("today.advice.service_down", {"service": service} | who)]
    return [Advice("today.advice.informed", who)]
