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
from praxisbackup.cli.setup_command import setup
from praxisbackup.errors import ExitCode, PraxisError


def _option_names(command: click.Command) -> set[str]:
    """Every option spelling a command (and, for a group, its subcommands) defines."""
    names = {n for p in command.params if isinstance(p, click.Option) for n in p.opts}
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            names |= _option_names(sub)
    return names


class PraxisGroup(click.Group):
    """Global options are accepted after the subcommand too (``praxisbackup snapshots --repo
    X``, as restic users type it); a PraxisError becomes one line and its exit code."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, self._hoist_global_options(args))

    def _hoist_global_options(self, args: list[str]) -> list[str]:
        takes_value = {
            n: not p.is_flag for p in self.params if isinstance(p, click.Option) for n in p.opts
        }
        position = next(
            (i for i, a in enumerate(args) if a in self.commands and not _is_value(args, i)),
            None,
        )
        if position is None:
            return args
        own = _option_names(self.commands[args[position]])
        head, tail, moved = args[: position + 1], args[position + 1 :], []
        rest: list[str] = []
        i = 0
        while i < len(tail):
            arg = tail[i]
            if arg == "--":
                rest += tail[i:]
                break
            name = arg.split("=", 1)[0]
            if name in takes_value and name not in own:
                if takes_value[name] and "=" not in arg and i + 1 < len(tail):
                    moved += tail[i : i + 2]
                    i += 2
                    continue
                moved.append(arg)
            else:
                rest.append(arg)
            i += 1
        return moved + head + rest

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PraxisError as exc:
            click.echo(f"praxisbackup: error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("praxisbackup: interrupted", err=True)
            sys.exit(ExitCode.FAILURE)


_VALUE_OPTIONS = {"-r", "--repo", "--password-file", "-c", "--config"}


def _is_value(args: list[str], i: int) -> bool:
    """Is ``args[i]`` the value of a preceding global option (e.g. ``-c run.toml``)?"""
    return i > 0 and args[i - 1] in _VALUE_OPTIONS


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
cli.add_command(setup)


def main() -> None:
    platform.tune_memory()
    cli(prog_name="praxisbackup")


if __name__ == "__main__":
    main()
