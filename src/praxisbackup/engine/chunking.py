"""Content-defined chunking.

FastCDC cuts where a rolling gear hash of the content matches a mask, so an insertion or an
in-place change in a large database file moves only the boundaries near it. The gear table is
XOR-ed with a per-repository secret seed (stored in the encrypted config): without the key,
chunk boundaries do not reveal which known files are in the repository.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import pyfastcdc


@dataclass(frozen=True)
class ChunkerParams:
    """Chunk size bounds; FastCDC's effective average is ``avg + min``."""

    min_size: int = 256 * 1024
    avg_size: int = 768 * 1024
    max_size: int = 4 * 1024 * 1024
    seed: int = 0


class Chunker:
    """Splits streams into chunks. One instance per thread (pyfastcdc objects are not shared)."""

    def __init__(self, params: ChunkerParams) -> None:
        self._cdc = pyfastcdc.FastCDC(
            params.avg_size,
            min_size=params.min_size,
            max_size=params.max_size,
            normalized_chunking=1,
            seed=params.seed,
        )
        self.params = params

    def chunks(self, stream: BinaryIO) -> Iterator[bytes]:
        """Yield the chunks of a stream as independent ``bytes`` objects."""
        for chunk in self._cdc.cut_stream(stream):
            yield bytes(chunk.data)

    def views(self, stream: BinaryIO) -> Iterator[memoryview]:
        """Like :meth:`chunks` without the copy: each view is valid only until the next one
        is requested (it points into the chunker's read buffer)."""
        for chunk in self._cdc.cut_stream(stream):
            yield chunk.data

    def cuts(self, data: bytes | memoryview) -> Iterator[pyfastcdc.Chunk]:
        """FastCDC's chunks of a buffer (each with its offset and length), the last ending
        where the buffer does: for a reader that carries that tail in front of its next
        block (:mod:`sourceread`)."""
        return self._cdc.cut_buf(data)

    def views_of(self, data: bytes) -> Iterator[bytes | memoryview]:
        """Like :meth:`chunks_of` without copies (views into ``data``)."""
        if len(data) <= self.params.min_size:
            if data:
                yield data
            return
        for chunk in self._cdc.cut_buf(data):
            yield chunk.data

    def chunks_of(self, data: bytes) -> Iterator[bytes]:
        """Chunk an in-memory buffer (small files)."""
        if len(data) <= self.params.min_size:
            if data:
                yield data
            return
        for chunk in self._cdc.cut_buf(data):
            yield bytes(chunk.data)
