"""The index: where each blob is stored.

In memory, each blob costs one dict entry: a 32-byte key and one Python int packing pack
number, offset, length, raw length and flags (about 160 bytes per blob in CPython), so 1.5 M
chunks (roughly 1 M files / 500 GB) need about 250 MB. A blob stored in more than one pack
keeps its further locations in a second, normally tiny, table.

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


#: A blob of a pack as :meth:`Index.pack_records` lists it: type u8, id 32 bytes, offset u32,
#: length u32, raw length u32, compressed u8.
PACK_RECORD = struct.Struct("<B32sIIIB")


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
            end = pos + n_blobs * _BLOB.size
            if end > len(payload):
                raise IntegrityError(f"{what} is truncated")
            # (unpacked in C, checked in one pass: every command loads the whole index)
            entries = list(map(PackEntry._make, _BLOB.iter_unpack(payload[pos:end])))
            pos = end
            if not all(e.type in BLOB_TYPES and e.offset + e.length <= size for e in entries):
                raise IntegrityError(f"{what} has an invalid blob entry")
            packs.append(PackRecord(pid.hex(), size, entries))
    except struct.error:
        raise IntegrityError(f"{what} is truncated") from None
    if pos != len(payload):
        raise IntegrityError(f"{what} has trailing bytes")
    return IndexFile(supersedes, packs)


class Index:
    """In-memory map from (type, blob id) to every location of the blob.

    Nearly every blob is in exactly one pack: its location is one packed int in ``_blobs``.
    A blob stored in several packs (stored again after damage was found, or listed twice)
    keeps its further locations in ``_more``, so a read that fails on one copy can try the
    next. Locations known to be damaged (found by check, recorded on the medium) are marked
    and come last; :meth:`lookup` returns the first usable location.
    """

    def __init__(self) -> None:
        self._pack_ids: list[str] = []
        self._pack_sizes: list[int] = []
        self._pack_no: dict[str, int] = {}
        self._blobs: tuple[dict[bytes, int], dict[bytes, int]] = ({}, {})
        self._more: tuple[dict[bytes, list[int]], dict[bytes, list[int]]] = ({}, {})
        #: (pack number, type, blob id) of copies known to be damaged.
        self._bad: set[tuple[int, int, bytes]] = set()

    def _location(self, packed: int) -> BlobLocation:
        return BlobLocation(
            self._pack_ids[packed >> 98],
            (packed >> 66) & 0xFFFFFFFF,
            (packed >> 34) & 0xFFFFFFFF,
            (packed >> 2) & 0xFFFFFFFF,
            bool(packed & 1),
        )

    def add_pack(self, pack_id: str, size: int, entries: Iterable[PackEntry]) -> None:
        """Register a pack. A blob already known elsewhere gets this pack as one more location
        (the first location stays the preferred one while it is not known to be damaged)."""
        no = self._pack_no.get(pack_id)
        if no is None:
            no = len(self._pack_ids)
            self._pack_ids.append(pack_id)
            self._pack_sizes.append(size)
            self._pack_no[pack_id] = no
        blobs, pack_bits = self._blobs, no << 98
        for btype, flags, bid, offset, length, raw_length in entries:
            table = blobs[btype]
            packed = (
                pack_bits
                | (offset << 66)
                | (length << 34)
                | (raw_length << 2)
                | (1 if flags & COMPRESSED else 0)
            )
            first = table.get(bid)
            if first is None:
                table[bid] = packed
            elif first >> 98 != no:
                more = self._more[btype].setdefault(bid, [])
                if all(other >> 98 != no for other in more):
                    more.append(packed)

    def _all(self, blob_type: int, blob_id: bytes) -> list[int]:
        first = self._blobs[blob_type].get(blob_id)
        if first is None:
            return []
        return [first, *self._more[blob_type].get(blob_id, ())]

    def _ordered(self, blob_type: int, blob_id: bytes) -> list[int]:
        """Every location, usable ones first."""
        found = self._all(blob_type, blob_id)
        if not self._bad or not found:
            return found
        good = [p for p in found if (p >> 98, blob_type, blob_id) not in self._bad]
        return good + [p for p in found if (p >> 98, blob_type, blob_id) in self._bad]

    def has(self, blob_type: int, blob_id: bytes) -> bool:
        """The blob is listed somewhere (perhaps only in damaged copies)."""
        return blob_id in self._blobs[blob_type]

    def has_copies(self, blob_type: int, blob_id: bytes) -> bool:
        """The blob is listed in more than one pack."""
        return blob_id in self._more[blob_type]

    def has_good(self, blob_type: int, blob_id: bytes) -> bool:
        """The blob has a copy not known to be damaged (a backup need not store it again)."""
        if not self._bad:
            return blob_id in self._blobs[blob_type]
        found = self._all(blob_type, blob_id)
        return any((p >> 98, blob_type, blob_id) not in self._bad for p in found)

    def lookup(self, blob_type: int, blob_id: bytes) -> BlobLocation | None:
        """The preferred location: the first copy not known to be damaged."""
        if not self._bad:
            packed = self._blobs[blob_type].get(blob_id)
            return None if packed is None else self._location(packed)
        found = self._ordered(blob_type, blob_id)
        return self._location(found[0]) if found else None

    def locations(self, blob_type: int, blob_id: bytes) -> list[BlobLocation]:
        """Every copy of the blob, usable ones first."""
        return [self._location(p) for p in self._ordered(blob_type, blob_id)]

    def pack_of(self, blob_type: int, blob_id: bytes) -> str | None:
        loc = self.lookup(blob_type, blob_id)
        return None if loc is None else loc.pack_id

    def in_pack(self, pack_id: str, blob_type: int, blob_id: bytes) -> bool:
        """The index lists a copy of this blob in this pack."""
        no = self._pack_no.get(pack_id)
        return no is not None and any(p >> 98 == no for p in self._all(blob_type, blob_id))

    def mark_bad(self, pack_id: str, blob_type: int, blob_id: bytes) -> None:
        """Remember that the copy of a blob in this pack is damaged."""
        no = self._pack_no.get(pack_id)
        if no is not None:
            self._bad.add((no, blob_type, blob_id))

    def is_bad(self, pack_id: str, blob_type: int, blob_id: bytes) -> bool:
        no = self._pack_no.get(pack_id)
        return no is not None and (no, blob_type, blob_id) in self._bad

    def bad_locations(self) -> list[tuple[str, int, bytes]]:
        """(pack id, type, blob id) of every copy known to be damaged."""
        return sorted((self._pack_ids[no], t, b) for no, t, b in self._bad)

    def has_pack(self, pack_id: str) -> bool:
        return pack_id in self._pack_no

    def packs(self) -> Iterator[tuple[str, int]]:
        """Every indexed pack with its size."""
        return zip(self._pack_ids, self._pack_sizes, strict=True)

    def blob_ids(self, blob_type: int) -> Iterator[bytes]:
        return iter(self._blobs[blob_type])

    def count(self, blob_type: int) -> int:
        return len(self._blobs[blob_type])

    def _every_location(self) -> Iterator[tuple[int, bytes, int]]:
        for btype, table in enumerate(self._blobs):
            for bid, packed in table.items():
                yield btype, bid, packed
        for btype, more in enumerate(self._more):
            for bid, extra in more.items():
                for packed in extra:
                    yield btype, bid, packed

    def blobs_in_pack(self, pack_id: str) -> list[tuple[int, bytes]]:
        """(type, id) of every blob the index places in a pack (a full scan; used on damage)."""
        no = self._pack_no.get(pack_id)
        if no is None:
            return []
        return [(btype, bid) for btype, bid, packed in self._every_location() if packed >> 98 == no]

    def pack_records(self, pack_ids: Iterable[str]) -> dict[str, bytearray]:
        """Every blob the index places in each of these packs, as :data:`PACK_RECORD` records
        (one scan; 46 bytes a blob, so a check of a million files does not hold a million
        objects)."""
        wanted = {self._pack_no[p]: p for p in pack_ids if p in self._pack_no}
        out: dict[int, bytearray] = {no: bytearray() for no in wanted}
        record = PACK_RECORD.pack
        mask = 0xFFFFFFFF
        for btype, bid, packed in self._every_location():
            buf = out.get(packed >> 98)
            if buf is not None:
                buf += record(
                    btype,
                    bid,
                    (packed >> 66) & mask,
                    (packed >> 34) & mask,
                    (packed >> 2) & mask,
                    packed & 1,
                )
        return {wanted[no]: buf for no, buf in out.items()}

    def blob_counts(self) -> dict[str, int]:
        """Number of blob copies the index places in each pack."""
        counts = [0] * len(self._pack_ids)
        for _btype, _bid, packed in self._every_location():
            counts[packed >> 98] += 1
        return dict(zip(self._pack_ids, counts, strict=True))

    def remove_pack_blobs(self, pack_ids: set[str]) -> None:
        """Forget every location in these packs (before repacking them); a blob with a copy
        elsewhere keeps that copy."""
        numbers = {self._pack_no[p] for p in pack_ids if p in self._pack_no}
        for btype, table in enumerate(self._blobs):
            more = self._more[btype]
            for bid in [b for b, packed in table.items() if packed >> 98 in numbers] + list(more):
                rest = [p for p in self._all(btype, bid) if p >> 98 not in numbers]
                more.pop(bid, None)
                if rest:
                    table[bid] = rest[0]
                    if len(rest) > 1:
                        more[bid] = rest[1:]
                else:
                    table.pop(bid, None)
