"""notify test/flush, ack, absence."""

from __future__ import annotations

from datetime import date, datetime

import click

from praxisbackup import platform
from praxisbackup.app.daily import DailyCheck
from praxisbackup.app.notify import flush_outbox, send_test_message
from praxisbackup.app.today import today
from praxisbackup.cli.context import Ctx
from praxisbackup.cli.params import DATE
from praxisbackup.errors import PraxisError
from praxisbackup.model.protocol import RED
from praxisbackup.report.i18n import day, text

pass_ctx = click.make_pass_decorator(Ctx)
#: An absence longer than this is a typo (07.12.2062).
MAX_ABSENCE_DAYS = 366


@click.group(name="notify")
def notify_group() -> None:
    """E-mail: send a test message, or deliver the outbox now."""


@notify_group.command(name="test")
@click.option("--to", "to", multiple=True, help="Recipient (default: all configured recipients).")
@pass_ctx
def notify_test(ctx: Ctx, to: tuple[str, ...]) -> None:
    """Send a test message now; on failure say exactly where (dns, connect, tls, auth, ...)."""
    people, warnings = send_test_message(ctx.config(), list(to))
    for w in warnings:
        click.echo(f"warning: {w}", err=True)
    click.echo(f"test message sent to {', '.join(people)}")


@notify_group.command(name="flush")
@pass_ctx
def notify_flush(ctx: Ctx) -> None:
    """Try to deliver every message waiting in the outbox."""
    pending, errors = flush_outbox(ctx.config())
    click.echo(f"{len(pending)} message(s) still waiting" + (f": {errors[-1]}" if errors else ""))
    if pending:
        raise SystemExit(1)


@click.command()
@click.option("--by", "by_whom", help="Who checked (default: the logged-in user).")
@click.option("--note", default="")
@pass_ctx
def ack(ctx: Ctx, by_whom: str | None, note: str) -> None:
    """Confirm the daily check: protocol checked, medium changed."""
    config = ctx.config()
    # The evidence names who really confirmed: the account at the keyboard unless told.
    who = by_whom or platform.username() or config.contacts.responsible_name(ctx.lang)
    now = datetime.now().astimezone()
    view = today(config, now)
    runs = DailyCheck(config).ack(who, note, now)
    click.echo(text("ack.done", ctx.lang, by=who, count=len(runs)))
    if view.last_run is not None and view.last_run.status == RED:
        click.echo(text("ack.red", ctx.lang))


@click.group(name="absence")
def absence_group() -> None:
    """Absences of the responsible person (the deputy then gets everything directly)."""


@absence_group.command(name="add")
@click.option("--from", "first", required=True, type=DATE, help="First day (07.12.2026).")
@click.option("--to", "last", required=True, type=DATE, help="Last day (18.12.2026).")
@click.option("--by", "by_whom", default="", help="Who entered it.")
@click.option("--note", default="")
@pass_ctx
def absence_add(ctx: Ctx, first: date, last: date, by_whom: str, note: str) -> None:
    """Enter an absence of the responsible person."""
    config = ctx.config()
    if last < first:
        raise PraxisError("--to is before --from", code="error.to_before_from")
    if last < date.today() or (last - first).days > MAX_ABSENCE_DAYS:
        raise PraxisError(
            "an absence must not be over already or last longer than a year",
            code="error.absence_range",
        )
    DailyCheck(config).add_absence(first, last, by_whom, note, datetime.now().astimezone())
    deputy = config.contacts.deputy_name(ctx.lang)
    click.echo(
        text(
            "absence.added",
            ctx.lang,
            first=day(first, ctx.lang),
            last=day(last, ctx.lang),
            deputy=deputy,
        )
    )


@absence_group.command(name="remove")
@click.argument("absence_id", type=int)
@pass_ctx
def absence_remove(ctx: Ctx, absence_id: int) -> None:
    """Remove an absence entered by mistake (its number from "absence list")."""
    removed = DailyCheck(ctx.config()).remove_absence(absence_id)
    if removed is None:
        raise PraxisError(f"no absence {absence_id}", code="error.no_absence", number=absence_id)
    first, last = day(removed["first"], ctx.lang), day(removed["last"], ctx.lang)
    click.echo(text("absence.removed", ctx.lang, first=first, last=last))


@absence_group.command(name="list")
@pass_ctx
def absence_list(ctx: Ctx) -> None:
    """The absences entered so far."""
    absences = DailyCheck(ctx.config()).absences()
    for a in absences:
        first, last = day(a["first"], ctx.lang), day(a["last"], ctx.lang)
        click.echo(f"{a['id']:>3}  {first} – {last}  {a['entered_by']}  {a['note']}".rstrip())
    if not absences:
        click.echo(text("absence.none", ctx.lang))


COMMANDS = [notify_group, ack, absence_group]
