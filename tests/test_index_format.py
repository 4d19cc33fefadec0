"""The index file payload (engine/index.py): what is written reads back the same, and every
inconsistency is an IntegrityError naming the file - never an exception from deep inside."""

from __future__ import annotations

import pytest

from praxisbackup.engine.index import Index, IndexFile, PackRecord, decode_index, encode_index
from praxisbackup.engine.pack import COMPRESSED, DATA, TREE, PackEntry
from praxisbackup.errors import IntegrityError

_HEAD = 4 + 1 + 4 + 32 + 4  # magic, version, one superseded file, pack count
_PACK = 32 + 8 + 4
_BLOB = 1 + 1 + 32 + 4 + 4 + 4


def _doc() -> IndexFile:
    first = PackRecord(
        "aa" * 32,
        1000,
        [
            PackEntry(DATA, COMPRESSED, b"\x01" * 32, 0, 400, 900),
            PackEntry(TREE, 0, b"\x02" * 32, 400, 600, 580),
        ],
    )
    second = PackRecord("bb" * 32, 50, [PackEntry(DATA, 0, b"\x03" * 32, 10, 40, 12)])
    return IndexFile(["cc" * 32], [first, second])


def test_an_index_file_reads_back_as_written() -> None:
    doc = _doc()
    assert decode_index(encode_index(doc), "index x") == doc
    index = Index()
    for pack in doc.packs:
        index.add_pack(pack.pack_id, pack.size, pack.entries)
    loc = index.lookup(DATA, b"\x01" * 32)
    assert loc is not None
    assert (loc.pack_id, loc.offset, loc.length, loc.raw_length, loc.compressed) == (
        "aa" * 32,
        0,
        400,
        900,
        True,
    )
    assert index.lookup(TREE, b"\x02" * 32) == ("aa" * 32, 400, 600, 580, False)
    assert index.lookup(DATA, b"\x03" * 32) == ("bb" * 32, 10, 40, 12, False)


def _damaged(how: str) -> bytes:
    raw = bytearray(encode_index(_doc()))
    first_blob = _HEAD + _PACK
    if how == "unknown blob type":
        raw[first_blob] = 7
    elif how == "blob beyond its pack":
        second_pack_blob = first_blob + 2 * _BLOB + _PACK
        raw[second_pack_blob + 34 : second_pack_blob + 38] = (41).to_bytes(4, "little")
    elif how == "cut inside the blobs":
        del raw[first_blob + _BLOB + 5 :]
    elif how == "cut inside a pack record":
        del raw[first_blob + 2 * _BLOB + 7 :]
    else:  # trailing bytes
        raw += b"\x00"
    return bytes(raw)


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("unknown blob type", "index x has an invalid blob entry"),
        ("blob beyond its pack", "index x has an invalid blob entry"),
        ("cut inside the blobs", "index x is truncated"),
        ("cut inside a pack record", "index x is truncated"),
        ("trailing bytes", "index x has trailing bytes"),
    ],
)
def test_a_damaged_index_file_is_named(how: str, message: str) -> None:
    with pytest.raises(IntegrityError) as caught:
        decode_index(_damaged(how), "index x")
    assert str(caught.value) == message
