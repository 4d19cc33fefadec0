"""One message catalogue in two languages: same codes, same placeholders, every code the
program uses exists; dates and numbers the German way."""

from __future__ import annotations

import re
import string
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import praxisbackup
from praxisbackup.report import i18n

SOURCE = Path(praxisbackup.__file__).parent


def placeholders(template: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(template) if f}


def test_both_languages_have_the_same_codes_and_placeholders() -> None:
    de, en = i18n.catalogue("de"), i18n.catalogue("en")
    assert len(de) > 100
    assert set(de) == set(en)
    for code in de:
        assert placeholders(de[code]) == placeholders(en[code]), code


def test_every_code_the_program_uses_is_in_the_catalogue() -> None:
    used: set[str] = set()
    patterns = [
        r"""\btext\(\s*["']([a-z_.0-9]+)["']""",
        r"""\.add\(\s*(?:RED|YELLOW|GREEN|"info"|level)\s*,\s*["']([a-z_]+)["']""",
        r"""Warning_\(\s*["']([a-z_]+)["']""",
    ]
    for path in SOURCE.rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        for pattern in patterns:
            used.update(re.findall(pattern, source))
    assert len(used) > 60
    known = i18n.catalogue("de")
    # A code built as prefix + value (e.g. "status." + status): the prefix must have entries.
    missing = sorted(
        code
        for code in used
        if code not in known and not (code.endswith(".") and any(k.startswith(code) for k in known))
    )
    assert missing == []


def test_german_dates_numbers_and_sizes() -> None:
    moment = datetime(2026, 11, 30, 22, 30, tzinfo=timezone(timedelta(hours=1)))
    local = moment.astimezone()
    assert i18n.when(moment, "de") == f"{i18n.day(local.date(), 'de')} {local:%H:%M}"
    assert i18n.day(date(2026, 11, 30), "de") == "Mo, 30.11.2026"
    assert i18n.day(date(2026, 11, 30), "en") == "Mon, 30.11.2026"
    assert i18n.when(datetime(2026, 12, 24, 8, 5), "de") == "Do, 24.12.2026 08:05"
    assert i18n.number(1.5, "de") == "1,5" and i18n.number(1.5, "en") == "1.5"
    assert i18n.number(12345, "de") == "12.345"
    assert i18n.size(1.5 * (1 << 30), "de") == "1,5 GiB"
    assert i18n.size(512, "de") == "512 B"
    assert i18n.when(None, "de") == "–"
