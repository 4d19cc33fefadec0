"""Writing one window of a restore: the planned files' data, pack by pack, and each file
finished under its temporary name and renamed into place.

The :class:`~praxisbackup.engine.restorer.Restorer` walks the snapshot, opens the target's
folders safely and plans windows of up to a few hundred files (:class:`WindowPlan`: every file
with its temporary name, and every pack the window needs with the blobs to read from it and
where they go). A :class:`WindowWriter` writes a window and returns a :class:`WindowOutcome`
(per file: done, kept or failed; errors, warnings, damaged copies, time precision). The same
writer runs in the restoring process (threads; Windows, small restores) and in worker processes
(:mod:`pipeline`; POSIX, large restores), which receive the open folder descriptors over a
socket - every file is still created, written and renamed relative to a folder descriptor the
restorer opened without following links, so the safety properties are those of the restorer.

Every file is written under its temporary name, gets owner, mode and times through the open
file and is renamed into place when complete (see the restorer's docstring). A blob whose copy
does not decrypt or decompress is read from the blob's other copies; the failed copy is
reported so the restoring process avoids it. Files of :data:`DIRECT_WRITE` bytes or more are
written past the page cache on Linux (:class:`praxisbackup.platform.DirectFile`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import zstandard

from praxisbackup import platform
from praxisbackup.engine import crypto
from praxisbackup.engine.index import BlobLocation
from praxisbackup.engine.objects import decompressor
from praxisbackup.engine.pack import DATA, open_blob
from praxisbackup.engine.progress import Progress
from praxisbackup.engine.snapshot import Skipped
from praxisbackup.engine.tree import DIR, SYMLINK, Node
from praxisbackup.errors import IntegrityError, StorageError
from praxisbackup.platform.targetdir import TargetDir
from praxisbackup.storage import Backend

TEMP_SUFFIX = ".praxisbackup-tmp"
DAMAGED_SUFFIX = ".praxisbackup-damaged"
#: setuid and setgid: restored only with ``special``.
SETID_BITS = stat.S_ISUID | stat.S_ISGID
SPECIAL_HINT = "use --special-files to restore it"
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL
#: errno values meaning "this file system cannot store that" (FAT has no modes or owners).
_UNSUPPORTED = {errno.ENOSYS, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EINVAL}
#: errno values meaning "the target is full": the restore stops instead of failing every file.
FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_SPARSE_BLOCK = 64 * 1024
#: Files of this size or more are written past the page cache (:class:`platform.DirectFile`):
#: through it, copying into the cache cost a restore of the bench's 3 GB over 5 CPU-seconds of
#: kernel time on a VM, and the restored data evicted the server's working set.
DIRECT_WRITE = 1 << 20
_ZEROS = bytes(_SPARSE_BLOCK)
_SECOND = 1_000_000_000


def describe(exc: OSError) -> str:
    return exc.strerror or str(exc)


def damaged_name(name: str) -> str:
    """Where the readable part of a damaged file is kept (fits in 255 bytes)."""
    limit = 255 - len(DAMAGED_SUFFIX.encode())
    while len(name.encode("utf-8", "surrogateescape")) > limit:
        name = name[:-1]
    return name + DAMAGED_SUFFIX


def write_sparse(
    fd: int,
    pos: int,
    data: bytes | memoryview,
    write: Callable[[int, int, memoryview], None] | None = None,
) -> int:
    """Write ``data`` at ``pos`` but leave 64 KiB blocks of zeros unwritten, so holes of sparse
    files (and zero-filled database regions) stay holes. The caller truncates to the final size.
    Returns the end of the last byte written (``pos`` if nothing was). ``write(fd, offset,
    view)`` writes one run (default: :func:`_write_at`; a direct write for whole blocks)."""
    write = write or _write_at
    view = memoryview(data)
    run_start = None
    last_end: int | None = None
    size = len(data)
    for start in range(0, size, _SPARSE_BLOCK):
        end = min(start + _SPARSE_BLOCK, size)
        zero = data[start] == 0 and data[end - 1] == 0 and view[start:end] == _ZEROS[: end - start]
        if zero:
            if run_start is not None:
                write(fd, pos + run_start, view[run_start:start])
                last_end = pos + start
                run_start = None
        elif run_start is None:
            run_start = start
    if run_start is not None:
        write(fd, pos + run_start, view[run_start:])
        return pos + size
    return pos if last_end is None else last_end


def _cut_or_extend(fd: int, end: int, size: int) -> None:
    """Give the file ``size`` bytes (its written part ends at ``end``): cut back, or extended
    by its trailing hole. A file system that cannot extend a file by truncating (FAT through
    FUSE: ``EPERM``, found by an outsider) gets the zeros written."""
    try:
        os.ftruncate(fd, size)
    except OSError:
        if size <= end:
            raise
        zeros = memoryview(_ZEROS)
        for at in range(end, size, len(zeros)):
            _write_at(fd, at, zeros[: min(len(zeros), size - at)])


def _write_at(fd: int, offset: int, view: memoryview) -> None:
    while view:
        written = platform.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


# -- plans and outcomes (pickled to worker processes; tuples pickle fast) -----------------------
class EntryMeta(Protocol):
    """What giving a restored entry its metadata needs (a tree :class:`Node` has all of it)."""

    @property
    def type(self) -> str: ...
    @property
    def mode(self) -> int: ...
    @property
    def uid(self) -> int: ...
    @property
    def gid(self) -> int: ...
    @property
    def atime_ns(self) -> int: ...
    @property
    def mtime_ns(self) -> int: ...
    @property
    def btime_ns(self) -> int | None: ...
    @property
    def attributes(self) -> int | None: ...


class FileMeta(NamedTuple):
    type: str
    mode: int
    uid: int
    gid: int
    atime_ns: int
    mtime_ns: int
    btime_ns: int | None
    attributes: int | None
    size: int

    @classmethod
    def of(cls, node: Node) -> FileMeta:
        return cls(
            node.type,
            node.mode,
            node.uid,
            node.gid,
            node.atime_ns,
            node.mtime_ns,
            node.btime_ns,
            node.attributes,
            node.size,
        )


class FilePlan(NamedTuple):
    meta: FileMeta
    #: Index of its folder in the window's folder list.
    folder: int
    name: str
    tmp: str
    spath: str
    replace: bool
    chunk_count: int


class NeedPlan(NamedTuple):
    """One blob the window needs from a pack, its other copies (if any), and where it goes."""

    blob_id: bytes
    loc: BlobLocation
    others: tuple[BlobLocation, ...]
    #: (file index in the window, offset in the file)
    targets: list[tuple[int, int]]


#: A :class:`WindowPlan` as plain tuples, the way it travels to a worker process.
WirePlan = tuple[list[tuple[Any, ...]], list[list[tuple[Any, ...]]], list[tuple[int, str]]]


@dataclass
class WindowPlan:
    files: list[FilePlan]
    #: Per pack, the blobs to read from it in file order.
    packs: list[list[NeedPlan]]
    #: (file index, why) for chunks the index does not know.
    missing: list[tuple[int, str]] = field(default_factory=list)

    def to_wire(self) -> WirePlan:
        """The plan as plain tuples: pickle reduces every named tuple through a Python call
        (1.6 ms for a window of 256 files on the bench, against 0.3 ms for this and pickling
        it - time the restoring process, which plans every window, does not have)."""
        files = [(tuple(f.meta), *f[1:]) for f in self.files]
        packs = [
            [(n.blob_id, tuple(n.loc), tuple(map(tuple, n.others)), n.targets) for n in p]
            for p in self.packs
        ]
        return files, packs, self.missing

    @classmethod
    def from_wire(cls, wire: WirePlan) -> WindowPlan:
        files, packs, missing = wire
        return cls(
            [FilePlan(FileMeta(*meta), *rest) for meta, *rest in files],
            [
                [
                    NeedPlan(
                        blob,
                        BlobLocation(*loc),
                        tuple(BlobLocation(*other) for other in others),
                        targets,
                    )
                    for blob, loc, others, targets in p
                ]
                for p in packs
            ],
            missing,
        )


DONE, KEPT, FAILED = "done", "kept", "failed"


@dataclass
class WindowOutcome:
    #: Per file of the plan: DONE (under its name), KEPT (appeared meanwhile, ``never`` kept
    #: it) or FAILED (an error says why).
    status: list[str]
    errors: list[Skipped] = field(default_factory=list)
    warnings: list[Skipped] = field(default_factory=list)
    #: (pack id, blob id) of data blob copies that failed to read or authenticate.
    bad_copies: list[tuple[str, bytes]] = field(default_factory=list)
    time_lost_ns: int = 0
    atime_lost_ns: int = 0
    #: (errno, message) of the first "no space left" error: the restore stops.
    full: tuple[int, str] | None = None
    bytes: int = 0


@dataclass(frozen=True)
class WriteSettings:
    """How files are given their metadata; the same for every window of one restore."""

    chown: bool
    own_ids: tuple[int, int]
    umask: int
    special: bool
    #: The target root (named in warnings about the whole target).
    target: str


# -- metadata ----------------------------------------------------------------------------------
class MetadataWriter:
    """Owner, mode, attributes and times of restored entries, with the measurements that
    decide how much checking the target needs (see :meth:`apply_times`). Findings collect in
    ``warnings`` and the two precision figures until :meth:`drain`."""

    def __init__(self, settings: WriteSettings) -> None:
        self.settings = settings
        self.warnings: list[Skipped] = []
        self.time_lost_ns = 0
        self.atime_lost_ns = 0
        self._lock = threading.Lock()
        #: Files with sub-second times that must read back exactly before the target counts
        #: as precise; -1 once any difference was seen (then every file is measured).
        self._precision_checks_left = 64
        #: Files with whole-second times whose loss could have shown (odd seconds: a FAT
        #: target's 2 s; sub-second loss cannot show on them) that must read back exactly
        #: before such files are no longer read back.
        self._whole_second_checks_left = 64
        #: Files checked for keeping their times across the rename (see times_after_rename).
        self._rename_checks_left = 64
        self._rename_resets_times = False

    @property
    def checks_renames(self) -> bool:
        return self._rename_checks_left > 0

    def drain(self, outcome: WindowOutcome) -> None:
        with self._lock:
            outcome.warnings.extend(self.warnings)
            self.warnings = []
            outcome.time_lost_ns = max(outcome.time_lost_ns, self.time_lost_ns)
            outcome.atime_lost_ns = max(outcome.atime_lost_ns, self.atime_lost_ns)

    def mode(self, node: EntryMeta, spath: str) -> int:
        if node.mode & SETID_BITS and not self.settings.special and node.type != DIR:
            with self._lock:
                self.warnings.append(
                    Skipped(spath, f"setuid/setgid bit not restored ({SPECIAL_HINT})")
                )
            return node.mode & ~SETID_BITS
        return node.mode

    def note_unsupported(self, message: str) -> None:
        with self._lock:
            if not any(w.reason == message for w in self.warnings):
                self.warnings.append(Skipped(self.settings.target, message))

    def apply(
        self,
        folder: TargetDir,
        name: str,
        fd: int | None,
        node: EntryMeta,
        spath: str,
        mode_set: bool = False,
    ) -> None:
        """Owner, mode (unless ``mode_set``: the file was created with it), attributes, then
        times (last, since the others change ctime only), through the open file ``fd`` where
        there is one, else without following a link.

        Owner and mode are best effort on file systems without them (FAT, exFAT, some shares):
        one warning says so. Times are essential (the M1 update check relies on file dates),
        so failing to set them is an error, and lost precision is measured and reported.
        """
        is_link = node.type == SYMLINK
        settings = self.settings
        try:
            if settings.chown and (node.uid, node.gid) != settings.own_ids:
                folder.chown(name, fd, node.uid, node.gid)
            if not is_link and not mode_set:
                folder.chmod(name, fd, self.mode(node, spath))
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED:
                raise
            self.note_unsupported(f"permissions/owner not supported by the target: {exc.strerror}")
        if platform.IS_WINDOWS and node.attributes is not None and not is_link:
            folder.set_attributes(name, node.attributes)
        self.apply_times(folder, name, fd, node)

    def apply_times(self, folder: TargetDir, name: str, fd: int | None, node: EntryMeta) -> None:
        is_link = node.type == SYMLINK
        folder.utime(name, fd, node.atime_ns, node.mtime_ns)
        if node.btime_ns is not None and platform.IS_WINDOWS:
            folder.set_birthtime(name, node.btime_ns)
        whole = not (node.mtime_ns % _SECOND or node.atime_ns % _SECOND)
        if not is_link and (
            self._precision_checks_left < 0
            or (self._precision_checks_left and (not whole or self._whole_second_checks_left))
        ):
            # Read the times back: a coarse file system (FAT 2 s, ext4 with small inodes 1 s)
            # is reported, not silently accepted. Once enough files with sub-second times
            # have matched exactly, the target is known to be precise and the extra stat is
            # skipped. Files with whole-second times (copied from FAT, unpacked from ZIP) can
            # show only a coarser loss, and only with odd seconds: once enough of those have
            # matched, files with whole-second times are no longer read back (even seconds
            # prove nothing: a FAT target keeps them, found by an outsider).
            st = folder.stat(name, fd)
            mdiff = abs(st.st_mtime_ns - node.mtime_ns)
            adiff = abs(st.st_atime_ns - node.atime_ns)
            with self._lock:
                if mdiff or adiff:
                    self.time_lost_ns = max(self.time_lost_ns, mdiff)
                    self.atime_lost_ns = max(self.atime_lost_ns, adiff)
                    self._precision_checks_left = -1  # imprecise: measure every file
                elif self._precision_checks_left > 0 and node.mtime_ns % _SECOND:
                    self._precision_checks_left -= 1
                elif whole and node.mtime_ns // _SECOND % 2 and node.atime_ns // _SECOND % 2:
                    self._whole_second_checks_left = max(0, self._whole_second_checks_left - 1)

    def times_after_rename(
        self, folder: TargetDir, name: str, node: EntryMeta, stored: int
    ) -> None:
        """Some file systems (FAT through FUSE) give a renamed file the current time. The first
        files are checked after their rename; once one lost its time, every file gets its times
        again after the rename (then a crash in between can leave the restore date)."""
        if not self._rename_resets_times:
            with self._lock:
                if self._rename_checks_left <= 0:
                    return
                self._rename_checks_left -= 1
            if folder.stat(name, None).st_mtime_ns == stored:
                return
            self._rename_resets_times = True
        folder.utime(name, None, node.atime_ns, node.mtime_ns)


# -- writing a window --------------------------------------------------------------------------
@dataclass
class _Job:
    """A file being written; its chunks may come from several packs, written by several
    threads. ``remaining`` counts the chunks not yet written; the thread that writes the last
    one finishes the file (metadata, rename)."""

    plan: FilePlan
    folder: TargetDir
    remaining: int
    damaged: bool = False
    #: Not restored because writing failed (nothing damaged to keep: its temporary file goes).
    write_failed: bool = False
    fd: int = -1
    #: End of the last byte written (the file is truncated up to its size if shorter).
    end: int = 0
    #: Created with its final mode (no chmod needed).
    mode_set: bool = False
    #: Written past the page cache (large files, Linux); None: through it.
    direct: platform.DirectFile | None = None
    #: Direct writes were used: the last block may be padded, the file is always cut back.
    padded: bool = False
    #: The end of the data that came (a damaged file is cut back to it).
    data_end: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class WindowWriter:
    """Writes windows of planned files (see the module docstring). ``check_lock`` is called
    before every blob (a lost repository lock stops the restore); ``progress`` is advanced as
    data lands."""

    def __init__(
        self,
        backend: Backend,
        key: crypto.MasterKey,
        cipher: crypto.Cipher,
        metadata: MetadataWriter,
        threads: int,
        check_lock: Callable[[], None] = lambda: None,
        progress: Progress | None = None,
    ) -> None:
        self._backend = backend
        self._key = key
        self._cipher = cipher
        self.metadata = metadata
        self._check_lock = check_lock
        self._progress = progress or Progress()
        self._pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="restore")
        #: Each thread reads packs into its own buffer, reused (no fresh pages per read).
        self._buffers = threading.local()
        self._lock = threading.Lock()
        self._full: OSError | None = None

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def write(self, plan: WindowPlan, folders: Sequence[TargetDir]) -> WindowOutcome:
        outcome = WindowOutcome([FAILED] * len(plan.files))
        jobs = [_Job(f, folders[f.folder], f.chunk_count) for f in plan.files]
        try:
            for index, why in plan.missing:
                self._chunk_done(outcome, jobs[index], index, None, why)
            for index, job in enumerate(jobs):
                if not job.plan.chunk_count:
                    self._open(outcome, job)
                    self._chunk_done(outcome, job, index, None, None, count=0)
            for _ in self._pool.map(lambda needs: self._pack(outcome, jobs, needs), plan.packs):
                pass
        finally:
            for job in jobs:
                if job.fd >= 0:  # left open by an error that stopped the restore
                    os.close(job.fd)
                    job.fd = -1
        if self._full is not None:
            outcome.full = (self._full.errno or errno.ENOSPC, describe(self._full))
        self.metadata.drain(outcome)
        return outcome

    # -- errors ----------------------------------------------------------------------------
    def _error(self, outcome: WindowOutcome, spath: str, reason: str) -> None:
        with self._lock:
            outcome.errors.append(Skipped(spath, reason))

    def _write_error(self, outcome: WindowOutcome, spath: str, what: str, exc: OSError) -> None:
        """A full target is reported once (by the restorer, at the end) and stops the restore
        instead of failing every remaining file."""
        if exc.errno in FULL_ERRNOS:
            with self._lock:
                if self._full is None:
                    self._full = exc
            return
        self._error(outcome, spath, f"{what}: {describe(exc)}")

    # -- reading -----------------------------------------------------------------------------
    def _pack(self, outcome: WindowOutcome, jobs: list[_Job], needs: list[NeedPlan]) -> None:
        """Read the blobs one pack holds for this window and write them where they belong."""
        self._check_lock()
        if self._full is not None:  # the target is full: these files cannot be finished
            for need in needs:
                for index, _offset in need.targets:
                    job = jobs[index]
                    with job.lock:
                        job.damaged = job.write_failed = True
                        self._chunk_done(outcome, job, index, None, None, locked=True)
            return
        pack_id = needs[0].loc.pack_id
        sealed: list[bytes | memoryview | None]
        buffer = getattr(self._buffers, "buffer", None)
        if buffer is None:
            buffer = self._buffers.buffer = platform.ReadBuffer()
        try:
            sealed = list(
                self._backend.read_ranges(
                    "data", pack_id, [(n.loc.offset, n.loc.length) for n in needs], buffer
                )
            )
        except StorageError:
            sealed = [None] * len(needs)  # each blob is then tried at its other copies
        dec = decompressor()
        for need, raw in zip(needs, sealed, strict=True):
            self._check_lock()  # a lost lock stops the restore at the next blob
            data = self._decode(need, raw, dec)
            error = None
            if data is None:
                with self._lock:
                    outcome.bad_copies.append((pack_id, need.blob_id))
                data, error = self._other_copy(outcome, need, dec)
            for index, offset in need.targets:
                self._write_chunk(outcome, jobs[index], index, offset, data, error)

    def _decode(
        self, need: NeedPlan, raw: bytes | memoryview | None, dec: zstandard.ZstdDecompressor
    ) -> bytes | None:
        """Decrypt and decompress one blob; None if it does not authenticate or decompress.
        The id is not hashed again here (``check --read-data`` and ``--verify`` do)."""
        if raw is None:
            return None
        loc = need.loc
        what = f"data blob {need.blob_id.hex()[:12]}"
        try:
            return open_blob(
                self._cipher,
                self._key,
                dec,
                DATA,
                need.blob_id,
                raw,
                loc.raw_length,
                loc.compressed,
                what,
                check_id=False,
            )
        except IntegrityError:
            return None

    def _other_copy(
        self, outcome: WindowOutcome, need: NeedPlan, dec: zstandard.ZstdDecompressor
    ) -> tuple[bytes | None, str | None]:
        """The blob from another copy, verified against its id (the failed one is tried again
        last, for its exact error); else why not."""
        what = f"data blob {need.blob_id.hex()[:12]}"
        error: str | None = None
        copies = [c for c in need.others if c != need.loc] + [need.loc]
        for loc in copies:
            try:
                sealed = self._backend.read_range("data", loc.pack_id, loc.offset, loc.length)
                data = open_blob(
                    self._cipher,
                    self._key,
                    dec,
                    DATA,
                    need.blob_id,
                    sealed,
                    loc.raw_length,
                    loc.compressed,
                    f"{what} in pack {loc.pack_id[:12]}",
                )
            except (IntegrityError, StorageError) as exc:
                with self._lock:
                    outcome.bad_copies.append((loc.pack_id, need.blob_id))
                error = error or str(exc)
                continue
            return data, None
        return None, error

    # -- writing -----------------------------------------------------------------------------
    def _open(self, outcome: WindowOutcome, job: _Job) -> bool:
        """Create the file's temporary name (under the job's lock); False if that failed."""
        if job.fd >= 0 or job.write_failed:
            # (A damaged file is still created: what can be read is kept under another name.)
            return job.fd >= 0
        mode = 0o600
        node = job.plan.meta
        settings = self.metadata.settings
        if (
            job.folder.metadata_by_fd
            and not node.mode & ~0o777
            and not node.mode & settings.umask
            and not (settings.chown and (node.uid, node.gid) != settings.own_ids)
        ):
            # Its final mode from the start (no setuid/setgid bits, nothing the umask drops, and
            # already its final owner, so nobody reads it who could not read the finished
            # file): saves the chmod; the fd stays writable whatever the mode says.
            mode, job.mode_set = node.mode, True
        try:
            job.fd = job.folder.open(job.plan.tmp, _NEW_FILE, mode)
        except OSError as exc:
            job.damaged = job.write_failed = True
            self._write_error(outcome, job.plan.spath, "not restored, cannot open for writing", exc)
            return False
        if node.size >= DIRECT_WRITE:
            job.direct = platform.DirectFile.start(job.fd, node.size)
            job.padded = job.direct is not None
        return True

    def _write_block(self) -> memoryview:
        """This thread's aligned buffer for direct writes."""
        buffer = getattr(self._buffers, "write", None)
        if buffer is None:
            buffer = self._buffers.write = platform.ReadBuffer()
        return buffer.view(platform.WRITE_BLOCK)

    def _write_data(self, job: _Job, offset: int, data: bytes | memoryview) -> int:
        """Write one chunk of the file (past the cache where the job can); the end of the last
        byte written."""
        direct = job.direct
        if direct is not None:
            block = self._write_block()
            try:
                low, whole = direct.absorb(offset, data, block)
                end = write_sparse(
                    job.fd, low, whole, lambda _fd, at, view: direct.write_aligned(at, view, block)
                )
                return max(end, direct.end)
            except platform.DirectRefused:
                job.direct = None  # this file through the cache, all of it
                job.end = max(job.end, direct.end)  # (a padded last block may be written)
                direct.give_up()
        return write_sparse(job.fd, offset, data)

    def _write_chunk(
        self,
        outcome: WindowOutcome,
        job: _Job,
        index: int,
        offset: int,
        data: bytes | memoryview | None,
        error: str | None,
    ) -> None:
        with job.lock:
            if data is not None and self._open(outcome, job):
                try:
                    job.end = max(job.end, self._write_data(job, offset, data))
                    job.data_end = max(job.data_end, offset + len(data))
                except OSError as exc:
                    if not job.damaged:
                        job.damaged = job.write_failed = True
                        self._write_error(outcome, job.plan.spath, "not restored, write error", exc)
                else:
                    self._progress.advance(size=len(data))
                    with self._lock:
                        outcome.bytes += len(data)
            self._chunk_done(outcome, job, index, data, error, locked=True)

    def _chunk_done(
        self,
        outcome: WindowOutcome,
        job: _Job,
        index: int,
        data: bytes | memoryview | None,
        error: str | None,
        count: int = 1,
        locked: bool = False,
    ) -> None:
        """One chunk of ``job`` is written (or failed); the last one finishes the file."""
        with contextlib.nullcontext() if locked else job.lock:
            if error is not None and not job.damaged:
                job.damaged = True
                self._error(outcome, job.plan.spath, f"not restored, data damaged: {error}")
            job.remaining -= count
            if job.remaining > 0:
                return
            fd, job.fd = job.fd, -1
        size = job.plan.meta.size
        if fd >= 0 and not job.write_failed:
            try:
                if job.direct is not None:  # the edges still open (a hole, a damaged chunk)
                    self._finish_direct(job.direct)
                    job.end = max(job.end, job.direct.end)
                # Trailing holes, the padding of a direct write; a damaged file ends where
                # its data does.
                want = job.data_end if job.damaged else size
                if job.end != want or job.padded:
                    _cut_or_extend(fd, job.end, want)
            except OSError as exc:
                job.damaged = job.write_failed = True
                self._write_error(outcome, job.plan.spath, "not restored, write error", exc)
        outcome.status[index] = self._finish(outcome, job, fd)

    def _finish_direct(self, direct: platform.DirectFile) -> None:
        try:
            direct.finish(self._write_block())
        except platform.DirectRefused:
            direct.give_up()

    def _finish(self, outcome: WindowOutcome, job: _Job, fd: int) -> str:
        """Owner, mode and times through the open file, then the rename that makes the file
        visible."""
        plan, folder = job.plan, job.folder
        node = plan.meta
        try:
            if job.damaged or fd < 0:
                if fd >= 0:
                    os.close(fd)
                    fd = -1
                if folder.lstat(plan.tmp) is None:
                    return FAILED
                if job.write_failed:  # nothing to keep: the data was fine, the target not
                    folder.unlink(plan.tmp)
                else:  # what was readable, for someone who needs every byte
                    kept = damaged_name(plan.name)
                    folder.rename(plan.tmp, kept, replace=True)
                    with self._lock:
                        outcome.warnings.append(
                            Skipped(plan.spath, f"what could be read is kept as {kept}")
                        )
                return FAILED
            # Everything, times included, is set before the rename, so a file under its
            # real name is complete in content *and* dates even after a crash.
            if folder.metadata_by_fd:
                self.metadata.apply(folder, plan.tmp, fd, node, plan.spath, job.mode_set)
                # (read back only while renames are being checked for keeping times)
                stored = os.fstat(fd).st_mtime_ns if self.metadata.checks_renames else node.mtime_ns
                os.close(fd)
                fd = -1
            else:  # Windows: attributes and times are set by path once the file is closed
                os.close(fd)
                fd = -1
                self.metadata.apply(folder, plan.tmp, None, node, plan.spath)
                stored = folder.stat(plan.tmp, None).st_mtime_ns
            try:
                folder.rename(plan.tmp, plan.name, plan.replace)
            except FileExistsError:
                folder.unlink(plan.tmp)  # appeared meanwhile: "never" keeps it
                return KEPT
            self.metadata.times_after_rename(folder, plan.name, node, stored)
        except OSError as exc:
            self._error(outcome, plan.spath, f"cannot finish file: {describe(exc)}")
            with contextlib.suppress(OSError):
                folder.unlink(plan.tmp)  # best effort; a leftover is only a temp file
            return FAILED
        finally:
            if fd >= 0:
                os.close(fd)
        return DONE
