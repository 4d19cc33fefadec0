"""The audit evidence for a period (``praxisbackup report --period 2026-Q4`` and the button on
the status page): every night with its status, medium and verification, nights without a
backup and why, confirmations, escalations, media movements, archive holds, restore tests,
practice restores, open findings and changes made through the status page.

Why from the local catalog only: the report must be possible on the day the auditor asks, with
the media off-site; everything it shows was recorded there when it happened.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from praxisbackup.app.accounts import Accounts
from praxisbackup.app.daily import DailyCheck
from praxisbackup.app.restore_practice import restore_records
from praxisbackup.catalog.drills import Drills
from praxisbackup.catalog.runs import Catalog
from praxisbackup.errors import UsageError
from praxisbackup.media.oversight import oversight
from praxisbackup.media.register import Register
from praxisbackup.media.rotation import WorkingCalendar
from praxisbackup.media.selection import backup_day, plan_from_config
from praxisbackup.model.config import Config
from praxisbackup.model.evidence import Evidence, Hold, MediumHistory, Night
from praxisbackup.model.locations import catalog_path
from praxisbackup.model.protocol import GREEN, YELLOW, Finding, RunProtocol
from praxisbackup.notify.outbox import Outbox

_QUARTER = re.compile(r"^(\d{4})-?Q([1-4])$", re.IGNORECASE)
_MONTH = re.compile(r"^(\d{4})-(\d{1,2})$")
_YEAR = re.compile(r"^(\d{4})$")
_GERMAN_DAY = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})$")
#: Location-changing register events (a night's "used" is in the nights table already).
MOVES = ("registered", "moved", "retired")


def parse_day(value: str) -> date:
    """A date as staff type it: ``07.12.2026`` or ``2026-12-07``."""
    value = value.strip()
    m = _GERMAN_DAY.match(value)
    try:
        if m:
            return date(int(m[3]), int(m[2]), int(m[1]))
        return date.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"not a date: {value!r} (expected e.g. 07.12.2026)",
            code="error.not_a_date",
            value=value,
        ) from None


def parse_period(value: str) -> tuple[date, date]:
    """``2026-Q4``, ``2026-11`` or ``2026`` -> (first day, last day)."""
    value = value.strip()
    if m := _QUARTER.match(value):
        year, quarter = int(m[1]), int(m[2])
        first = date(year, 3 * quarter - 2, 1)
        return first, _month_last(year, 3 * quarter)
    if (m := _MONTH.match(value)) and 1 <= int(m[2]) <= 12:
        year, month = int(m[1]), int(m[2])
        return date(year, month, 1), _month_last(year, month)
    if m := _YEAR.match(value):
        return date(int(m[1]), 1, 1), date(int(m[1]), 12, 31)
    raise UsageError(
        f"not a period: {value!r} (expected e.g. 2026-Q4, 2026-11 or 2026)",
        code="error.not_a_period",
        value=value,
    )


def quarter_of(day: date) -> str:
    """The period name of ``day``'s quarter (``2026-Q4``)."""
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


def previous_quarter(day: date) -> str:
    first, _last = parse_period(quarter_of(day))
    return quarter_of(first - timedelta(days=1))


def _month_last(year: int, month: int) -> date:
    following = date(year + (month == 12), month % 12 + 1, 1)
    return following - timedelta(days=1)


def _local(iso: str) -> datetime:
    """A stored time in this computer's local time (a naive one is taken as local)."""
    return datetime.fromisoformat(iso).astimezone()


def _within(iso: str, first: date, last: date) -> bool:
    return bool(iso) and first <= _local(iso).date() <= last


def evidence(
    config: Config, first: date, last: date, lang: str = "de", now: datetime | None = None
) -> Evidence:
    """Collect the period's facts (``first`` to ``last``, both included)."""
    if last < first:
        raise UsageError("the period ends before it starts", code="error.period_backwards")
    now = now or datetime.now().astimezone()
    db = catalog_path(config)
    catalog, register, check = Catalog(db), Register(db), DailyCheck(config)
    margin = timedelta(days=2)
    runs = [
        r
        for r in catalog.runs_between(
            (first - margin).isoformat(), (last + margin + timedelta(days=1)).isoformat()
        )
        if first <= backup_day(_local(r.started)) <= last
    ]
    escalations = [e for e in check.escalations() if _within(e["time"], first, last)]
    # Nights after this one are not over (a clock behind the recorded runs goes by the runs).
    current = max([backup_day(now)] + [backup_day(_local(r.started)) for r in runs])
    ev = Evidence(
        config=config,
        first=first,
        last=last,
        created=now.isoformat(timespec="seconds"),
        nights=_nights(config, first, last, runs, escalations, lang, current),
        acks=[a for a in check.acks() if _within(a["time"], first, last)],
        escalations=escalations,
        media=_media(register, first, last, runs),
        holds=_holds(catalog.runs(limit=100_000), first, last),
        changes=[c for c in Accounts(db).changes() if _within(c["time"], first, last)],
    )
    ev.drills = [d for d in Drills(db).all() if _within(d.time, first, last)]
    recorded = {(d.medium_id, d.time) for d in ev.drills}
    for medium in register.all():
        for h in register.history(medium.id):
            if (
                h["kind"] == "drill"
                and _within(h["time"], first, last)
                and (medium.id, h["time"]) not in recorded
            ):
                ev.drill_events.append(
                    {
                        "time": h["time"],
                        "machine": h["by"],
                        "verdict": h["note"],
                        "medium": medium.label,
                    }
                )
    ev.restores = [r for _name, r in restore_records(config) if _within(r.started, first, last)]
    ev.open_findings = _open_findings(config, register, ev, runs, now)
    return ev


def _nights(
    config: Config,
    first: date,
    last: date,
    runs: list[RunProtocol],
    escalations: list[dict[str, str]],
    lang: str,
    current: date,
) -> list[Night]:
    """One entry per night up to the last one that is over (``current`` only if it ran)."""
    plan = plan_from_config(config)
    calendar = WorkingCalendar(
        config.practice.state, tuple(config.rotation.closed) if config.rotation else ()
    )
    nights = []
    day = first
    while day <= min(last, current):
        night = Night(day)
        night.runs = [r for r in runs if backup_day(_local(r.started)) == day]
        if day == current and not night.runs:
            break  # tonight is not over: nothing to report yet
        if plan is not None:
            slot = plan.slot(day)
            night.working = slot is not None
            if slot is not None:
                night.planned, night.planned_role = slot.label, slot.role
        else:
            night.working = calendar.is_working_day(day)
        if not night.working:
            night.day_off = (
                "weekend" if day.weekday() >= 5 else calendar.holiday_name(day, lang) or "closed"
            )
        # The "no backup" alert for a night is queued the next working morning.
        following = [
            e["time"]
            for e in escalations
            if e["kind"] == "missed" and date.fromisoformat(e["day"]) > day
        ]
        if night.working and not night.backed_up and following:
            night.missed_reported = min(following)
        nights.append(night)
        day += timedelta(days=1)
    return nights


def _media(
    register: Register, first: date, last: date, runs: list[RunProtocol]
) -> list[MediumHistory]:
    out = []
    for medium in register.all():
        history = register.history(medium.id)
        before_end = [h for h in history if _local(h["time"]).date() <= last]
        location = ""
        full_verify = drill = ""
        for h in before_end:
            if h["kind"] in (*MOVES, "used"):
                location = h["location"]
            if h["kind"] == "verified-full":
                full_verify = h["time"]
            if h["kind"] == "drill":
                drill = h["time"]
        out.append(
            MediumHistory(
                label=medium.label,
                role=medium.role,
                location_end=location,
                uses=sum(1 for r in runs if r.medium_id == medium.id and r.snapshot_id),
                last_full_verify=full_verify,
                last_drill=drill,
                events=[
                    h for h in history if h["kind"] in MOVES and _within(h["time"], first, last)
                ],
            )
        )
    return out


def _holds(all_runs: list[RunProtocol], first: date, last: date) -> list[Hold]:
    holds = []
    for r in reversed(all_runs):  # oldest first
        if not (r.hold_until and r.snapshot_id):
            continue
        made = backup_day(_local(r.started))
        if made <= last and date.fromisoformat(r.hold_until) >= first:
            holds.append(Hold(made, r.medium_label, r.snapshot_id[:8], r.hold_until))
    return holds


def _open_findings(
    config: Config,
    register: Register,
    ev: Evidence,
    runs: list[RunProtocol],
    now: datetime,
) -> list[Finding]:
    """What was still open at the end of the period: the last night's problems, unconfirmed
    nights, oversight warnings (media unseen, unverified, without a restore test) and, for a
    period that reaches today, mail not yet delivered."""
    end = datetime.combine(ev.last + timedelta(days=1), datetime.min.time()).astimezone()
    end = min(end, now)
    found: list[Finding] = []
    if runs and runs[-1].status != GREEN:
        found += [f for f in runs[-1].findings if f.level in ("red", YELLOW)]
    confirmed = max((a["time"] for a in ev.acks), default="")
    finished = [r for r in runs if r.finished]
    if finished and confirmed < finished[-1].finished:
        found.append(Finding(YELLOW, "evidence.open.unconfirmed", {"run": finished[-1].started}))
    newest_first = sorted(runs, key=lambda r: r.started, reverse=True)
    found += [
        Finding(YELLOW, w.code, w.params) for w in oversight(config, register, end, newest_first)
    ]
    if ev.last >= now.date():
        pending = Outbox(catalog_path(config)).pending(now)
        if pending:
            found.append(Finding(YELLOW, "today.reason.undelivered", {"count": len(pending)}))
    unique: list[Finding] = []
    for f in found:
        if not any(u.code == f.code and u.params == f.params for u in unique):
            unique.append(f)
    return unique
