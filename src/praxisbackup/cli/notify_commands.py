"""notify test/flush, ack, absence."""

from __future__ import annotations

from datetime import date, datetime

import click

from praxisbackup.app.daily import DailyCheck
from praxisbackup.app.notify import flush_outbox, send_test_message
from praxisbackup.cli.context import Ctx
from praxisbackup.errors import PraxisError

pass_ctx = click.make_pass_decorator(Ctx)


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
@click.option("--by", "by_whom", help="Who checked (default: the responsible person).")
@click.option("--note", default="")
@pass_ctx
def ack(ctx: Ctx, by_whom: str | None, note: str) -> None:
    """Confirm the daily check: protocol checked, medium changed."""
    config = ctx.config()
    default_by = config.contacts.responsible_name(config.practice.language)
    runs = DailyCheck(config).ack(by_whom or default_by, note, datetime.now().astimezone())
    click.echo(f"confirmed by {by_whom or default_by}; covers {len(runs)} run(s)")


@click.group(name="absence")
def absence_group() -> None:
    """Absences of the responsible person (the deputy then gets everything directly)."""


@absence_group.command(name="add")
@click.option("--from", "first", required=True, help="First day (YYYY-MM-DD).")
@click.option("--to", "last", required=True, help="Last day (YYYY-MM-DD).")
@click.option("--by", "by_whom", default="", help="Who entered it.")
@click.option("--note", default="")
@pass_ctx
def absence_add(ctx: Ctx, first: str, last: str, by_whom: str, note: str) -> None:
    config = ctx.config()
    d1, d2 = date.fromisoformat(first), date.fromisoformat(last)
    if d2 < d1:
        raise PraxisError("--to is before --from")
    DailyCheck(config).add_absence(d1, d2, by_whom, note, datetime.now().astimezone())
    deputy = config.contacts.deputy_name(config.practice.language)
    click.echo(f"absent {d1} to {d2}: {deputy} receives everything")


@absence_group.command(name="list")
@pass_ctx
def absence_list(ctx: Ctx) -> None:
    for a in DailyCheck(ctx.config()).absences():
        click.echo(f"{a['first']} .. {a['last']}  {a['entered_by']}  {a['note']}")


COMMANDS = [notify_group, ack, absence_group]
