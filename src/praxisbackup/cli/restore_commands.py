"""restore-practice, find, restore-file, drill, emergency-sheet: parse, call the application
layer, print."""

from __future__ import annotations

import os
import sys
from datetime import datetime

import click

from praxisbackup.app import drill as drill_app
from praxisbackup.app import restore_practice as restore_app
from praxisbackup.app.emergency import emergency_sheet as make_sheet
from praxisbackup.app.find import find_versions
from praxisbackup.app.medium import green_snapshot_ids, open_attached, open_medium
from praxisbackup.app.restore_file import restore_into
from praxisbackup.cli.ask import confirm
from praxisbackup.cli.context import Ctx, check_output, printable, write_output
from praxisbackup.engine.paths import native_path
from praxisbackup.engine.snapshot import find_snapshot, list_snapshots
from praxisbackup.errors import ExitCode, PraxisError
from praxisbackup.media.register import Register
from praxisbackup.model.locations import catalog_path
from praxisbackup.report.drill import drill_pdf
from praxisbackup.report.i18n import number, size, text, when

pass_ctx = click.make_pass_decorator(Ctx)


@click.command(name="restore-practice")
@click.option(
    "--snapshot", "snapshot_ref", default=None, help="Snapshot id (default: latest green)."
)
@click.option(
    "--target-root", help="Folder/drive that holds CompuMED on this server (default: as backed up)."
)
@click.option(
    "--list", "list_only", is_flag=True, help="List the snapshots on the medium and stop."
)
@click.option("--dry-run", is_flag=True, help="Show the plan only.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--by", "by_whom", help="Who does the restore (named in the protocol; default: OS user)."
)
@click.option(
    "--follow-link",
    "follow_links",
    multiple=True,
    metavar="PATH",
    help="Restore through this link/junction below the target root (shown in the plan).",
)
@pass_ctx
def restore_practice(
    ctx: Ctx,
    snapshot_ref: str | None,
    target_root: str | None,
    list_only: bool,
    dry_run: bool,
    yes: bool,
    by_whom: str | None,
    follow_links: tuple[str, ...],
) -> None:
    """Put the vendor's allowed CGM M1 PRO folders back; existing ones are renamed to _Original."""
    config = ctx.config()
    passphrase = ctx.passphrase(config=config)
    if list_only:
        _medium, repo = open_attached(config, passphrase)
        green = green_snapshot_ids(repo)
        for s in list_snapshots(repo):
            mark = text("report.status.green", ctx.lang) if s.id in green else ""
            tags = ", ".join(s.tags)
            click.echo(f"{s.short_id}  {when(s.time, ctx.lang)}  {s.host:<16} {mark:<6} {tags}")
        return
    prepared = restore_app.prepare(config, passphrase, snapshot_ref, target_root)
    prepared.by = by_whom or ""
    prepared.follow_links = list(follow_links)
    snap, plan = prepared.snapshot, prepared.plan
    lang = ctx.lang
    click.echo(
        text(
            "restore.plan.header",
            lang,
            snapshot=snap.short_id,
            time=when(snap.time, lang),
            medium=prepared.medium.label.label,
            root=prepared.root,
        )
    )
    for item in plan.items:
        click.echo(f"  {native_path(item.snapshot_path)}  ->  {item.target}")
        if item.rename_to:
            click.echo(text("restore.plan.rename", lang, name=os.path.basename(item.rename_to)))
    for link, points_to, allowed in prepared.links:
        code = "restore.plan.link_followed" if allowed else "restore.plan.link_refused"
        click.echo(text(code, lang, link=link, target=points_to))
    for missing in plan.missing_in_snapshot:
        click.echo(text("restore.plan.missing", lang, path=missing))
    if prepared.version_differs:
        click.echo(
            text(
                "restore.plan.version",
                lang,
                backup=plan.fingerprint_backup,
                installed=plan.fingerprint_installed,
            )
        )
    if dry_run:
        return
    if not yes and not confirm(text("restore.plan.proceed", lang), lang, default=False):
        raise PraxisError("nothing was changed", code="error.nothing_changed")
    outcome = restore_app.run(config, prepared)
    click.echo("\n".join(outcome.lines))
    click.echo(text("restore.protocol_written", lang, stem=outcome.protocol_stem))
    if not outcome.ok:
        sys.exit(ExitCode.DAMAGED)
    if plan.missing_in_snapshot:
        sys.exit(ExitCode.WARNINGS)  # finished, but incomplete: the protocol says so


@click.command(name="find")
@click.argument("pattern")
@pass_ctx
def find_cmd(ctx: Ctx, pattern: str) -> None:
    """Find files by name (glob, case-insensitive) across all snapshots, with their versions."""
    repo = ctx.open()
    repo.load_index()
    versions = find_versions(repo, pattern)
    for path, vers in versions.items():
        click.echo(printable(native_path(path)))
        for v in vers:
            click.echo(
                "    "
                + text(
                    "find.version",
                    ctx.lang,
                    snapshot=v.snapshot,
                    changed=when(v.changed, ctx.lang),
                    size=size(v.size, ctx.lang),
                )
            )
    if not versions:
        raise PraxisError(
            f"no file matching {pattern!r} in any snapshot", code="error.not_found", pattern=pattern
        )


@click.command()
@click.option("--medium", "medium_root", help="Medium folder (default: the configured candidates).")
@click.option("--snapshot", "snapshot_ref", default="latest")
@click.option(
    "--scratch", help="Folder to restore into (default: a temporary folder, removed after)."
)
@click.option(
    "--check-command", help="Run this in the restored tree (e.g. start the database and check it)."
)
@click.option("--pdf", "pdf_file", help="Also write the result as a PDF to file (and sign it).")
@click.option("--lang", type=click.Choice(["de", "en"]), help="Language of the PDF.")
@click.option("--force", is_flag=True, help="Replace the PDF file if it exists.")
@pass_ctx
def drill(
    ctx: Ctx,
    medium_root: str | None,
    snapshot_ref: str,
    scratch: str | None,
    check_command: str | None,
    pdf_file: str | None,
    lang: str | None,
    force: bool,
) -> None:
    """Restore test on this machine: restore, compare every file, time it, record the result."""
    if pdf_file:
        check_output(pdf_file, force)
    register = None
    practice, language = "", lang or "de"
    if medium_root:
        attached, repo = open_medium(medium_root, ctx.passphrase())
    else:
        config = ctx.config()
        attached, repo = open_attached(config, ctx.passphrase(config=config))
        register = Register(catalog_path(config))
        practice, language = config.practice.name, lang or config.practice.language
    record = drill_app.run_drill(repo, attached, snapshot_ref, scratch, check_command, register)
    if pdf_file:
        pdf = drill_pdf(record, practice, language)
        write_output(pdf_file, pdf, force, language, say=False)
    if ctx.json:
        ctx.emit_json(record.__dict__)
    else:
        click.echo(
            text(
                "drill.console.passed" if record.ok else "drill.console.failed",
                language,
                files=record.files,
                size=size(record.bytes, language),
                verified=record.verified,
                seconds=number(record.seconds, language),
                machine=record.machine,
            )
        )
        for err in record.errors:
            click.echo(text("drill.damaged", language, error=err), err=True)
        if check_command:
            click.echo(
                text("drill.check_ok" if record.check_ok else "drill.check_failed", language)
            )
        if pdf_file:
            click.echo(text("drill.pdf_written", language, path=pdf_file))
    if not record.ok:
        sys.exit(ExitCode.DAMAGED)


@click.command(name="emergency-sheet")
@click.option("--output", "-o", required=True, help="PDF file to write.")
@click.option("--lang", type=click.Choice(["de", "en"]))
@click.option("--force", is_flag=True, help="Replace the output file if it exists.")
@pass_ctx
def emergency_sheet(ctx: Ctx, output: str, lang: str | None, force: bool) -> None:
    """The printable emergency sheet (Notfallblatt) with the recovery key; keep it in the safe."""
    check_output(output, force)
    config = ctx.config()
    pdf = make_sheet(config, ctx.passphrase(config=config), lang)
    write_output(output, pdf, force, ctx.lang, say=False)
    click.echo(text("sheet.written", ctx.lang, path=output))


@click.command(name="restore-file")
@click.argument("snapshot_ref")
@click.argument("path")
@click.option("--to", "to", help="Folder to restore into (default: ./wiederhergestellt-<date>).")
@pass_ctx
def restore_file(ctx: Ctx, snapshot_ref: str, path: str, to: str | None) -> None:
    """Restore one file or folder (e.g. a deleted letter) into a separate folder, never over
    the original. Find the versions first with `praxisbackup find NAME`."""
    repo = ctx.open()
    repo.load_index()
    snap = find_snapshot(repo, snapshot_ref)
    folder = to or f"wiederhergestellt-{datetime.now():%Y%m%d-%H%M%S}"
    done = restore_into(repo, snap, path, folder)
    result = done.result
    for e in result.errors + result.verify_failures:
        click.echo(f"{text('error.prefix', ctx.lang)}: {native_path(e.path)}: {e.reason}", err=True)
    if result.files == 0 and result.dirs == 0:
        if result.errors:
            sys.exit(ExitCode.DAMAGED)
        raise PraxisError(
            f"{path} is not in snapshot {snap.short_id}",
            code="error.not_in_snapshot",
            path=path,
            snapshot=snap.short_id,
        )
    click.echo(
        text(
            "restore_file.done",
            ctx.lang,
            path=done.placed,
            files=result.files,
            snapshot=snap.short_id,
        )
    )
    if not result.ok:
        sys.exit(ExitCode.DAMAGED)


COMMANDS = [restore_practice, find_cmd, restore_file, drill, emergency_sheet]
