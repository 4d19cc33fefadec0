"""The ``praxisbackup`` command line.

Exit codes: 0 success, 1 finished with warnings, 2 failure, 3 wrong passphrase,
4 repository locked, 5 repository damaged (see README).
"""

from __future__ import annotations

import sys
from typing import Any

import click

from praxisbackup import __version__, platform
from praxisbackup.cli import (
    engine_commands,
    media_commands,
    notify_commands,
    practice_commands,
    restore_commands,
)
from praxisbackup.cli.context import Ctx
from praxisbackup.cli.demo_command import demo
from praxisbackup.errors import ExitCode, PraxisError


class PraxisGroup(click.Group):
    """Turns PraxisError into a one-line message and its exit code (no traceback)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PraxisError as exc:
            click.echo(f"praxisbackup: error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("praxisbackup: interrupted", err=True)
            sys.exit(ExitCode.FAILURE)


@click.group(cls=PraxisGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-r",
    "--repo",
    "repo",
    metavar="PATH",
    help="Repository location [env: PRAXISBACKUP_REPOSITORY].",
)
@click.option(
    "--password-file",
    metavar="FILE",
    help="Read the passphrase from the first line of FILE [env: PRAXISBACKUP_PASSWORD_FILE].",
)
@click.option(
    "-c",
    "--config",
    "config_path",
    metavar="FILE",
    help="Configuration file [env: PRAXISBACKUP_CONFIG; default: platform location].",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors.")
@click.version_option(__version__, prog_name="praxisbackup")
@click.pass_context
def cli(
    ctx: click.Context,
    repo: str | None,
    password_file: str | None,
    config_path: str | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Encrypted, deduplicated, verified backups for a medical practice.

    The passphrase comes from PRAXISBACKUP_PASSWORD, --password-file, or a prompt - never
    from the command line.
    """
    ctx.obj = Ctx(repo, password_file, as_json, quiet, config_path)


engine_commands.register(cli)
for _command in (
    practice_commands.COMMANDS
    + media_commands.COMMANDS
    + notify_commands.COMMANDS
    + restore_commands.COMMANDS
):
    cli.add_command(_command)
cli.add_command(demo)


def main() -> None:
    platform.tune_memory()
    cli(prog_name="praxisbackup")


if __name__ == "__main__":
    main()
