"""Shared CLI state: repository location, passphrase sources, output mode."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from praxisbackup import platform
from praxisbackup.cli.keyahead import ENV_REPOSITORY
from praxisbackup.credentials import repository_passphrase
from praxisbackup.engine.repository import Repository
from praxisbackup.errors import RepositoryNotFoundError, UsageError
from praxisbackup.report.units import human_size
from praxisbackup.storage import open_backend

if TYPE_CHECKING:  # the engine commands run without the configuration model and the catalogue
    from praxisbackup.model.config import Config

__all__ = ["Ctx", "human_size"]


ENV_LANG = "PRAXISBACKUP_LANG"


@dataclass
class Ctx:
    repo_location: str | None
    password_file: str | None
    json: bool
    quiet: bool
    config_path: str | None = None
    #: The language of messages for people: the practice's, once its configuration is read.
    lang: str = field(default_factory=lambda: os.environ.get(ENV_LANG) or "de")

    def config(self) -> Config:
        """The configuration; from now on messages (errors included) speak its language."""
        from praxisbackup.model.config import load_config  # noqa: PLC0415 - pydantic loads slowly

        config = load_config(self.config_path)
        self.lang = config.practice.language
        return config

    def location(self) -> str:
        loc = self.repo_location or os.environ.get(ENV_REPOSITORY)
        if not loc:
            raise UsageError(f"no repository given: use --repo or set {ENV_REPOSITORY}")
        return loc

    def passphrase(self, confirm: bool = False, config: Config | None = None) -> str:
        """The one passphrase resolver (environment, files, credential store), with a prompt
        only when a person is at a console: a scheduled run never waits for input."""

        def prompt() -> str:
            from praxisbackup.report.i18n import text  # noqa: PLC0415 - only at a console

            value: str = click.prompt(
                text("prompt.passphrase", self.lang),
                hide_input=True,
                confirmation_prompt=confirm,
                err=True,
            )
            return value

        interactive = platform.has_console()
        return repository_passphrase(config, self.password_file, prompt if interactive else None)

    def open(self) -> Repository:
        """The repository named by --repo / PRAXISBACKUP_REPOSITORY, else the one on the
        medium attached to this server (found through the configuration)."""
        location = self.repo_location or os.environ.get(ENV_REPOSITORY)
        if location:
            try:
                return Repository.open(open_backend(location), self.passphrase())
            except RepositoryNotFoundError:
                inner = os.path.join(location, "praxisbackup")  # the medium's folder for it
                if os.path.isfile(os.path.join(inner, "config")):
                    raise RepositoryNotFoundError(
                        f"there is no praxisbackup repository at {location}, but in {inner}: "
                        f"use --repo {inner}"
                    ) from None
                raise
        from praxisbackup.app.medium import open_attached  # noqa: PLC0415 - configured runs only
        from praxisbackup.model.config import load_config, resolve_config_path  # noqa: PLC0415

        config_file = resolve_config_path(self.config_path)
        if not config_file.exists():
            raise UsageError(
                f"no repository given: use --repo, set {ENV_REPOSITORY}, or configure "
                f"praxisbackup ({config_file} does not exist)"
            )
        config = load_config(self.config_path)
        _medium, repo = open_attached(config, self.passphrase(config=config), load_index=False)
        return repo

    def emit_json(self, doc: Any) -> None:
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False, default=str))

    def say(self, text: str = "") -> None:
        if not self.quiet:
            click.echo(text)

    def progress_wanted(self) -> bool:
        return not self.quiet and not self.json and sys.stderr.isatty()


def check_output(path: str, force: bool) -> None:
    """Refuse an output file that exists (before any work is done), unless ``--force``: an
    output option pointed at the passphrase file or the configuration must not destroy it."""
    if os.path.lexists(path) and not force:
        raise UsageError(
            f"{path} exists already; choose another file or add --force",
            code="error.output_exists",
            path=path,
        )


def write_output(path: str, data: bytes, force: bool, lang: str, say: bool = True) -> None:
    """Write a document the user asked for (see :func:`check_output`), readable only by this
    account: documents name patients' files, the emergency sheet holds the recovery key."""
    from praxisbackup.platform.private import write_private_file  # noqa: PLC0415
    from praxisbackup.report.i18n import text  # noqa: PLC0415

    check_output(path, force)
    if force and os.path.lexists(path):
        os.unlink(path)
    write_private_file(path, data)
    if say:
        click.echo(text("output.written", lang, path=path))


def printable(name: str) -> str:
    """A file name as it may go onto a terminal: control characters (an escape sequence, a
    newline in a name an ordinary user chose) shown as ``\\x..`` instead of acting."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in name)
