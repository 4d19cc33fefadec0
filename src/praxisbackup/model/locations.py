"""Where praxisbackup keeps its own state (catalog, logs, run lock) on each platform."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from praxisbackup import platform
from praxisbackup.model.config import Config

ENV_STATE_DIR = "PRAXISBACKUP_STATE_DIR"


def default_state_dir() -> Path:
    """``PRAXISBACKUP_STATE_DIR`` if set, else ``%ProgramData%\\praxisbackup`` on Windows,
    ``/var/lib/praxisbackup`` for root, the user's data folder otherwise."""
    if os.environ.get(ENV_STATE_DIR):
        return Path(os.environ[ENV_STATE_DIR])
    if sys.platform == "win32":
        return Path(platform.program_data()) / "praxisbackup"
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/praxisbackup")
    import platformdirs  # noqa: PLC0415 - only for a non-root user

    return Path(platformdirs.user_data_dir("praxisbackup"))


def state_dir(config: Config) -> Path:
    return Path(config.state_dir) if config.state_dir else default_state_dir()


def catalog_path(config: Config) -> str:
    """The local SQLite catalog (runs, register, outbox, daily check): one file per installation."""
    return os.path.join(state_dir(config), "catalog.sqlite")
