"""The long-running service (``praxisbackup serve``; the Windows service runs it): runs the
nightly job at the configured time, catches up a missed night, and between runs notices missed
backups and unconfirmed checks and retries undelivered mail.

It waits on a :class:`threading.Event`, so a stop request (SIGTERM, the Windows service
manager's stop, the web server shutting down) ends it within a moment, never after a sleep.

Companions run in the same process beside the scheduler, so the practice installs one service:
the status page (``web/``) is one. They are found through the ``praxisbackup.serve`` entry
points rather than imported, because the command line and the web page are two interfaces of
the same rank that must not depend on each other (docs/design.md, "Architecture").
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from importlib.metadata import entry_points
from typing import Protocol

from praxisbackup.app.daily import DailyCheck
from praxisbackup.app.job import NightlyJob
from praxisbackup.catalog.runs import Catalog
from praxisbackup.model.config import Config
from praxisbackup.model.locations import catalog_path
from praxisbackup.model.protocol import RunProtocol
from praxisbackup.notify.outbox import Outbox
from praxisbackup.platform.schedule import next_run

#: Seconds between the between-runs checks (daily check, outbox).
CHECK_EVERY = 300.0
#: Entry-point group of the companions ``serve`` starts beside the scheduler.
COMPANIONS = "praxisbackup.serve"


class Companion(Protocol):
    """A service running inside ``serve`` (the status page); it ends when the stop event
    it was started with is set."""

    @property
    def description(self) -> str:
        """One line for the service log, e.g. where the page is."""
        ...

    def join(self, timeout: float | None = None) -> None: ...


#: What a ``praxisbackup.serve`` entry point names: start with the configuration loader and the
#: stop event; None when the configuration switches the companion off.
CompanionStarter = Callable[[Callable[[], Config], threading.Event], Companion | None]


def start_companions(
    load_config: Callable[[], Config], stop: threading.Event, log: Callable[[str], None]
) -> list[Companion]:
    """Start every installed companion; one that cannot start is logged and left out, since
    the nightly backup must run even when the status page cannot (port taken, bad address)."""
    started = []
    for point in entry_points(group=COMPANIONS):
        try:
            starter: CompanionStarter = point.load()
            companion = starter(load_config, stop)
        except Exception as exc:  # noqa: BLE001 - the backups must go on without the page
            log(f"{point.name}: not started: {exc}")
            continue
        if companion is not None:
            log(companion.description)
            started.append(companion)
    return started


def between_runs(config: Config, now: datetime | None = None) -> None:
    """Notice missed backups and unconfirmed checks; retry mail that is due."""
    now = now or datetime.now().astimezone()
    DailyCheck(config).evaluate(now)
    Outbox(catalog_path(config)).deliver_due(config.notify.smtp, now)


class Scheduler:
    """``load_config`` is called afresh before every run, so an edited configuration takes
    effect the next night without restarting the service."""

    def __init__(
        self,
        load_config: Callable[[], Config],
        stop: threading.Event | None = None,
        on_wait: Callable[[datetime], None] | None = None,
        on_run: Callable[[RunProtocol], None] | None = None,
    ) -> None:
        self.load_config = load_config
        self.stop = stop or threading.Event()
        self.on_wait = on_wait
        self.on_run = on_run

    def next_due(self, config: Config) -> datetime:
        runs = Catalog(catalog_path(config)).runs(limit=1)
        last = datetime.fromisoformat(runs[0].started) if runs else None
        return next_run(datetime.now().astimezone(), config.schedule.at, last)

    def wait_until(self, config: Config, due: datetime) -> bool:
        """Wait for ``due``, doing the between-runs checks; False when asked to stop."""
        last_check = -CHECK_EVERY
        while not self.stop.is_set():
            remaining = (due - datetime.now().astimezone()).total_seconds()
            if remaining <= 0:
                return True
            if time.monotonic() - last_check >= CHECK_EVERY:
                between_runs(config)
                last_check = time.monotonic()
            self.stop.wait(min(remaining, CHECK_EVERY))
        return False

    def run_once(self) -> RunProtocol | None:
        """Wait for the next due run and do it; None when asked to stop first."""
        config = self.load_config()
        due = self.next_due(config)
        if due > datetime.now().astimezone():
            if self.on_wait is not None:
                self.on_wait(due)
            if not self.wait_until(config, due):
                return None
        protocol = NightlyJob(self.load_config()).run()
        if self.on_run is not None:
            self.on_run(protocol)
        return protocol

    def loop(self) -> None:
        while not self.stop.is_set():
            self.run_once()
