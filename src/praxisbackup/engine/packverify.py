"""Verifying one pack as it lies on the medium: the unit of work of ``check --read-data`` and
of the nightly verification.

A pack is read past the page cache (so the medium itself answers), hashed against its name,
its header decrypted, and every blob the index places in it decrypted, decompressed and
hashed against its id. The function is pure apart from the read: it runs in the checking
process for small verifications and in worker processes (:mod:`pipeline`) for large ones, so
that decryption, decompression and hashing use every core instead of taking turns on one
interpreter lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from praxisbackup.engine import crypto
from praxisbackup.engine.index import PACK_RECORD
from praxisbackup.engine.objects import decompressor
from praxisbackup.engine.pack import COMPRESSED, open_blob, parse_pack
from praxisbackup.errors import IntegrityError, StorageError
from praxisbackup.platform import ReadBuffer
from praxisbackup.storage import Backend

#: The blobs the index places in one pack, with where they lie: :data:`index.PACK_RECORD`
#: records (compact: the checker sends them to worker processes pack by pack).
PackBlobs = bytes | bytearray


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
    indexed: PackBlobs,
    buffer: ReadBuffer,
    size: int | None = None,
) -> PackVerdict:
    """Read ``pack_id`` from the medium and verify it against ``indexed``: every blob the index
    places in it, by (type, id), with its place. Each blob is verified where the index says it
    lies - where a restore reads it - so a damaged header (needed only to rebuild the index)
    is reported as such without condemning intact blobs; the header is compared with the
    index. A copy the index does not know is never read from here and is not checked either.
    ``buffer`` is reused for the read."""
    raw = read_pack(backend, pack_id, buffer, size)
    return verify_read(key, cipher, pack_id, indexed, raw)


def read_pack(
    backend: Backend, pack_id: str, buffer: ReadBuffer, size: int | None = None
) -> bytes | memoryview | StorageError:
    """The first half of :func:`verify_pack`: the pack from the medium (a view into
    ``buffer``), or why it could not be read (also: not ``size`` bytes, the index's size -
    a pack swapped during the check is not read without bound)."""
    try:
        return backend.read_uncached("data", pack_id, buffer, size)
    except StorageError as exc:
        return exc


def verify_read(
    key: crypto.MasterKey,
    cipher: crypto.Cipher,
    pack_id: str,
    indexed: PackBlobs,
    raw: bytes | memoryview | StorageError,
) -> PackVerdict:
    """The second half of :func:`verify_pack`, on what :func:`read_pack` gave."""
    verdict = PackVerdict(pack_id)
    what = f"pack {pack_id[:12]}"
    located = {
        (btype, bid): (offset, length, raw_length, bool(compressed))
        for btype, bid, offset, length, raw_length, compressed in PACK_RECORD.iter_unpack(indexed)
    }
    if isinstance(raw, StorageError):
        verdict.problems.append(("pack", pack_id, str(raw)))
        verdict.bad = sorted(located)
        return verdict
    verdict.bytes = len(raw)
    if crypto.storage_id(raw) != pack_id:
        verdict.problems.append(("pack", pack_id, "pack content does not match its name (damaged)"))
    try:
        header = {(e.type, e.id): e for e in parse_pack(cipher, raw, what)}
    except IntegrityError as exc:
        verdict.problems.append(
            ("pack", pack_id, f"{exc} (its blobs were checked where the index places them)")
        )
    else:
        differ = sum(
            1
            for blob, place in located.items()
            if (e := header.get(blob)) is None
            or (e.offset, e.length, e.raw_length, bool(e.flags & COMPRESSED)) != place
        )
        if differ:
            verdict.problems.append(
                (
                    "pack",
                    pack_id,
                    f"the pack header and the index disagree on {differ} of its "
                    f"{len(located)} blobs",
                )
            )
    dec = decompressor()
    bad = []
    for (blob_type, blob_id), place in sorted(located.items(), key=lambda item: item[1]):
        offset, length, raw_length, compressed = place
        verdict.blobs += 1
        blob_what = f"blob {blob_id.hex()[:12]} in {what}"
        try:
            if offset + length > len(raw):
                raise IntegrityError(f"{blob_what} lies beyond the end of the pack (truncated)")
            sealed = raw[offset : offset + length]
            open_blob(
                cipher, key, dec, blob_type, blob_id, sealed, raw_length, compressed, blob_what
            )
        except IntegrityError as exc:
            verdict.problems.append(("blob", blob_id.hex(), str(exc)))
            bad.append((blob_type, blob_id))
    verdict.bad = sorted(bad)
    return verdict
