"""Pack files: many encrypted blobs in one file of several MiB, with a self-describing header.

Layout::

    blob_0 || blob_1 || ... || blob_{n-1} || sealed_header || header_length u32

    blob_i          nonce(12) || AES-256-GCM(payload) || tag(16)
                    associated data = type u8 || id (32 bytes)
                    payload = zstd frame if flags & COMPRESSED, else the raw chunk
    sealed_header   nonce(12) || AES-256-GCM(header) || tag(16)
                    associated data = b"praxisbackup pack header v1"
    header          b"PXPH" || version u8 (=1) || count u32 ||
                    count * (type u8 || flags u8 || id 32 || length u32 || raw_length u32)

A blob's offset is the sum of the lengths before it. The pack's name is the BLAKE3 hash of the
whole file. Because the header lists every blob, the index can be rebuilt from packs alone.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import blake3
import zstandard

from praxisbackup.engine import crypto
from praxisbackup.engine.crypto import OVERHEAD, Cipher
from praxisbackup.errors import IntegrityError

DATA = 0
TREE = 1
BLOB_TYPES = (DATA, TREE)
COMPRESSED = 0x01
#: Bytes sampled to decide whether a large blob is worth compressing ...
COMPRESSION_SAMPLE = 64 * 1024
#: ... which it is if level 1 makes the sample at most this fraction of its size.
INCOMPRESSIBLE_RATIO = 0.97

HEADER_MAGIC = b"PXPH"
HEADER_VERSION = 1
HEADER_AD = b"praxisbackup pack header v1"
_ENTRY = struct.Struct("<BB32sII")
_COUNT = struct.Struct("<4sBI")
_TRAILER = struct.Struct("<I")
#: Largest header accepted when parsing (guards against a corrupt length field).
MAX_HEADER = 64 << 20


def blob_payload(
    data: bytes | memoryview,
    compressor: zstandard.ZstdCompressor,
    probe: zstandard.ZstdCompressor,
    probe_first: bool = True,
) -> tuple[bytes | memoryview, int]:
    """What a blob stores and its flags: compressed where that is smaller. A blob larger than
    two samples whose first sample does not compress at level 1 (``probe``: scans, archives)
    is stored as it is, without compressing all of it. The same rule for the backup's worker
    processes and for the repository's own writer.

    ``probe_first=False`` compresses without the sample first: the worker's choice for the next
    chunk of a file whose last chunk compressed (the sample is compressed twice otherwise,
    which cost 9 % of the compression of the bench's database files)."""
    if probe_first and len(data) > COMPRESSION_SAMPLE * 2:
        sample = probe.compress(data[:COMPRESSION_SAMPLE])
        if len(sample) >= COMPRESSION_SAMPLE * INCOMPRESSIBLE_RATIO:
            return data, 0
    compressed = compressor.compress(data)
    if len(compressed) < len(data):
        return compressed, COMPRESSED
    return data, 0


def open_blob(
    cipher: Cipher,
    key: crypto.MasterKey,
    dec: zstandard.ZstdDecompressor,
    blob_type: int,
    blob_id: bytes,
    sealed: bytes | memoryview,
    raw_length: int,
    compressed: bool,
    what: str,
    check_id: bool = True,
) -> bytes:
    """The reverse of :func:`blob_payload` with proof: decrypt, decompress and check the
    plaintext against its id (keyed BLAKE3). Raises IntegrityError naming ``what``.
    ``check_id=False`` skips the hash: AES-GCM already authenticates the content and binds it
    to its id (associated data) - what a restore relies on."""
    payload = cipher.open(sealed, blob_ad(blob_type, blob_id), what)
    if compressed:
        try:
            data = dec.decompress(payload, max_output_size=raw_length)
        except zstandard.ZstdError as exc:
            raise IntegrityError(f"{what} cannot be decompressed: {exc}") from None
    else:
        data = payload
    if len(data) != raw_length or (check_id and crypto.blob_id(key, data) != blob_id):
        raise IntegrityError(f"{what} does not match its id")
    return data


class PackEntry(NamedTuple):
    """One blob inside a pack."""

    type: int
    flags: int
    id: bytes
    offset: int
    length: int
    raw_length: int


def blob_ad(blob_type: int, blob_id: bytes) -> bytes:
    return bytes([blob_type]) + blob_id


@dataclass
class FinishedPack:
    """A pack ready to be stored."""

    id: str
    parts: list[bytes]  # the file's bytes in order (not joined: saves a 16 MiB copy)
    size: int
    entries: list[PackEntry]
    #: Set when a backup worker already wrote the pack under this temporary name
    #: (``Backend.stage``); it then only needs ``Backend.commit``.
    staged: str | None = None


class Sealer(Protocol):
    """Anything that encrypts a pack header (:class:`~praxisbackup.engine.crypto.Cipher`)."""

    def seal(self, plaintext: bytes | memoryview, ad: bytes) -> bytes: ...


class PackBuilder:
    """Collects sealed blobs and produces a pack file."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._entries: list[PackEntry] = []
        self.size = 0

    def __len__(self) -> int:
        return len(self._entries)

    def add(
        self, blob_type: int, flags: int, blob_id: bytes, sealed: bytes, raw_length: int
    ) -> None:
        self._entries.append(
            PackEntry(blob_type, flags, blob_id, self.size, len(sealed), raw_length)
        )
        self._parts.append(sealed)
        self.size += len(sealed)

    def add_parts(
        self,
        blob_type: int,
        flags: int,
        blob_id: bytes,
        parts: Sequence[bytes],
        raw_length: int,
    ) -> None:
        """Like :meth:`add`, for a sealed blob given in pieces (nonce, ciphertext): saves
        joining them."""
        length = sum(len(p) for p in parts)
        self._entries.append(PackEntry(blob_type, flags, blob_id, self.size, length, raw_length))
        self._parts.extend(parts)
        self.size += length

    def finish(self, cipher: Cipher | Sealer) -> FinishedPack:
        header = bytearray(_COUNT.pack(HEADER_MAGIC, HEADER_VERSION, len(self._entries)))
        for e in self._entries:
            header += _ENTRY.pack(e.type, e.flags, e.id, e.length, e.raw_length)
        sealed_header = cipher.seal(bytes(header), HEADER_AD)
        self._parts.append(sealed_header)
        self._parts.append(_TRAILER.pack(len(sealed_header)))
        parts, self._parts = self._parts, []
        hasher = blake3.blake3()
        for part in parts:
            hasher.update(part)
        size = self.size + len(sealed_header) + _TRAILER.size
        return FinishedPack(hasher.hexdigest(), parts, size, self._entries)


def header_span(pack_size: int, trailer: bytes | memoryview, what: str) -> tuple[int, int]:
    """(offset, length) of the sealed header, from the pack size and its last 4 bytes."""
    if pack_size < _TRAILER.size + OVERHEAD or len(trailer) != _TRAILER.size:
        raise IntegrityError(f"{what} is too short to be a pack")
    (length,) = _TRAILER.unpack(trailer)
    if length < OVERHEAD or length > MAX_HEADER or length > pack_size - _TRAILER.size:
        raise IntegrityError(f"{what} has an invalid header length {length}")
    return pack_size - _TRAILER.size - length, length


def parse_header(
    cipher: Cipher, sealed_header: bytes | memoryview, header_offset: int, what: str
) -> list[PackEntry]:
    """Decrypt and parse a pack header; check that the blobs exactly fill the space before it."""
    header = cipher.open(sealed_header, HEADER_AD, f"header of {what}")
    if len(header) < _COUNT.size:
        raise IntegrityError(f"header of {what} is truncated")
    magic, version, count = _COUNT.unpack_from(header)
    if magic != HEADER_MAGIC or version != HEADER_VERSION:
        raise IntegrityError(f"header of {what} has an unknown format")
    if len(header) != _COUNT.size + count * _ENTRY.size:
        raise IntegrityError(f"header of {what} has a wrong length for {count} entries")
    entries = []
    offset = 0
    for i in range(count):
        btype, flags, bid, length, raw_length = _ENTRY.unpack_from(
            header, _COUNT.size + i * _ENTRY.size
        )
        if btype not in BLOB_TYPES or length < OVERHEAD:
            raise IntegrityError(f"header of {what} has an invalid entry {i}")
        entries.append(PackEntry(btype, flags, bid, offset, length, raw_length))
        offset += length
    if offset != header_offset:
        raise IntegrityError(f"header of {what} does not match the pack's size")
    return entries


def parse_pack(cipher: Cipher, data: bytes | memoryview, what: str) -> list[PackEntry]:
    """Parse the header of a whole pack held in memory."""
    offset, length = header_span(len(data), data[-_TRAILER.size :], what)
    return parse_header(cipher, data[offset : offset + length], offset, what)


TRAILER_SIZE = _TRAILER.size
