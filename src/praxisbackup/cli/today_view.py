"""How `today` prints on the console (German or English); the web page has its own template."""

from __future__ import annotations

from praxisbackup.app.today import Today
from praxisbackup.report.i18n import day, day_off_reason, text, when


def today_lines(t: Today, lang: str) -> list[str]:
    # The calendar day, as on the status page (before 06:00 the rest is last evening's plan).
    lines = [text("today.title", lang, date=day(t.now.date(), lang)), ""]
    last = t.last_run
    if last is not None:
        lines.append(
            text(
                "today.last_run",
                lang,
                status=text("status." + last.status, lang),
                time=when(last.started, lang),
                medium=last.medium_label or "-",
            )
        )
    else:
        lines.append(text("today.no_run", lang))
    lines += [text(a.code, lang, **a.params) for a in t.advice]
    for label in t.take_offsite:
        line = text("today.take_offsite", lang, label=label)
        if label in t.taken_offsite:  # (as the page marks it)
            by, since = t.taken_offsite[label]
            line += " " + text("today.is_offsite", lang, by=by or "–", time=when(since, lang))
        lines.append(line)
    if t.tonight_label and not t.tonight_done:  # (done: its medium is to take off-site)
        role = text("role." + t.tonight_role, lang)
        lines.append(text("today.tonight", lang, label=t.tonight_label, role=role))
    elif t.no_backup_reason:
        reason = day_off_reason(t.no_backup_reason, lang)
        lines.append(text("today.no_backup", lang, reason=reason))
    for b in t.bring_back:
        location = text("location." + b.location, lang)
        lines.append(
            text("today.bring_back", lang, date=day(b.day, lang), label=b.label, location=location)
        )
    if t.missed:
        lines.append(text("mail.missed", lang) + "!")
    if not t.acknowledged:
        lines.append(text("today.unconfirmed", lang))
    elif t.last_ack is not None:
        lines.append(
            text("today.confirmed", lang, by=t.last_ack[1], time=when(t.last_ack[0], lang))
        )
    for u in t.undelivered:
        times = text("today.times", lang, count=u.count) if u.count > 1 else ""
        lines.append(text("today.undelivered", lang, subject=u.subject, error=u.error) + times)
        if u.refused:
            lines.append(text("today.refused", lang, addresses=", ".join(u.refused)))
    if t.warnings:
        lines += ["", text("today.warnings", lang)]
        lines += [f"  - {text(w.code, lang, **w.params)}" for w in t.warnings]
    return lines
