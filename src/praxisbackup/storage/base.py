"""The backend interface (see package docstring)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from praxisbackup.platform import ReadBuffer

#: Namespaces of a repository. ``config`` holds the single object named ``config``; ``meta``
#: holds named encrypted documents (run protocols, the media register copy, drill results).
KINDS = ("config", "keys", "data", "index", "snapshots", "locks", "meta")


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object as listed by a backend."""

    name: str
    size: int


class Backend(Protocol):
    """Minimal storage operations the engine needs."""

    @property
    def location(self) -> str:
        """Human-readable location, used in messages."""
        ...

    def create(self) -> None:
        """Create the empty repository layout; fail if something is already there."""
        ...

    def is_repository(self) -> bool:
        """True if a repository config object exists at this location."""
        ...

    def list(self, kind: str) -> Iterator[ObjectInfo]:
        """List complete objects of a kind (temporary files are never listed)."""
        ...

    def read(self, kind: str, name: str) -> bytes:
        """Read a whole object."""
        ...

    def read_range(self, kind: str, name: str, offset: int, length: int) -> bytes:
        """Read part of an object; a short read is an error."""
        ...

    def read_ranges(
        self,
        kind: str,
        name: str,
        ranges: Sequence[tuple[int, int]],
        buffer: ReadBuffer | None = None,
    ) -> Sequence[bytes | memoryview]:
        """Several (offset, length) parts of one object, in the order given, with as few reads
        as the medium allows (a restore reads each pack once). With a ``buffer`` the parts may
        be views into it, valid until the buffer is used again."""
        ...

    def read_uncached(
        self, kind: str, name: str, buffer: ReadBuffer | None = None, size: int | None = None
    ) -> bytes | memoryview:
        """Read a whole object from the medium itself, bypassing the OS page cache if possible
        (into ``buffer`` if given: then a view, valid until the buffer is used again). With
        ``size``, an object of another size is an error before anything is read."""
        ...

    def write(self, kind: str, name: str, data: bytes | Sequence[bytes]) -> None:
        """Store an object atomically and durably (temp file, fsync, rename, dir fsync).

        ``data`` may be a sequence of parts, written in order (avoids joining large packs)."""
        ...

    def stage(self, kind: str, name: str, data: bytes | Sequence[bytes]) -> str:
        """Write the data durably under a temporary name (never listed); returns that name.
        ``stage`` + ``commit`` is ``write`` split in two: a backup worker process stages a
        pack, the process that indexes it commits it."""
        ...

    def commit(self, kind: str, name: str, staged: str) -> None:
        """Give a staged object its name, atomically and durably."""
        ...

    def delete(self, kind: str, name: str) -> None:
        """Remove an object; removing a missing object is not an error."""
        ...

    def size(self, kind: str, name: str) -> int:
        """Size of an object in bytes."""
        ...

    def clean_temporary(self, older_than_seconds: float) -> int:
        """Remove leftovers of interrupted writes; return how many were removed."""
        ...

    def free_space(self) -> int | None:
        """Free bytes on the medium, or None if unknown."""
        ...

    def close(self) -> None:
        """Release cached handles."""
        ...
