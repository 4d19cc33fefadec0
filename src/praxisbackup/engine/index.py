"""The index: where each blob is stored.

In memory, each blob costs one dict entry: a 32-byte key and one Python int packing pack
number, offset, length, raw length and flags (about 160 bytes per blob in CPython), so 1.5 M
chunks (roughly 1 M files / 500 GB) need about 250 MB.

On the medium an index file is an encrypted object (see :mod:`.objects`) whose payload is::

    b"PXIX" || version u8 (=1)
    n_supersedes u32 || n_supersedes * index file id (32 bytes, BLAKE3 of the file)
    n_packs u32 || n_packs * ( pack_id 32 || pack_size u64 || n_blobs u32 ||
                               n_blobs * (type u8 || flags u8 || id 32 || offset u32 ||
                                          length u32 || raw_length u32) )

An index file that lists other index files as *superseded* replaces them (written by prune and
repair); readers ignore superseded files, so a crash while deleting them is harmless.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from praxisbackup.engine.pack import BLOB_TYPES, COMPRESSED, PackEntry
from praxisbackup.errors import IntegrityError

INDEX_MAGIC = b"PXIX"
INDEX_VERSION = 1
_HEAD = struct.Struct("<4sB")
_U32 = struct.Struct("<I")
_PACK = struct.Struct("<32sQI")
_BLOB = struct.Struct("<BB32sIII")


class BlobLocation(NamedTuple):
    """Where a blob is, and how to read it."""

    pack_id: str
    offset: int
    length: int
    raw_length: int
    compressed: bool


@dataclass
class PackRecord:
    """One pack as listed in an index file."""

    pack_id: str
    size: int
    entries: list[PackEntry]


@dataclass
class IndexFile:
    """The decoded payload of one index file."""

    supersedes: list[str] = field(default_factory=list)
    packs: list[PackRecord] = field(default_factory=list)


def encode_index(doc: IndexFile) -> bytes:
    out = bytearray(_HEAD.pack(INDEX_MAGIC, INDEX_VERSION))
    out += _U32.pack(len(doc.supersedes))
    for sid in doc.supersedes:
        out += bytes.fromhex(sid)
    out += _U32.pack(len(doc.packs))
    for pack in doc.packs:
        out += _PACK.pack(bytes.fromhex(pack.pack_id), pack.size, len(pack.entries))
        for e in pack.entries:
            out += _BLOB.pack(e.type, e.flags, e.id, e.offset, e.length, e.raw_length)
    return bytes(out)


def decode_index(payload: bytes, what: str) -> IndexFile:
    """Parse an index payload; any inconsistency is an IntegrityError naming ``what``."""
    try:
        magic, version = _HEAD.unpack_from(payload, 0)
        if magic != INDEX_MAGIC or version != INDEX_VERSION:
            raise IntegrityError(f"{what} has an unknown format")
        pos = _HEAD.size
        (n_sup,) = _U32.unpack_from(payload, pos)
        pos += 4
        supersedes = []
        for _ in range(n_sup):
            sid = payload[pos : pos + 32]
            if len(sid) != 32:
                raise IntegrityError(f"{what} is truncated")
            supersedes.append(sid.hex())
            pos += 32
        (n_packs,) = _U32.unpack_from(payload, pos)
        pos += 4
        packs = []
        for _ in range(n_packs):
            pid, size, n_blobs = _PACK.unpack_from(payload, pos)
            pos += _PACK.size
            entries = []
            for _ in range(n_blobs):
                btype, flags, bid, off, length, raw = _BLOB.unpack_from(payload, pos)
                pos += _BLOB.size
                if btype not in BLOB_TYPES or off + length > size:
                    raise IntegrityError(f"{what} has an invalid blob entry")
                entries.append(PackEntry(btype, flags, bid, off, length, raw))
            packs.append(PackRecord(pid.hex(), size, entries))
    except struct.error:
        raise IntegrityError(f"{what} is truncated") from None
    if pos != len(payload):
        raise IntegrityError(f"{what} has trailing bytes")
    return IndexFile(supersedes, packs)


class Index:
    """In-memory map from (type, blob id) to location."""

    def __init__(self) -> None:
        self._pack_ids: list[str] = []
        self._pack_sizes: list[int] = []
        self._pack_no: dict[str, int] = {}
        self._blobs: tuple[dict[bytes, int], dict[bytes, int]] = ({}, {})

    def add_pack(self, pack_id: str, size: int, entries: Iterable[PackEntry]) -> None:
        """Register a pack. A blob already known elsewhere keeps its first location."""
        no = self._pack_no.get(pack_id)
        if no is None:
            no = len(self._pack_ids)
            self._pack_ids.append(pack_id)
            self._pack_sizes.append(size)
            self._pack_no[pack_id] = no
        for e in entries:
            table = self._blobs[e.type]
            if e.id not in table:
                table[e.id] = (
                    (no << 98)
                    | (e.offset << 66)
                    | (e.length << 34)
                    | (e.raw_length << 2)
                    | (1 if e.flags & COMPRESSED else 0)
                )

    def has(self, blob_type: int, blob_id: bytes) -> bool:
        return blob_id in self._blobs[blob_type]

    def lookup(self, blob_type: int, blob_id: bytes) -> BlobLocation | None:
        packed = self._blobs[blob_type].get(blob_id)
        if packed is None:
            return None
        return BlobLocation(
            self._pack_ids[packed >> 98],
            (packed >> 66) & 0xFFFFFFFF,
            (packed >> 34) & 0xFFFFFFFF,
            (packed >> 2) & 0xFFFFFFFF,
            bool(packed & 1),
        )

    def pack_of(self, blob_type: int, blob_id: bytes) -> str | None:
        packed = self._blobs[blob_type].get(blob_id)
        return None if packed is None else self._pack_ids[packed >> 98]

    def has_pack(self, pack_id: str) -> bool:
        return pack_id in self._pack_no

    def packs(self) -> Iterator[tuple[str, int]]:
        """Every indexed pack with its size."""
        return zip(self._pack_ids, self._pack_sizes, strict=True)

    def blob_ids(self, blob_type: int) -> Iterator[bytes]:
        return iter(self._blobs[blob_type])

    def count(self, blob_type: int) -> int:
        return len(self._blobs[blob_type])

    def blobs_in_pack(self, pack_id: str) -> list[tuple[int, bytes]]:
        """(type, id) of every blob the index places in a pack (a full scan; used on damage)."""
        no = self._pack_no.get(pack_id)
        if no is None:
            return []
        return [
            (btype, bid)
            for btype, table in enumerate(self._blobs)
            for bid, packed in table.items()
            if packed >> 98 == no
        ]

    def blob_counts(self) -> dict[str, int]:
        """Number of blobs the index places in each pack."""
        counts = [0] * len(self._pack_ids)
        for table in self._blobs:
            for packed in table.values():
                counts[packed >> 98] += 1
        return dict(zip(self._pack_ids, counts, strict=True))

    def remove_pack_blobs(self, pack_ids: set[str]) -> None:
        """Forget every blob located in these packs (before repacking them)."""
        numbers = {self._pack_no[p] for p in pack_ids if p in self._pack_no}
        for table in self._blobs:
            for bid in [b for b, packed in table.items() if packed >> 98 in numbers]:
                del table[bid]
