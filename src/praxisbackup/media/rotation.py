"""The rotation plan (seed S8): which medium is due on which night.

Roles, in priority order when they fall on the same night:

* ``quarter_end`` - last working day of March, June, September, December; archived for years
* ``month_end``   - last working day of every other month; archived for years
* ``biweekly``    - every second Friday (the last working day of that week if Friday is a holiday)
* ``daily``       - every other working day; at least five media

Working days are Monday to Friday minus the public holidays of the practice's federal state
(``holidays`` package, with the categories the state needs, e.g. Bavaria's catholic holidays)
minus the practice's own closing days. A plan that breaks the seed's rules is rejected with the
rule it breaks, unless an override reason is written in the configuration.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta

import holidays

from praxisbackup.errors import PraxisError

ROLES = ("quarter_end", "month_end", "biweekly", "daily")
ARCHIVE_ROLES = ("quarter_end", "month_end")
MIN_DAILY = 5
MIN_ARCHIVE_DAYS = 730
#: States whose public holidays include days the holidays package files under "catholic".
CATHOLIC_STATES = ("BY", "Augsburg")


class RotationRuleError(PraxisError):
    """The rotation plan breaks a rule of the vendor's guidance."""


@dataclass(frozen=True)
class RotationSettings:
    state: str
    daily: tuple[str, ...]
    quarter_end: tuple[str, ...]
    month_end: tuple[str, ...] = ()
    biweekly: tuple[str, ...] = ()
    quarter_end_retention_days: int = 730
    month_end_retention_days: int = 730
    closed: tuple[str, ...] = ()  # "2026-12-24" or "2026-07-20..2026-08-07"
    biweekly_reference: date = date(2026, 1, 2)  # a Friday of the "on" week
    override_reason: str = ""


@dataclass(frozen=True)
class Slot:
    day: date
    role: str
    label: str
    hold_until: date | None  # archive snapshots are pinned until then


def rule_violations(s: RotationSettings) -> list[str]:
    problems = []
    if len(set(s.daily)) < MIN_DAILY:
        problems.append(
            f"at least {MIN_DAILY} different daily media are required (found {len(set(s.daily))})"
        )
    if not s.quarter_end:
        problems.append("a quarter-end medium that is archived long-term is required")
    if s.quarter_end and s.quarter_end_retention_days < MIN_ARCHIVE_DAYS:
        problems.append(
            f"quarter-end archives must be kept at least two years ({MIN_ARCHIVE_DAYS} days), "
            f"not {s.quarter_end_retention_days}"
        )
    if s.month_end and s.month_end_retention_days < MIN_ARCHIVE_DAYS:
        problems.append(
            f"month-end archives must be kept at least two years ({MIN_ARCHIVE_DAYS} days), "
            f"not {s.month_end_retention_days}"
        )
    every = [*s.daily, *s.quarter_end, *s.month_end, *s.biweekly]
    if len(set(every)) != len(every):
        problems.append("every medium label may appear in only one role")
    return problems


def reuse_violations(plan: RotationPlan, start: date, years: int = 8) -> list[str]:
    """Archive media planned again while the snapshot of their previous use is still held.

    Writing to such a medium never deletes the held archive, but it breaks the promise that
    each archive medium keeps its archive alone for its whole retention. The last working day
    of a month moves between years, so a retention of exactly n years with media reused every
    n years can be impossible: the check then names the medium, and the practice adds a medium
    (or writes an override reason)."""
    last_use: dict[str, Slot] = {}
    problems = []
    named: set[str] = set()  # one line per medium: its first conflict
    for slot in plan.slots(start, 366 * years):
        prev = last_use.get(slot.label)
        if (
            prev is not None
            and prev.hold_until is not None
            and slot.day <= prev.hold_until
            and slot.label not in named
        ):
            named.add(slot.label)
            problems.append(
                f"{slot.role} medium '{slot.label}' is due again on {slot.day.isoformat()} but "
                f"holds the archive of {prev.day.isoformat()} until {prev.hold_until.isoformat()} "
                "(add a medium to this role or shorten its retention)"
            )
        last_use[slot.label] = slot
    return problems


def validate(s: RotationSettings, plan: RotationPlan | None = None) -> list[str]:
    """Raise for a rule violation without override; return the overridden violations."""
    problems = rule_violations(s)
    if plan is not None and not problems:
        problems = reuse_violations(plan, date(2026, 1, 1))
    if problems and not s.override_reason.strip():
        raise RotationRuleError(
            "the rotation plan breaks the backup rules:\n  "
            + "\n  ".join(problems)
            + "\n(set rotation.override_reason to accept this in writing)"
        )
    return problems


def _closed_days(specs: tuple[str, ...]) -> frozenset[date]:
    days: set[date] = set()
    for spec in specs:
        if ".." in spec:
            first, last = (date.fromisoformat(x.strip()) for x in spec.split(".."))
            while first <= last:
                days.add(first)
                first += timedelta(days=1)
        else:
            days.add(date.fromisoformat(spec.strip()))
    return frozenset(days)


class WorkingCalendar:
    """Working days of the practice: Monday-Friday minus the state's public holidays (with the
    categories the state needs) minus the practice's closing days."""

    def __init__(self, state: str, closed: tuple[str, ...] = ()) -> None:
        self.state = state
        self._closed = _closed_days(closed)
        self._categories = ("public", "catholic") if state in CATHOLIC_STATES else ("public",)
        self._years: dict[int, holidays.HolidayBase] = {}
        self._names: dict[tuple[int, str], holidays.HolidayBase] = {}

    def _holidays(self, year: int) -> holidays.HolidayBase:
        table = self._years.get(year)
        if table is None:
            table = holidays.country_holidays(
                "DE", subdiv=self.state, years=year, categories=self._categories
            )
            self._years[year] = table
        return table

    def holiday_name(self, day: date, lang: str = "de") -> str | None:
        """The holiday's name in the reader's language ("Erster Weihnachtstag"), not in the
        server's locale; None on other days."""
        if day not in self._holidays(day.year):
            return None
        language = "de" if lang == "de" else "en_US"
        names = self._names.get((day.year, language))
        if names is None:
            names = holidays.country_holidays(
                "DE",
                subdiv=self.state,
                years=day.year,
                categories=self._categories,
                language=language,
            )
            self._names[(day.year, language)] = names
        name = names.get(day)
        return str(name) if name else None

    def is_working_day(self, day: date) -> bool:
        return day.weekday() < 5 and day not in self._holidays(day.year) and day not in self._closed


class RotationPlan:
    def __init__(self, settings: RotationSettings) -> None:
        self.s = settings
        self.calendar = WorkingCalendar(settings.state, settings.closed)
        self.overridden = validate(settings, self)

    def holiday_name(self, day: date, lang: str = "de") -> str | None:
        return self.calendar.holiday_name(day, lang)

    def is_working_day(self, day: date) -> bool:
        return self.calendar.is_working_day(day)

    def _last_working_day(self, first: date, last: date) -> date | None:
        day = last
        while day >= first:
            if self.is_working_day(day):
                return day
            day -= timedelta(days=1)
        return None

    def _month_end(self, day: date) -> date | None:
        last = calendar.monthrange(day.year, day.month)[1]
        return self._last_working_day(day.replace(day=1), day.replace(day=last))

    def _weeks_since_reference(self, day: date) -> int:
        reference = self.s.biweekly_reference
        monday = day - timedelta(days=day.weekday())
        return (monday - (reference - timedelta(days=reference.weekday()))).days // 7

    def _biweekly_day(self, day: date) -> date | None:
        """The day of this week's every-second-Friday backup (None in the "off" week)."""
        if self._weeks_since_reference(day) % 2:
            return None
        monday = day - timedelta(days=day.weekday())
        return self._last_working_day(monday, monday + timedelta(days=4))

    def slot(self, day: date) -> Slot | None:
        """The medium due on the night of ``day`` (None on days without a planned backup)."""
        if not self.is_working_day(day):
            return None
        s = self.s
        if self._month_end(day) == day:
            if day.month % 3 == 0 and s.quarter_end:
                index = day.year * 4 + day.month // 3 - 1  # Q1 -> labels[0] (with 4k labels)
                return Slot(
                    day,
                    "quarter_end",
                    s.quarter_end[index % len(s.quarter_end)],
                    day + timedelta(days=s.quarter_end_retention_days),
                )
            if s.month_end:
                months = [m for m in range(1, 13) if not (s.quarter_end and m % 3 == 0)]
                index = day.year * len(months) + months.index(day.month)
                return Slot(
                    day,
                    "month_end",
                    s.month_end[index % len(s.month_end)],
                    day + timedelta(days=s.month_end_retention_days),
                )
        if s.biweekly and self._biweekly_day(day) == day:
            # Count fortnights from the Mondays: a Friday medium moved to Thursday (Good
            # Friday) still belongs to its own fortnight and gets its own label.
            fortnight = self._weeks_since_reference(day) // 2
            return Slot(day, "biweekly", s.biweekly[fortnight % len(s.biweekly)], None)
        if len(s.daily) == 5:
            label = s.daily[day.weekday()]  # Mo..Fr: the disk named for the weekday
        else:
            weekdays = _weekdays_between(date(2000, 1, 3), day)
            label = s.daily[weekdays % len(s.daily)]
        return Slot(day, "daily", label, None)

    def slots(self, start: date, days: int) -> list[Slot]:
        out = []
        for i in range(days):
            slot = self.slot(start + timedelta(days=i))
            if slot is not None:
                out.append(slot)
        return out

    def role_of(self, label: str) -> str | None:
        for role in ROLES:
            if label in getattr(self.s, role):
                return role
        return None


def _weekdays_between(start: date, end: date) -> int:
    """Monday-to-Friday days in [start, end)."""
    days = (end - start).days
    full, rest = divmod(days, 7)
    count = full * 5
    for i in range(rest):
        if (start + timedelta(days=full * 7 + i)).weekday() < 5:
            count += 1
    return count
