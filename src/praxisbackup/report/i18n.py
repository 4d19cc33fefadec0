"""Texts that staff read, in German (default) and English, from one message catalogue.

The catalogue is a pair of gettext ``.po`` files (``report/locale/<lang>/LC_MESSAGES/
praxisbackup.po``) read with Babel; message ids are codes (``status.red``, ``no_medium``) so the
same code works in protocols stored years ago. Messages are ``str.format`` templates; a test
checks that both languages have the same codes and the same placeholders.

Dates, times, numbers and sizes are formatted the German way through Babel's CLDR data
("Mo, 30.11.2026 22:30", "1,5 GB"), in local time, never as ISO timestamps.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import cache
from importlib import resources
from typing import Any

from babel.dates import format_date, format_datetime
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

LANGUAGES = ("de", "en")
DEFAULT_LANGUAGE = "de"
DOMAIN = "praxisbackup"


@cache
def catalogue(lang: str) -> dict[str, str]:
    """code -> template for one language."""
    source = resources.files("praxisbackup.report").joinpath(
        f"locale/{lang}/LC_MESSAGES/{DOMAIN}.po"
    )
    with source.open("rb") as fh:
        po = read_po(fh, locale=lang, domain=DOMAIN)
    return {str(m.id): str(m.string) for m in po if m.id and m.string}


def language(lang: str | None) -> str:
    return lang if lang in LANGUAGES else DEFAULT_LANGUAGE


def text(code: str, lang: str, /, **params: Any) -> str:
    """The message for ``code`` in ``lang`` (German if missing), filled with ``params``."""
    template = catalogue(language(lang)).get(code) or catalogue(DEFAULT_LANGUAGE).get(code)
    if template is None:
        return code + (f" {params}" if params else "")
    try:
        return template.format(**params)
    except (KeyError, IndexError, ValueError):
        return template


def lines(code: str, lang: str, /, **params: Any) -> list[str]:
    """A multi-line message as lines."""
    return text(code, lang, **params).splitlines()


def day_off_reason(reason: str, lang: str) -> str:
    """Why a night has no backup: a holiday's name as it is, else "weekend" / "closed"."""
    return text(reason, lang) if reason in ("weekend", "closed") else reason


# -- dates and numbers -------------------------------------------------------------------
def _local(value: datetime | str) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone() if moment.tzinfo is not None else moment


def weekday(value: date, lang: str) -> str:
    """Two letters without a period in German ("Mo"), as on a practice's plan; "Mon"."""
    width = "EEEEEE" if language(lang) == "de" else "EEE"
    return str(format_date(value, width, locale=language(lang))).rstrip(".")


def when(value: datetime | str | None, lang: str) -> str:
    """Date and time in local time, e.g. "Mo, 30.11.2026 22:30"; "–" if unset."""
    if not value:
        return "–"
    moment = _local(value)
    clock = format_datetime(moment, "dd.MM.yyyy HH:mm", locale=language(lang))
    return f"{weekday(moment.date(), lang)}, {clock}"


def clock(value: datetime | str | None, lang: str) -> str:
    """The local time of day, e.g. "22:30:05" (timelines within one night); "–" if unset."""
    if not value:
        return "–"
    return str(format_datetime(_local(value), "HH:mm:ss", locale=language(lang)))


def day(value: date | str, lang: str, with_weekday: bool = True) -> str:
    """A date, e.g. "Mo, 30.11.2026" or "30.11.2026"."""
    d = date.fromisoformat(value) if isinstance(value, str) else value
    plain = str(format_date(d, "dd.MM.yyyy", locale=language(lang)))
    return f"{weekday(d, lang)}, {plain}" if with_weekday else plain


def number(value: float, lang: str, digits: int = 1) -> str:
    """1,5 (German) / 1.5; whole numbers without decimals."""
    if float(value).is_integer():
        return format_decimal(int(value), locale=language(lang))
    return format_decimal(
        round(value, digits), format=f"#,##0.{'#' * digits}", locale=language(lang)
    )


def size(n: float, lang: str) -> str:
    """Bytes in binary units, German decimal comma: "1,5 GiB"."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{number(n, lang, 0 if unit == 'B' else 1)} {unit}"
        n /= 1024
    return f"{number(n, lang)} TiB"  # pragma: no cover - the loop always returns
