"""Composing and sending e-mail (smtplib), with errors that say exactly what failed."""

from __future__ import annotations

import smtplib
import socket
import ssl
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from praxisbackup.credentials import smtp_password
from praxisbackup.errors import PraxisError
from praxisbackup.model.config import SmtpSection

WEEKDAYS = {
    "de": ["Mo", "Di", "Mi", "Do", "Fr", "Sa", "So"],
    "en": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
}


class MailError(PraxisError):
    """Sending failed; ``stage`` tells where (dns, connect, tls, auth, recipient, send, config)."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(f"{stage}: {message}")
        self.stage = stage


@dataclass
class Attachment:
    filename: str
    data: bytes
    maintype: str
    subtype: str


def short_date(when: datetime, lang: str) -> str:
    return f"{WEEKDAYS.get(lang, WEEKDAYS['de'])[when.weekday()]} {when.strftime('%d.%m.%Y')}"


def build_message(
    sender: str,
    recipients: list[str],
    subject: str,
    body: str,
    attachments: list[Attachment] | None = None,
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now().astimezone())
    msg["Message-ID"] = make_msgid(domain="praxisbackup.local")
    msg.set_content(body)
    for a in attachments or []:
        if a.maintype == "text":  # as text, so the part declares charset=utf-8
            msg.add_attachment(a.data.decode("utf-8"), subtype=a.subtype, filename=a.filename)
        else:
            msg.add_attachment(a.data, maintype=a.maintype, subtype=a.subtype, filename=a.filename)
    return msg


def _tls_context(smtp: SmtpSection) -> ssl.SSLContext:
    ctx = (
        ssl.create_default_context(cafile=smtp.ca_file)
        if smtp.ca_file
        else ssl.create_default_context()
    )
    if not smtp.verify_certificate:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


@dataclass
class Delivery:
    """What the SMTP server did with each recipient of one message."""

    accepted: list[str]
    #: 5xx: the server will never take this address (a finding, not retried).
    refused: dict[str, str]
    #: 4xx: try again later.
    deferred: dict[str, str]


def recipients_of(msg: EmailMessage) -> list[str]:
    return [a.strip() for a in str(msg["To"]).split(",") if a.strip()]


def _reason(code: int, text: bytes | str) -> str:
    detail = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return f"{code} {detail}".strip()


def deliver(smtp: SmtpSection, msg: EmailMessage, recipients: list[str]) -> Delivery:
    """Hand one message to the server for ``recipients`` and say, per recipient, whether it
    was accepted, refused for good (5xx) or deferred (4xx). Raises MailError (naming the
    stage: dns, connect, tls, auth, sender, send, config) when the message went to nobody."""
    password, _warnings = smtp_password(smtp)
    try:
        socket.getaddrinfo(smtp.host, smtp.port)
    except socket.gaierror as exc:
        raise MailError(
            "dns", f"the SMTP server name {smtp.host!r} cannot be resolved ({exc})"
        ) from None
    ctx = _tls_context(smtp)
    client: smtplib.SMTP
    try:
        if smtp.security == "tls":
            client = smtplib.SMTP_SSL(
                smtp.host, smtp.port, timeout=smtp.timeout_seconds, context=ctx
            )
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_seconds)
    except ssl.SSLError as exc:
        raise MailError(
            "tls", f"TLS with {smtp.host}:{smtp.port} failed: {exc.reason or exc}"
        ) from None
    except (OSError, smtplib.SMTPException) as exc:
        raise MailError("connect", f"cannot connect to {smtp.host}:{smtp.port}: {exc}") from None
    try:
        if smtp.security == "starttls":
            try:
                client.starttls(context=ctx)
            except ssl.SSLError as exc:
                raise MailError(
                    "tls", f"STARTTLS with {smtp.host} failed: {exc.reason or exc}"
                ) from None
            except smtplib.SMTPNotSupportedError:
                raise MailError("tls", f"{smtp.host} does not offer STARTTLS") from None
        if smtp.username:
            if not password:
                raise MailError(
                    "config", "no SMTP password (keyring, environment or password_file)"
                )
            try:
                client.login(smtp.username, password)
            except smtplib.SMTPAuthenticationError as exc:
                raise MailError(
                    "auth", f"the SMTP server refused user {smtp.username!r}: {exc.smtp_code}"
                ) from None
        try:
            refused = client.send_message(msg, from_addr=smtp.sender, to_addrs=recipients)
        except smtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients  # every recipient: nothing was sent
        except smtplib.SMTPSenderRefused as exc:
            raise MailError("sender", f"sender {smtp.sender!r} refused: {exc.smtp_code}") from None
    except (OSError, smtplib.SMTPException) as exc:
        raise MailError("send", f"{type(exc).__name__}: {exc}") from None
    finally:
        try:
            client.quit()
        except (OSError, smtplib.SMTPException):
            client.close()
    return Delivery(
        accepted=[r for r in recipients if r not in refused],
        refused={a: _reason(c, t) for a, (c, t) in refused.items() if c >= 500},
        deferred={a: _reason(c, t) for a, (c, t) in refused.items() if c < 500},
    )


def send(smtp: SmtpSection, msg: EmailMessage) -> None:
    """Deliver one message to all its recipients or raise MailError naming the failing stage
    (a refused recipient is stage "recipient"); used by ``notify test``."""
    result = deliver(smtp, msg, recipients_of(msg))
    problems = {**result.refused, **result.deferred}
    if problems:
        which = "all recipients" if not result.accepted else "some recipients"
        raise MailError(
            "recipient",
            f"{which} refused: " + ", ".join(f"{a} ({why})" for a, why in problems.items()),
        )
