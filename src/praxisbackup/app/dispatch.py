"""Sending what a finished run needs to send, through the outbox."""

from __future__ import annotations

from datetime import datetime

from praxisbackup.app.daily import DailyCheck
from praxisbackup.model.config import Config
from praxisbackup.model.locations import catalog_path
from praxisbackup.model.protocol import RunProtocol
from praxisbackup.notify.alerts import heartbeat, recipients_for, run_message
from praxisbackup.notify.outbox import YELLOW, Outbox


def after_run(config: Config, p: RunProtocol, now: datetime) -> list[tuple[str, str]]:
    """Queue the run's e-mail (red/yellow; green if configured), deliver what is due, evaluate
    the daily check, ping the heartbeat. Returns (severity, problem) for the protocol: a
    refused address is yellow, an alert given up after its retries is red."""
    problems: list[tuple[str, str]] = []
    outbox = Outbox(catalog_path(config))
    smtp = config.notify.smtp
    wanted = p.status != "green" or config.notify.on_green
    check = DailyCheck(config)
    if smtp is not None and wanted:
        people = recipients_for(config, p.status, check.responsible_absent(now.date()))
        if people:
            outbox.enqueue(f"run-{p.status}", run_message(config, p, people), now)
    check.evaluate(now)
    findings = outbox.deliver(smtp, now, force=True)
    retried = [f.text for f in findings if f.severity == YELLOW and "refused" not in f.text]
    if retried:
        problems.append(
            (YELLOW, f"e-mail not delivered yet (kept in the outbox, retried later): {retried[-1]}")
        )
    problems += [(f.severity, f.text) for f in findings if f.text not in retried]
    failure = heartbeat(config.notify.heartbeat_url, p.status)
    if failure:
        problems.append((YELLOW, failure))
    return problems
