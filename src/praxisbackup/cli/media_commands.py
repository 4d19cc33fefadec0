"""Media commands: register (init/list/show/move/retire), the rotation plan and ``today``."""

from __future__ import annotations

import dataclasses
import sys
from datetime import date
from typing import ClassVar

import click

from praxisbackup.app import today as today_app
from praxisbackup.app.medium import attached_ids, move_medium, retire_medium
from praxisbackup.app.plan import plan_rows
from praxisbackup.cli.context import Ctx, write_output
from praxisbackup.cli.params import DATE
from praxisbackup.cli.today_view import today_lines
from praxisbackup.errors import PraxisError
from praxisbackup.media.register import Register
from praxisbackup.media.selection import prepare_medium
from praxisbackup.model.config import Config
from praxisbackup.model.locations import catalog_path
from praxisbackup.model.protocol import exit_code
from praxisbackup.report.i18n import day, size, text, when
from praxisbackup.report.plan import note, plan_lines, plan_pdf

pass_ctx = click.make_pass_decorator(Ctx)


class LocationParam(click.ParamType):  # type: ignore[type-arg,unused-ignore]
    """Where a medium is, in German or English: Praxis, außer Haus, Archiv/Tresor."""

    name = "location"
    WORDS: ClassVar[dict[str, str]] = {
        "practice": "practice",
        "praxis": "practice",
        "offsite": "offsite",
        "außer haus": "offsite",
        "ausser haus": "offsite",
        "außerhaus": "offsite",
        "ausserhaus": "offsite",
        "archive": "archive",
        "archiv": "archive",
        "tresor": "archive",
        "attached": "attached",
        "angeschlossen": "attached",
    }

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> str:
        word = " ".join(str(value).strip().casefold().replace("-", " ").split())
        if word in self.WORDS:
            return self.WORDS[word]
        self.fail(f"{value!r}: praxis, außer-haus, archiv or angeschlossen", param, ctx)


def _where(medium_id: str, location: str, attached_now: set[str]) -> str:
    """What to show: "attached" only while it really is; one last seen attached and now
    unplugged is "detached" (somewhere in the practice) until someone moves it."""
    if medium_id in attached_now:
        return "attached"
    return "detached" if location == "attached" else location


def _register(config: Config) -> Register:
    return Register(catalog_path(config))


@click.group(name="medium")
def medium_group() -> None:
    """Prepare backup media and keep track of where each one is."""


@medium_group.command(name="init")
@click.argument("label")
@click.argument("path")
@click.option(
    "--role", type=click.Choice(["daily", "biweekly", "month_end", "quarter_end", "other"])
)
@click.option(
    "--allow-same-disk",
    is_flag=True,
    help="Demonstrations only: allow a folder on the same disk as the practice data.",
)
@pass_ctx
def medium_init(ctx: Ctx, label: str, path: str, role: str | None, allow_same_disk: bool) -> None:
    """Make PATH (a USB disk, a NAS folder) a backup medium called LABEL and register it."""
    config = ctx.config()
    attached = prepare_medium(
        config, path, label, ctx.passphrase(config=config), role, allow_same_disk or None
    )
    role = _register(config).find(attached.label.medium_id).role
    click.echo(
        text(
            "medium.ready",
            ctx.lang,
            label=label,
            role=text(f"role.{role}", ctx.lang),
            root=attached.root,
            id=attached.label.medium_id,
        )
    )


@medium_group.command(name="list")
@pass_ctx
def medium_list(ctx: Ctx) -> None:
    """All registered media with role, location and last use."""
    config = ctx.config()
    records = _register(config).all()
    if ctx.json:
        ctx.emit_json([dataclasses.asdict(r) for r in records])
        return
    lang = ctx.lang
    here = attached_ids(config)
    for r in records:
        where = _where(r.id, r.location, here)
        used = day(r.last_seen[:10], lang, with_weekday=False) if r.last_seen else "–"
        checked = (
            day(r.last_full_verify[:10], lang, with_weekday=False) if r.last_full_verify else "–"
        )
        click.echo(
            f"{r.label:<12} {text('role.' + r.role, lang):<38} "
            f"{text('location.' + where, lang):<26} "
            + text("medium.list_dates", lang, used=used, verified=checked)
            + f"  {r.id}"
        )


@medium_group.command(name="show")
@click.argument("medium")
@pass_ctx
def medium_show(ctx: Ctx, medium: str) -> None:
    """One medium with its full history."""
    config = ctx.config()
    register = _register(config)
    r = register.find(medium)
    history = register.history(r.id)
    if ctx.json:
        ctx.emit_json(dataclasses.asdict(r) | {"history": history})
        return
    lang = ctx.lang
    click.echo(
        text(
            "medium.show",
            lang,
            label=r.label,
            role=text("role." + r.role, lang),
            capacity=size(r.capacity, lang),
            registered=day(r.registered[:10], lang, with_weekday=False),
            id=r.id,
        )
    )
    for h in history:
        who = text("medium.by", lang, by=h["by"]) if h["by"] else ""
        remark = f" – {h['note']}" if h["note"] else ""
        event = text("event." + h["kind"], lang)
        where = text("location." + h["location"], lang)
        click.echo(f"  {when(h['time'], lang)}  {event:<22} {where}{who}{remark}")


@medium_group.command(name="move")
@click.argument("medium")
@click.argument("location", type=LocationParam())
@click.option("--by", "by_whom", default="", help="Who moved it (e.g. who takes it home).")
@click.option("--note", default="")
@pass_ctx
def medium_move(ctx: Ctx, medium: str, location: str, by_whom: str, note: str) -> None:
    """Record where a medium is now (practice, offsite, archive, attached)."""
    r = move_medium(ctx.config(), medium, location, by_whom, note)
    where = text("location." + location, ctx.lang)
    click.echo(text("medium.moved", ctx.lang, label=r.label, location=where))


@medium_group.command(name="retire")
@click.argument("medium")
@click.option("--how", type=click.Choice(["wiped", "destroyed"]), required=True)
@click.option("--by", "by_whom", required=True, help="Who wiped or destroyed it.")
@pass_ctx
def medium_retire(ctx: Ctx, medium: str, how: str, by_whom: str) -> None:
    """Take a medium out of service for good (recorded with date and person)."""
    r = retire_medium(ctx.config(), medium, how, by_whom)
    click.echo(
        text(
            "medium.retired",
            ctx.lang,
            label=r.label,
            how=text("retired." + how, ctx.lang),
            by=by_whom,
        )
    )


@click.command()
@click.option("--from", "start", type=DATE, help="First day (07.12.2026; default today).")
@click.option("--days", default=28, show_default=True, type=click.IntRange(1, 3660))
@click.option(
    "--format", "fmt", type=click.Choice(["text", "pdf"]), default="text", show_default=True
)
@click.option("--output", "-o", help="File for the PDF.")
@click.option("--force", is_flag=True, help="Replace the output file if it exists.")
@click.option("--lang", type=click.Choice(["de", "en"]))
@pass_ctx
def plan(
    ctx: Ctx,
    start: date | None,
    days: int,
    fmt: str,
    output: str | None,
    force: bool,
    lang: str | None,
) -> None:
    """The calendar of which medium is due on which night."""
    config = ctx.config()
    language = lang or config.practice.language
    first = start or date.today()
    rows = plan_rows(config, first, days, language)
    if ctx.json:
        ctx.emit_json(
            [
                {"date": r.day.isoformat(), "medium": r.label or "-", "note": note(r, language)}
                for r in rows
            ]
        )
        return
    override = config.rotation.override_reason if config.rotation is not None else ""
    if fmt == "pdf":
        if not output:
            raise PraxisError("a PDF needs --output FILE", code="error.pdf_needs_file")
        pdf = plan_pdf(rows, config.practice.name, language, override or "")
        write_output(output, pdf, force, ctx.lang)
        return
    click.echo("\n".join(plan_lines(rows, config.practice.name, language, override or "")))


@click.command()
@click.option("--lang", type=click.Choice(["de", "en"]))
@pass_ctx
def today(ctx: Ctx, lang: str | None) -> None:
    """Tonight's medium, what to take off-site, what to bring back, what is overdue.

    Looks only (sends and records nothing). Exit code 0 green, 1 yellow (something needs
    attention), 2 red (last night failed or no backup): for monitoring."""
    config = ctx.config()
    view = today_app.today(config)
    if ctx.json:
        ctx.emit_json(view.to_json())
    else:
        click.echo("\n".join(today_lines(view, lang or config.practice.language)))
    sys.exit(exit_code(view.status))


COMMANDS = [medium_group, plan, today]
