"""The rotation plan as rows: which medium is due on which night, and why none is due."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from praxisbackup.errors import PraxisError
from praxisbackup.media.selection import plan_from_config
from praxisbackup.model.config import Config


@dataclass(frozen=True)
class PlanRow:
    day: date
    label: str | None  # None: no backup that night
    role: str = ""
    hold_until: date | None = None
    reason: str = ""  # holiday name, "weekend" or "closed" when there is no backup


def plan_rows(config: Config, first: date, days: int, lang: str = "de") -> list[PlanRow]:
    """The nights from ``first``; holiday names in ``lang``."""
    rotation = plan_from_config(config)
    if rotation is None:
        raise PraxisError("no [rotation] section in the configuration", code="error.no_rotation")
    rows = []
    for i in range(days):
        day = first + timedelta(days=i)
        slot = rotation.slot(day)
        if slot is None:
            reason = rotation.holiday_name(day, lang) or (
                "weekend" if day.weekday() >= 5 else "closed"
            )
            rows.append(PlanRow(day, None, reason=reason))
        else:
            rows.append(PlanRow(day, slot.label, slot.role, slot.hold_until))
    return rows
