"""The long-running service (``praxisbackup serve``; the Windows service runs it): runs the
nightly job at the configured time, catches up a missed night, and between runs notices missed
backups and unconfirmed checks and retries undelivered mail.

It waits on a :class:`threading.Event`, so a stop request (SIGTERM, the Windows service
manager's stop, the web server shutting down) ends it within a moment, never after a sleep.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime

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
