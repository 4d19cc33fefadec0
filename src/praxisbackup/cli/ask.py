"""Questions at the console that German staff can answer in German (j/ja/n/nein)."""

from __future__ import annotations

import click

from praxisbackup.report.i18n import text


def confirm(question: str, lang: str, default: bool = True) -> bool:
    """A yes/no question accepting j/ja/n/nein as well as y/yes/n/no."""
    yes_word, no_word = ("j", "n") if lang == "de" else ("y", "n")
    hint = f"[{yes_word.upper()}/{no_word}]" if default else f"[{yes_word}/{no_word.upper()}]"

    def parse(value: str) -> bool:
        word = value.strip().lower()
        if word in ("j", "ja", "y", "yes"):
            return True
        if word in ("n", "nein", "no"):
            return False
        raise click.BadParameter(text("setup.yes_no", lang))

    answer: bool = click.prompt(
        f"{question} {hint}",
        default=yes_word if default else no_word,
        show_default=False,
        value_proc=parse,
    )
    return answer
