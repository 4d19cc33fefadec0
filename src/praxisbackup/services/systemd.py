"""systemd units (``systemctl``)."""

from __future__ import annotations

from praxisbackup.services.command import CommandService


class SystemdService(CommandService):
    def __init__(self, unit: str) -> None:
        quoted = unit.replace("'", "")
        super().__init__(
            unit,
            stop=f"systemctl stop '{quoted}'",
            start=f"systemctl start '{quoted}'",
            is_running=f"systemctl is-active --quiet '{quoted}'",
        )
