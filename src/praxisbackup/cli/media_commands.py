"""Media commands: register (init/list/show/move/retire), the rotation plan and ``today``."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta

import click

from praxisbackup.app.daily import DailyCheck
from praxisbackup.catalog.runs import Catalog
from praxisbackup.cli.context import Ctx, human_size
from praxisbackup.errors import PraxisError
from praxisbackup.media.oversight import oversight
from praxisbackup.media.register import LOCATIONS, Register
from praxisbackup.media.selection import backup_day, plan_from_config, prepare_medium
from praxisbackup.model.config import Config, load_config
from praxisbackup.model.locations import catalog_path
from praxisbackup.notify.outbox import Outbox
from praxisbackup.report.i18n import text

pass_ctx = click.make_pass_decorator(Ctx)


def _register(config: Config) -> Register:
    return Register(catalog_path(config))


@click.group(name="medium")
def medium_group() -> None:
    """Prepare backup media and keep track of where each one is."""


@medium_group.command(name="init")
@click.argument("label")
@click.argument("path")
@click.option(
    "--role", type=click.Choice(["daily", "biweekly", "month_end", "quarter_end", "other"])
)
@pass_ctx
def medium_init(ctx: Ctx, label: str, path: str, role: str | None) -> None:
    """Make PATH (a USB disk, a NAS folder) a backup medium called LABEL and register it."""
    config = load_config(ctx.config_path)
    attached = prepare_medium(config, path, label, ctx.passphrase(config=config), role)
    role = _register(config).find(attached.label.medium_id).role
    click.echo(
        f"medium '{label}' ({role}) ready at {attached.root} (medium {attached.label.medium_id})"
    )


@medium_group.command(name="list")
@pass_ctx
def medium_list(ctx: Ctx) -> None:
    """All registered media with role, location and last use."""
    config = load_config(ctx.config_path)
    records = _register(config).all()
    if ctx.json:
        ctx.emit_json([dataclasses.asdict(r) for r in records])
        return
    lang = config.practice.language
    for r in records:
        click.echo(
            f"{r.label:<12} {text('role.' + r.role, lang):<38} "
            f"{text('location.' + r.location, lang):<18} used {r.last_seen[:10] or '-':<10}  "
            f"verified {r.last_full_verify[:10] or '-':<10}  {r.id}"
        )


@medium_group.command(name="show")
@click.argument("medium")
@pass_ctx
def medium_show(ctx: Ctx, medium: str) -> None:
    """One medium with its full history."""
    config = load_config(ctx.config_path)
    register = _register(config)
    r = register.find(medium)
    history = register.history(r.id)
    if ctx.json:
        ctx.emit_json(dataclasses.asdict(r) | {"history": history})
        return
    click.echo(
        f"{r.label} ({r.role}), {human_size(r.capacity)}, registered {r.registered[:10]}, id {r.id}"
    )
    for h in history:
        who = f" by {h['by']}" if h["by"] else ""
        note = f" - {h['note']}" if h["note"] else ""
        click.echo(f"  {h['time'][:16]}  {h['kind']:<14} {h['location']}{who}{note}")


@medium_group.command(name="move")
@click.argument("medium")
@click.argument("location", type=click.Choice([loc for loc in LOCATIONS if loc != "retired"]))
@click.option("--by", "by_whom", default="", help="Who moved it (e.g. who takes it home).")
@click.option("--note", default="")
@pass_ctx
def medium_move(ctx: Ctx, medium: str, location: str, by_whom: str, note: str) -> None:
    """Record where a medium is now (practice, offsite, archive, attached)."""
    register = _register(load_config(ctx.config_path))
    r = register.find(medium)
    if r.location == "retired":
        raise PraxisError(f"medium '{r.label}' is retired")
    register.event(r.id, "moved", location, by_whom, note)
    click.echo(f"'{r.label}' is now: {location}")


@medium_group.command(name="retire")
@click.argument("medium")
@click.option("--how", type=click.Choice(["wiped", "destroyed"]), required=True)
@click.option("--by", "by_whom", required=True, help="Who wiped or destroyed it.")
@pass_ctx
def medium_retire(ctx: Ctx, medium: str, how: str, by_whom: str) -> None:
    """Take a medium out of service for good (recorded with date and person)."""
    register = _register(load_config(ctx.config_path))
    r = register.find(medium)
    register.event(r.id, "retired", "retired", by_whom, how)
    click.echo(f"'{r.label}' retired ({how}) by {by_whom}")


@click.command()
@click.option("--from", "start", help="First day (YYYY-MM-DD, default today).")
@click.option("--days", default=28, show_default=True)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "pdf"]), default="text", show_default=True
)
@click.option("--output", "-o", help="File for the PDF.")
@click.option("--lang", type=click.Choice(["de", "en"]))
@pass_ctx
def plan(
    ctx: Ctx, start: str | None, days: int, fmt: str, output: str | None, lang: str | None
) -> None:
    """The calendar of which medium is due on which night."""
    config = load_config(ctx.config_path)
    rotation = plan_from_config(config)
    if rotation is None:
        raise PraxisError("no [rotation] section in the configuration")
    language = lang or config.practice.language
    first = date.fromisoformat(start) if start else date.today()
    rows = []
    for i in range(days):
        day = first + timedelta(days=i)
        slot = rotation.slot(day)
        if slot is None:
            reason = rotation.holiday_name(day) or (
                text("weekend", language) if day.weekday() >= 5 else text("closed", language)
            )
            rows.append((day, "-", reason))
        else:
            hold = (
                f", bis {slot.hold_until}"
                if slot.hold_until and language == "de"
                else (f", until {slot.hold_until}" if slot.hold_until else "")
            )
            rows.append((day, slot.label, text("role." + slot.role, language) + hold))
    if ctx.json:
        ctx.emit_json([{"date": d.isoformat(), "medium": m, "note": n} for d, m, n in rows])
        return
    lines = [f"{text('plan.title', language)} – {config.practice.name}", ""]
    lines += [f"{d.isoformat()} {d.strftime('%a'):<4} {m:<12} {n}" for d, m, n in rows]
    if rotation.overridden:
        lines += ["", "Override: " + config.rotation.override_reason if config.rotation else ""]
    if fmt == "pdf":
        if not output:
            raise PraxisError("a PDF needs --output FILE")
        from praxisbackup.report.render import lines_pdf  # noqa: PLC0415

        with open(output, "wb") as fh:
            fh.write(lines_pdf(lines))
        click.echo(f"written to {output}")
        return
    click.echo("\n".join(lines))


@click.command()
@click.option("--lang", type=click.Choice(["de", "en"]))
@pass_ctx
def today(ctx: Ctx, lang: str | None) -> None:
    """Tonight's medium, what to take off-site, what to bring back, what is overdue."""
    config = load_config(ctx.config_path)
    language = lang or config.practice.language
    register = _register(config)
    catalog = Catalog(catalog_path(config))
    now = datetime.now().astimezone()
    day = backup_day(now) if now.hour < 6 else now.date()
    rotation = plan_from_config(config)
    lines = [text("today.title", language, date=day.isoformat()), ""]
    runs = catalog.runs(limit=200)
    if runs:
        last = runs[0]
        lines.append(
            text(
                "today.last_run",
                language,
                status=text("status." + last.status, language),
                time=last.started[:16],
                medium=last.medium_label or "-",
            )
        )
        if last.medium_label:
            lines.append(text("today.take_offsite", language, label=last.medium_label))
    else:
        lines.append(text("today.no_run", language))
    if rotation is not None:
        slot = rotation.slot(day)
        if slot is None:
            reason = rotation.holiday_name(day) or text(
                "weekend" if day.weekday() >= 5 else "closed", language
            )
            lines.append(text("today.no_backup", language, reason=reason))
        else:
            lines.append(
                text(
                    "today.tonight",
                    language,
                    label=slot.label,
                    role=text("role." + slot.role, language),
                )
            )
        records = {r.label: r for r in register.all()}
        for upcoming in rotation.slots(day + timedelta(days=1), 7)[:2]:
            rec = records.get(upcoming.label)
            if rec is not None and rec.location in ("offsite", "archive"):
                lines.append(
                    text(
                        "today.bring_back",
                        language,
                        date=upcoming.day.isoformat(),
                        label=upcoming.label,
                        location=text("location." + rec.location, language),
                    )
                )
    check = DailyCheck(config).evaluate(now)
    outbox = Outbox(catalog_path(config))
    outbox.deliver_due(config.notify.smtp, now)
    if check.missed:
        lines.append(text("mail.missed", language) + "!")
    if not check.acknowledged:
        lines.append(text("today.unconfirmed", language))
    for pending in outbox.pending():
        lines.append(
            text("today.undelivered", language, subject=pending.subject, error=pending.last_error)
        )
    warnings = oversight(config, register, now, runs)
    if warnings:
        lines += ["", text("today.warnings", language)]
        lines += [f"  - {text(w.code, language, **w.params)}" for w in warnings]
    if ctx.json:
        ctx.emit_json({"lines": lines, "warnings": [dataclasses.asdict(w) for w in warnings]})
        return
    click.echo("\n".join(lines))


COMMANDS = [medium_group, plan, today]
