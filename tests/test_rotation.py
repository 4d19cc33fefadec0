"""The rotation plan: German working days, roles, rules, and its invariants."""

from __future__ import annotations

import calendar
import itertools
from datetime import date, timedelta

import pytest
from dateutil.easter import easter
from hypothesis import given, settings
from hypothesis import strategies as st

from praxisbackup.media.rotation import RotationPlan, RotationRuleError, RotationSettings

DAILY = ("Mo", "Di", "Mi", "Do", "Fr")
QUARTER = tuple(f"Quartal {n}" for n in range(1, 10))
MONTH = tuple(f"Monat {n}" for n in range(1, 18))


def plan(state: str = "NW", **kw: object) -> RotationPlan:
    base = {
        "state": state,
        "daily": DAILY,
        "quarter_end": QUARTER,
        "month_end": MONTH,
        "biweekly": ("FrA", "FrB"),
    }
    return RotationPlan(RotationSettings(**(base | kw)))  # type: ignore[arg-type]


def test_weekdays_holidays_and_state_differences() -> None:
    by, be = plan("BY"), plan("BE")
    assert by.slot(date(2026, 1, 5)) is not None and by.slot(date(2026, 1, 5)).label == "Mo"  # type: ignore[union-attr]
    assert by.slot(date(2026, 1, 6)) is None
    assert by.holiday_name(date(2026, 1, 6), "en") == "Epiphany"
    assert by.holiday_name(date(2026, 1, 6)) == "Heilige Drei Könige"  # German by default
    assert by.holiday_name(date(2026, 12, 25), "de") == "Erster Weihnachtstag"
    assert by.holiday_name(date(2026, 12, 24)) is None
    assert be.slot(date(2026, 1, 6)) is not None  # not a holiday in Berlin
    assert by.slot(date(2026, 8, 14)) is not None and by.slot(date(2026, 8, 17)) is not None
    assert not by.is_working_day(date(2026, 8, 15))  # Saturday anyway; Assumption is catholic
    assert be.slot(date(2027, 3, 8)) is None  # International Women's Day, Berlin only
    assert by.slot(date(2027, 3, 8)) is not None
    assert by.slot(date(2026, 11, 28)) is None  # a Saturday


def test_easter_moves_the_friday_medium_and_month_ends_move_off_weekends() -> None:
    p = plan("NW", biweekly_reference=date(2026, 4, 3))
    # Good Friday 2026-04-03 is a holiday: that week's Friday medium goes to Thursday.
    assert p.slot(date(2026, 4, 3)) is None
    assert p.slot(date(2026, 4, 2)).role == "biweekly"  # type: ignore[union-attr]
    assert p.slot(date(2026, 4, 6)) is None  # Easter Monday
    assert p.slot(date(2026, 4, 17)).role == "biweekly"  # type: ignore[union-attr]
    assert p.slot(date(2026, 4, 10)).role == "daily"  # type: ignore[union-attr]
    # 2026-05-31 is a Sunday: the May month-end medium is used on Friday 29th.
    assert p.slot(date(2026, 5, 29)).role == "month_end"  # type: ignore[union-attr]
    m = p.slot(date(2026, 5, 29))
    assert m is not None and m.label == "Monat 11"
    assert m.hold_until == date(2026, 5, 29) + timedelta(days=730)  # kept two years too
    # Leap year: February 2028 ends on Tuesday the 29th.
    assert p.slot(date(2028, 2, 29)).role == "month_end"  # type: ignore[union-attr]
    # 2028-09-30 is a Saturday: quarter end on Friday 29th, kept two years.
    q = p.slot(date(2028, 9, 29))
    assert q is not None and q.role == "quarter_end" and q.label == "Quartal 6"
    assert q.hold_until == date(2028, 9, 29) + timedelta(days=730)


def test_year_end_with_practice_vacation() -> None:
    p = plan("NW", closed=("2026-12-24..2026-12-31",))
    q = p.slot(date(2026, 12, 23))
    assert q is not None and q.role == "quarter_end" and q.label == "Quartal 8"
    assert all(p.slot(date(2026, 12, d)) is None for d in range(24, 32))
    assert p.slot(date(2027, 1, 1)) is None and p.slot(date(2027, 1, 4)).label == "Mo"  # type: ignore[union-attr]
    assert p.slot(date(2027, 12, 31)).label == "Quartal 3"  # type: ignore[union-attr]


def test_rules_of_the_guidance_are_enforced() -> None:
    with pytest.raises(RotationRuleError, match="at least 5 different daily media"):
        plan(daily=("A", "B", "C", "D"))
    with pytest.raises(RotationRuleError, match="quarter-end medium"):
        plan(quarter_end=())
    with pytest.raises(RotationRuleError, match="at least two years"):
        plan(quarter_end_retention_days=600)
    with pytest.raises(RotationRuleError, match="is due again on 2027-03-31 but holds the archive"):
        plan(quarter_end=("Q1", "Q2", "Q3", "Q4"))
    # Eight quarter-end media for two years: in TH the Q4 medium written on 31.12.2026 is held
    # until 30.12.2028 but due again on Friday 29.12.2028 - the check names it (and the others).
    with pytest.raises(
        RotationRuleError,
        match=r"quarter_end medium 'Q4 A' is due again on 2028-12-29 but holds the archive of "
        r"2026-12-31 until 2028-12-30",
    ):
        plan("TH", quarter_end=("Q1 A", "Q2 A", "Q3 A", "Q4 A", "Q1 B", "Q2 B", "Q3 B", "Q4 B"))
    # Month-end archives are kept two years as well (the vendor's "Monats- und vor allem am
    # Quartalsende ... mind. zwei Jahre"), and sixteen media are one too few for that.
    with pytest.raises(RotationRuleError, match="month-end archives must be kept at least two"):
        plan("TH", month_end_retention_days=365)
    with pytest.raises(
        RotationRuleError,
        match=r"month_end medium 'M3' is due again on 2028-04-28 but holds the archive of "
        r"2026-04-30 until 2028-04-29",
    ):
        plan("TH", month_end=tuple(f"M{n}" for n in range(1, 17)))
    with pytest.raises(RotationRuleError, match="only one role"):
        plan(month_end=("Mo",))
    accepted = plan(daily=("A", "B", "C", "D"), override_reason="Praxis nur vier Tage geöffnet")
    assert accepted.overridden and "daily" in accepted.overridden[0]


@settings(max_examples=30, deadline=None)
@given(
    state=st.sampled_from(
        [
            "BW",
            "BY",
            "BE",
            "BB",
            "HB",
            "HH",
            "HE",
            "MV",
            "NI",
            "NW",
            "RP",
            "SL",
            "SN",
            "ST",
            "SH",
            "TH",
        ]
    ),
    start=st.dates(min_value=date(2025, 1, 1), max_value=date(2030, 12, 31)),
)
def test_every_working_day_has_exactly_one_medium_and_archives_are_not_reused_early(
    state: str, start: date
) -> None:
    p = plan(state)
    last: dict[str, object] = {}
    for i in range(400):
        day = start + timedelta(days=i)
        slot = p.slot(day)
        assert (slot is not None) == p.is_working_day(day)
        if slot is None:
            continue
        assert slot.label in DAILY + QUARTER + MONTH + ("FrA", "FrB")
        prev = last.get(slot.label)
        if prev is not None and getattr(prev, "hold_until", None):
            assert slot.day > prev.hold_until  # type: ignore[attr-defined]
        last[slot.label] = slot


# -- an independent calendar: German public holidays computed here from Easter and fixed
# dates, not taken from the holidays package the plan uses.
def _holidays(state: str, year: int) -> set[date]:
    e = easter(year)
    days = {
        date(year, 1, 1),
        e - timedelta(days=2),  # Good Friday
        e + timedelta(days=1),  # Easter Monday
        date(year, 5, 1),
        e + timedelta(days=39),  # Ascension
        e + timedelta(days=50),  # Whit Monday
        date(year, 10, 3),
        date(year, 12, 25),
        date(year, 12, 26),
    }
    corpus_christi = e + timedelta(days=60)
    if state == "BY":
        days |= {date(year, 1, 6), corpus_christi, date(year, 8, 15), date(year, 11, 1)}
    if state == "NW":
        days |= {corpus_christi, date(year, 11, 1)}
    if state == "BE":
        days.add(date(year, 3, 8))
    if state in ("SN", "TH"):
        days.add(date(year, 10, 31))
    if state == "SN":  # Repentance and Prayer Day: the Wednesday before 23 November
        nov22 = date(year, 11, 22)
        days.add(nov22 - timedelta(days=(nov22.weekday() - 2) % 7))
    if state == "TH":
        days.add(date(year, 9, 20))  # World Children's Day
    return days


def _last_working_day(year: int, month: int, working: set[date]) -> date:
    day = date(year, month, calendar.monthrange(year, month)[1])
    while day not in working:
        day -= timedelta(days=1)
    return day


@pytest.mark.parametrize("state", ["BY", "BE", "NW", "SN", "TH"])
def test_plan_against_an_independent_calendar_2026_to_2028(state: str) -> None:
    p = plan(state)
    first, last = date(2026, 1, 1), date(2028, 12, 31)
    holidays = set().union(*(_holidays(state, y) for y in range(2026, 2029)))
    working = {
        first + timedelta(days=i)
        for i in range((last - first).days + 1)
        if (first + timedelta(days=i)).weekday() < 5 and first + timedelta(days=i) not in holidays
    }
    slots = p.slots(first, (last - first).days + 1)
    assert {s.day for s in slots} == working  # every working day exactly one medium
    assert len(slots) == len(working)
    quarter_days = {
        _last_working_day(y, m, working) for y in range(2026, 2029) for m in (3, 6, 9, 12)
    }
    month_days = {
        _last_working_day(y, m, working) for y in range(2026, 2029) for m in range(1, 13) if m % 3
    }
    assert {s.day for s in slots if s.role == "quarter_end"} == quarter_days
    assert {s.day for s in slots if s.role == "month_end"} == month_days
    # The Friday medium: once in every second week, on that week's last working day, and the
    # two labels strictly alternate fortnight by fortnight (also when a holiday moves it; a
    # fortnight whose Friday is a month end keeps its turn unused).
    fridays = [s for s in slots if s.role == "biweekly"]
    for a, b in itertools.pairwise(fridays):
        fortnights = (b.day - a.day + timedelta(days=a.day.weekday() - b.day.weekday())).days
        assert fortnights % 14 == 0, (a, b)
        assert (a.label != b.label) == bool(fortnights // 14 % 2), (a, b)
    for s in fridays:
        monday = s.day - timedelta(days=s.day.weekday())
        week = [monday + timedelta(days=i) for i in range(5)]
        assert s.day == max(d for d in week if d in working)
    # No archive medium is planned while the snapshot of its previous use is held.
    held: dict[str, date] = {}
    for s in slots:
        assert s.label not in held or s.day > held[s.label], s
        if s.hold_until:
            held[s.label] = s.hold_until


def test_every_second_friday_alternates_when_good_friday_moves_it() -> None:
    p = plan("BY", closed=("2027-05-07",))  # a bridge-day closing after Ascension
    fridays = [(s.day, s.label) for s in p.slots(date(2027, 3, 8), 80) if s.role == "biweekly"]
    assert fridays == [
        (date(2027, 3, 12), "FrB"),
        (date(2027, 3, 25), "FrA"),  # Thursday before Good Friday: its own fortnight's label
        (date(2027, 4, 9), "FrB"),
        (date(2027, 4, 23), "FrA"),
        (date(2027, 5, 5), "FrB"),  # Wednesday: Ascension Thursday, closed on the bridge day
        (date(2027, 5, 21), "FrA"),
    ]
