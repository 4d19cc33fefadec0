"""Encrypted single-file objects: config, index files, snapshots and locks.

File layout (all integers little-endian)::

    version  u8   = 1
    kind     u8   (1 config, 2 index, 3 snapshot, 4 lock, 5 meta document)
    sealed        nonce(12) || AES-256-GCM(zstd(payload)) || tag(16)
                  associated data = b"praxisbackup object" || version || kind
"""

from __future__ import annotations

import enum
import threading

import zstandard

from praxisbackup.engine.crypto import Cipher
from praxisbackup.errors import IntegrityError

OBJECT_VERSION = 1
#: Upper bound for a decompressed object, so a malformed frame cannot exhaust memory.
MAX_OBJECT_SIZE = 1 << 31


class ObjectKind(enum.IntEnum):
    CONFIG = 1
    INDEX = 2
    SNAPSHOT = 3
    LOCK = 4
    META = 5


_local = threading.local()


def _compressor() -> zstandard.ZstdCompressor:
    comp = getattr(_local, "obj_compressor", None)
    if comp is None:
        comp = zstandard.ZstdCompressor(level=6, write_content_size=True)
        _local.obj_compressor = comp
    return comp


def decompressor() -> zstandard.ZstdDecompressor:
    """This thread's zstd decompressor (the objects are not thread-safe; reuse saves setup)."""
    dec = getattr(_local, "decompressor", None)
    if dec is None:
        dec = zstandard.ZstdDecompressor()
        _local.decompressor = dec
    return dec


def _ad(kind: ObjectKind) -> bytes:
    return b"praxisbackup object" + bytes([OBJECT_VERSION, kind])


def seal_object(cipher: Cipher, kind: ObjectKind, payload: bytes) -> bytes:
    """Compress and encrypt an object's payload into its file bytes."""
    header = bytes([OBJECT_VERSION, kind])
    return header + cipher.seal(_compressor().compress(payload), _ad(kind))


def open_object(cipher: Cipher, raw: bytes, kind: ObjectKind, what: str) -> bytes:
    """Authenticate, decrypt and decompress an object; every failure is an IntegrityError."""
    if len(raw) < 2:
        raise IntegrityError(f"{what} is truncated")
    if raw[0] != OBJECT_VERSION:
        raise IntegrityError(f"{what} has unknown format version {raw[0]}")
    if raw[1] != kind:
        raise IntegrityError(f"{what} is not a {kind.name.lower()} object")
    compressed = cipher.open(memoryview(raw)[2:], _ad(kind), what)
    try:
        return bytes(decompressor().decompress(compressed, max_output_size=MAX_OBJECT_SIZE))
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"{what} cannot be decompressed: {exc}") from None
