"""What the practice is told after a run, and to whom."""

from __future__ import annotations

import urllib.error
import urllib.request
from datetime import datetime, timedelta
from email.message import EmailMessage

from praxisbackup.media.selection import plan_from_config
from praxisbackup.model.config import Config
from praxisbackup.model.protocol import RunProtocol
from praxisbackup.notify.mail import Attachment, build_message, short_date
from praxisbackup.report.i18n import text
from praxisbackup.report.render import finding_texts, render_html, render_pdf


def subject(status: str, practice: str, day: datetime, lang: str) -> str:
    tag, headline = text(f"mail.tag.{status}", lang), text(f"mail.headline.{status}", lang)
    return f"{tag} {headline} – {practice} – {short_date(day, lang)}"


def first_line_recipients(config: Config, responsible_absent: bool) -> list[str]:
    """Who is told first: the responsible person, or the deputy while she is absent."""
    r = config.notify.recipients
    return list(r.deputy if responsible_absent or not r.responsible else r.responsible)


def recipients_for(config: Config, status: str, responsible_absent: bool) -> list[str]:
    r = config.notify.recipients
    people = first_line_recipients(config, responsible_absent)
    if status == "red":
        people += r.service_partner
    return list(dict.fromkeys(people))


def next_medium(config: Config, after: datetime) -> str:
    plan = plan_from_config(config)
    if plan is None:
        return ""
    upcoming = plan.slots(after.date() + timedelta(days=1), 10)
    return upcoming[0].label if upcoming else ""


def run_message(config: Config, p: RunProtocol, recipients: list[str]) -> EmailMessage:
    lang = config.practice.language
    started = datetime.fromisoformat(p.started)
    lines = [text(f"status.{p.status}", lang), ""]
    lines += [
        ("! " if f["level"] == "red" else "- ") + f["text"]
        for f in finding_texts(p, lang)
        if f["level"] != "info" or p.status == "green"
    ]
    lines += ["", f"{text('what_to_do', lang)} {text('todo.' + p.status, lang)}"]
    medium = next_medium(config, started)
    if medium:
        lines.append(text("mail.next_medium", lang, label=medium))
    lines += ["", text("mail.attached", lang), "", f"praxisbackup · {p.host} · {p.run_id}"]
    attachments = [
        Attachment(f"protokoll-{p.run_id}.pdf", render_pdf(p, lang), "application", "pdf"),
        Attachment(f"protokoll-{p.run_id}.html", render_html(p, lang).encode(), "text", "html"),
    ]
    assert config.notify.smtp is not None
    return build_message(
        config.notify.smtp.sender,
        recipients,
        subject(p.status, config.practice.name, started, lang),
        "\n".join(lines) + "\n",
        attachments,
    )


def heartbeat(url: str | None, status: str, timeout: float = 10) -> str | None:
    """healthchecks-style ping: base URL on success, ``/fail`` on red, ``/start`` at the start."""
    if not url:
        return None
    suffix = {"start": "/start", "red": "/fail"}.get(status, "")
    try:
        with urllib.request.urlopen(url.rstrip("/") + suffix, timeout=timeout) as resp:
            resp.read(64)
    except (urllib.error.URLError, OSError) as exc:
        return f"heartbeat ping failed: {exc}"
    return None
