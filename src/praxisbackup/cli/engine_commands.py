"""Repository commands in restic's vocabulary: init, backup, snapshots, ls, diff, restore,
check, forget, prune, key, stats, repair."""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import click

from praxisbackup import platform
from praxisbackup.cli.context import Ctx, human_size, printable
from praxisbackup.credentials import read_secret_file
from praxisbackup.engine.archiver import Archiver, BackupOptions
from praxisbackup.engine.archiver import prepare as prepare_backup
from praxisbackup.engine.browse import compute_stats, diff_trees, walk_from
from praxisbackup.engine.checker import Checker
from praxisbackup.engine.checker import prepare as prepare_check
from praxisbackup.engine.crypto import generate_recovery_key
from praxisbackup.engine.forget import Policy, apply_policy
from praxisbackup.engine.lock import assert_no_exclusive_lock, lock_repository
from praxisbackup.engine.paths import absolute_source, native_path
from praxisbackup.engine.progress import Progress
from praxisbackup.engine.prune import prune as run_prune
from praxisbackup.engine.repair import repair as run_repair
from praxisbackup.engine.repository import Repository
from praxisbackup.engine.restorer import OVERWRITE_POLICIES, RestoreOptions, Restorer
from praxisbackup.engine.restorer import prepare as prepare_restore
from praxisbackup.engine.snapshot import find_snapshot, forget_snapshot, list_snapshots
from praxisbackup.errors import ExitCode, UsageError
from praxisbackup.storage import open_backend

pass_ctx = click.make_pass_decorator(Ctx)


def _progress(ctx: Ctx, description: str) -> Progress:
    if ctx.progress_wanted():
        from praxisbackup.cli.progress import RichProgress  # noqa: PLC0415 - only on a terminal

        return RichProgress(description)
    return Progress()


def _new_passphrase(ctx: Ctx, new_password_file: str | None) -> str:
    if new_password_file:
        return read_secret_file(new_password_file, "new passphrase")
    env = os.environ.get("PRAXISBACKUP_NEW_PASSWORD")
    if env:
        return env
    if platform.has_console():
        value: str = click.prompt(
            "New passphrase", hide_input=True, confirmation_prompt=True, err=True
        )
        return value
    raise UsageError("no new passphrase: use --new-password-file or PRAXISBACKUP_NEW_PASSWORD")


def _snapshot_doc(s: Any) -> dict[str, Any]:
    doc = dataclasses.asdict(s)
    doc["short_id"] = s.short_id
    return doc


def _scan_totals(paths: list[str], progress: Progress) -> None:
    """Count files and bytes in the background so the bar can show an ETA."""

    def scan() -> None:
        files = size = 0
        for root in paths:
            for _dirpath, _dirs, names in os.walk(root):
                for name in names:
                    try:
                        size += os.lstat(os.path.join(_dirpath, name)).st_size
                        files += 1
                    except OSError:
                        continue
        progress.set_total(files, size)

    threading.Thread(target=scan, daemon=True, name="scan").start()


def _warn_unreadable(repo: Repository) -> None:
    """Snapshot files that could not be read were skipped: say so (check reports them)."""
    for name, why in sorted(repo.unreadable_snapshots.items()):
        click.echo(f"warning: snapshot file {name[:16]} skipped: {why}", err=True)


def register(cli: click.Group) -> None:
    for command in COMMANDS:
        cli.add_command(command)
    cli.add_command(key)


@click.command()
@click.option("--recovery-key", is_flag=True, help="Also create a recovery key and print it once.")
@pass_ctx
def init(ctx: Ctx, recovery_key: bool) -> None:
    """Create a new, empty, encrypted repository."""
    repo = Repository.init(open_backend(ctx.location()), ctx.passphrase(confirm=True))
    doc: dict[str, Any] = {"id": repo.config.id, "location": repo.backend.location}
    if recovery_key:
        rk = generate_recovery_key()
        repo.add_key(rk, "recovery key")
        doc["recovery_key"] = rk
    if ctx.json:
        ctx.emit_json(doc)
        return
    ctx.say(f"created repository {repo.config.id} at {repo.backend.location}")
    if recovery_key:
        ctx.say(f"recovery key (write it down, keep it in the safe): {doc['recovery_key']}")


@click.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("-e", "--exclude", multiple=True, help="Exclude a glob pattern (name or full path).")
@click.option("--tag", multiple=True, help="Add a tag to the snapshot.")
@click.option("--host", help="Record this host name instead of the machine's.")
@click.option("--force", is_flag=True, help="Re-read all files, even unchanged ones.")
@click.option("--parent", help="Compare with this snapshot instead of the latest matching one.")
@pass_ctx
def backup(
    ctx: Ctx,
    paths: tuple[str, ...],
    exclude: tuple[str, ...],
    tag: tuple[str, ...],
    host: str | None,
    force: bool,
    parent: str | None,
) -> None:
    """Back up PATHS into a new snapshot."""
    prepare_backup(list(paths))  # worker processes and a metadata walk during key derivation
    repo = ctx.open()
    with lock_repository(repo, exclusive=False, command="backup"):
        repo.load_index()
        progress = _progress(ctx, "backup")
        if ctx.progress_wanted():
            _scan_totals([absolute_source(p) for p in paths], progress)
        options = BackupOptions(list(paths), list(exclude), list(tag), host, force, parent)
        result = Archiver(repo, options, progress).run()
    snap = result.snapshot
    if ctx.json:
        ctx.emit_json(
            {
                "snapshot": _snapshot_doc(snap),
                "sources": [dataclasses.asdict(s) for s in result.sources],
            }
        )
    else:
        s = snap.summary
        ctx.say(
            f"snapshot {snap.short_id} saved: {s.total_files} files, {human_size(s.total_bytes)} "
            f"({s.files_new} new, {s.files_changed} changed, {s.files_unmodified} unchanged); "
            f"added {human_size(s.data_added)} ({human_size(s.data_added_stored)} stored) "
            f"in {s.duration_seconds:.1f} s"
        )
        for item in snap.skipped:
            click.echo(f"skipped: {item.path}: {item.reason}", err=True)
        for item in snap.warnings:
            click.echo(f"warning: {item.path}: {item.reason}", err=True)
    if result.has_warnings:
        sys.exit(ExitCode.WARNINGS)


@click.command()
@click.option("--host", help="Only snapshots of this host.")
@click.option("--tag", multiple=True, help="Only snapshots with this tag.")
@pass_ctx
def snapshots(ctx: Ctx, host: str | None, tag: tuple[str, ...]) -> None:
    """List snapshots."""
    repo = ctx.open()
    snaps = [
        s
        for s in list_snapshots(repo)
        if (host is None or s.host == host) and all(t in s.tags for t in tag)
    ]
    _warn_unreadable(repo)
    if ctx.json:
        ctx.emit_json([_snapshot_doc(s) for s in snaps])
        return
    ctx.say(f"{'ID':<9} {'Time':<20} {'Host':<16} {'Size':>11}  Paths / Tags")
    for s in snaps:
        when = s.datetime.strftime("%Y-%m-%d %H:%M:%S")
        tags = f"  [{', '.join(s.tags)}]" if s.tags else ""
        ctx.say(
            f"{s.short_id:<9} {when:<20} {s.host[:16]:<16} "
            f"{human_size(s.summary.total_bytes):>11}  {', '.join(s.paths)}{tags}"
        )
    ctx.say(f"{len(snaps)} snapshots")


@click.command(name="ls")
@click.argument("snapshot_ref")
@click.argument("path", default="/")
@click.option("-l", "--long", "long_", is_flag=True, help="Show mode, size and modification time.")
@pass_ctx
def ls_cmd(ctx: Ctx, snapshot_ref: str, path: str, long_: bool) -> None:
    """List the files in a snapshot (below PATH)."""
    repo = ctx.open()
    repo.load_index()
    snap = find_snapshot(repo, snapshot_ref)
    entries = walk_from(repo, snap, path)
    if ctx.json:
        ctx.emit_json(
            [
                {
                    "path": p,
                    "type": n.type,
                    "size": n.size,
                    "mode": n.mode,
                    "mtime_ns": n.mtime_ns,
                    "atime_ns": n.atime_ns,
                    "btime_ns": n.btime_ns,
                    "uid": n.uid,
                    "gid": n.gid,
                }
                for p, n in entries
            ]
        )
        return
    for p, n in entries:
        if long_:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(n.mtime_ns / 1e9))
            ctx.say(f"{n.type:<8} {n.mode:04o} {n.size:>12} {when}  {printable(native_path(p))}")
        else:
            ctx.say(printable(native_path(p)))


@click.command()
@click.argument("first")
@click.argument("second")
@pass_ctx
def diff(ctx: Ctx, first: str, second: str) -> None:
    """Show what changed between two snapshots.

    Markers: + added, - removed, M modified, U metadata only, T type changed.
    """
    repo = ctx.open()
    repo.load_index()
    a, b = find_snapshot(repo, first), find_snapshot(repo, second)
    changes = list(diff_trees(repo, a.tree_id, b.tree_id))
    if ctx.json:
        ctx.emit_json([dataclasses.asdict(c) for c in changes])
        return
    for c in changes:
        ctx.say(f"{c.change}  {printable(native_path(c.path))}")


def _no_lock_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--no-lock",
        is_flag=True,
        help="Write no lock (only for a medium that cannot be written, e.g. write-protected); "
        "then nothing stops a prune from deleting data while this command reads it.",
    )(f)


@click.command()
@click.argument("snapshot_ref")
@click.option("-t", "--target", required=True, help="Folder to restore into.")
@click.option(
    "-i", "--include", multiple=True, help="Restore only this snapshot path (repeatable)."
)
@click.option(
    "--overwrite",
    type=click.Choice(OVERWRITE_POLICIES),
    default="never",
    show_default=True,
    help="Existing files: never replace them; if-changed: replace those whose size or "
    "modification time differ from the snapshot (content is not compared - use --verify); "
    "always: replace every one.",
)
@click.option(
    "--verify",
    is_flag=True,
    help="Read restored and kept files back and compare content and times with the snapshot.",
)
@click.option(
    "--special-files",
    is_flag=True,
    help="Also restore device nodes, FIFOs and setuid/setgid bits (like tar -p as root).",
)
@click.option(
    "--follow-link",
    "follow_links",
    multiple=True,
    metavar="PATH",
    help="Write through this link (symlink, junction) below the target; others are refused.",
)
@click.option(
    "--processes",
    type=click.IntRange(min=0, max=64),
    default=None,
    help="Worker processes that write the files (default: one per core once the restore is "
    "larger than a few hundred files; 0: write in this process only). Linux/macOS; Windows "
    "writes in threads of this process.",
)
@_no_lock_option
@pass_ctx
def restore(
    ctx: Ctx,
    snapshot_ref: str,
    target: str,
    include: tuple[str, ...],
    overwrite: str,
    verify: bool,
    special_files: bool,
    follow_links: tuple[str, ...],
    processes: int | None,
    no_lock: bool,
) -> None:
    """Restore a snapshot (``latest`` or an id) into TARGET.

    Every file is written under a temporary name and renamed into place when complete; no
    link below TARGET is followed unless given with --follow-link."""
    prepare_restore(processes)  # worker processes load during key derivation
    repo = ctx.open()
    if no_lock:
        assert_no_exclusive_lock(repo)
    repo.load_index()
    snap = find_snapshot(repo, snapshot_ref)
    _warn_unreadable(repo)
    options = RestoreOptions(
        target=target,
        includes=list(include),
        overwrite=overwrite,
        verify=verify,
        special=special_files,
        follow_links=list(follow_links),
        lock=not no_lock,
        processes=processes,
    )
    progress = _progress(ctx, "restore")
    progress.set_total(snap.summary.total_files, snap.summary.total_bytes)
    result = Restorer(repo, snap, options, progress).run()
    if ctx.json:
        ctx.emit_json(dataclasses.asdict(result) | {"snapshot": snap.id})
    else:
        ctx.say(
            f"restored {result.files} files, {result.dirs} folders, {result.links} hard links, "
            f"{human_size(result.bytes)} from snapshot {snap.short_id} to {target}"
        )
        if verify:
            ctx.say(f"verified {result.verified_files} files")
        if result.existing_kept:
            ctx.say(f"{len(result.existing_kept)} existing entries were kept (not overwritten)")
        for item in result.warnings:
            click.echo(f"warning: {printable(native_path(item.path))}: {item.reason}", err=True)
        for item in result.errors + result.verify_failures:
            click.echo(f"error: {printable(native_path(item.path))}: {item.reason}", err=True)
    if result.verify_failures:
        sys.exit(ExitCode.DAMAGED)
    if result.errors:
        sys.exit(ExitCode.FAILURE)
    if result.warnings or result.existing_kept:
        sys.exit(ExitCode.WARNINGS)


@click.command()
@click.option("--read-data", is_flag=True, help="Read and verify every pack from the medium.")
@click.option("--read-data-subset", metavar="N%|n/t", help="Read and verify a subset of the packs.")
@_no_lock_option
@pass_ctx
def check(ctx: Ctx, read_data: bool, read_data_subset: str | None, no_lock: bool) -> None:
    """Verify the repository's structure and, optionally, all data on the medium.

    Damage found is recorded on the medium, so the next backup stores that data again."""
    prepare_check(read_data or bool(read_data_subset))
    repo = ctx.open()
    if no_lock:
        assert_no_exclusive_lock(repo)
    result = Checker(repo, _progress(ctx, "check")).run(
        read_data, read_data_subset, record_damage=not no_lock, lock=not no_lock
    )
    if ctx.json:
        ctx.emit_json(dataclasses.asdict(result) | {"ok": result.ok})
    else:
        ctx.say(
            f"checked {result.snapshots} snapshots, {result.trees} folders, "
            f"{result.packs_total} packs"
        )
        if result.packs_read:
            ctx.say(
                f"read {result.packs_read} packs from the medium "
                f"({human_size(result.bytes_read)}, {result.blobs_read} blobs)"
            )
        for p in result.warnings:
            ctx.say(f"warning: {p.kind} {p.object[:16]}: {p.message}")
        for p in result.errors:
            click.echo(f"error: {p.kind} {p.object[:16]}: {p.message}", err=True)
        for snap_id, paths in result.affected.items():
            click.echo(f"snapshot {snap_id[:8]}: {len(paths)} damaged entries:", err=True)
            for path in paths[:50]:
                click.echo(f"    {path}", err=True)
            if len(paths) > 50:
                click.echo(f"    ... and {len(paths) - 50} more", err=True)
        ctx.say("no errors were found" if result.ok else "the repository is DAMAGED")
    if not result.ok:
        sys.exit(ExitCode.DAMAGED)
    if result.warnings:
        sys.exit(ExitCode.WARNINGS)


def _keep_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for name, helptext in [
        ("last", "the last N snapshots"),
        ("hourly", "the last snapshot of each of the last N hours"),
        ("daily", "the last snapshot of each of the last N days"),
        ("weekly", "the last snapshot of each of the last N weeks"),
        ("monthly", "the last snapshot of each of the last N months"),
        ("yearly", "the last snapshot of each of the last N years"),
    ]:
        f = click.option(
            f"--keep-{name}", type=int, default=0, metavar="N", help=f"Keep {helptext}."
        )(f)
    f = click.option(
        "--keep-within", metavar="DURATION", help="Keep everything newer than e.g. 30d, 6m, 2y."
    )(f)
    f = click.option("--keep-tag", multiple=True, help="Keep snapshots with this tag.")(f)
    return f


@click.command()
@_keep_options
@click.option("--prune", "do_prune", is_flag=True, help="Run prune afterwards.")
@click.option("--dry-run", is_flag=True, help="Only show what would be forgotten.")
@pass_ctx
def forget(
    ctx: Ctx,
    keep_last: int,
    keep_hourly: int,
    keep_daily: int,
    keep_weekly: int,
    keep_monthly: int,
    keep_yearly: int,
    keep_within: str | None,
    keep_tag: tuple[str, ...],
    do_prune: bool,
    dry_run: bool,
) -> None:
    """Remove snapshots according to a retention policy (held snapshots always stay)."""
    policy = Policy(
        keep_last,
        keep_hourly,
        keep_daily,
        keep_weekly,
        keep_monthly,
        keep_yearly,
        keep_within,
        list(keep_tag),
    )
    repo = ctx.open()
    with lock_repository(repo, exclusive=do_prune, command="forget"):
        decisions = apply_policy(list_snapshots(repo), policy)
        removed = [d for d in decisions if not d.keep]
        if not dry_run:
            for d in removed:
                forget_snapshot(repo, d.snapshot.id)
        stats = run_prune(repo, _progress(ctx, "prune")) if do_prune and not dry_run else None
    _warn_unreadable(repo)
    if ctx.json:
        ctx.emit_json(
            {
                "keep": [{"id": d.snapshot.id, "reasons": d.reasons} for d in decisions if d.keep],
                "remove": [d.snapshot.id for d in removed],
                "dry_run": dry_run,
                "prune": dataclasses.asdict(stats) if stats else None,
            }
        )
        return
    for d in decisions:
        verdict = "keep  " if d.keep else "forget"
        ctx.say(f"{verdict} {d.snapshot.short_id} {d.snapshot.time[:19]}  {', '.join(d.reasons)}")
    ctx.say(f"{'would forget' if dry_run else 'forgot'} {len(removed)} snapshots")
    if stats:
        ctx.say(
            f"prune: deleted {stats.packs_deleted} packs, freed {human_size(stats.bytes_freed)}"
        )


@click.command()
@click.option("--dry-run", is_flag=True, help="Only show what would be removed.")
@pass_ctx
def prune(ctx: Ctx, dry_run: bool) -> None:
    """Delete data that no snapshot references."""
    repo = ctx.open()
    with lock_repository(repo, exclusive=True, command="prune"):
        stats = run_prune(repo, _progress(ctx, "prune"), dry_run=dry_run)
    _warn_unreadable(repo)
    if ctx.json:
        ctx.emit_json(dataclasses.asdict(stats))
        return
    ctx.say(
        f"{'would delete' if dry_run else 'deleted'} {stats.packs_deleted} packs "
        f"({stats.packs_repacked} repacked), freed {human_size(stats.bytes_freed)}"
    )


@click.command()
@click.argument("snapshot_ref", required=False)
@pass_ctx
def stats(ctx: Ctx, snapshot_ref: str | None) -> None:
    """Sizes: what the snapshots hold and what the repository stores."""
    repo = ctx.open()
    repo.load_index()
    snaps = [find_snapshot(repo, snapshot_ref)] if snapshot_ref else list_snapshots(repo)
    st = compute_stats(repo, snaps)
    doc = {
        "snapshots": st.snapshots,
        "files": st.files,
        "restore_size": st.restore_size,
        "unique_chunks": st.unique_chunks,
        "unique_size": st.unique_size,
        "stored_size": st.stored_size,
        "packs": st.packs,
        "dedup_ratio": round(st.restore_size / st.unique_size, 2) if st.unique_size else None,
    }
    if ctx.json:
        ctx.emit_json(doc)
        return
    ctx.say(f"snapshots:         {st.snapshots}")
    ctx.say(f"files (all snaps): {st.files}")
    ctx.say(f"restore size:      {human_size(st.restore_size)}")
    ctx.say(f"unique data:       {human_size(st.unique_size)} in {st.unique_chunks} chunks")
    ctx.say(f"stored on medium:  {human_size(st.stored_size)} in {st.packs} packs")
    if doc["dedup_ratio"]:
        ctx.say(f"deduplication:     {doc['dedup_ratio']}x")


@click.command()
@pass_ctx
def repair(ctx: Ctx) -> None:
    """Rebuild the index from the packs and report which files are lost."""
    repo = ctx.open()
    with lock_repository(repo, exclusive=True, command="repair"):
        result = run_repair(repo, _progress(ctx, "repair"))
    assert result.check is not None
    lost = {sid: paths for sid, paths in result.check.affected.items()}
    if ctx.json:
        ctx.emit_json(dataclasses.asdict(result))
    else:
        ctx.say(
            f"read {result.packs_read} packs: {result.blobs_indexed} blobs indexed, "
            f"{result.blobs_lost} damaged blobs dropped, {len(result.packs_damaged)} damaged packs"
        )
        for sid, paths in lost.items():
            ctx.say(f"snapshot {sid[:8]}: {len(paths)} entries cannot be restored intact:")
            for p in paths:
                ctx.say(f"    {p}")
        ctx.say("all snapshots are complete" if not lost else "every other file restores intact")
    if lost or result.blobs_lost:
        sys.exit(ExitCode.DAMAGED)


@click.group()
def key() -> None:
    """Manage key slots (passphrases and recovery keys)."""


@key.command(name="list")
@pass_ctx
def key_list(ctx: Ctx) -> None:
    """List key slots; the one that opened the repository is marked with *."""
    repo = ctx.open()
    rows = []
    for slot in repo.list_keys():
        rows.append({"id": slot, "current": slot == repo.key_slot})
    if ctx.json:
        ctx.emit_json(rows)
        return
    for row in rows:
        mark = "*" if row["current"] else " "
        label = (
            f"  ({repo.key_info.label}, created {repo.key_info.created[:19]})"
            if row["current"]
            else ""
        )
        ctx.say(f"{mark} {str(row['id'])[:16]}{label}")


@key.command(name="add")
@click.option("--new-password-file", metavar="FILE", help="Read the new passphrase from FILE.")
@click.option(
    "--label", default="", help="A label for the slot, e.g. 'daily' or 'service partner'."
)
@click.option("--recovery", is_flag=True, help="Generate a random recovery key and print it once.")
@pass_ctx
def key_add(ctx: Ctx, new_password_file: str | None, label: str, recovery: bool) -> None:
    """Add a key slot with a new passphrase (or a generated recovery key)."""
    repo = ctx.open()
    if recovery:
        secret = generate_recovery_key()
        slot = repo.add_key(secret, label or "recovery key")
    else:
        secret = _new_passphrase(ctx, new_password_file)
        slot = repo.add_key(secret, label or "passphrase")
    if ctx.json:
        ctx.emit_json({"id": slot, **({"recovery_key": secret} if recovery else {})})
        return
    ctx.say(f"added key slot {slot[:16]}")
    if recovery:
        ctx.say(f"recovery key (write it down, keep it in the safe): {secret}")


@key.command(name="remove")
@click.argument("slot_id")
@pass_ctx
def key_remove(ctx: Ctx, slot_id: str) -> None:
    """Remove a key slot (not the one used to open the repository)."""
    repo = ctx.open()
    matches = [s for s in repo.list_keys() if s.startswith(slot_id)]
    if len(matches) != 1:
        raise UsageError(f"key slot {slot_id!r} matches {len(matches)} slots")
    with lock_repository(repo, exclusive=True, command="key remove"):
        repo.remove_key(matches[0])
    ctx.say(f"removed key slot {matches[0][:16]}")


@key.command(name="passwd")
@click.option("--new-password-file", metavar="FILE", help="Read the new passphrase from FILE.")
@pass_ctx
def key_passwd(ctx: Ctx, new_password_file: str | None) -> None:
    """Change the passphrase of the key slot in use."""
    repo = ctx.open()
    secret = _new_passphrase(ctx, new_password_file)
    with lock_repository(repo, exclusive=True, command="key passwd"):
        new_slot = repo.change_passphrase(secret)
    ctx.say(f"passphrase changed (new key slot {new_slot[:16]})")


COMMANDS = [init, backup, snapshots, ls_cmd, diff, restore, check, forget, prune, stats, repair]
