"""restore-practice, find/versions, drill, emergency-sheet."""

from __future__ import annotations

import json
import os
import platform as pyplatform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from praxisbackup import platform
from praxisbackup.cli.context import Ctx, human_size
from praxisbackup.engine.browse import walk
from praxisbackup.engine.paths import split_source
from praxisbackup.engine.repository import Repository
from praxisbackup.engine.restorer import RestoreOptions, Restorer
from praxisbackup.engine.snapshot import Snapshot, find_snapshot, list_snapshots
from praxisbackup.errors import ExitCode, PraxisError
from praxisbackup.media import label as media
from praxisbackup.media.register import Register
from praxisbackup.platform.targetdir import links_on_path
from praxisbackup.practice import recovery
from praxisbackup.practice.config import Config, load_config
from praxisbackup.practice.job import make_service, read_passphrase
from praxisbackup.practice.locations import catalog_path, state_dir
from praxisbackup.practice.openfiles import open_files_below
from praxisbackup.practice.restore import execute, plan_restore
from praxisbackup.practice.services import ServiceError, ServiceSequence
from praxisbackup.report.i18n import SHEET_STEPS, text
from praxisbackup.report.render import lines_html, lines_pdf
from praxisbackup.storage import LocalBackend

pass_ctx = click.make_pass_decorator(Ctx)


def _attached_repo(config: Config, passphrase: str) -> tuple[media.AttachedMedium, Repository]:
    found, problems = media.discover(config.media.candidates)
    if not found:
        raise PraxisError(
            "no backup medium attached" + (f" ({'; '.join(problems)})" if problems else "")
        )
    chosen = found[0]
    repo = Repository.open(LocalBackend(chosen.repository_path), passphrase)
    repo.load_index()
    return chosen, repo


def latest_green(repo: Repository) -> Snapshot:
    """The newest snapshot whose run protocol on the medium is green (else the newest)."""
    green: set[str] = set()
    for name in list(repo.list_names("meta")):
        if name.startswith("protocol-") and name != "protocol-latest":
            try:
                doc = json.loads(repo.read_meta(name))
            except (PraxisError, ValueError):
                continue
            if doc.get("status") == "green" and doc.get("snapshot_id"):
                green.add(doc["snapshot_id"])
    snaps = list_snapshots(repo)
    if not snaps:
        raise PraxisError("the medium holds no snapshot")
    chosen = [s for s in snaps if s.id in green]
    return chosen[-1] if chosen else snaps[-1]


def _default_root(snap: Snapshot) -> str:
    for source in snap.paths:
        comps = split_source(source)
        if comps and comps[-1].casefold() == "compumed":
            base = comps[:-1]
            if sys.platform == "win32":  # pragma: no cover
                return base[0] + ":\\" + "\\".join(base[1:])
            return "/" + "/".join(base)
    raise PraxisError("the snapshot holds no CompuMED folder")


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
    follow_links: tuple[str, ...],
) -> None:
    """Put the vendor's allowed CGM M1 PRO folders back; existing ones are renamed to _Original."""
    config = load_config(ctx.config_path)
    medium, repo = _attached_repo(config, read_passphrase(config))
    if list_only:
        for s in list_snapshots(repo):
            click.echo(f"{s.short_id}  {s.time[:19]}  {s.host}  {', '.join(s.tags)}")
        return
    snap = find_snapshot(repo, snapshot_ref) if snapshot_ref else latest_green(repo)
    root = target_root or _default_root(snap)
    plan = plan_restore(repo, snap, root, datetime.now())
    click.echo(
        f"Restore from snapshot {snap.short_id} ({snap.time[:16]}) "
        f"on medium '{medium.label.label}' into {root}:"
    )
    for item in plan.items:
        rename = (
            f"   (existing renamed to {os.path.basename(item.rename_to)})" if item.rename_to else ""
        )
        click.echo(f"  {item.kind:<4} {item.snapshot_path}  ->  {item.target}{rename}")
    for link, points_to in sorted(
        {x for i in plan.items for x in links_on_path(root, os.path.dirname(i.target))}
    ):
        allowed = "followed" if link in follow_links else "REFUSED unless --follow-link " + link
        click.echo(f"  LINK {link} -> {points_to} ({allowed})")
    for missing in plan.missing_in_snapshot:
        click.echo(f"  MISSING in the snapshot: {missing}")
    if (
        plan.fingerprint_backup
        and plan.fingerprint_installed
        and plan.fingerprint_backup != plan.fingerprint_installed
    ):
        click.echo(
            "WARNING: program files differ - newest file date in M1\\Bin: "
            f"backup {plan.fingerprint_backup}, installed {plan.fingerprint_installed}. "
            "Install and update CGM M1 PRO to the backed-up version first (vendor's precondition)."
        )
    if dry_run:
        return
    if not yes and not click.confirm("Proceed?"):
        raise PraxisError("nothing was changed")
    services = ServiceSequence([(make_service(s), s.timeout_seconds) for s in config.services])
    try:
        try:
            services.stop_all()
        except ServiceError as exc:
            raise PraxisError(f"restore refused: a service could not be stopped: {exc}") from None
        still_open = open_files_below([c for s in config.services for c in s.check_closed])
        if still_open:
            raise PraxisError(f"restore refused: files are still open: {', '.join(still_open[:5])}")
        result = execute(repo, plan, list(follow_links))
    finally:
        services.start_all()
    assert result.restore is not None
    r = result.restore
    lines = [
        f"Practice restore {datetime.now().isoformat(timespec='seconds')} from snapshot {snap.id}",
        *(f"renamed: {a} -> {b}" for a, b in result.renamed),
        f"restored {r.files} files, {r.dirs} folders, {human_size(r.bytes)} "
        f"in {result.seconds} s; verified {r.verified_files}",
        *(f"warning: {w.path}: {w.reason}" for w in r.warnings),
        *(f"ERROR: {e.path}: {e.reason}" for e in r.errors + r.verify_failures),
    ]
    title = text("restore.title", config.practice.language) + f" - {config.practice.name}"
    verdict = text("restore.ok" if result.ok else "restore.failed", config.practice.language)
    lines = [title, verdict, "", *lines]
    report_dir = Path(state_dir(config)) / "restores"
    report_dir.mkdir(parents=True, exist_ok=True)
    stem = report_dir / f"restore-{datetime.now():%Y%m%d-%H%M%S}"
    stem.with_suffix(".txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    stem.with_suffix(".pdf").write_bytes(lines_pdf(lines))
    stem.with_suffix(".html").write_text(lines_html(lines), encoding="utf-8")
    click.echo("\n".join(lines))
    click.echo(f"restore protocol: {stem}.txt / .pdf / .html")
    if not result.ok:
        sys.exit(ExitCode.DAMAGED)


@click.command(name="find")
@click.argument("pattern")
@pass_ctx
def find_cmd(ctx: Ctx, pattern: str) -> None:
    """Find files by name (glob, case-insensitive) across all snapshots, with their versions."""
    import fnmatch  # noqa: PLC0415

    repo = ctx.open()
    repo.load_index()
    versions: dict[str, list[tuple[str, str, int, str]]] = {}
    for snap in list_snapshots(repo):
        for path, node in walk(repo, snap.tree_id):
            if node.type == "file" and fnmatch.fnmatch(node.name.casefold(), pattern.casefold()):
                key = b"".join(node.content).hex()[:16]
                entry = versions.setdefault(path, [])
                if not entry or entry[-1][3] != key:
                    when = datetime.fromtimestamp(node.mtime_ns / 1e9).isoformat(timespec="seconds")
                    entry.append((snap.short_id, when, node.size, key))
    for path, vers in sorted(versions.items()):
        click.echo(path)
        for snap_id, when, size, _key in vers:
            click.echo(f"    snapshot {snap_id}  changed {when}  {human_size(size)}")
    if not versions:
        raise PraxisError(f"no file matching {pattern!r} in any snapshot")


@click.command()
@click.option("--medium", "medium_root", help="Medium folder (default: the configured candidates).")
@click.option("--snapshot", "snapshot_ref", default="latest")
@click.option(
    "--scratch", help="Folder to restore into (default: a temporary folder, removed after)."
)
@click.option(
    "--check-command", help="Run this in the restored tree (e.g. start the database and check it)."
)
@pass_ctx
def drill(
    ctx: Ctx,
    medium_root: str | None,
    snapshot_ref: str,
    scratch: str | None,
    check_command: str | None,
) -> None:
    """Restore test on this machine: restore, compare every file, time it, record the result."""
    if medium_root:
        label = media.read_label(medium_root)
        if label is None:
            raise PraxisError(f"{medium_root} is not a praxisbackup medium")
        attached = media.AttachedMedium(medium_root, label)
        repo = Repository.open(LocalBackend(attached.repository_path), ctx.passphrase())
        repo.load_index()
        config = None
    else:
        config = load_config(ctx.config_path)
        attached, repo = _attached_repo(config, read_passphrase(config))
    snap = find_snapshot(repo, snapshot_ref)
    target = Path(scratch) if scratch else Path(tempfile.mkdtemp(prefix="praxisbackup-drill-"))
    started = time.monotonic()
    result = Restorer(repo, snap, RestoreOptions(target=str(target), verify=True)).run()
    check_ok = True
    check_output = ""
    if check_command:
        proc = subprocess.run(
            check_command,
            shell=True,
            cwd=target,
            capture_output=True,
            text=True,
            check=False,
            env=dict(os.environ, PRAXISBACKUP_DRILL_ROOT=str(target)),
        )
        check_ok = proc.returncode == 0
        check_output = (proc.stdout + proc.stderr)[-2000:]
    seconds = round(time.monotonic() - started, 2)
    ok = result.ok and check_ok
    errors = [f"{e.path}: {e.reason}" for e in result.errors + result.verify_failures][:100]
    doc: dict[str, Any] = {
        "time": datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": platform.hostname(),
        "system": f"{pyplatform.system()} {pyplatform.release()}",
        "medium_id": attached.label.medium_id,
        "medium_label": attached.label.label,
        "snapshot": snap.id,
        "files": result.files,
        "bytes": result.bytes,
        "verified": result.verified_files,
        "seconds": seconds,
        "ok": ok,
        "errors": errors,
        "check_command": check_command or "",
        "check_ok": check_ok,
        "check_output": check_output,
    }
    repo.write_meta(
        f"drill-{datetime.now():%Y%m%d-%H%M%S}-{platform.hostname()}", json.dumps(doc).encode()
    )
    if config is not None:
        Register(catalog_path(config)).event(
            attached.label.medium_id, "drill", "attached", "", "ok" if ok else "FAILED"
        )
    if not scratch:
        shutil.rmtree(target, ignore_errors=True)
    if ctx.json:
        ctx.emit_json(doc)
    else:
        click.echo(
            f"restore test {'PASSED' if ok else 'FAILED'}: {result.files} files, "
            f"{human_size(result.bytes)}, verified {result.verified_files}, "
            f"{seconds} s (restore time objective) on {doc['machine']}"
        )
        for err in errors:
            click.echo(f"  damaged: {err}", err=True)
        if check_command:
            click.echo(f"check command: {'ok' if check_ok else 'FAILED'}")
    if not ok:
        sys.exit(ExitCode.DAMAGED)


@click.command(name="emergency-sheet")
@click.option("--output", "-o", required=True, help="PDF file to write.")
@click.option("--lang", type=click.Choice(["de", "en"]))
@pass_ctx
def emergency_sheet(ctx: Ctx, output: str, lang: str | None) -> None:
    """The printable emergency sheet (Notfallblatt) with the recovery key; keep it in the safe."""
    import segno  # noqa: PLC0415

    from praxisbackup.practice import profiles  # noqa: PLC0415

    config = load_config(ctx.config_path)
    language = lang or config.practice.language
    passphrase = read_passphrase(config)
    sdir = str(state_dir(config))
    key = recovery.load_or_create(sdir, passphrase)
    found, _problems = media.discover(config.media.candidates)
    for m in found:
        repo = Repository.open(LocalBackend(m.repository_path), passphrase)
        recovery.ensure_slot(repo, key)
    register = Register(catalog_path(config))
    de = language == "de"
    lines = [
        ("Notfallblatt Datensicherung" if de else "Backup emergency sheet")
        + f" - {config.practice.name}",
        f"{'Erstellt' if de else 'Created'}: {datetime.now():%d.%m.%Y %H:%M}   "
        f"{'Im Tresor aufbewahren!' if de else 'Keep it in the safe!'}",
        "",
        (
            "WIEDERHERSTELLUNGSSCHLÜSSEL (öffnet jedes Sicherungsmedium der Praxis):"
            if de
            else "RECOVERY KEY (opens every backup medium of the practice):"
        ),
        f"    {key}",
        "",
        "Medien / media:",
        *(
            f"    {r.label:<12} {r.role:<12} {r.location:<10} repository {r.repository_id}"
            for r in register.all()
        ),
        "",
        ("Dienste (vor der Rücksicherung beenden):" if de else "Services (stop before restoring):"),
        *(f"    {s.name} ({s.kind})" for s in config.services),
        "",
        (
            "Zurückgesicherte Ordner und Dateien (CGM M1 PRO):"
            if de
            else "Folders and files restored (CGM M1 PRO):"
        ),
        *(
            f"    \\{i.path.replace('/', chr(92))}"
            for i in profiles.essential_items(profiles.VARIANT_U9, True)
            if i.required
        ),
        "",
        ("Schritte auf einem neuen Server:" if de else "Steps on a new server:"),
        *SHEET_STEPS[language],
        "",
        ("Kontakte:" if de else "Contacts:"),
        *(
            f"    {role}: {', '.join(addrs)}"
            for role, addrs in config.notify.recipients.model_dump().items()
            if addrs
        ),
    ]
    pdf_bytes = lines_pdf(lines, qr=segno.make(key, error="m"))
    with open(output, "wb") as fh:
        fh.write(pdf_bytes)
    facts = recovery.sheet_facts(
        [(r.id, r.label, r.role) for r in register.all() if r.location != "retired"],
        [s.name for s in config.services],
    )
    recovery.remember_sheet(sdir, facts)
    click.echo(f"emergency sheet written to {output}; print it and keep it in the safe")


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
    target = Path(to or f"wiederhergestellt-{datetime.now():%Y%m%d-%H%M%S}").resolve()
    result = Restorer(
        repo, snap, RestoreOptions(target=str(target), includes=[path], verify=True)
    ).run()
    if result.files == 0:
        raise PraxisError(f"{path} is not in snapshot {snap.short_id}")
    click.echo(f"restored {result.files} file(s) from snapshot {snap.short_id} into {target}")
    for e in result.errors + result.verify_failures:
        click.echo(f"error: {e.path}: {e.reason}", err=True)
    if not result.ok:
        sys.exit(ExitCode.DAMAGED)


COMMANDS = [restore_practice, find_cmd, restore_file, drill, emergency_sheet]
