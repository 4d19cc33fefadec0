"""repair: rebuild the index from the packs themselves and report what is lost.

Every pack on the medium is read and every blob in it decrypted and verified. Blob positions
come from the pack's own header, or - if the header is damaged - from whatever readable index
file still describes that pack. Only blobs that verify go into the new index, which supersedes
all old index files (readable or not). Nothing is deleted from the medium except superseded
index files; damaged packs stay where they are for forensic use and are removed by prune.

Afterwards a check of all snapshots names every file that cannot be restored intact; every
other file restores normally.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from praxisbackup.engine.checker import Checker, CheckResult
from praxisbackup.engine.index import IndexFile, PackRecord
from praxisbackup.engine.pack import PackEntry, parse_pack
from praxisbackup.engine.progress import Progress
from praxisbackup.engine.repository import Repository
from praxisbackup.errors import IntegrityError, StorageError


@dataclass
class RepairResult:
    packs_read: int = 0
    packs_damaged: list[str] = field(default_factory=list)
    blobs_indexed: int = 0
    blobs_lost: int = 0
    index_files_replaced: int = 0
    check: CheckResult | None = None


def _known_entries(repo: Repository) -> dict[str, list[PackEntry]]:
    """Pack contents according to every readable index file (a fallback for bad headers)."""
    known: dict[str, list[PackEntry]] = {}
    for info in repo.backend.list("index"):
        try:
            doc = repo.read_index_file(info.name)
        except (IntegrityError, StorageError):
            continue
        for rec in doc.packs:
            known.setdefault(rec.pack_id, rec.entries)
    return known


def repair(repo: Repository, progress: Progress | None = None) -> RepairResult:
    progress = progress or Progress()
    result = RepairResult()
    known = _known_entries(repo)
    old_index = sorted(info.name for info in repo.backend.list("index"))
    records = []
    packs = list(repo.backend.list("data"))
    progress.set_total(len(packs), sum(p.size for p in packs))
    for info in packs:
        result.packs_read += 1
        try:
            raw = repo.backend.read_uncached("data", info.name)
        except StorageError:
            result.packs_damaged.append(info.name)
            continue
        try:
            entries = parse_pack(repo.cipher, raw, f"pack {info.name[:12]}")
        except IntegrityError:
            entries = known.get(info.name, [])
            result.packs_damaged.append(info.name)
        good = []
        for e in entries:
            try:
                repo.decode_blob(
                    e.type,
                    e.id,
                    raw[e.offset : e.offset + e.length],
                    e.raw_length,
                    bool(e.flags & 1),
                    "blob",
                )
            except IntegrityError:
                result.blobs_lost += 1
                if info.name not in result.packs_damaged:
                    result.packs_damaged.append(info.name)
                continue
            good.append(e)
        if good:
            records.append(PackRecord(info.name, info.size, good))
            result.blobs_indexed += len(good)
        progress.advance(files=1, size=info.size)
    repo.write_index(IndexFile(supersedes=old_index, packs=records))
    for name in old_index:
        repo.backend.delete("index", name)
    # The new index holds only blobs that verified: earlier damage records are obsolete.
    for name in repo.damage_record_names():
        repo.backend.delete("meta", name)
    result.index_files_replaced = len(old_index)
    progress.close()
    result.check = Checker(repo).run(lock=False)  # the caller holds the exclusive lock
    return result
