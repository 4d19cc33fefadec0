"""Shared CLI state: repository location, passphrase sources, output mode."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from typing import Any

import click

from praxisbackup.engine.repository import Repository
from praxisbackup.errors import UsageError, WrongPasswordError
from praxisbackup.report.render import human_size
from praxisbackup.storage import open_backend

__all__ = ["Ctx", "human_size", "read_secret_file"]

ENV_REPOSITORY = "PRAXISBACKUP_REPOSITORY"
ENV_PASSWORD = "PRAXISBACKUP_PASSWORD"
ENV_PASSWORD_FILE = "PRAXISBACKUP_PASSWORD_FILE"


def read_secret_file(path: str, what: str) -> str:
    """First line of a file, without the line break."""
    try:
        with open(path, encoding="utf-8") as fh:
            line = fh.readline()
    except OSError as exc:
        raise UsageError(f"cannot read the {what} file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"the {what} file {path} is not UTF-8 text") from None
    value = line.rstrip("\r\n")
    if not value:
        raise UsageError(f"the {what} file {path} is empty")
    return value


@dataclass
class Ctx:
    repo_location: str | None
    password_file: str | None
    json: bool
    quiet: bool
    config_path: str | None = None

    def location(self) -> str:
        loc = self.repo_location or os.environ.get(ENV_REPOSITORY)
        if not loc:
            raise UsageError(f"no repository given: use --repo or set {ENV_REPOSITORY}")
        return loc

    def passphrase(self, confirm: bool = False) -> str:
        """From PRAXISBACKUP_PASSWORD, --password-file / PRAXISBACKUP_PASSWORD_FILE, or a prompt.

        Never from the command line itself, where other users could read it in the process list.
        """
        env = os.environ.get(ENV_PASSWORD)
        if env:
            return env
        path = self.password_file or os.environ.get(ENV_PASSWORD_FILE)
        if path:
            return read_secret_file(path, "passphrase")
        if sys.stdin.isatty():
            value: str = click.prompt(
                "Passphrase", hide_input=True, confirmation_prompt=confirm, err=True
            )
            return value
        raise WrongPasswordError(
            f"no passphrase given: set {ENV_PASSWORD}, use --password-file, or run interactively"
        )

    def open(self) -> Repository:
        return Repository.open(open_backend(self.location()), self.passphrase())

    def emit_json(self, doc: Any) -> None:
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False, default=str))

    def say(self, text: str = "") -> None:
        if not self.quiet:
            click.echo(text)

    def progress_wanted(self) -> bool:
        return not self.quiet and not self.json and sys.stderr.isatty()
