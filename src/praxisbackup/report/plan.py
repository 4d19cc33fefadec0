"""The rotation plan for people: a calendar on screen and a printable checklist per week.

Why a checklist: the plan hangs next to the server. Each working day has a row with the medium
to connect that evening and empty columns to tick "connected" and "taken off-site" and to sign
with initials, so the practice (and an auditor) can see that the rotation was kept (seed S6-S8).
Weekends are left out; holidays and closing days on weekdays are shown with their (German)
name, so nobody wonders why a row has no medium.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Protocol

from praxisbackup.report.i18n import day, text, weekday
from praxisbackup.report.pdf import Cell, Document

BOX = "☐"


class PlanDay(Protocol):
    """One night of the plan (``app.plan.PlanRow``)."""

    @property
    def day(self) -> date: ...
    @property
    def label(self) -> str | None: ...
    @property
    def role(self) -> str: ...
    @property
    def hold_until(self) -> date | None: ...
    @property
    def reason(self) -> str: ...


def note(row: PlanDay, lang: str) -> str:
    """What the row means: the medium's use (and how long it is kept) or why there is none."""
    if row.label is None:
        return text(row.reason, lang) if row.reason in ("weekend", "closed") else row.reason
    use = text("role." + row.role, lang)
    if row.hold_until:
        use += ", " + text("plan.hold_until", lang, date=day(row.hold_until, lang))
    return use


def plan_lines(
    rows: Sequence[PlanDay], practice: str, lang: str, override_reason: str = ""
) -> list[str]:
    """The calendar as text lines (German dates and weekdays when German)."""
    lines = [f"{text('plan.title', lang)} – {practice}", ""]
    lines += [f"{day(r.day, lang):<16} {r.label or '–':<12} {note(r, lang)}" for r in rows]
    if override_reason:
        lines += ["", text("plan.override", lang, reason=override_reason)]
    return lines


def _weeks(rows: Sequence[PlanDay]) -> list[list[PlanDay]]:
    weeks: list[list[PlanDay]] = []
    current: tuple[int, int] | None = None
    for r in rows:
        if r.day.weekday() >= 5:
            continue
        key = r.day.isocalendar()[:2]
        if key != current:
            weeks.append([])
            current = key
        weeks[-1].append(r)
    return weeks


def plan_pdf(
    rows: Sequence[PlanDay],
    practice: str,
    lang: str,
    override_reason: str = "",
    created: datetime | None = None,
) -> bytes:
    """The checklist: per week a table with date, medium and columns to tick and initial."""

    def t(code: str, **params: object) -> str:
        return text(code, lang, **params)

    doc = Document(t("plan.title"), practice, lang, created=created)
    doc.heading(f"{t('plan.title')} – {practice}")
    doc.paragraph(t("plan.howto"), size=9.5)
    if override_reason:
        doc.space(1)
        doc.paragraph(t("plan.override", reason=override_reason), level="yellow", size=9)
    w = doc.width
    widths = [10, 24, 21, w - 131, 31, 27, 18]
    head = [
        t("plan.col.weekday"),
        t("plan.col.date"),
        t("medium"),
        t("plan.col.use"),
        t("plan.col.connected"),
        t("plan.col.offsite"),
        t("plan.col.initials"),
    ]
    for week in _weeks(rows):
        first, last = week[0].day, week[-1].day
        doc.keep_together(24 + 9 * len(week))
        doc.section(
            t(
                "plan.week",
                week=first.isocalendar()[1],
                first=day(first, lang, with_weekday=False),
                last=day(last, lang, with_weekday=False),
            )
        )
        table: list[list[str | Cell]] = []
        for r in week:
            if r.label is None:
                table.append(
                    [
                        Cell(weekday(r.day, lang), "muted"),
                        Cell(day(r.day, lang, with_weekday=False), "muted"),
                        Cell("–", "muted"),
                        Cell(note(r, lang), "muted"),
                        "",
                        "",
                        "",
                    ]
                )
            else:
                table.append(
                    [
                        Cell(weekday(r.day, lang), bold=True),
                        day(r.day, lang, with_weekday=False),
                        Cell(r.label, bold=True),
                        note(r, lang),
                        Cell(BOX, size=15),
                        Cell(BOX, size=15),
                        "",
                    ]
                )
        doc.table(
            head,
            table,
            widths,
            ["L", "L", "L", "L", "C", "C", "L"],
            borders="ALL",
            size=9,
            row_height=8,
        )
    return doc.output()
