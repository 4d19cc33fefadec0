"""Shared CLI state: repository location, passphrase sources, output mode."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from praxisbackup.credentials import repository_passphrase
from praxisbackup.engine.repository import Repository
from praxisbackup.errors import UsageError
from praxisbackup.storage import open_backend

if TYPE_CHECKING:
    from praxisbackup.model.config import Config

__all__ = ["Ctx", "human_size"]


def human_size(n: float) -> str:
    """Size in binary units, as :func:`praxisbackup.report.render.human_size` writes it (kept
    here too: the engine commands do not load the document renderer and its fonts)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


ENV_REPOSITORY = "PRAXISBACKUP_REPOSITORY"


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

    def passphrase(self, confirm: bool = False, config: Config | None = None) -> str:
        """The one passphrase resolver (environment, files, credential store), with a prompt
        only when a person is at a console: a scheduled run never waits for input."""

        def prompt() -> str:
            value: str = click.prompt(
                "Passphrase", hide_input=True, confirmation_prompt=confirm, err=True
            )
            return value

        interactive = sys.stdin.isatty() and sys.stderr.isatty()
        return repository_passphrase(config, self.password_file, prompt if interactive else None)

    def open(self) -> Repository:
        """The repository named by --repo / PRAXISBACKUP_REPOSITORY, else the one on the
        medium attached to this server (found through the configuration)."""
        location = self.repo_location or os.environ.get(ENV_REPOSITORY)
        if location:
            return Repository.open(open_backend(location), self.passphrase())
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
