"""A repository in a local folder: USB disk, mounted NAS share, or any mounted file system.

Layout::

    <root>/config
    <root>/keys/<id>
    <root>/data/<first two hex digits>/<id>
    <root>/index/<id>
    <root>/snapshots/<id>
    <root>/locks/<id>

A write goes to ``<dir>/.tmp-<random>``, is fsynced, renamed to its final name, and the
directory is fsynced, so a crash leaves either the complete object or an ignorable temp file.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence

from praxisbackup import platform
from praxisbackup.errors import RepositoryNotFoundError, StorageError
from praxisbackup.platform import ReadBuffer
from praxisbackup.storage.base import KINDS, ObjectInfo

TEMP_PREFIX = ".tmp-"
_OPEN_FLAGS_WRITE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
_MAX_CACHED_HANDLES = 64
#: read_ranges reads across gaps up to this size rather than issuing another read.
SPAN_GAP = 1 << 20
#: Parts of an object read together: (start, end, indexes of the ranges inside).
_Spans = list[tuple[int, int, list[int]]]
#: The ranges' views, in their order (None until read).
_Parts = list[memoryview | None]
#: Objects this large (packs) are written past the page cache where the medium allows
#: (:func:`praxisbackup.platform.write_direct`); small ones (index, snapshots) through it.
DIRECT_WRITE = 1 << 20


def describe_os_error(exc: OSError) -> str:
    """A short, specific explanation for common medium errors."""
    if exc.errno == errno.ENOSPC:
        return "the backup medium is full"
    if exc.errno == errno.EROFS:
        return "the backup medium is read-only"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "access to the backup medium was denied"
    if exc.errno == errno.ENOENT:
        return "the file or folder is missing on the backup medium (was the medium removed?)"
    if exc.errno == errno.EIO:
        return "the backup medium reported an input/output error"
    return exc.strerror or str(exc)


class _HandleCache:
    """Open read handles shared by threads, with reference counts.

    A handle is closed only when no thread uses it: closing a descriptor another thread is
    reading from would let the number be reused by the next open, and that thread would read
    another file's bytes.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._entries: collections.OrderedDict[str, list[int]] = collections.OrderedDict()
        self._doomed: dict[int, list[int]] = {}

    @contextlib.contextmanager
    def use(self, path: str) -> Iterator[int]:
        with self._lock:
            entry = self._entries.get(path)
            if entry is None:
                entry = [platform.open_regular(path), 0]
                self._entries[path] = entry
            else:
                self._entries.move_to_end(path)
            entry[1] += 1
            self._evict()
        try:
            yield entry[0]
        finally:
            with self._lock:
                entry[1] -= 1
                if entry[1] == 0 and self._doomed.pop(entry[0], None) is not None:
                    os.close(entry[0])
                self._evict()

    def _evict(self) -> None:
        if len(self._entries) <= self._limit:
            return
        for path in list(self._entries):
            if len(self._entries) <= self._limit:
                return
            entry = self._entries[path]
            if entry[1] == 0:
                del self._entries[path]
                os.close(entry[0])

    def forget(self, path: str) -> None:
        """Drop the handle of a file being deleted (closed now, or when its last user is done)."""
        with self._lock:
            entry = self._entries.pop(path, None)
            if entry is None:
                return
            if entry[1] == 0:
                os.close(entry[0])
            else:
                self._doomed[entry[0]] = entry

    def close_all(self) -> None:
        with self._lock:
            for fd, _refs in self._entries.values():
                os.close(fd)
            self._entries.clear()


def _read_spans(
    fd: int,
    spans: _Spans,
    ranges: Sequence[tuple[int, int]],
    buffer: ReadBuffer | None,
    align: int,
    read_into: Callable[[int, memoryview, int], int],
) -> _Parts:
    """The ranges' views, each span read with one ``read_into`` call: widened to whole blocks
    of ``align`` bytes (direct reads) and read into ``buffer`` (a fresh one without)."""
    widened = [
        (start - start % align, -(-end // align) * align, parts) for start, end, parts in spans
    ]
    total = sum(end - start for start, end, _ in widened)
    region = memoryview(bytearray(total)) if buffer is None else buffer.view(total)
    out: _Parts = [None] * len(ranges)
    used = 0
    for start, end, parts in widened:
        view = region[used : used + end - start]
        view = view[: read_into(fd, view, start)]
        used += end - start
        for k in parts:  # (a short read leaves a part short, which the caller reports)
            offset, length = ranges[k]
            out[k] = view[offset - start : offset - start + length]
    return out


class LocalBackend:
    """Backend for a folder on a mounted file system."""

    def __init__(self, root: str) -> None:
        if "\x00" in root:
            raise RepositoryNotFoundError(f"{root!r} is not a valid folder name (NUL character)")
        self._root = os.path.abspath(root)
        # (an eighth of the process's file limit at most: restores hold many folders open)
        self._handles = _HandleCache(
            max(4, min(_MAX_CACHED_HANDLES, platform.open_file_limit() // 8))
        )
        #: Each writing thread's aligned buffer for direct writes (made at its first pack).
        self._buffers = threading.local()

    @property
    def location(self) -> str:
        return self._root

    # -- paths -------------------------------------------------------------------------------
    def _dir(self, kind: str, name: str) -> str:
        if kind not in KINDS:
            raise ValueError(f"unknown object kind {kind!r}")
        if kind == "config":
            return self._root
        if kind == "data":
            return os.path.join(self._root, "data", name[:2])
        return os.path.join(self._root, kind)

    def _path(self, kind: str, name: str) -> str:
        if kind == "config":
            return os.path.join(self._root, "config")
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise ValueError(f"invalid object name {name!r}")
        return os.path.join(self._dir(kind, name), name)

    def _error(self, action: str, kind: str, name: str, exc: OSError) -> StorageError:
        if exc.errno == errno.ENOENT and not os.path.isdir(self._root):
            return RepositoryNotFoundError(
                f"the repository folder {self._root} does not exist (is the medium attached?)"
            )
        return StorageError(
            f"cannot {action} {kind}/{name} in {self._root}: {describe_os_error(exc)}"
        )

    # -- layout ------------------------------------------------------------------------------
    def create(self) -> None:
        try:
            os.makedirs(self._root, exist_ok=True)
            if os.path.exists(os.path.join(self._root, "config")):
                raise StorageError(f"{self._root} already holds a repository")
            for kind in KINDS:
                if kind != "config":
                    os.makedirs(os.path.join(self._root, kind), exist_ok=True)
            for i in range(256):
                os.makedirs(os.path.join(self._root, "data", f"{i:02x}"), exist_ok=True)
            platform.fsync_directory(self._root)
        except OSError as exc:
            raise StorageError(
                f"cannot create a repository in {self._root}: {describe_os_error(exc)}"
            ) from exc

    def is_repository(self) -> bool:
        return os.path.isfile(os.path.join(self._root, "config"))

    # -- reading -----------------------------------------------------------------------------
    def list(self, kind: str) -> Iterator[ObjectInfo]:
        if kind == "config":
            if self.is_repository():
                yield ObjectInfo("config", os.path.getsize(os.path.join(self._root, "config")))
            return
        base = os.path.join(self._root, kind)
        dirs = [base]
        if kind == "data":
            try:
                dirs = sorted(e.path for e in os.scandir(base) if e.is_dir(follow_symlinks=False))
            except OSError as exc:
                raise self._error("list", kind, "", exc) from exc
        for directory in dirs:
            try:
                entries = list(os.scandir(directory))
            except FileNotFoundError:
                if kind != "data" and not os.path.isdir(self._root):
                    raise RepositoryNotFoundError(
                        f"the repository folder {self._root} does not exist"
                    ) from None
                continue
            except OSError as exc:
                raise self._error("list", kind, "", exc) from exc
            for entry in entries:
                if entry.name.startswith(TEMP_PREFIX) or not entry.is_file(follow_symlinks=False):
                    continue
                if kind == "data" and entry.name[:2] != os.path.basename(directory):
                    continue  # misfiled: unreachable by its name (removed by clean_temporary)
                try:
                    size = entry.stat(follow_symlinks=False).st_size
                except FileNotFoundError:
                    continue  # deleted between listing and stat (prune)
                yield ObjectInfo(entry.name, size)

    def read(self, kind: str, name: str) -> bytes:
        path = self._path(kind, name)
        try:
            with open(platform.open_regular(path), "rb") as fh:
                return fh.read()
        except OSError as exc:
            raise self._error("read", kind, name, exc) from exc

    def read_range(self, kind: str, name: str, offset: int, length: int) -> bytes:
        path = self._path(kind, name)
        try:
            with self._handles.use(path) as fd:
                data = platform.pread(fd, length, offset)
        except OSError as exc:
            raise self._error("read", kind, name, exc) from exc
        if len(data) != length:
            raise StorageError(
                f"{kind}/{name} in {self._root} is shorter than expected "
                f"(wanted {length} bytes at offset {offset}, got {len(data)})"
            )
        return data

    def read_ranges(
        self,
        kind: str,
        name: str,
        ranges: Sequence[tuple[int, int]],
        buffer: ReadBuffer | None = None,
    ) -> Sequence[memoryview]:
        """Several (offset, length) parts of one object, in the order given, read with as few
        calls as possible: ranges no more than :data:`SPAN_GAP` apart share one read. With a
        ``buffer`` the parts are views into it, valid until its next use, and they are read
        past the page cache where the medium allows (a restore reads each pack once: through
        the cache the kernel would copy every byte and keep 1.4 GB of packs in memory)."""
        if not ranges:
            return []
        order = sorted(range(len(ranges)), key=lambda i: ranges[i][0])
        spans: _Spans = []
        i = 0
        while i < len(order):
            start = ranges[order[i]][0]
            end = start + ranges[order[i]][1]
            j = i + 1
            while j < len(order) and ranges[order[j]][0] <= end + SPAN_GAP:
                end = max(end, ranges[order[j]][0] + ranges[order[j]][1])
                j += 1
            spans.append((start, end, order[i:j]))
            i = j
        path = self._path(kind, name)
        try:
            out = None
            opened = None if buffer is None else platform.open_direct(path)
            if opened is not None:
                try:
                    out = _read_spans(
                        opened[0], spans, ranges, buffer, platform.ALIGN, platform.read_aligned
                    )
                except OSError as exc:
                    if exc.errno != errno.EINVAL:
                        raise  # (EINVAL: the medium cannot read direct after all)
                finally:
                    os.close(opened[0])
            if out is None:
                with self._handles.use(path) as fd:
                    out = _read_spans(fd, spans, ranges, buffer, 1, platform.pread_into)
        except OSError as exc:
            raise self._error("read", kind, name, exc) from exc
        read: list[memoryview] = []
        for k, (offset, length) in enumerate(ranges):
            part = out[k]
            if part is None or len(part) != length:
                raise StorageError(
                    f"{kind}/{name} in {self._root} is shorter than expected "
                    f"(wanted {length} bytes at offset {offset})"
                )
            read.append(part)
        return read

    def read_uncached(
        self, kind: str, name: str, buffer: ReadBuffer | None = None, size: int | None = None
    ) -> bytes | memoryview:
        """The whole object from the medium. With a ``buffer`` it is read past the cache
        (``O_DIRECT``, :mod:`praxisbackup.platform.direct`) into the buffer and the result is a
        view, valid until the buffer's next use. Where that cannot be done, and without a
        buffer, the cached pages are dropped before and after a normal read."""
        path = self._path(kind, name)
        try:
            if (
                buffer is not None
                and (direct := platform.read_direct(path, buffer, size)) is not None
            ):
                return direct
            fd = platform.open_regular(path, size)
        except OSError as exc:
            raise self._error("read", kind, name, exc) from exc
        try:
            platform.drop_cache(fd)
            if buffer is not None:
                view = buffer.view(os.fstat(fd).st_size + 1)
                got = platform.pread_into(fd, view, 0)
                if got < len(view):  # (else it grew since fstat: read it whole below)
                    platform.drop_cache(fd)
                    return view[:got]
            chunks = []
            offset = 0
            while block := platform.pread(fd, 8 << 20, offset):
                chunks.append(block)
                offset += len(block)
            platform.drop_cache(fd)
            return b"".join(chunks)
        except OSError as exc:
            raise self._error("read", kind, name, exc) from exc
        finally:
            os.close(fd)

    def size(self, kind: str, name: str) -> int:
        try:
            return os.stat(self._path(kind, name)).st_size
        except OSError as exc:
            raise self._error("stat", kind, name, exc) from exc

    # -- writing -----------------------------------------------------------------------------
    def write(self, kind: str, name: str, data: bytes | Sequence[bytes]) -> None:
        self.commit(kind, name, self.stage(kind, name, data))

    def stage(self, kind: str, name: str, data: bytes | Sequence[bytes]) -> str:
        """First half of :meth:`write`: the data in a durable temporary file next to its final
        place (never listed, removed by prune if it is never committed). Returns its name.
        Backup workers stage packs; the process that indexes them commits."""
        final = self._path(kind, name)
        directory = os.path.dirname(final)
        tmp = os.path.join(directory, TEMP_PREFIX + secrets.token_hex(8))
        try:
            if kind in ("data", "meta"):
                # (makedirs re-raises "File exists" when the folder exists but cannot be
                # looked at - an I/O error on a failing medium: the open names that error)
                with contextlib.suppress(FileExistsError):
                    os.makedirs(directory, exist_ok=True)
            fd = os.open(tmp, _OPEN_FLAGS_WRITE, 0o600)
            try:
                parts = [data] if isinstance(data, bytes) else data
                if sum(len(p) for p in parts) < DIRECT_WRITE or not platform.write_direct(
                    fd, parts, self._write_buffer()
                ):
                    for part in parts:
                        view = memoryview(part)
                        while view:
                            written = os.write(fd, view)
                            view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            # The temp file may not exist or the medium may be gone; a leftover is harmless
            # (never listed) and is removed by clean_temporary.
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise self._error("write", kind, name, exc) from exc
        return os.path.basename(tmp)

    def _write_buffer(self) -> ReadBuffer:
        buffer: ReadBuffer | None = getattr(self._buffers, "buffer", None)
        if buffer is None:
            buffer = self._buffers.buffer = ReadBuffer()
        return buffer

    def commit(self, kind: str, name: str, staged: str) -> None:
        """Second half of :meth:`write`: rename the staged file to its name, durably."""
        final = self._path(kind, name)
        directory = os.path.dirname(final)
        if not staged.startswith(TEMP_PREFIX) or "/" in staged or "\\" in staged:
            raise ValueError(f"invalid staged name {staged!r}")
        tmp = os.path.join(directory, staged)
        try:
            os.replace(tmp, final)
            platform.fsync_directory(directory)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise self._error("write", kind, name, exc) from exc

    def delete(self, kind: str, name: str) -> None:
        path = self._path(kind, name)
        self._handles.forget(path)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise self._error("delete", kind, name, exc) from exc

    def clean_temporary(self, older_than_seconds: float) -> int:
        """Remove leftovers of interrupted writes older than the cutoff, and files in
        ``data/`` that sit in the wrong sub-folder (no name can reach them)."""
        removed = 0
        cutoff = time.time() - older_than_seconds
        data = os.path.join(self._root, "data")
        for dirpath, _dirs, files in os.walk(self._root):
            for fname in files:
                path = os.path.join(dirpath, fname)
                misfiled = (
                    os.path.dirname(dirpath) == data
                    and not fname.startswith(TEMP_PREFIX)
                    and fname[:2] != os.path.basename(dirpath)
                )
                if misfiled:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
                        removed += 1
                    continue
                if not fname.startswith(TEMP_PREFIX):
                    continue
                try:
                    if os.stat(path).st_mtime < cutoff:
                        os.unlink(path)
                        removed += 1
                except FileNotFoundError:
                    continue
        return removed

    def free_space(self) -> int | None:
        try:
            return shutil.disk_usage(self._root).free
        except OSError:
            return None

    def close(self) -> None:
        self._handles.close_all()
