"""``praxisbackup web``: the accounts of the status page (needed when it is reachable from the
practice network, ``[web] login = true``), managed by the service partner."""

from __future__ import annotations

import sys

import click

from praxisbackup.app.accounts import Accounts
from praxisbackup.cli.context import Ctx
from praxisbackup.errors import UsageError
from praxisbackup.model.config import load_config
from praxisbackup.model.locations import catalog_path

pass_ctx = click.make_pass_decorator(Ctx)


def _accounts(ctx: Ctx) -> Accounts:
    return Accounts(catalog_path(load_config(ctx.config_path)))


def _password(from_stdin: bool) -> str:
    """From the first line of standard input (scripts), else asked twice at the console."""
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise UsageError("no password on standard input")
        return line
    if not sys.stdin.isatty():
        raise UsageError("no console to ask for the password: use --password-stdin")
    value: str = click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    return value


@click.group(name="web")
def web_group() -> None:
    """The status page: its accounts (login from the practice network)."""


@web_group.group(name="user")
def user_group() -> None:
    """Accounts of the status page (passwords are kept as Argon2 hashes only)."""


@user_group.command(name="add")
@click.argument("name")
@click.option(
    "--full-name", default="", help="How the page names the person (e.g. 'Anna Schmidt')."
)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@pass_ctx
def user_add(ctx: Ctx, name: str, full_name: str, password_stdin: bool) -> None:
    """Create account NAME; the password is asked for (at least 10 characters)."""
    account = _accounts(ctx).add(name, _password(password_stdin), full_name)
    click.echo(f"account '{account.name}' created")


@user_group.command(name="passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@pass_ctx
def user_passwd(ctx: Ctx, name: str, password_stdin: bool) -> None:
    """Set a new password for account NAME."""
    _accounts(ctx).set_password(name, _password(password_stdin))
    click.echo(f"password of '{name}' changed")


@user_group.command(name="remove")
@click.argument("name")
@pass_ctx
def user_remove(ctx: Ctx, name: str) -> None:
    """Delete account NAME (its changes stay recorded)."""
    _accounts(ctx).remove(name)
    click.echo(f"account '{name}' removed")


@user_group.command(name="list")
@pass_ctx
def user_list(ctx: Ctx) -> None:
    """All accounts."""
    accounts = _accounts(ctx).all()
    if ctx.json:
        ctx.emit_json(
            [{"name": a.name, "full_name": a.full_name, "created": a.created} for a in accounts]
        )
        return
    for a in accounts:
        click.echo(f"{a.name:<20} {a.full_name or '-':<30} created {a.created[:10]}")


COMMANDS = [web_group]
