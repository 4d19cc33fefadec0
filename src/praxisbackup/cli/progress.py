"""A rich progress bar for the engine's Progress hooks (only on a terminal)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from praxisbackup.engine.progress import Progress as EngineProgress


class RichProgress(EngineProgress):
    def __init__(self, description: str) -> None:
        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TextColumn("{task.fields[files]} files"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._task: TaskID = self._bar.add_task(description, total=None, files=0)
        self._files = 0
        self._bar.start()

    def set_total(self, files: int, size: int) -> None:
        self._bar.update(self._task, total=size)

    def advance(self, files: int = 0, size: int = 0) -> None:
        self._files += files
        self._bar.update(self._task, advance=size, files=self._files)

    def note(self, message: str) -> None:
        self._bar.update(self._task, description=message)

    def close(self) -> None:
        self._bar.stop()
