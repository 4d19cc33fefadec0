"""E-mail actions a person starts: a test message now, delivering the outbox now."""

from __future__ import annotations

from datetime import datetime

from praxisbackup.catalog.facts import Facts
from praxisbackup.credentials import smtp_password
from praxisbackup.errors import PraxisError
from praxisbackup.model.config import Config
from praxisbackup.model.locations import catalog_path
from praxisbackup.notify.mail import MailError, build_message, send
from praxisbackup.notify.outbox import Outbox, Pending
from praxisbackup.platform import hostname
from praxisbackup.report.i18n import text

MAIL_TESTED = "mail_tested"


def mail_fingerprint(config: Config) -> str:
    """What a successful test message proves: these SMTP settings and these recipients."""
    smtp = config.notify.smtp
    parts = [
        smtp.host if smtp else "",
        str(smtp.port) if smtp else "",
        smtp.security if smtp else "",
        smtp.username if smtp else "",
        smtp.sender if smtp else "",
        *sorted(all_recipients(config)),
    ]
    return "|".join(parts)


def all_recipients(config: Config) -> list[str]:
    r = config.notify.recipients
    return list(dict.fromkeys(r.responsible + r.deputy + r.service_partner + r.owner))


def send_test_message(config: Config, to: list[str] | None = None) -> tuple[list[str], list[str]]:
    """Send a test message now; returns (recipients, warnings). On failure the error says
    exactly where it failed (dns, connect, tls, auth, recipient, ...)."""
    smtp = config.notify.smtp
    if smtp is None:
        raise PraxisError("no [notify.smtp] section in the configuration")
    people = to or all_recipients(config)
    if not people:
        raise PraxisError("no recipients: configure [notify.recipients] or use --to")
    _password, warnings = smtp_password(smtp)
    lang = config.practice.language
    msg = build_message(
        smtp.sender,
        people,
        f"{text('mail.test', lang)} – {config.practice.name}",
        f"{text('mail.test', lang)} ({hostname()}).\n",
    )
    try:
        send(smtp, msg)
    except MailError as exc:
        raise PraxisError(
            f"test message NOT sent - {exc}", code="error.mail_not_sent", detail=str(exc)
        ) from None
    if set(people) >= set(all_recipients(config)):
        Facts(catalog_path(config)).set(MAIL_TESTED, mail_fingerprint(config))
    return people, warnings


def flush_outbox(config: Config) -> tuple[list[Pending], list[str]]:
    """Try every waiting message now; returns (still pending, errors)."""
    outbox = Outbox(catalog_path(config))
    errors = outbox.deliver_due(config.notify.smtp, datetime.now().astimezone(), force=True)
    return outbox.pending(), errors
