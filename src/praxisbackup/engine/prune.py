"""prune: remove data no snapshot references any more.

Runs under an exclusive lock. Order on the medium, so that a crash at any instant leaves a
usable repository:

1. repack: blobs still used that sit in mostly-unused packs are copied into new packs
   (verified on the way: decrypted and checked against their id);
2. write ONE new index file listing every kept pack and superseding all current index files;
3. delete the superseded index files;
4. delete packs nothing references any more, and leftovers of interrupted writes.

Before step 2 completes, the new packs are unindexed leftovers; after it, readers use only the
new index, which names no pack that step 4 deletes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from praxisbackup.engine.index import IndexFile, PackRecord
from praxisbackup.engine.pack import DATA, TREE, PackEntry
from praxisbackup.engine.progress import Progress
from praxisbackup.engine.repository import Repository
from praxisbackup.engine.snapshot import list_snapshots
from praxisbackup.engine.tree import DIR, FILE, HARDLINK, decode_tree
from praxisbackup.engine.writer import BlobWriter
from praxisbackup.errors import IntegrityError, StorageError

#: A pack with more unused bytes than this share is repacked.
REPACK_THRESHOLD = 0.2


@dataclass
class PruneStats:
    packs_deleted: int = 0
    packs_repacked: int = 0
    bytes_freed: int = 0
    blobs_removed: int = 0
    index_files_replaced: int = 0
    temp_files_removed: int = 0
    junk_files_removed: int = 0
    unused_packs_kept: list[str] = field(default_factory=list)
    #: Snapshot files that could not be read and were ignored (name -> why).
    unreadable_snapshots: dict[str, str] = field(default_factory=dict)


def used_blobs(repo: Repository) -> set[tuple[int, bytes]]:
    """Every blob referenced by a readable snapshot. A missing tree aborts: pruning then could
    delete data a damaged snapshot still needs; so does a snapshot file that could not be read
    because of an input/output error. A snapshot file whose content is wrong (junk, damaged,
    from another repository) can never be read: it is skipped (and reported)."""
    used: set[tuple[int, bytes]] = set()
    try:
        snapshots = list_snapshots(repo, strict_io=True)
    except StorageError as exc:
        raise StorageError(f"prune stopped, nothing was deleted: {exc}") from None
    stack = [bytes.fromhex(s.tree) for s in snapshots]
    while stack:
        tid = stack.pop()
        if (TREE, tid) in used:
            continue
        used.add((TREE, tid))
        try:
            nodes = decode_tree(repo.read_blob(TREE, tid), f"tree {tid.hex()[:12]}")
        except IntegrityError as exc:
            raise IntegrityError(
                f"prune stopped, nothing was deleted: {exc}; run 'check'"
            ) from None
        for node in nodes:
            if node.type == DIR and node.subtree is not None:
                stack.append(node.subtree)
            elif node.type in (FILE, HARDLINK):
                used.update((DATA, c) for c in node.content)
    return used


def prune(repo: Repository, progress: Progress | None = None, dry_run: bool = False) -> PruneStats:
    progress = progress or Progress()
    stats = PruneStats()
    repo.load_index()
    repo.adopt_unindexed_packs()
    progress.note("finding used data")
    used = used_blobs(repo)
    stats.unreadable_snapshots = dict(repo.unreadable_snapshots)
    missing = [b for b in used if not repo.index.has(*b)]
    if missing:
        raise IntegrityError(
            f"prune stopped, nothing was deleted: {len(missing)} referenced blobs are missing; "
            "run 'check' and 'repair'"
        )
    # Read the full pack listing from the index files. A blob is live in one pack only: its
    # preferred location (the first copy not known to be damaged); other copies are unused.
    records: list[PackRecord] = []
    for name in repo.index_files:
        records.extend(repo.read_index_file(name).packs)
    seen_packs: set[str] = set()
    keep: list[PackRecord] = []
    repack: list[PackRecord] = []
    drop: list[PackRecord] = []
    for rec in records:
        if rec.pack_id in seen_packs:
            continue
        seen_packs.add(rec.pack_id)
        live = [
            e
            for e in rec.entries
            if (e.type, e.id) in used and repo.index.pack_of(e.type, e.id) == rec.pack_id
        ]
        live_bytes = sum(e.length for e in live)
        total = sum(e.length for e in rec.entries) or 1
        # A live blob whose only copies are damaged cannot be copied: its pack stays as it is.
        holds_damaged = any(repo.index.is_bad(rec.pack_id, e.type, e.id) for e in live)
        if not live:
            drop.append(rec)
        elif (total - live_bytes) / total > REPACK_THRESHOLD and not holds_damaged:
            repack.append(rec)
        else:
            keep.append(PackRecord(rec.pack_id, rec.size, rec.entries))
    stats.packs_deleted = len(drop) + len(repack)
    stats.packs_repacked = len(repack)
    stats.bytes_freed = sum(r.size for r in drop)
    if dry_run:
        return stats
    new_records: list[PackRecord] = []
    if repack:
        progress.note("repacking")
        new_records = _repack(repo, repack, used, {rec.pack_id for rec in drop})
        stats.bytes_freed += sum(r.size for r in repack) - sum(r.size for r in new_records)
    # Supersede every index file on the medium, also those an earlier interrupted prune had
    # already superseded but not yet deleted: once the index superseding them is gone they
    # would come back to life and name packs deleted below.
    old_index = sorted(set(repo.index_files) | {info.name for info in repo.backend.list("index")})
    progress.note("writing the new index")
    kept_records = keep + new_records
    repo.write_index(IndexFile(supersedes=old_index, packs=kept_records))
    for name in old_index:
        repo.check_lock()
        repo.backend.delete("index", name)
    stats.index_files_replaced = len(old_index)
    _rewrite_damage_records(repo, {rec.pack_id for rec in kept_records})
    progress.note("deleting unused data")
    for rec in drop + repack:
        repo.check_lock()
        repo.backend.delete("data", rec.pack_id)
        stats.blobs_removed += len(rec.entries)
    # Files in data/ that are no pack of this repository (junk, a pack copied under another
    # name, a damaged leftover of an interrupted backup): no index names them, nothing reads
    # them.
    for name in repo.junk_packs:
        if name not in seen_packs:
            repo.backend.delete("data", name)
            stats.junk_files_removed += 1
    stats.temp_files_removed = repo.backend.clean_temporary(older_than_seconds=3600)
    repo.load_index()
    return stats


def _rewrite_damage_records(repo: Repository, kept_packs: set[str]) -> None:
    """Keep the damage records only for damaged copies in packs that stay (one record
    replaces all), written before the old ones are deleted."""
    old = repo.damage_record_names()
    still = [c for c in repo.index.bad_locations() if c[0] in kept_packs]
    new = repo.record_damage(still, "prune")
    for name in old:
        if name != new:
            repo.backend.delete("meta", name)


def _repack(
    repo: Repository, packs: list[PackRecord], used: set[tuple[int, bytes]], dropped: set[str]
) -> list[PackRecord]:
    """Copy live blobs into new packs; returns the new packs' records."""
    before = set(dict(repo.index.packs()))
    # Forget the locations in every pack that goes away (repacked or dropped), so a blob
    # counts as present only if a copy stays; otherwise it is copied.
    repo.index.remove_pack_blobs({rec.pack_id for rec in packs} | dropped)
    with BlobWriter(repo) as writer:
        for rec in packs:
            for e in rec.entries:
                if (
                    (e.type, e.id) not in used
                    or repo.index.is_bad(rec.pack_id, e.type, e.id)
                    or repo.index.has_good(e.type, e.id)
                    or writer.has(e.type, e.id)
                ):
                    continue
                sealed = repo.backend.read_range("data", rec.pack_id, e.offset, e.length)
                data = repo.decode_blob(
                    e.type, e.id, sealed, e.raw_length, bool(e.flags & 1), f"blob {e.id.hex()[:12]}"
                )
                writer.add(e.type, e.id, data)
        writer.flush()
    new_packs = [p for p in dict(repo.index.packs()) if p not in before]
    result = []
    for pack_id in new_packs:
        entries: list[PackEntry] = repo.read_pack_entries(pack_id)
        result.append(PackRecord(pack_id, repo.backend.size("data", pack_id), entries))
    # The writer appended its index files to repo.index_files; prune supersedes them too.
    return result
