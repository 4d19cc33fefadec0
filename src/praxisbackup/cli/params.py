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
                return datetime.strptime(text, pattern).date()
            except ValueError:
                continue
        self.fail(f"{text!r} is not a date (e.g. 07.12.2026 or 2026-12-07)", param, ctx)


DATE = DateParam()
