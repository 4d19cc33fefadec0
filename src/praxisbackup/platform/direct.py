"""Reading a whole file past the operating system's cache.

``check --read-data`` wants the medium's own bytes rather than the page cache's: a pack written
minutes ago may still be cached, so a plain read would prove nothing about the disk. A direct
read also spares the kernel's cache bookkeeping (about 0.4 CPU-seconds per GB on the bench
machine, against under 0.1).

Packs are written the same way (:func:`write_direct`): a backup writes 1.4 GB of packs for the
bench's 3 GB, and through the cache each byte is copied, its page written back by the kernel's
flusher and then kept, evicting the server's working set. Measured writing and syncing 90
packs of 16 MiB: 1.2-3.7 s of system time through the cache, 0.2 s direct (plus 0.2-0.3 s of
copying into the aligned buffer here).

A backup reads its large source files the same way when they are not cached
(:func:`switch_to_direct`, used by :mod:`praxisbackup.engine.sourceread`): through the cache
the kernel would copy every byte and allocate, and then free again, a page per 4 KiB.

Linux opens such files with ``O_DIRECT``: the disk transfers straight into a page-aligned
buffer. That needs offsets and lengths in whole blocks, so a :class:`ReadBuffer` is an
anonymous mapping (page-aligned) rounded up to :data:`ALIGN`. Where ``O_DIRECT`` is missing
(Windows, macOS) or refused (older tmpfs, some network and FUSE file systems: ``EINVAL``),
:func:`read_direct` answers None and the caller reads normally.
"""

from __future__ import annotations

import errno
import functools
import mmap
import os
import stat
import sys
from collections.abc import Callable, Sequence

#: Offsets and lengths of direct reads are multiples of this (the largest common block size).
ALIGN = 4096
_O_DIRECT = getattr(os, "O_DIRECT", 0)
_RWF_NOWAIT = getattr(os, "RWF_NOWAIT", 0)
#: A repository object is opened without following a link and without waiting for a writer:
#: a pack swapped for a FIFO during a check hung it, one swapped for a link to /dev/zero was
#: read without end (found by an outsider).
_SAFE_READ = (
    os.O_RDONLY
    | getattr(os, "O_BINARY", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
)


def open_regular(path: str, size: int | None = None) -> int:
    """Open a file for reading - a regular file only (else OSError, "not a regular file"),
    never a link as the last component, never waiting on a FIFO; with ``size``, only a file
    of that many bytes (a file swapped for a huge one is not read)."""
    fd = os.open(path, _SAFE_READ)
    _check_regular(fd, path, size)
    return fd


def _check_regular(fd: int, path: str, size: int | None) -> int:
    """The open file's size, if it is a regular file of ``size`` bytes (when given); else it
    is closed and OSError raised."""
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        if size is not None and st.st_size != size:
            raise OSError(errno.EINVAL, f"{st.st_size} bytes instead of {size}", path)
    except BaseException:
        os.close(fd)
        raise
    return st.st_size


class ReadBuffer:
    """A reusable page-aligned buffer for whole-file reads; it grows as needed and keeps its
    size (a view it gave is valid until the next :meth:`view`)."""

    def __init__(self) -> None:
        self._map: mmap.mmap | None = None

    def view(self, size: int) -> memoryview:
        """A writable view of at least ``size`` bytes, rounded up to whole blocks."""
        size = max(ALIGN, -(-size // ALIGN) * ALIGN)
        if self._map is None or len(self._map) < size:
            if self._map is not None:
                self._map.close()
            self._map = mmap.mmap(-1, size)
        return memoryview(self._map)[:size]


def open_direct(path: str, size: int | None = None) -> tuple[int, int] | None:
    """A regular file opened for direct reads, and its size (see :func:`open_regular`); None
    if this system or file system cannot read it so (then open it normally)."""
    if not _O_DIRECT:
        return None
    try:
        fd = os.open(path, _SAFE_READ | _O_DIRECT)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            return None
        raise
    return fd, _check_regular(fd, path, size)


def read_aligned(fd: int, view: memoryview, offset: int) -> int:
    """Read into ``view`` (aligned, whole blocks) from the aligned ``offset`` of a file opened
    for direct reads, until it is full or the file ends; the bytes read. ``EINVAL`` means the
    file system cannot after all: read normally."""
    got = 0
    while got < len(view):
        n = os.preadv(fd, [view[got:]], offset + got)
        got += n
        if n == 0 or got % ALIGN:
            break  # the end of the file (it ends inside a block)
    return got


def read_direct(path: str, buffer: ReadBuffer, size: int | None = None) -> memoryview | None:
    """The whole file, read from the medium past the cache into ``buffer``; None if this
    system or file system cannot (or if the file changed size meanwhile): then read it
    normally. Other errors (missing file, I/O error, not a regular file, not ``size`` bytes
    long) are raised as they are."""
    opened = open_direct(path, size)
    if opened is None:
        return None
    fd, size = opened
    try:
        view = buffer.view(size + 1)  # one byte more: a file that grew is noticed
        try:
            got = read_aligned(fd, view, 0)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                return None
            raise
        return view[:got] if got == size else None
    finally:
        os.close(fd)


def can_switch() -> bool:
    """Whether :func:`switch_to_direct` can ever say yes here (Linux)."""
    return bool(_O_DIRECT and _RWF_NOWAIT and hasattr(os, "preadv"))


def switch_to_direct(fd: int) -> bool:
    """Switch an open file to direct reads - unless its first page is in the page cache (a
    database the server has just written: memory is faster than any disk) or its file system
    refuses. Whether it did. Reads must then be aligned (:data:`ALIGN`); an ``EINVAL`` from
    one means: :func:`switch_to_cached` and read again."""
    if not can_switch():
        return False
    probe = bytearray(1)
    try:
        os.preadv(fd, [probe], 0, _RWF_NOWAIT)
    except BlockingIOError:
        pass  # not in the cache: from the disk, direct
    except OSError:
        return False  # the file system cannot tell: through the cache, as always
    else:
        return False  # in the cache (or empty)
    try:
        _set_direct(fd, True)
    except OSError:
        return False  # tmpfs and others refuse O_DIRECT
    return True


def switch_to_cached(fd: int) -> None:
    """Back to reads through the page cache."""
    _set_direct(fd, False)


def _set_direct(fd: int, on: bool) -> None:
    import fcntl  # noqa: PLC0415 - POSIX only; this module is imported everywhere

    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags | _O_DIRECT if on else flags & ~_O_DIRECT)


#: Direct writes go through an aligned buffer of this size (a pack is copied into it in turn;
#: small, because every writing thread keeps one).
WRITE_BLOCK = 1 << 20


def write_direct(fd: int, parts: Sequence[bytes | memoryview], buffer: ReadBuffer) -> bool:
    """Write ``parts`` in order from the start of the empty file ``fd``, past the page cache;
    False if this system or file system cannot (then nothing is left written: write it
    normally). The file is not synced, and stays switched to direct writes (the caller syncs
    and closes it). Other errors (a full medium) are raised."""
    if not can_switch():
        return False
    try:
        _set_direct(fd, True)
    except OSError:
        return False
    try:
        _write_blocks(fd, parts, buffer.view(WRITE_BLOCK))
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        _set_direct(fd, False)  # accepted on open, refused on write (some FUSE mounts)
        os.ftruncate(fd, 0)
        return False
    return True


def _write_blocks(fd: int, parts: Sequence[bytes | memoryview], block: memoryview) -> None:
    """Copy the parts into ``block`` and write each full block; the last one is written
    padded to whole sectors and the file cut back to its size."""
    filled = offset = 0
    for part in parts:
        view = memoryview(part)
        while view:
            n = min(len(view), len(block) - filled)
            block[filled : filled + n] = view[:n]
            filled += n
            view = view[n:]
            if filled == len(block):
                _pwrite_all(fd, block, offset)
                offset += filled
                filled = 0
    if filled:
        padded = -(-filled // ALIGN) * ALIGN
        block[filled:padded] = bytes(padded - filled)
        _pwrite_all(fd, block[:padded], offset)
        os.ftruncate(fd, offset + filled)


def _pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done:], offset + done)


#: File systems (``statfs`` magic numbers) whose direct writes may come in any order and leave
#: holes: ext2/3/4, xfs, btrfs, f2fs, bcachefs.
WRITES_ANYWHERE = frozenset({0xEF53, 0x58465342, 0x9123683E, 0xF2F52010, 0xCA451A4E})


def file_system_type(fd: int) -> int | None:
    """The ``statfs`` type of the file system ``fd`` lies on (Linux), else None."""
    fstatfs = _fstatfs()
    if fstatfs is None:
        return None
    import ctypes  # noqa: PLC0415 - loaded by _fstatfs already

    buf = ctypes.create_string_buffer(256)  # struct statfs: 120 bytes on 64-bit Linux
    if fstatfs(fd, buf) != 0:
        return None
    kind: int = ctypes.c_long.from_buffer(buf).value  # f_type, the first field (a long)
    return kind & 0xFFFFFFFF


@functools.cache
def _fstatfs() -> Callable[..., int] | None:
    """The C library's ``fstatfs`` (Linux), looked up once: every large restored file asks
    (:meth:`DirectFile.start`)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # noqa: PLC0415 - Linux only, and only for large restored files

    try:
        fstatfs: Callable[..., int] = ctypes.CDLL(None, use_errno=True).fstatfs
    except (OSError, AttributeError):  # pragma: no cover - another C library
        return None
    return fstatfs


class DirectRefused(OSError):
    """The file system accepted ``O_DIRECT`` on the file but refused a direct write: the
    caller writes the same data again through the cache (:meth:`DirectFile.give_up`)."""


class DirectFile:
    """Pieces of one new file written at any offsets, in any order, past the page cache.

    A restore writes a file's chunks where they belong as their packs are read, and chunk
    edges fall anywhere. A direct write needs whole blocks, so the whole blocks inside a piece
    are written at once (:meth:`write_aligned`) and the bytes at its edges are kept in a block
    of memory until the neighbouring pieces have filled it; the file's last block is written
    padded and cut back by the caller (``ftruncate`` to the size). Edges still open at the end
    (a chunk that could not be read, a hole) are written with zeros where nothing came
    (:meth:`finish`).

    Not thread-safe: the caller writes one piece at a time (a lock per file). ``block`` is an
    aligned buffer of whole blocks, the writing thread's own.
    """

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.size = size
        #: The end of the last byte written (the padded last block can lie beyond ``size``).
        self.end = 0
        #: Partly filled blocks: block number -> (its bytes, how many of them have come).
        self._edges: dict[int, tuple[bytearray, int]] = {}

    @classmethod
    def start(cls, fd: int, size: int) -> DirectFile | None:
        """Switch ``fd`` (a new, empty file) to direct writes; None where this system or file
        system cannot or should not (write through the cache): only on the local file systems
        of :data:`WRITES_ANYWHERE`. FAT through FUSE refuses a write beyond a hole with
        ``EPERM`` (found by an outsider), which no caller could tell from a real error."""
        if not can_switch() or file_system_type(fd) not in WRITES_ANYWHERE:
            return None
        try:
            _set_direct(fd, True)
        except OSError:
            return None
        return cls(fd, size)

    def absorb(
        self, offset: int, data: bytes | memoryview, block: memoryview
    ) -> tuple[int, memoryview]:
        """Take the edges of the piece at ``offset`` (writing every block they complete); the
        aligned offset and view of its whole blocks, for :meth:`write_aligned`."""
        view = memoryview(data)
        end = offset + len(view)
        low = -(-offset // ALIGN) * ALIGN
        high = end // ALIGN * ALIGN
        if low >= high:  # no whole block inside: all of it is edge
            self._edge(offset, view, block)
            return offset, view[:0]
        self._edge(offset, view[: low - offset], block)
        self._edge(high, view[high - offset :], block)
        return low, view[low - offset : high - offset]

    def write_aligned(self, offset: int, view: memoryview, block: memoryview) -> None:
        """Write whole blocks at an aligned offset, through ``block`` in turn."""
        done = 0
        while done < len(view):
            n = min(len(view) - done, len(block))
            block[:n] = view[done : done + n]
            self._pwrite(block[:n], offset + done)
            done += n

    def finish(self, block: memoryview) -> None:
        """Write the edges still open (zeros where nothing came)."""
        for number in sorted(self._edges):
            self._write_edge(number, self._edges[number][0], block)
            del self._edges[number]

    def give_up(self) -> None:
        """Back to writes through the cache (after :class:`DirectRefused`): the edges kept so
        far are written normally; the caller then writes the refused piece normally."""
        _set_direct(self.fd, False)
        for number in sorted(self._edges):
            data, _filled = self._edges.pop(number)
            start = number * ALIGN
            _pwrite_all(self.fd, memoryview(data)[: min(ALIGN, self.size - start)], start)

    def _edge(self, offset: int, view: memoryview, block: memoryview) -> None:
        while view:
            number, start = divmod(offset, ALIGN)
            n = min(len(view), ALIGN - start)
            data, filled = self._edges.get(number) or (bytearray(ALIGN), 0)
            data[start : start + n] = view[:n]
            self._edges[number] = (data, filled + n)  # kept until written (give_up)
            if filled + n >= min(ALIGN, self.size - number * ALIGN):
                self._write_edge(number, data, block)
                del self._edges[number]
            offset += n
            view = view[n:]

    def _write_edge(self, number: int, data: bytearray, block: memoryview) -> None:
        block[:ALIGN] = data
        self._pwrite(block[:ALIGN], number * ALIGN)

    def _pwrite(self, view: memoryview, offset: int) -> None:
        try:
            _pwrite_all(self.fd, view, offset)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise DirectRefused(errno.EINVAL, "direct writes refused") from exc
            raise
        self.end = max(self.end, offset + len(view))
