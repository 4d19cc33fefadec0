"""Worker processes, one per core, so that the expensive work of backup, check and restore is
not serialised on one interpreter lock.

* Backup: workers read, chunk, hash, compress, encrypt and pack files (below).
* ``check --read-data``: workers verify whole packs (:mod:`packverify`), the checker's process
  examines the folder structure meanwhile.
* Restore (POSIX): workers write windows of planned files (:mod:`restorewindow`) into folders
  the restorer opened without following links; their descriptors arrive over a socket pair
  (``SCM_RIGHTS``) before the window's message.

The archiver's process walks the sources and decides which files must be read (new or
changed); the reading itself - open, read, chunk, keyed BLAKE3, zstd, AES-GCM, assembling a
16 MiB pack and hashing it - runs in worker processes, one per core, each holding no lock and
no Python state the others need, so nothing serialises on the interpreter lock. A worker writes
each finished pack to the medium under a temporary name and fsyncs it (``Backend.stage``), and
sends back its id and header entries and, per file, the chunk ids, the size and the times it
read. The archiver's process gives the pack its name (``Backend.commit``: rename, fsync of the
folder), indexes it and writes trees, index files and the snapshot - the write order
(pack, then index file naming it, then snapshot) and the crash guarantees stay in one place; a
staged pack that is never committed is an ignored temporary file that prune removes.

Workers are started as ``python -c "...worker_main()"`` (no ``fork``: the same on
POSIX and Windows, and no copy of the parent's threads) and talk over their standard input and
output: a frame is ``u32 header length || u64 payload length || pickled header || payload``.
A worker ends when its input ends, so a killed backup never leaves one behind.

Deduplication: a worker skips chunks the repository already holds (the archiver hands it the
sorted ids of every intact data blob; looked up by bisection, 32 bytes per blob) and chunks it
stored itself in this run. Two workers may both store a chunk that is new in this run; the
format allows a blob in several packs, and prune keeps one.

The same :class:`FilePacker` runs inside the archiver's process for small backups (starting
processes costs more than reading a few files) and when workers cannot be started.
"""

from __future__ import annotations

import array
import bisect
import contextlib
import errno
import io
import itertools
import os
import pickle
import queue
import socket
import stat
import struct
import subprocess
import sys
import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

import blake3
import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from praxisbackup import platform
from praxisbackup.engine import crypto, sourceread
from praxisbackup.engine.chunking import Chunker, ChunkerParams
from praxisbackup.engine.index import BlobLocation
from praxisbackup.engine.listing import Examined, list_folder, unchanged_sizes
from praxisbackup.engine.objects import decompressor
from praxisbackup.engine.pack import (
    COMPRESSED,
    DATA,
    TREE,
    FinishedPack,
    PackBuilder,
    blob_ad,
    blob_payload,
    open_blob,
)
from praxisbackup.engine.packverify import PackBlobs, read_pack, verify_read
from praxisbackup.engine.tree import decode_parent_tree
from praxisbackup.errors import IntegrityError, PraxisError, StorageError
from praxisbackup.storage import Backend, open_backend

if TYPE_CHECKING:
    from praxisbackup.engine.repository import Repository
    from praxisbackup.engine.restorewindow import (
        WindowOutcome,
        WindowPlan,
        WirePlan,
        WriteSettings,
    )

#: Files up to this size are read in one call and chunked in memory; larger ones are streamed.
SMALL_FILE = 1 << 20
#: Batches of files a backup worker may have unanswered: always this many (it reads one while
#: the answer to the other travels back) ...
BATCHES_AHEAD = 2
#: ... and up to this many while they hold less than SMALL_BATCHES_BYTES together. A worker
#: answers a batch only after the packs staged before it, each written and synced, so with two
#: it often waited for its next batch while its outbox synced a pack (measured on the bench's
#: documents: 13-17 % of its time). Large files are not queued deeper: at the end of a backup,
#: one worker would still be reading them while the other has nothing left.
SMALL_BATCHES_AHEAD = 4
SMALL_BATCHES_BYTES = 16 << 20
#: Finished packs a worker holds while an earlier one is being written and synced.
PACKS_AHEAD = 1
#: A pack is finished at the repository's pack size or with this many blobs (tiny files: the
#: entries of a 16 MiB pack of 100-byte files would hold a worker's memory).
MAX_PACK_BLOBS = 20_000
_FRAME = struct.Struct("<IQ")
_O_BINARY = getattr(os, "O_BINARY", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
#: Opening ahead stops at these: the descriptors a worker may have are used up for now (the
#: files are opened when they are read, after the ones before them are closed).
_OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE)
#: Descriptors a worker keeps free of files opened ahead: the pack it writes, a large file and
#: its direct reading, pipes, sockets, the folders it examines.
RESERVED_DESCRIPTORS = 32
#: Why a file the walk saw as a regular file was not read (a FIFO, folder or link now).
NOT_REGULAR = "is no longer a regular file"
_O_NOATIME = getattr(os, "O_NOATIME", 0)
_NONCE = 12


@dataclass(frozen=True)
class PackerParams:
    """What a worker needs to produce packs for one repository."""

    encryption_key: bytes
    chunk_id_key: bytes
    chunker: ChunkerParams
    compression_level: int
    pack_size: int
    drop_cache: bool
    #: Sorted, concatenated 32-byte ids of the data blobs the repository holds intact.
    known: bytes
    #: Where worker processes stage their packs (the backend's location); the archiver's
    #: process commits them.
    location: str = ""


@dataclass
class FileRead:
    """What reading one file gave: chunk ids and the metadata after the reading, or why not.

    ``status`` is ``ok``, ``vanished`` (gone before it was opened) or ``skipped``
    (``reason`` says why); ``changed`` means it changed during both readings (the second is
    kept)."""

    status: str
    ids: list[bytes]
    size: int = 0
    mtime_ns: int = 0
    ctime_ns: int = 0
    atime_ns: int = 0
    changed: bool = False
    reason: str = ""
    bytes_new: int = 0


class _Known:
    """Membership in the sorted id table, without building a set (32 bytes per blob). The
    bisection runs over the ids' first 8 bytes as integers (an ``array``, 8 bytes more per
    blob), so that it runs in C; the id is then compared in full."""

    def __init__(self, table: bytes) -> None:
        self._table = table
        self._count = len(table) // 32
        self._prefixes = array.array("Q", memoryview(table).cast("Q")[::4].tobytes())
        if sys.byteorder == "little":
            self._prefixes.byteswap()  # big-endian values sort as the ids' bytes do

    def __len__(self) -> int:
        return self._count

    def __contains__(self, blob_id: object) -> bool:
        if not self._count or not isinstance(blob_id, bytes) or len(blob_id) != 32:
            return False
        prefix = int.from_bytes(blob_id[:8], "big")
        prefixes, table = self._prefixes, self._table
        i = bisect.bisect_left(prefixes, prefix)
        while i < self._count and prefixes[i] == prefix:
            if table[i * 32 : i * 32 + 32] == blob_id:
                return True
            i += 1
        return False


def open_source(path: str) -> int:
    """Open a source file for reading without touching its access time where the OS allows
    (O_NOATIME needs ownership or root on Linux; without it the open is retried plainly).
    ``O_NONBLOCK``: a file swapped for a FIFO since the walk saw it must not block the open
    until a writer comes (a hung night, found by an outsider); the reader refuses anything
    but a regular file (:meth:`FilePacker.read_file`). For a regular file the flag changes
    nothing."""
    flags = os.O_RDONLY | _O_BINARY | _O_NOFOLLOW | _O_NONBLOCK
    if _O_NOATIME:
        try:
            return os.open(path, flags | _O_NOATIME)
        except PermissionError:
            pass  # not the owner: fall through to a plain open, which may update atime
    return os.open(path, flags)


def close_opened(opened: dict[int, int | OSError]) -> None:
    """Close the descriptors :meth:`FilePacker.open_batch` opened that were not read."""
    for left in opened.values():
        if isinstance(left, int):
            os.close(left)
    opened.clear()


def _changed(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_size, a.st_mtime_ns, a.st_ctime_ns) != (b.st_size, b.st_mtime_ns, b.st_ctime_ns)


class FilePacker:
    """Reads files into chunks and new chunks into packs; ``emit`` receives each full pack."""

    def __init__(self, params: PackerParams, emit: Callable[[FinishedPack], None]) -> None:
        self.params = params
        self._emit = emit
        self._aead = AESGCM(params.encryption_key)
        self._key = params.chunk_id_key
        self._chunker = Chunker(params.chunker)
        self._known = _Known(params.known)
        self._mine: set[bytes] = set()
        self._comp = zstandard.ZstdCompressor(
            level=params.compression_level, write_content_size=False
        )
        self._probe = zstandard.ZstdCompressor(level=1, write_content_size=False)
        self._sample_next = True
        self._builder = PackBuilder()
        self._header_cipher = _HeaderCipher(self._aead)
        #: Reads large files (made at the first: a small backup never needs its buffers).
        self._reader: sourceread.SourceReader | None = None
        self._reader_possible = sourceread.available()
        #: Files one batch may open ahead: half of what the descriptor limit leaves free.
        limit = platform.open_file_limit() - platform.descriptors_in_use() - RESERVED_DESCRIPTORS
        self.open_ahead = max(0, limit // 2)

    # -- files ----------------------------------------------------------------------------
    def open_batch(self, batch: Sequence[tuple[int, str, int]]) -> dict[int, int | OSError]:
        """Open the small files of a batch of (token, path, size seen by the walk) and ask
        the kernel to read them all at once (:func:`platform.prefetch`), so that cold reads
        overlap. The worker's reading thread does this for the next batch while it reads the
        current one; the descriptors (or the errors opening gave) go to :meth:`read_batch`.

        At most :attr:`open_ahead` files are opened (two batches are open at once), and none
        if the descriptors run out meanwhile: the files are then opened as they are read.
        (An outsider saw thousands of files skipped for "too many open files" under
        ``ulimit -n`` 24-64, and once a pack that could not be written.)"""
        opened: dict[int, int | OSError] = {}
        if len(batch) < 2:
            return opened
        try:
            for token, path, size in batch:
                if 0 < size <= SMALL_FILE:
                    if len(opened) >= self.open_ahead:
                        break
                    try:
                        fd = open_source(path)
                    except OSError as exc:
                        if exc.errno in _OUT_OF_DESCRIPTORS:
                            close_opened(opened)
                            break
                        opened[token] = exc
                        continue
                    opened[token] = fd
                    platform.prefetch(fd)
        except BaseException:
            close_opened(opened)
            raise
        return opened

    def read_batch(
        self,
        batch: Sequence[tuple[int, str, int]],
        opened: dict[int, int | OSError] | None = None,
    ) -> list[tuple[int, FileRead]]:
        """Read a batch of (token, path, size seen by the walk), its small files opened by
        :meth:`open_batch` (here, unless ``opened`` is given); each is read in turn."""
        if opened is None:
            opened = self.open_batch(batch)
        try:
            results = []
            for token, path, _size in batch:
                results.append((token, self.read_file(path, opened.pop(token, None))))
            return results
        finally:
            close_opened(opened)

    def read_file(self, path: str, first: int | OSError | None = None) -> FileRead:
        """Read and chunk a file; read it once more if it changed meanwhile. ``first`` is the
        file already opened (or the error opening it gave)."""
        changed = False
        for attempt in (1, 2):
            try:
                if isinstance(first, OSError):
                    raise first
                fd = first if first is not None else open_source(path)
            except FileNotFoundError:
                return FileRead("vanished", [])
            except OSError as exc:
                if exc.errno == errno.ELOOP:  # (O_NOFOLLOW: it is a link now)
                    return FileRead("skipped", [], reason=NOT_REGULAR)
                return FileRead(
                    "skipped",
                    [],
                    reason=f"cannot open: {exc.strerror or exc} [errno {exc.errno}]",
                )
            first = None
            try:
                before = os.fstat(fd)
                if not stat.S_ISREG(before.st_mode):
                    return FileRead("skipped", [], reason=NOT_REGULAR)
                ids, size, new = self._chunk_fd(fd, before.st_size)
                after = os.fstat(fd)
                if self.params.drop_cache:
                    # (also after a direct read: deciding on it read a few pages ahead)
                    platform.drop_cache(fd)
            except OSError as exc:
                return FileRead(
                    "skipped",
                    [],
                    reason=f"read error: {exc.strerror or exc} [errno {exc.errno}]",
                )
            finally:
                os.close(fd)
            if not _changed(before, after) and size == after.st_size:
                break
            if attempt == 2:
                changed = True
        return FileRead(
            "ok",
            ids,
            size,
            after.st_mtime_ns,
            after.st_ctime_ns,
            before.st_atime_ns,
            changed,
            bytes_new=new,
        )

    def _chunk_fd(self, fd: int, expected: int) -> tuple[list[bytes], int, int]:
        """The file's chunk ids, its size and the bytes new in it as read."""
        ids: list[bytes] = []
        total = new = 0
        streamed = None
        if expected <= SMALL_FILE:
            parts = []
            size = 0
            while True:
                block = os.read(fd, max(expected + 1 - size, 65536))
                if not block:
                    break
                parts.append(block)
                size += len(block)
            data = b"".join(parts) if len(parts) != 1 else parts[0]
            chunks: Iterator[bytes | memoryview] = self._chunker.views_of(data)
        elif (reader := self._source_reader()) is not None:
            chunks = streamed = reader.chunks(fd)
        else:
            chunks = self._chunker.views(io.FileIO(fd, closefd=False))
        # Each chunk is hashed, and sealed if new, before the next is cut: the views point
        # into the reader's buffer. A file's first new chunk is sampled for compressibility,
        # later ones only after one that did not compress (see blob_payload).
        self._sample_next = True
        try:
            for chunk in chunks:
                cid = blake3.blake3(chunk, key=self._key).digest()
                if cid not in self._mine and cid not in self._known:
                    self._mine.add(cid)
                    self._add(cid, chunk)
                    new += len(chunk)
                ids.append(cid)
                total += len(chunk)
        finally:
            if streamed is not None:
                streamed.close()  # waits for the read in flight
        return ids, total, new

    def _source_reader(self) -> sourceread.SourceReader | None:
        """The reader of large files, made at the first one; None where there is none (not
        Linux) or none could be made (no memory or thread for it: then files are streamed as
        before, with less)."""
        if self._reader is None and self._reader_possible:
            try:
                self._reader = sourceread.SourceReader(self._chunker)
            except (OSError, MemoryError, RuntimeError):
                self._reader_possible = False
        return self._reader

    # -- blobs and packs -----------------------------------------------------------------
    def _add(self, blob_id: bytes, data: bytes | memoryview) -> None:
        payload, flags = blob_payload(data, self._comp, self._probe, self._sample_next)
        self._sample_next = not flags & COMPRESSED
        nonce = os.urandom(_NONCE)
        sealed = self._aead.encrypt(nonce, payload, blob_ad(DATA, blob_id))
        self._builder.add_parts(DATA, flags, blob_id, (nonce, sealed), len(data))
        if self._builder.size >= self.params.pack_size or len(self._builder) >= MAX_PACK_BLOBS:
            self.flush()

    def flush(self) -> None:
        """Emit the pack in progress, if it holds anything."""
        if len(self._builder):
            builder, self._builder = self._builder, PackBuilder()
            self._emit(builder.finish(self._header_cipher))


class _HeaderCipher:
    """The part of :class:`~praxisbackup.engine.crypto.Cipher` a pack header needs."""

    def __init__(self, aead: AESGCM) -> None:
        self._aead = aead

    def seal(self, plaintext: bytes | memoryview, ad: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, bytes(plaintext), ad)


@dataclass(frozen=True)
class RepositoryAccess:
    """How a worker process reaches the repository: the medium's location and the keys
    (what it needs to verify packs, ``check --read-data``)."""

    location: str
    encryption_key: bytes
    chunk_id_key: bytes

    @classmethod
    def of(cls, repo: Repository) -> RepositoryAccess:
        return cls(repo.backend.location, repo.key.encryption, repo.key.chunk_id)

    def open(self) -> tuple[Backend, crypto.MasterKey, crypto.Cipher]:
        key = crypto.MasterKey(self.encryption_key, self.chunk_id_key)
        return open_backend(self.location), key, key.cipher()


class PackVerifier:
    """Verifies packs in a worker process (see :mod:`packverify`), answering each in the
    order they came. A loading thread reads the next pack from the medium while a verifying
    thread decrypts, decompresses and hashes the one before: read past the cache, a pack's
    read is a pure wait for the disk (two buffers; the worker's other memory is far below the
    command's peak, which falls while the key is derived). The first failure is reported and
    ends the verification: the checker stops."""

    def __init__(self, access: RepositoryAccess, out: IO[bytes]) -> None:
        self._backend, self._key, self._cipher = access.open()
        self._out = out
        self._free: queue.SimpleQueue[platform.ReadBuffer] = queue.SimpleQueue()
        for _ in range(2):
            self._free.put(platform.ReadBuffer())
        self._to_read: queue.SimpleQueue[tuple[str, PackBlobs, int | None]] = queue.SimpleQueue()
        self._read: queue.SimpleQueue[
            tuple[str, PackBlobs, bytes | memoryview | StorageError, platform.ReadBuffer]
        ] = queue.SimpleQueue()
        self._failed = threading.Lock()
        threading.Thread(target=self._load, daemon=True, name="load").start()
        threading.Thread(target=self._verify, daemon=True, name="verify").start()

    def submit(self, pack_id: str, indexed: PackBlobs, size: int | None) -> None:
        self._to_read.put((pack_id, indexed, size))

    def _load(self) -> None:
        while True:
            pack_id, indexed, size = self._to_read.get()
            buffer = self._free.get()
            try:
                raw = read_pack(self._backend, pack_id, buffer, size)
            except BaseException as exc:  # noqa: BLE001 - reported to the checker, which stops
                self._fail(exc)
                return
            self._read.put((pack_id, indexed, raw, buffer))

    def _verify(self) -> None:
        while True:
            pack_id, indexed, raw, buffer = self._read.get()
            try:
                verdict = verify_read(self._key, self._cipher, pack_id, indexed, raw)
                raw = b""  # (the buffer's view is released before the buffer is reused)
                self._free.put(buffer)
                send(self._out, ("verified", verdict))
            except (BrokenPipeError, ConnectionResetError):
                return  # the checker is gone
            except BaseException as exc:  # noqa: BLE001 - reported to the checker, which stops
                self._fail(exc)
                return

    def _fail(self, exc: BaseException) -> None:
        if self._failed.acquire(blocking=False):
            _report_failure(self._out, exc)


@dataclass(frozen=True)
class RestoreParams:
    """What a worker needs to write restore windows (see :mod:`restorewindow`)."""

    access: RepositoryAccess
    settings: WriteSettings
    threads: int


class RestoreWindows:
    """Writes restore windows in a worker process, into folders whose descriptors the
    restoring process sends over the worker's socket - in the order they came, on a thread of
    their own: the worker's input loop takes the next window's plan at once, so the restoring
    process is not held up sending it (on the bench it had spent two seconds blocked on full
    pipes instead of planning). The first failure is reported and ends the writing. When the
    worker's input ends, the window being written is finished (:meth:`finish`): a killed
    restoring process leaves its workers' current windows complete, as before."""

    def __init__(self, params: RestoreParams, channel: socket.socket, out: IO[bytes]) -> None:
        backend, key, cipher = params.access.open()
        # (loaded by restoring workers only: a backup's or a check's worker starts sooner)
        from praxisbackup.engine.restorewindow import (  # noqa: PLC0415
            MetadataWriter,
            WindowPlan,
            WindowWriter,
        )

        self._plan_of = WindowPlan.from_wire
        metadata = MetadataWriter(params.settings)
        self._writer = WindowWriter(backend, key, cipher, metadata, params.threads)
        self._channel = channel
        self._out = out
        self._queue: queue.SimpleQueue[tuple[WirePlan, list[str]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="restore")
        self._thread.start()

    def submit(self, plan: WirePlan, paths: list[str]) -> None:
        """Write the window ``plan`` (:meth:`WindowPlan.to_wire`) into the folders ``paths``
        (their descriptors follow on the socket)."""
        self._queue.put((plan, paths))

    def finish(self) -> None:
        """Wait until the windows received are written (or the writing has ended)."""
        self._queue.put(None)
        self._thread.join()

    def _loop(self) -> None:
        while (window := self._queue.get()) is not None:
            wire, paths = window
            try:
                send(self._out, ("restored", self.write(self._plan_of(wire), paths)))
            except (BrokenPipeError, ConnectionResetError, EOFError):
                return  # the restoring process is gone
            except BaseException as exc:  # noqa: BLE001 - reported to the restorer, which stops
                _report_failure(self._out, exc)
                return

    def write(self, plan: WindowPlan, paths: list[str]) -> WindowOutcome:
        from praxisbackup.platform.targetdir import FdDir  # noqa: PLC0415 - POSIX workers only

        fds = receive_folders(self._channel, len(paths))
        try:
            folders = [FdDir(fd, path) for fd, path in zip(fds, paths, strict=True)]
            return self._writer.write(plan, folders)
        finally:
            for fd in fds:
                os.close(fd)


#: Environment variable naming the descriptor of a worker's socket for folder descriptors.
_SOCKET_ENV = "PRAXISBACKUP_WORKER_SOCKET"
#: Descriptors per message (the kernel's limit is 253).
_FDS_PER_MESSAGE = 200


def can_pass_folders() -> bool:
    """Open folders can be handed to worker processes (POSIX: descriptors over a socket)."""
    return hasattr(socket, "send_fds") and not platform.IS_WINDOWS


def receive_folders(channel: socket.socket, count: int) -> list[int]:
    fds: list[int] = []
    while len(fds) < count:
        _msg, got, _flags, _addr = socket.recv_fds(channel, 1, _FDS_PER_MESSAGE)
        if not got:
            raise EOFError("the restoring process closed the folder channel")
        fds.extend(got)
    return fds


class _LockedOutput(io.FileIO):
    """A worker's protocol stream, shared by its threads: :func:`send` writes one frame at a
    time under ``lock``."""

    def __init__(self, fd: int) -> None:
        super().__init__(fd, "wb", closefd=False)
        self.lock = threading.Lock()


#: An examination request: (number, folder, previous tree id, where that tree lies).
Examination = tuple[int, str, bytes, tuple[str, int, int, int, bool]]
#: Folder examinations travel in batches of up to this many, both ways: one message, one
#: system call and one wake-up per batch instead of per folder (the nightly walk's 11 000
#: folders cost more in hand-offs between processes and threads than in examining).
EXAMINE_BATCH = 8
#: The kind of message :meth:`WorkerPool.wake_on` puts into ``results`` (from no worker).
WAKE = "wake"


class FolderExaminer:
    """Examines source folders against the previous snapshot in a worker process (the nightly
    run's walk): list, ``lstat``, read and decode the folder's previous tree, compare every
    entry (:func:`listing.unchanged_sizes`, the archiver's own rule). Runs on its own thread,
    beside the reading of files. Answers go out when nothing more is waiting, or when
    :data:`EXAMINE_BATCH` are ready."""

    def __init__(self, params: PackerParams, backend: Backend, out: IO[bytes]) -> None:
        self._key = crypto.MasterKey(params.encryption_key, params.chunk_id_key)
        self._cipher = self._key.cipher()
        self._backend = backend
        self._out = out
        self._known = _Known(params.known)
        self._dec = decompressor()
        self._queue: queue.SimpleQueue[list[Examination]] = queue.SimpleQueue()
        threading.Thread(target=self._loop, daemon=True, name="examine").start()

    def submit(self, requests: list[Examination]) -> None:
        self._queue.put(requests)

    def _loop(self) -> None:
        waiting: deque[Examination] = deque()
        answers: list[tuple[int, Examined]] = []
        while True:
            if not waiting:
                waiting.extend(self._queue.get())
            number, path, tree_id, loc = waiting.popleft()
            try:
                answers.append((number, self.examine(path, tree_id, BlobLocation(*loc))))
                with contextlib.suppress(queue.Empty):
                    while True:  # (what has arrived meanwhile is examined before answering)
                        waiting.extend(self._queue.get_nowait())
                if waiting and len(answers) < EXAMINE_BATCH:
                    continue
                message: tuple[object, ...] = ("examined", answers)
            except BaseException:  # noqa: BLE001 - reported to the archiver, which stops
                message = ("error", traceback.format_exc())
            answers = []
            try:
                send(self._out, message)
            except OSError:
                return  # the archiver is gone

    def examine(self, path: str, tree_id: bytes, loc: BlobLocation) -> Examined:
        what = f"tree {tree_id.hex()[:12]}"
        try:
            sealed = self._backend.read_range("data", loc.pack_id, loc.offset, loc.length)
            plain = open_blob(
                self._cipher,
                self._key,
                self._dec,
                TREE,
                tree_id,
                sealed,
                loc.raw_length,
                loc.compressed,
                what,
            )
            old = decode_parent_tree(plain, what)
        except (IntegrityError, StorageError) as exc:
            return Examined(None, None, {}, str(exc))
        listing = list_folder(path)
        if not isinstance(listing, OSError):
            entries = ((name, st) for name, _path, st in listing)
            sizes = unchanged_sizes(entries, old, self._known.__contains__)
            if sizes is not None:
                names = [name for name, _path, _st in listing]
                return Examined(list(zip(names, sizes, strict=True)), None, {})
        return Examined(None, listing, old)


# -- framing -----------------------------------------------------------------------------------
def send(out: IO[bytes], header: object, payload: Sequence[bytes | memoryview] = ()) -> None:
    head = pickle.dumps(header, protocol=pickle.HIGHEST_PROTOCOL)
    total = sum(len(p) for p in payload)
    lock = getattr(out, "lock", None)  # a worker's stream, shared by its threads
    with lock if lock is not None else contextlib.nullcontext():
        _write_all(out, _FRAME.pack(len(head), total) + head)
        for part in payload:
            _write_all(out, part)
        out.flush()


def _write_all(out: IO[bytes], data: bytes | memoryview) -> None:
    """Write all of ``data``. The pipes are unbuffered, and a write interrupted by a signal
    (the deferred SIGTERM or SIGINT of a command, a debugger) may write only part of it: the
    rest of the frame must still follow, or the other side waits for it forever."""
    view = memoryview(data).cast("B")
    while view:
        written = out.write(view)
        view = view[written or 0 :]


def _read_exact(inp: IO[bytes], buf: bytearray | memoryview) -> bool:
    view = memoryview(buf)
    pos = 0
    while pos < len(view):
        n = inp.readinto(view[pos:])  # type: ignore[attr-defined]
        if not n:
            return False
        pos += n
    return True


#: The protocol streams are read through a buffer of a pipe's size: the frames waiting in the
#: pipe are taken with one system call. Read frame by frame, a worker's loop gave up the
#: interpreter lock twice per frame and waited for it behind its busy threads: the nightly
#: run's archiver spent a second blocked on full pipes of folder examinations (py-spy).
_READ_AHEAD = 1 << 16


def receive(inp: IO[bytes]) -> tuple[Any, bytearray]:
    """The next frame: (header, payload). EOFError when the other side is gone."""
    head = bytearray(_FRAME.size)
    if not _read_exact(inp, head):
        raise EOFError
    head_len, payload_len = _FRAME.unpack(head)
    raw = bytearray(head_len)
    payload = bytearray(payload_len)
    if not _read_exact(inp, raw) or not _read_exact(inp, payload):
        raise EOFError
    return pickle.loads(raw), payload


# -- the worker process -------------------------------------------------------------------------
def worker_main() -> None:
    """Entry point of a worker process."""
    import signal  # noqa: PLC0415 - only in workers

    # Ctrl-C reaches the whole process group: the archiver decides, the worker ends with its input.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if platform.IS_WINDOWS:  # pragma: no cover - Windows only
        import msvcrt  # noqa: PLC0415

        msvcrt.setmode(0, os.O_BINARY)  # type: ignore[attr-defined]
        msvcrt.setmode(1, os.O_BINARY)  # type: ignore[attr-defined]
    inp = io.BufferedReader(io.FileIO(0, "rb", closefd=False), _READ_AHEAD)
    out = _LockedOutput(1)
    sys.stdout = sys.stderr  # nothing but frames on the protocol stream
    packer: FilePacker | None = None
    backend: Backend | None = None
    verifier: PackVerifier | None = None
    examiner: FolderExaminer | None = None
    restorer: RestoreWindows | None = None

    reading: _ReadingThread | None = None
    try:
        while True:
            try:
                msg, _payload = receive(inp)
            except EOFError:
                return
            try:
                kind = msg[0]
                if kind == "init":
                    backend = open_backend(msg[1].location)
                    outbox = _Outbox(backend, out)
                    packer = FilePacker(msg[1], outbox.pack)
                    examiner = FolderExaminer(msg[1], backend, out)
                    reading = _ReadingThread(packer, outbox)
                elif kind == "examine":
                    # On its own thread: a folder's examination need not wait for the database
                    # file this worker is reading (the nightly run's walk goes on meanwhile).
                    assert examiner is not None
                    examiner.submit(msg[1])
                elif kind in ("files", "flush"):
                    # On the reading thread, so that this loop goes on receiving examinations.
                    assert reading is not None
                    reading.submit(msg)
                elif kind == "verify-init":
                    verifier = PackVerifier(msg[1], out)
                elif kind == "verify":
                    # On the verifier's threads: this loop takes the next pack meanwhile, whose
                    # read then overlaps the verification of this one.
                    assert verifier is not None
                    verifier.submit(msg[1], msg[2], msg[3])
                elif kind == "restore-init":
                    channel = socket.socket(fileno=int(os.environ[_SOCKET_ENV]))
                    restorer = RestoreWindows(msg[1], channel, out)
                elif kind == "restore-window":
                    assert restorer is not None
                    restorer.submit(msg[1], msg[2])
                elif kind == "stop":
                    return
            except (BrokenPipeError, ConnectionResetError, EOFError):
                return  # the process that gave the work is gone (killed): nobody to answer
            except BaseException as exc:  # noqa: BLE001 - reported to the archiver, which stops
                _report_failure(out, exc)
                return
    finally:
        if restorer is not None:
            restorer.finish()


class _ReadingThread:
    """Reads the batches of files (and the final flush) of a worker in the order they came,
    on a thread of their own, and answers each through the :class:`_Outbox`. The first
    failure is reported and ends the reading: the archiver stops the backup."""

    def __init__(self, packer: FilePacker, outbox: _Outbox) -> None:
        self._packer = packer
        self._outbox = outbox
        self._queue: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        threading.Thread(target=self._loop, daemon=True, name="read").start()

    def submit(self, msg: tuple[Any, ...]) -> None:
        self._queue.put(msg)

    def _loop(self) -> None:
        # The next batch is opened (its reads asked for) before this one is read: on cold
        # caches the disk then works on it meanwhile (measured on the bench's documents: each
        # worker waited for the first files of every batch, about 14 % of its time).
        ahead: tuple[tuple[Any, ...], dict[int, int | OSError] | None] | None = None
        try:
            while True:
                if ahead is None:
                    msg, opened = self._queue.get(), None
                else:
                    (msg, opened), ahead = ahead, None
                try:
                    if opened is None:
                        opened = self._open(msg)
                    with contextlib.suppress(queue.Empty):
                        following = self._queue.get_nowait()
                        ahead = (following, {})
                        ahead = (following, self._open(following))
                    if msg[0] == "files":
                        self._outbox.send(("files", self._packer.read_batch(msg[1], opened)))
                    else:
                        self._packer.flush()
                        self._outbox.send(("flushed",))
                except _OutboxClosed:
                    return  # the outbox reported its failure, or the archiver is gone
                except BaseException as exc:  # noqa: BLE001 - reported to the archiver
                    self._outbox.fail(exc)
                    return
        finally:
            if ahead is not None and ahead[1]:
                close_opened(ahead[1])

    def _open(self, msg: tuple[Any, ...]) -> dict[int, int | OSError]:
        return self._packer.open_batch(msg[1]) if msg[0] == "files" else {}


class _OutboxClosed(Exception):
    """The outbox stopped: a pack could not be staged, or the archiver is gone."""


class _Outbox:
    """What the reading thread sends, in its order, from a thread of its own that also stages
    the finished packs (``Backend.stage``: write and fsync). Reading and compressing go on
    while a pack is written and synced; at most :data:`PACKS_AHEAD` finished packs wait, which
    bounds the worker's memory. A pack's message still precedes the answers that follow it."""

    def __init__(self, backend: Backend, out: IO[bytes]) -> None:
        self._backend = backend
        self._out = out
        self._queue: queue.SimpleQueue[FinishedPack | tuple[Any, ...]] = queue.SimpleQueue()
        self._room = threading.Semaphore(PACKS_AHEAD)
        self._closed = False
        threading.Thread(target=self._loop, daemon=True, name="stage").start()

    def pack(self, pack: FinishedPack) -> None:
        self._room.acquire()
        if self._closed:
            raise _OutboxClosed
        self._queue.put(pack)

    def send(self, header: tuple[Any, ...]) -> None:
        if self._closed:
            raise _OutboxClosed
        self._queue.put(header)

    def fail(self, exc: BaseException) -> None:
        """Report a failure of the reading, after what is queued (then nothing more)."""
        self._queue.put(("failure", exc))

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if isinstance(item, FinishedPack):
                    staged = self._backend.stage("data", item.id, item.parts)
                    self._room.release()
                    send(self._out, ("pack", item.id, item.size, item.entries, staged))
                elif item[0] == "failure":
                    self._close()
                    _report_failure(self._out, item[1])
                    return
                else:
                    send(self._out, item)
            except (BrokenPipeError, ConnectionResetError):
                self._close()  # the archiver is gone
                return
            except BaseException as exc:  # noqa: BLE001 - reported to the archiver, which stops
                self._close()
                _report_failure(self._out, exc)
                return

    def _close(self) -> None:
        self._closed = True
        self._room.release()  # a reading thread waiting for room sees the outbox closed


def _report_of(exc: BaseException) -> str:
    """The full report of a failure (its traceback), for the crash log."""
    return "".join(traceback.format_exception(exc))


def _report_failure(out: IO[bytes], exc: BaseException) -> None:
    """A worker's failure, for the process that gave the work: a PraxisError (the medium is
    full, read-only, gone) is that process's own error; anything else a worker failure."""
    if isinstance(exc, PraxisError):
        _answer_last(out, ("praxis-error", exc))
    else:
        _answer_last(out, ("error", _report_of(exc)))


def _answer_last(out: IO[bytes], header: object) -> None:
    """A worker's last message (its error), unless nobody is listening any more."""
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        send(out, header)


# -- the archiver's side ------------------------------------------------------------------------
class WorkerError(PraxisError):
    """A worker process failed or ended unexpectedly (a failed backup, exit code 2 - not an
    internal error: the earlier snapshots are intact and the next run starts new workers).
    The message is one line (it goes into the protocol and the e-mail); ``trace`` keeps the
    worker's full report for the crash log."""

    trace: str = ""

    @classmethod
    def failed(cls, work: str, trace: str) -> WorkerError:
        """A worker's failure, named by the last line of its report (the error itself)."""
        lines = trace.strip().splitlines()
        error = cls(f"a {work} worker process failed ({lines[-1] if lines else 'no report'})")
        error.trace = trace
        return error


PackHandler = Callable[[FinishedPack], None]
#: Imported, not run as ``__main__``: pickled results must name this module's classes.
#: Ctrl-C is ignored before anything is imported (the archiver decides; a worker still
#: importing would otherwise print a traceback); until then it is blocked: workers start with
#: it blocked (:func:`platform.interrupts_held_from_children`).
_WORKER_COMMAND = (
    "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "from praxisbackup.engine.pipeline import worker_main; worker_main()"
)
#: ``-P``: the current folder is not put on the import path. A backup or restore started from a
#: folder others can write to (a shared practice folder) must not import, say, a ``blake3.py``
#: lying there - as root, in the nightly run.
_SAFE_PATH = "-P"


class _Worker:
    def __init__(
        self, index: int, results: queue.Queue[tuple[int, Any, bytearray]], pool: WorkerPool
    ) -> None:
        self.index = index
        self.outstanding = 0
        #: The bytes of each batch of files it has not answered yet, in order (0: a flush).
        self.batches: deque[int] = deque()
        #: Folder examinations not sent yet (see :meth:`WorkerPool.examine`).
        self.unsent: list[Examination] = []
        self._pool = pool
        creationflags = getattr(subprocess, "CREATE_NO_WINDOW", 0)
        #: Carries open folders of a restore target to the worker (POSIX).
        self.channel: socket.socket | None = None
        env = None
        passed: tuple[int, ...] = ()
        if can_pass_folders():
            self.channel, theirs = socket.socketpair()
            env = dict(os.environ, **{_SOCKET_ENV: str(theirs.fileno())})
            passed = (theirs.fileno(),)
        try:
            with platform.interrupts_held_from_children():
                self.proc = subprocess.Popen(
                    [sys.executable, _SAFE_PATH, "-c", _WORKER_COMMAND],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    bufsize=0,
                    creationflags=creationflags,
                    env=env,
                    pass_fds=passed,
                )
        finally:
            if passed:
                theirs.close()
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin: IO[bytes] = self.proc.stdin
        self._results = results
        self._reader = threading.Thread(
            target=self._read_loop,
            args=(io.BufferedReader(self.proc.stdout, _READ_AHEAD),),
            daemon=True,
            name=f"worker-{index}",
        )
        self._reader.start()

    def _read_loop(self, stdout: IO[bytes]) -> None:
        while True:
            try:
                msg, payload = receive(stdout)
            except (EOFError, OSError):
                self._pool.fail_examinations(
                    WorkerError("a backup worker process ended unexpectedly")
                )
                self._results.put((self.index, ("eof",), bytearray()))
                return
            except BaseException as exc:  # noqa: BLE001 - handed to the archiver
                self._pool.fail_examinations(WorkerError(f"reading from a backup worker: {exc!r}"))
                self._results.put((self.index, ("error", _report_of(exc)), bytearray()))
                return
            if msg[0] == "examined":
                self._pool.examined(msg[1])
                continue
            if msg[0] == "praxis-error":  # the medium is full, gone, ...: the run's error
                self._pool.fail_examinations(msg[1])
            elif msg[0] == "error":
                self._pool.fail_examinations(WorkerError.failed("backup", msg[1]))
            if msg[0] == "pack":
                # Committed from this thread: a full writer queue holds up this worker only.
                _kind, pack_id, size, entries, staged = msg
                try:
                    handler = self._pool.on_pack
                    assert handler is not None
                    handler(FinishedPack(pack_id, [], size, entries, staged))
                except PraxisError as exc:  # the medium is gone, full, ...: the run's error
                    self._results.put((self.index, ("praxis-error", exc), payload))
                    return
                except BaseException as exc:  # noqa: BLE001 - handed to the archiver
                    self._results.put((self.index, ("error", _report_of(exc)), payload))
                    return
                continue
            self._results.put((self.index, msg, payload))

    def send(self, header: object) -> None:
        try:
            send(self.stdin, header)
        except OSError as exc:
            raise WorkerError(f"a worker process ended unexpectedly ({exc})") from None

    def send_folders(self, fds: Sequence[int]) -> None:
        """Hand open folder descriptors to the worker (before the message that uses them)."""
        assert self.channel is not None
        try:
            for start in range(0, len(fds), _FDS_PER_MESSAGE):
                socket.send_fds(self.channel, [b"f"], fds[start : start + _FDS_PER_MESSAGE])
        except OSError as exc:
            raise WorkerError(f"a worker process ended unexpectedly ({exc})") from None

    def end_input(self, kill: bool) -> None:
        """Tell the worker to end (its input ends) - or end it at once (``kill``)."""
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if kill:
            with contextlib.suppress(OSError):
                self.proc.kill()
        with contextlib.suppress(OSError):
            self.stdin.close()

    def close(self, kill: bool, timeout: float = 30.0) -> None:
        self.end_input(kill)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class WorkerPool:
    """Worker processes of one backup; see the module docstring."""

    def __init__(self, count: int) -> None:
        self.results: queue.Queue[tuple[int, Any, bytearray]] = queue.Queue()
        #: Folder examinations in flight (nightly run), answered on the readers' threads.
        self._examinations: dict[int, Future[Any]] = {}
        self._examination_lock = threading.Lock()
        self._next_examination = itertools.count()
        self.workers: list[_Worker] = []
        #: Receives every finished pack, on the worker's reader thread (set before ``init``).
        self.on_pack: PackHandler | None = None
        self.ready = False
        try:
            for i in range(count):
                self.workers.append(_Worker(i, self.results, self))
        except OSError:
            self.close(kill=True)
            raise

    def init(self, params: PackerParams, on_pack: PackHandler) -> None:
        self.on_pack = on_pack
        for w in self.workers:
            w.send(("init", params))
        self.ready = True

    def submit(self, batch: list[tuple[int, str, int]]) -> None:
        """Give a batch of (token, path, size) to the least busy worker with room for it
        (see :meth:`has_room_for_files`)."""
        room = [w for w in self.workers if _room_for_files(w)] or self.workers
        worker = self.workers[self.request(("files", batch), to=_least_busy(room).index)]
        worker.batches.append(sum(size for _token, _path, size in batch))

    def has_room_for_files(self) -> bool:
        """Some worker may take another batch of files: one with fewer than
        :data:`BATCHES_AHEAD` unanswered, or fewer than :data:`SMALL_BATCHES_AHEAD` that hold
        less than :data:`SMALL_BATCHES_BYTES` together."""
        return any(_room_for_files(w) for w in self.workers)

    def files_answered(self, index: int) -> None:
        """Worker ``index`` answered its oldest batch of files (or flush)."""
        worker = self.workers[index]
        worker.outstanding -= 1
        worker.batches.popleft()

    def has_room(self, limit: int) -> bool:
        """Some worker has fewer than ``limit`` requests outstanding."""
        return min(w.outstanding for w in self.workers) < limit

    def request(self, header: object, folders: Sequence[int] = (), to: int | None = None) -> int:
        """Send a request to worker ``to`` (default: the least busy), after the open
        ``folders`` it needs (see :meth:`_Worker.send_folders`); returns the worker's index.
        Its answer arrives in ``results``; the receiver lowers that worker's ``outstanding``."""
        worker = _least_busy(self.workers) if to is None else self.workers[to]
        worker.outstanding += 1
        if folders:
            worker.send_folders(folders)
        worker.send(header)
        return worker.index

    def next_answer(self, waiting: Callable[[], None], work: str) -> tuple[int, Any] | None:
        """The next answer of a worker, as (worker index, message), its request no longer
        outstanding; None after a second without one (``waiting`` is called then, e.g. to
        notice a lost lock) or for a :data:`WAKE`. A worker's error is raised here; ``work``
        names what it did."""
        try:
            index, msg, _payload = self.results.get(timeout=1.0)
        except queue.Empty:
            waiting()
            return None
        kind = msg[0]
        if kind == WAKE:
            return None
        if kind == "praxis-error":
            raise msg[1]
        if kind == "error":
            raise WorkerError.failed(work, msg[1])
        if kind == "eof":
            raise WorkerError(f"a {work} worker process ended unexpectedly")
        self.workers[index].outstanding -= 1
        return index, msg

    def wake_on(self, future: Future[Any]) -> None:
        """Put a :data:`WAKE` message into ``results`` when ``future`` is done: who waits for
        the workers' answers also learns that the future is (a stray one, if it was done
        already, is ignored by every receiver)."""
        future.add_done_callback(lambda _done: self.results.put((-1, (WAKE,), bytearray())))

    def examine(self, path: str, tree_id: bytes, loc: BlobLocation) -> Future[Any]:
        """Ask a worker (in turn) to examine a folder against its previous tree; the future
        gets an :class:`Examined`, or a WorkerError if the worker fails. The request goes out
        with the worker's next batch: call :meth:`send_examinations` before waiting for it."""
        number = next(self._next_examination)
        future: Future[Any] = Future()
        with self._examination_lock:
            self._examinations[number] = future
        worker = self.workers[(number // EXAMINE_BATCH) % len(self.workers)]
        worker.unsent.append((number, path, tree_id, (*loc,)))
        if len(worker.unsent) >= EXAMINE_BATCH:
            self._send_examinations(worker)
        return future

    def send_examinations(self) -> None:
        """Send the examination requests not yet sent (before waiting for an answer)."""
        for worker in self.workers:
            if worker.unsent:
                self._send_examinations(worker)

    @staticmethod
    def _send_examinations(worker: _Worker) -> None:
        requests, worker.unsent = worker.unsent, []
        worker.send(("examine", requests))

    def examined(self, answers: list[tuple[int, Examined]]) -> None:
        with self._examination_lock:
            futures = [(self._examinations.pop(number, None), answer) for number, answer in answers]
        for future, answer in futures:
            if future is not None:
                _settle(future, answer)

    def fail_examinations(self, error: BaseException) -> None:
        with self._examination_lock:
            waiting, self._examinations = self._examinations, {}
        for future in waiting.values():
            _settle(future, error=error)

    def broadcast(self, header: object) -> None:
        """Send a message that needs no answer to every worker."""
        for w in self.workers:
            w.send(header)

    def flush_all(self) -> None:
        for w in self.workers:
            w.outstanding += 1
            w.batches.append(0)
            w.send(("flush",))

    def close(self, kill: bool = False) -> None:
        """End the workers: after their work (``kill=False``), or at once after an error. All
        are told first, then waited for: they end side by side (one after the other, the
        next was told only once the one before had shut its interpreter down)."""
        for w in self.workers:
            w.end_input(kill)
        for w in self.workers:
            w.close(kill)
        self.workers = []


def _least_busy(workers: Sequence[_Worker]) -> _Worker:
    return min(workers, key=lambda w: w.outstanding)


def _room_for_files(worker: _Worker) -> bool:
    batches = worker.batches
    return len(batches) < BATCHES_AHEAD or (
        len(batches) < SMALL_BATCHES_AHEAD and sum(batches) < SMALL_BATCHES_BYTES
    )


def _settle(future: Future[Any], answer: object = None, error: BaseException | None = None) -> None:
    """Give an examination its answer or error - unless the archiver has cancelled it
    meanwhile (it stops after a failure or a stop request): then nobody waits for it."""
    with contextlib.suppress(InvalidStateError):
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(answer)


_prestarted: WorkerPool | None = None
_prestart_lock = threading.Lock()


def default_worker_count() -> int:
    return max(2, os.cpu_count() or 2)


def prestart(count: int | None = None) -> None:
    """Start the worker processes now (e.g. while the passphrase's key is being derived); the
    next backup in this process uses them."""
    global _prestarted  # noqa: PLW0603 - one pool per process, handed over once
    with _prestart_lock:
        if _prestarted is None:
            with contextlib.suppress(OSError):
                _prestarted = WorkerPool(count or default_worker_count())


def take_prestarted() -> WorkerPool | None:
    global _prestarted
    with _prestart_lock:
        pool, _prestarted = _prestarted, None
        return pool


def discard_prestarted() -> None:
    """End workers started early that no command took (it stopped before its work)."""
    pool = take_prestarted()
    if pool is not None:
        pool.close()
