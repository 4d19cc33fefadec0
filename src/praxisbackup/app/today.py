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


#: Red findings after which the staff can do something themselves: code -> advice code.
ADVICE = {"no_medium": "today.advice.no_medium", "wrong_medium": "today.advice.wrong_medium"}


@dataclass
class Today:
    day: date
    now: datetime
    last_run: RunProtocol | None
    tonight_label: str | None  # None: no backup tonight (see ``no_backup_reason``)
    tonight_role: str = ""
    no_backup_reason: str = ""  # holiday name, "weekend" or "closed"
    take_offsite: list[str] = field(default_factory=list)
    bring_back: list[BringBack] = field(default_factory=list)
    missed: bool = False
    acknowledged: bool = True
    last_ack: tuple[str, str] | None = None  # (time, by whom)
    undelivered: list[Pending] = field(default_factory=list)
    warnings: list[Warning_] = field(default_factory=list)

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

    def advice(self) -> list[Reason]:
        """What the staff can do about a red night themselves (connect the right medium);
        empty when only the service partner can help (the e-mail has reached them)."""
        last = self.last_run
        if last is None or last.status != RED:
            return []
        return [
            Reason(RED, ADVICE[f.code], f.params)
            for f in last.findings
            if f.level == RED and f.code in ADVICE and f.params.get("expected") not in ("", "-")
        ]

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
            "tonight": {"medium": self.tonight_label, "role": self.tonight_role}
            if self.tonight_label
            else None,
            "no_backup_reason": self.no_backup_reason,
            "take_offsite": self.take_offsite,
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
                {"subject": p.subject, "error": p.last_error, "attempts": p.attempts}
                for p in self.undelivered
            ],
            "warnings": [{"code": w.code, **w.params} for w in self.warnings],
        }


def today(config: Config, now: datetime | None = None) -> Today:
    now = now or datetime.now().astimezone()
    db = catalog_path(config)
    register = Register(db)
    runs = Catalog(db).runs(limit=200)
    day = backup_day(now)
    result = Today(day=day, now=now, last_run=runs[0] if runs else None, tonight_label=None)
    if result.last_run is not None and result.last_run.medium_label:
        result.take_offsite.append(result.last_run.medium_label)
    rotation = plan_from_config(config)
    if rotation is not None:
        slot = rotation.slot(day)
        if slot is None:
            result.no_backup_reason = rotation.holiday_name(day) or (
                "weekend" if day.weekday() >= 5 else "closed"
            )
        else:
            result.tonight_label, result.tonight_role = slot.label, slot.role
        records = {r.label: r for r in register.all()}
        for upcoming in rotation.slots(day + timedelta(days=1), 7)[:BRING_BACK_DAYS]:
            rec = records.get(upcoming.label)
            if rec is not None and rec.location in ("offsite", "archive"):
                result.bring_back.append(BringBack(upcoming.day, upcoming.label, rec.location))
    check = DailyCheck(config)
    state = check.evaluate(now, act=False)
    result.missed, result.acknowledged = state.missed, state.acknowledged
    result.last_ack = check.last_ack()
    result.undelivered = Outbox(db).pending()
    result.warnings = oversight(config, register, now, runs)
    return result
