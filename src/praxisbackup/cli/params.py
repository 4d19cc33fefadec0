"""Parameter types for the command line."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import click


class DateParam(click.ParamType):  # type: ignore[type-arg,unused-ignore]
    """A date as German staff write it (``07.12.2026``, ``7.12.26``) or ISO (``2026-12-07``)."""

    name = "date"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> date:
        if isinstance(value, date):
            return value
        text = str(value).strip()
        for pattern in ("%Y-%m-%d", "%d.%m.%Y", "%d.%m.%y"):
            try:
                day = datetime.strptime(text, pattern).date()
            except ValueError:
                continue
            if 2000 <= day.year <= 2199:
                return day
        self.fail(f"{text!r}: kein Datum / not a date (07.12.2026)", param, ctx)


DATE = DateParam()
