"""Verifying one pack as it lies on the medium: the unit of work of ``check --read-data`` and
of the nightly verification.

A pack is read with its cached pages dropped (so the medium itself answers), hashed against its
name, its header decrypted, and every blob the index places in it decrypted, decompressed and
hashed against its id. The function is pure apart from the read: it runs in the checking
process for small verifications and in worker processes (:mod:`pipeline`) for large ones, so
that decryption, decompression and hashing use every core instead of taking turns on one
interpreter lock.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from praxisbackup.engine import crypto
from praxisbackup.engine.objects import decompressor
from praxisbackup.engine.pack import COMPRESSED, open_blob, parse_pack
from praxisbackup.errors import IntegrityError, StorageError
from praxisbackup.storage import Backend


@dataclass
class PackVerdict:
    """What reading one pack found. ``problems`` are (kind, object, message) as the check
    reports them; ``bad`` are the (type, id) of blob copies in this pack that cannot be used."""

    pack_id: str
    problems: list[tuple[str, str, str]] = field(default_factory=list)
    bad: list[tuple[int, bytes]] = field(default_factory=list)
    blobs: int = 0
    bytes: int = 0


def verify_pack(
    backend: Backend,
    key: crypto.MasterKey,
    cipher: crypto.Cipher,
    pack_id: str,
    indexed: Collection[tuple[int, bytes]],
    buffer: bytearray,
) -> PackVerdict:
    """Read ``pack_id`` from the medium and verify it against ``indexed``, the (type, id) of
    every blob the index places in it (a copy the index does not know is never read from
    here, so it is not checked either). ``buffer`` is reused for the read."""
    verdict = PackVerdict(pack_id)
    what = f"pack {pack_id[:12]}"
    try:
        raw = backend.read_uncached("data", pack_id, buffer)
    except StorageError as exc:
        verdict.problems.append(("pack", pack_id, str(exc)))
        verdict.bad = list(indexed)
        return verdict
    verdict.bytes = len(raw)
    if not raw:
        verdict.bad = list(indexed)
        return verdict
    if crypto.storage_id(raw) != pack_id:
        verdict.problems.append(("pack", pack_id, "pack content does not match its name (damaged)"))
    bad: set[tuple[int, bytes]] = set()
    try:
        entries = parse_pack(cipher, raw, what)
    except IntegrityError as exc:
        verdict.problems.append(("pack", pack_id, str(exc)))
        verdict.bad = list(indexed)
        return verdict
    wanted = indexed if isinstance(indexed, set | frozenset) else set(indexed)
    dec = decompressor()
    header_ids = set()
    for e in entries:
        header_ids.add((e.type, e.id))
        if (e.type, e.id) not in wanted:
            continue
        verdict.blobs += 1
        blob_what = f"blob {e.id.hex()[:12]} in {what}"
        sealed = raw[e.offset : e.offset + e.length]
        try:
            open_blob(
                cipher,
                key,
                dec,
                e.type,
                e.id,
                sealed,
                e.raw_length,
                bool(e.flags & COMPRESSED),
                blob_what,
            )
        except IntegrityError as exc:
            verdict.problems.append(("blob", e.id.hex(), str(exc)))
            bad.add((e.type, e.id))
    if verdict.blobs != len(wanted):
        verdict.problems.append(
            (
                "pack",
                pack_id,
                f"the index lists {len(wanted)} blobs here, the pack header {verdict.blobs}",
            )
        )
        bad.update(b for b in wanted if b not in header_ids)
    verdict.bad = sorted(bad)
    return verdict
