"""The rotation plan: German working days, roles, rules, and its invariants."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from praxisbackup.media.rotation import RotationPlan, RotationRuleError, RotationSettings

DAILY = ("Mo", "Di", "Mi", "Do", "Fr")
QUARTER = ("Q1 A", "Q2 A", "Q3 A", "Q4 A", "Q1 B", "Q2 B", "Q3 B", "Q4 B")
MONTH = ("Jan", "Feb", "Apr", "Mai", "Jul", "Aug", "Okt", "Nov")


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
    assert p.slot(date(2026, 5, 29)).label == "Mai"  # type: ignore[union-attr]
    # Leap year: February 2028 ends on Tuesday the 29th.
    assert p.slot(date(2028, 2, 29)).role == "month_end"  # type: ignore[union-attr]
    # 2028-09-30 is a Saturday: quarter end on Friday 29th, kept two years.
    q = p.slot(date(2028, 9, 29))
    assert q is not None and q.role == "quarter_end" and q.label == "Q3 A"
    assert q.hold_until == date(2028, 9, 29) + timedelta(days=730)


def test_year_end_with_practice_vacation() -> None:
    p = plan("NW", closed=("2026-12-24..2026-12-31",))
    q = p.slot(date(2026, 12, 23))
    assert q is not None and q.role == "quarter_end" and q.label == "Q4 A"
    assert all(p.slot(date(2026, 12, d)) is None for d in range(24, 32))
    assert p.slot(date(2027, 1, 1)) is None and p.slot(date(2027, 1, 4)).label == "Mo"  # type: ignore[union-attr]
    assert p.slot(date(2027, 12, 31)).label == "Q4 B"  # type: ignore[union-attr]


def test_rules_of_the_guidance_are_enforced() -> None:
    with pytest.raises(RotationRuleError, match="at least 5 different daily media"):
        plan(daily=("A", "B", "C", "D"))
    with pytest.raises(RotationRuleError, match="quarter-end medium"):
        plan(quarter_end=())
    with pytest.raises(RotationRuleError, match="at least two years"):
        plan(quarter_end_retention_days=600)
    with pytest.raises(RotationRuleError, match="is due again on 2027-03-31 but holds the archive"):
        plan(quarter_end=("Q1", "Q2", "Q3", "Q4"))
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
            assert slot.day >= prev.hold_until - timedelta(days=14)  # type: ignore[attr-defined]
        last[slot.label] = slot
