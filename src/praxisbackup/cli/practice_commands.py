"""Commands of the practice layer: run, config, medium, report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from datetime import datetime

import click

from praxisbackup import platform
from praxisbackup.app import readiness
from praxisbackup.app.evidence import evidence, parse_day, parse_period
from praxisbackup.app.job import NightlyJob
from praxisbackup.app.serve import Scheduler, start_companions
from praxisbackup.catalog.runs import Catalog
from praxisbackup.cli.context import Ctx, write_output
from praxisbackup.errors import PraxisError, UsageError
from praxisbackup.model.config import Config
from praxisbackup.model.example import example_toml, json_schema
from praxisbackup.model.locations import catalog_path
from praxisbackup.model.protocol import GREEN, RunProtocol, exit_code
from praxisbackup.platform import schedule
from praxisbackup.report.evidence import evidence_pdf
from praxisbackup.report.i18n import size, text, when
from praxisbackup.report.render import render_html, render_pdf, render_text

pass_ctx = click.make_pass_decorator(Ctx)


@click.command()
@pass_ctx
def run(ctx: Ctx) -> None:
    """Run the nightly job now (what the scheduler starts every night).

    Exit code 0 green, 1 yellow, 2 red.
    """
    config = ctx.config()
    progress = None
    if ctx.progress_wanted():
        from praxisbackup.cli.progress import RichProgress  # noqa: PLC0415

        progress = RichProgress("backup")
    protocol = NightlyJob(config, progress=progress).run()
    lang = config.practice.language
    if ctx.json:
        ctx.emit_json(json.loads(protocol.to_json()))
    elif not (ctx.quiet and protocol.status == GREEN):
        click.echo(render_text(protocol, lang))
    sys.exit(exit_code(protocol.status))


@click.group(name="config")
def config_group() -> None:
    """Check the configuration or print an example."""


@config_group.command(name="example")
def config_example() -> None:
    """Print a commented example configuration (generated from the schema)."""
    click.echo(example_toml(), nl=False)


@config_group.command(name="schema")
def config_schema() -> None:
    """Print the configuration's JSON schema (for editors)."""
    click.echo(json_schema(), nl=False)


@config_group.command(name="check")
@click.option("--root", default="/", hidden=True, help="Where the schedule is installed (tests).")
@pass_ctx
def config_check(ctx: Ctx, root: str) -> None:
    """Readiness check: is everything in place for a green night? Lists what is missing.

    Exit code 0 ready, 1 ready with notes, 2 not ready."""
    config = ctx.config()
    result = readiness.check(config, root)
    if ctx.json:
        ctx.emit_json(
            {
                "ready": result.ready,
                "items": [{"level": i.level, "code": i.code, **i.params} for i in result.items],
            }
        )
        sys.exit(result.exit_code)
    lang = config.practice.language
    say = click.echo
    say(text("ready.title", lang, practice=config.practice.name))
    say(text("ready.config", lang, path=config.path))
    say("")
    for item in result.items:
        say(f"  {text('ready.level.' + item.level, lang)}  {text(item.code, lang, **item.params)}")
    say("")
    verdict = (
        "ready.no" if not result.ready else ("ready.yes_notes" if result.exit_code else "ready.yes")
    )
    say(text(verdict, lang))
    for item in result.items:
        if item.level == readiness.MISSING:
            say(f"  - {text(item.code, lang, **item.params)}")
    sys.exit(result.exit_code)


@click.command()
@click.argument("run_id", required=False)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "html", "pdf"]), default="text", show_default=True
)
@click.option("--output", "-o", help="Write to this file instead of the screen.")
@click.option("--force", is_flag=True, help="Replace the output file if it exists.")
@click.option(
    "--lang", type=click.Choice(["de", "en"]), help="Language (default: from the configuration)."
)
@click.option("--print", "to_printer", is_flag=True, help="Send the PDF to the default printer.")
@click.option("--list", "list_runs", is_flag=True, help="The run history (newest first).")
@click.option(
    "--period",
    help="Audit evidence report (PDF) for a period: 2026-Q4, 2026-11 or 2026.",
)
@click.option("--from", "first", help="Evidence report from this day (07.12.2026 or 2026-12-07).")
@click.option("--to", "last", help="Evidence report up to this day (included).")
@pass_ctx
def report(
    ctx: Ctx,
    run_id: str | None,
    fmt: str,
    output: str | None,
    force: bool,
    lang: str | None,
    to_printer: bool,
    list_runs: bool,
    period: str | None,
    first: str | None,
    last: str | None,
) -> None:
    """Show the protocol of the last run (or of RUN_ID); --list shows the run history; with
    --period (or --from/--to) write the audit evidence report as one PDF."""
    config = ctx.config()
    language = lang or config.practice.language
    if period or first or last:
        _evidence_report(ctx, config, period, first, last, lang, output, force, to_printer)
        return
    catalog = Catalog(catalog_path(config))
    if list_runs:
        _list_runs(ctx, catalog.runs(limit=400), language)
        return
    if run_id:
        protocol = catalog.run(run_id)
    else:
        runs = catalog.runs(limit=1)
        protocol = runs[0] if runs else None
    if protocol is None:
        raise PraxisError(
            "no run recorded yet" if not run_id else f"no run {run_id!r}",
            code="error.no_run",
            run=run_id or "-",
        )
    if to_printer:
        fmt = "pdf"
    if fmt == "pdf":
        data = render_pdf(protocol, language)
    else:
        data = (render_html if fmt == "html" else render_text)(protocol, language).encode("utf-8")
    if to_printer:
        _print_pdf(data)
        return
    if output:
        write_output(output, data, force, ctx.lang)
    elif fmt == "pdf":
        raise PraxisError("a PDF needs --output FILE or --print", code="error.pdf_needs_output")
    else:
        click.echo(data.decode("utf-8"), nl=False)


def _list_runs(ctx: Ctx, runs: list[RunProtocol], lang: str) -> None:
    """One line per run: when, status, medium, snapshot, new data - and its id for `report`."""
    if ctx.json:
        ctx.emit_json(
            [
                {
                    "id": r.run_id,
                    "started": r.started,
                    "status": r.status,
                    "medium": r.medium_label,
                    "snapshot": r.snapshot_id,
                }
                for r in runs
            ]
        )
        return
    if not runs:
        click.echo(text("report.no_runs", lang))
    for r in runs:
        new = sum(s.new_bytes for s in r.sources)
        status = text("report.status." + r.status, lang)
        click.echo(
            f"{when(r.started, lang)}  {status:<6}  {r.medium_label or '–':<12} "
            f"{r.snapshot_id[:8] or '–':<8}  {size(new, lang):>10}  {r.run_id}"
        )


def _evidence_report(
    ctx: Ctx,
    config: Config,
    period: str | None,
    first: str | None,
    last: str | None,
    lang: str | None,
    output: str | None,
    force: bool,
    to_printer: bool,
) -> None:
    """The audit evidence PDF (app.evidence collects, report.evidence renders)."""
    if period and (first or last):
        raise UsageError("use either --period or --from/--to", code="error.period_or_range")
    if period:
        start, end = parse_period(period)
        name = period
    else:
        if not (first and last):
            raise UsageError(
                "--from needs --to (and the other way round)", code="error.from_needs_to"
            )
        start, end = parse_day(first), parse_day(last)
        name = f"{start.isoformat()}_{end.isoformat()}"
    language = lang or config.practice.language
    data = evidence_pdf(evidence(config, start, end, language), language)
    if to_printer:
        _print_pdf(data)
        return
    target = output or f"{text('evidence.file', language)}-{name}.pdf"
    write_output(target, data, force, ctx.lang)


def _print_pdf(data: bytes) -> None:
    """Send a PDF to the default printer (lp/CUPS; on Windows the shell's print verb)."""
    import tempfile  # noqa: PLC0415

    with tempfile.NamedTemporaryFile(suffix=".pdf", delete=False) as fh:
        fh.write(data)
    if sys.platform == "win32":  # pragma: no cover - Windows only
        os.startfile(fh.name, "print")  # type: ignore[attr-defined]
        return
    proc = subprocess.run(["lp", fh.name], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        reason = proc.stderr.strip() or "lp not available"
        raise PraxisError(f"printing failed: {reason}", code="error.print_failed", reason=reason)


COMMANDS = [run, config_group, report]


@click.group(name="schedule")
def schedule_group() -> None:
    """Install, remove or show the nightly schedule."""


@schedule_group.command(name="install")
@click.option(
    "--at", "at", help="Time of the nightly run (HH:MM; default: from the configuration)."
)
@click.option("--root", default="/", hidden=True, help="Install below this root (tests).")
@pass_ctx
def schedule_install(ctx: Ctx, at: str | None, root: str) -> None:
    """Task Scheduler on Windows, a systemd timer on Linux (cron where there is no systemd)."""
    config = ctx.config()
    click.echo(schedule.install(config.path, at or config.schedule.at, root))


@schedule_group.command(name="remove")
@click.option("--root", default="/", hidden=True)
def schedule_remove(root: str) -> None:
    """Remove the nightly schedule."""
    click.echo(schedule.remove(root))


@schedule_group.command(name="status")
@click.option("--root", default="/", hidden=True)
def schedule_status(root: str) -> None:
    """Show the installed schedule."""
    click.echo(schedule.status(root))


@click.command()
@click.option("--once", is_flag=True, help="Run the next due job, then exit.")
@pass_ctx
def serve(ctx: Ctx, once: bool) -> None:
    """Run the schedule in this process (restart-safe: a missed run is caught up)."""
    ctx.config()  # a broken configuration is an error now, not at night
    stop = threading.Event()

    def on_term(_signum: int, _frame: object) -> None:
        stop.set()

    for name in ("SIGTERM", "SIGINT", "SIGBREAK"):
        sig = getattr(signal, name, None)
        if sig is not None:
            signal.signal(sig, on_term)
    platform.watch_stop_event(stop.set)  # the Windows service's stop request

    def on_wait(due: datetime) -> None:
        if not ctx.quiet:
            click.echo(f"next run at {due.isoformat(timespec='minutes')}")

    def on_run(protocol: RunProtocol) -> None:
        click.echo(f"run {protocol.run_id}: {protocol.status}")

    scheduler = Scheduler(ctx.config, stop, on_wait, on_run)
    if once:
        protocol = scheduler.run_once()
        sys.exit(exit_code(protocol.status) if protocol else 0)
    # The status page (web/) runs beside the scheduler and ends on the same stop event.
    companions = start_companions(ctx.config, stop, lambda line: click.echo(line, err=True))
    try:
        scheduler.loop()
    finally:
        stop.set()
        for companion in companions:
            companion.join(timeout=10)


COMMANDS += [schedule_group, serve]
