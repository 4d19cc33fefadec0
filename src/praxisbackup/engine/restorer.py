"""Restore: put a snapshot's files back exactly - content, times, modes, links, owners.

Safety properties (each has its own tests; a faster restorer must keep all of them):

* **Never outside the target.** Every destination is reached through :class:`TargetTree`,
  which opens folders one component at a time without following links (``openat`` +
  ``O_NOFOLLOW`` on POSIX, reparse-point checks on Windows). A link planted below the target
  is refused and named; only links the caller allows by path are followed. Trees with
  duplicate or unsorted names are rejected when decoded (:func:`decode_tree`).
* **Never a half-written file under a real name.** Every file - in every overwrite mode - is
  written under a short temporary name in its folder, gets its owner and mode through the
  open file, and is renamed into place when complete (``never``: a rename that does not
  replace). Its times are set before the rename too, so a file under its real name has its
  dates even after a crash (on a file system that resets times on rename, FAT through FUSE,
  they are set again afterwards). A crash leaves at most a ``*.praxisbackup-tmp`` file.
* **Special entries only when asked.** Device nodes, FIFOs and setuid/setgid bits are restored
  only with ``special=True`` (like ``tar -p`` as root); otherwise each is named as skipped.
* **Verification covers what the target holds**: with ``verify``, files this run wrote *and*
  existing files it kept are read back and compared with the snapshot.
* **Readers are protected**: the restore holds a shared repository lock (unless ``lock`` is off
  for a read-only medium), so prune cannot delete packs under it.

Content is written by a thread pool (large files in segments, in parallel). Times are set
after content; folder times and modes are set last, deepest first. A file whose data is missing
or damaged is not restored under its name: what could be read is kept as
``<name>.praxisbackup-damaged`` and the file is reported. Every other file is restored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fnmatch
import itertools
import os
import stat
import threading
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import zstandard

from praxisbackup import platform
from praxisbackup.engine import crypto
from praxisbackup.engine.index import BlobLocation
from praxisbackup.engine.lock import lock_repository
from praxisbackup.engine.objects import decompressor
from praxisbackup.engine.pack import DATA, TREE, blob_ad
from praxisbackup.engine.paths import normalize_snapshot_path
from praxisbackup.engine.progress import Progress, quiet_gc
from praxisbackup.engine.repository import Repository
from praxisbackup.engine.snapshot import Skipped, Snapshot
from praxisbackup.engine.target import Parts, TargetTree
from praxisbackup.engine.tree import (
    BLOCKDEV,
    CHARDEV,
    DIR,
    FIFO,
    FILE,
    HARDLINK,
    SOCKET,
    SYMLINK,
    Node,
    decode_tree,
)
from praxisbackup.errors import IntegrityError, PraxisError, StorageError, UnsafeTargetError
from praxisbackup.platform.targetdir import TargetDir

OVERWRITE_POLICIES = ("never", "if-changed", "always")
TEMP_SUFFIX = ".praxisbackup-tmp"
DAMAGED_SUFFIX = ".praxisbackup-damaged"
#: Files are planned in windows of this many files or bytes; each window's data is read pack
#: by pack (every needed pack once, nearby blobs in one read) and written by the workers.
WINDOW_FILES = 256
WINDOW_BYTES = 512 << 20
#: setuid and setgid: restored only with ``special``.
SETID_BITS = stat.S_ISUID | stat.S_ISGID
SPECIAL_HINT = "use --special-files to restore it"
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL


@dataclass
class RestoreOptions:
    target: str
    includes: list[str] = field(default_factory=list)
    overwrite: str = "never"
    verify: bool = False
    #: Maps a snapshot path (``/C/CompuMED/M1``) to a destination; default: below ``target``.
    #: Destinations must lie inside ``target``.
    path_map: Callable[[str], str] | None = None
    #: Threads that decrypt, decompress and write: two per core, because a thread waiting in
    #: the kernel (open, pwrite, rename) holds no core (bench: 13.1 s with 2 on two cores,
    #: 12.0 s with 4, 12.3 s with 6).
    workers: int = field(default_factory=lambda: min(8, 2 * (os.cpu_count() or 1)))
    #: Restore device nodes, FIFOs and setuid/setgid bits as they were (like ``tar -p``).
    special: bool = False
    #: Links (symlinks, junctions) below the target that may be followed, by absolute path.
    follow_links: list[str] = field(default_factory=list)
    #: Hold a shared lock on the repository (off only for media that cannot be written).
    lock: bool = True


@dataclass
class RestoreResult:
    files: int = 0
    dirs: int = 0
    links: int = 0
    bytes: int = 0
    existing_kept: list[str] = field(default_factory=list)
    errors: list[Skipped] = field(default_factory=list)
    warnings: list[Skipped] = field(default_factory=list)
    #: Largest difference in ns between a stored and a restored time (coarse file systems).
    time_precision_lost_ns: int = 0
    atime_precision_lost_ns: int = 0
    verified_files: int = 0
    verify_failures: list[Skipped] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and not self.verify_failures


@dataclass
class _FileJob:
    """A file being written; its chunks may come from several packs, written by several
    workers. ``remaining`` counts the chunks not yet written; the worker that writes the last
    one finishes the file (metadata, rename)."""

    node: Node
    folder: TargetDir
    parts: Parts
    name: str
    tmp: str
    spath: str
    remaining: int
    replace: bool
    #: (chunk id, offset in the file) of every chunk.
    chunks: list[tuple[bytes, int]] = field(default_factory=list)
    damaged: bool = False
    #: Not restored because writing failed (nothing damaged to keep: its temporary file goes).
    write_failed: bool = False
    fd: int = -1
    #: End of the last byte written (the file is truncated up to its size if shorter).
    end: int = 0
    #: Created with its final mode (no chmod needed).
    mode_set: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class _Need:
    """One blob a window needs from a pack, and where it goes."""

    blob_id: bytes
    loc: BlobLocation
    targets: list[tuple[_FileJob, int]]


#: errno values meaning "this file system cannot store that" (FAT has no modes or owners).
_UNSUPPORTED = {errno.ENOSYS, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EINVAL}
#: errno values meaning "the target is full": the restore stops instead of failing every file.
_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_SPARSE_BLOCK = 64 * 1024
_ZEROS = bytes(_SPARSE_BLOCK)


def write_sparse(fd: int, pos: int, data: bytes | memoryview) -> int:
    """Write ``data`` at ``pos`` but leave 64 KiB blocks of zeros unwritten, so holes of sparse
    files (and zero-filled database regions) stay holes. The caller truncates to the final size.
    Returns the end of the last byte written (``pos`` if nothing was)."""
    view = memoryview(data)
    run_start = None
    last_end: int | None = None
    size = len(data)
    for start in range(0, size, _SPARSE_BLOCK):
        end = min(start + _SPARSE_BLOCK, size)
        zero = data[start] == 0 and data[end - 1] == 0 and view[start:end] == _ZEROS[: end - start]
        if zero:
            if run_start is not None:
                _write_at(fd, pos + run_start, view[run_start:start])
                last_end = pos + start
                run_start = None
        elif run_start is None:
            run_start = start
    if run_start is not None:
        _write_at(fd, pos + run_start, view[run_start:])
        return pos + size
    return pos if last_end is None else last_end


def _write_at(fd: int, offset: int, view: memoryview) -> None:
    while view:
        written = platform.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def _umask() -> int:
    """The process's umask (read by setting it and putting it back, before any thread runs)."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def damaged_name(name: str) -> str:
    """Where the readable part of a damaged file is kept (fits in 255 bytes)."""
    limit = 255 - len(DAMAGED_SUFFIX.encode())
    while len(name.encode("utf-8", "surrogateescape")) > limit:
        name = name[:-1]
    return name + DAMAGED_SUFFIX


class _IncludeMatcher:
    """Which entries the ``--include`` paths select, and which of them matched anything (an
    include that selects nothing is a typo or a wrong path: the restore says so)."""

    def __init__(self, includes: list[str]) -> None:
        fold = platform.IS_WINDOWS
        self.given = list(includes)
        self._norm = [
            normalize_snapshot_path(i).lower() if fold else normalize_snapshot_path(i)
            for i in includes
        ]
        self._fold = fold
        self._matched = [False] * len(includes)

    def __call__(self, spath: str) -> tuple[bool, bool]:
        """(restore this entry fully, descend into it)."""
        if not self._norm:
            return True, True
        p = spath.lower() if self._fold else spath
        for n, inc in enumerate(self._norm):
            if p == inc or p.startswith(inc.rstrip("/") + "/") or fnmatch.fnmatchcase(p, inc):
                self._matched[n] = True
                return True, True
        for inc in self._norm:
            if inc.startswith(p.rstrip("/") + "/"):
                return False, True
        return False, False

    def unmatched(self) -> list[str]:
        return [given for given, hit in zip(self.given, self._matched, strict=True) if not hit]


def _describe(exc: OSError) -> str:
    return exc.strerror or str(exc)


class Restorer:
    def __init__(
        self,
        repo: Repository,
        snapshot: Snapshot,
        options: RestoreOptions,
        progress: Progress | None = None,
    ) -> None:
        if options.overwrite not in OVERWRITE_POLICIES:
            raise PraxisError(f"--overwrite must be one of {', '.join(OVERWRITE_POLICIES)}")
        self.repo = repo
        self.snapshot = snapshot
        self.options = options
        self.progress = progress or Progress()
        self.result = RestoreResult()
        self._match = _IncludeMatcher(options.includes)
        self._lock = threading.Lock()
        self._dirs: list[tuple[Parts, Node, str]] = []
        self._done_files: list[tuple[Parts, str, Node, str]] = []  # folder, name, node, spath
        self._kept_files: list[tuple[Parts, str, Node, str]] = []
        self._hardlinks: list[tuple[Parts, str, Node, str]] = []
        self._restored: dict[str, tuple[Parts, str]] = {}  # snapshot path -> destination
        self._replace = options.overwrite != "never"
        self._tmp_counter = itertools.count()
        self._chown = platform.can_restore_owner()
        self._target: TargetTree | None = None
        self._window: list[_FileJob] = []
        self._window_bytes = 0
        self._pool: ThreadPoolExecutor | None = None
        self._windows: ThreadPoolExecutor | None = None
        self._window_running: Future[None] | None = None
        #: Each worker thread reads packs into its own buffer, reused (no fresh pages per read).
        self._buffers = threading.local()
        #: Files with sub-second times that must read back exactly before the target counts
        #: as precise; -1 once any difference was seen (then every file is measured).
        self._precision_checks_left = 64
        #: Files checked for keeping their times across the rename (see _times_after_rename).
        self._rename_checks_left = 64
        self._rename_resets_times = False
        self._own_ids = (os.geteuid(), os.getegid()) if hasattr(os, "geteuid") else (-1, -1)
        self._pid = os.getpid()
        self._umask = _umask()
        #: The first "no space left" error: the restore stops planning and writing.
        self._full: OSError | None = None

    @property
    def target(self) -> TargetTree:
        assert self._target is not None
        return self._target

    # -- places ------------------------------------------------------------------------
    def _place(self, spath: str) -> tuple[Parts, str] | None:
        """(folder components below the target, name) of a snapshot path; None = the root."""
        if self.options.path_map is not None:
            return self.target.place(self.options.path_map(spath))
        parts = tuple(spath.split("/")[1:])
        return parts[:-1], parts[-1]

    def _load_tree(self, tree_id: bytes, spath: str) -> list[Node] | None:
        try:
            return decode_tree(self.repo.read_blob(TREE, tree_id), f"tree of {spath or '/'}")
        except (IntegrityError, StorageError) as exc:
            self.result.errors.append(Skipped(spath or "/", f"folder contents lost: {exc}"))
            return None

    def walk(
        self, tree_id: bytes, spath: str = ""
    ) -> Generator[tuple[str, Node, bool], bool | None, None]:
        """Yield (snapshot path, node, restore fully) for entries selected by the includes,
        depth first (iteratively: a crafted tree of any depth cannot exhaust the stack). The
        consumer may ``send(False)`` after a folder to skip what lies below it."""
        stack: list[tuple[str, Iterator[Node]]] = []
        nodes = self._load_tree(tree_id, spath)
        if nodes is not None:
            stack.append((spath, iter(nodes)))
        while stack:
            parent, entries = stack[-1]
            node = next(entries, None)
            if node is None:
                stack.pop()
                continue
            child = f"{parent}/{node.name}"
            full, descend = self._match(child)
            if not descend:
                continue
            enter = yield child, node, full
            if node.type == DIR and node.subtree is not None and enter is not False:
                sub = self._load_tree(node.subtree, child)
                if sub is not None:
                    stack.append((child, iter(sub)))

    # -- main -------------------------------------------------------------------------
    def run(self) -> RestoreResult:
        lock = (
            lock_repository(self.repo, exclusive=False, command="restore", reader=True)
            if self.options.lock
            else contextlib.nullcontext()
        )
        with lock:
            self._target = TargetTree(self.options.target, self.options.follow_links)
            try:
                self._run()
            finally:
                self._target.close()
        return self.result

    def _run(self) -> None:
        workers = max(1, self.options.workers)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="restore")
        # Windows are written by this thread while the walk plans the next one.
        self._windows = ThreadPoolExecutor(1, thread_name_prefix="restore-window")
        try:
            with quiet_gc():
                self._write_all()
                self._wait_window()
            self._link_hardlinks()
            self._wait_window()
        finally:
            self._windows.shutdown(wait=True)
            self._pool.shutdown(wait=True)
        self._finish_dirs()
        self._report_refused_links()
        self._report_full()
        for include in self._match.unmatched():
            self.result.warnings.append(
                Skipped(include, "nothing in the snapshot matches this --include path")
            )
        self.progress.close()
        if self.options.verify:
            self._verify()

    def _write_all(self) -> None:
        walker = self.walk(self.snapshot.tree_id)
        item = next(walker, None)
        while item is not None:
            spath, node, full = item
            if self._full is not None:
                break  # the target is full: nothing more can be written
            enter = self._restore_entry(spath, node, full)
            try:
                item = walker.send(enter)
            except StopIteration:
                item = None
        self._run_window()

    def _error(self, spath: str, reason: str) -> None:
        with self._lock:
            self.result.errors.append(Skipped(spath, reason))

    def _write_error(self, spath: str, what: str, exc: OSError) -> None:
        """A file or folder that could not be written; a full target is reported once (at the
        end) and stops the restore instead of failing every remaining file."""
        if exc.errno in _FULL:
            with self._lock:
                if self._full is None:
                    self._full = exc
            return
        self._error(spath, f"{what}: {_describe(exc)}")

    def _report_full(self) -> None:
        if self._full is not None:
            self.result.errors.append(
                Skipped(
                    self.options.target,
                    f"the restore target is full ({_describe(self._full)}); the restore "
                    f"stopped after {self.result.files} files - make room or choose another "
                    "target and restore again",
                )
            )

    def _restore_entry(self, spath: str, node: Node, full: bool) -> bool:
        """Restore one entry; returns False if what lies below it must be skipped."""
        if node.type == DIR and not full:
            return True  # an ancestor of an included path: created when something goes in it
        try:
            place = self._place(spath)
        except PraxisError as exc:
            self._error(spath, f"not restored: {exc}")
            return False
        if place is None:
            return True  # mapped onto the target root itself: it exists, nothing to do
        if node.type == DIR:
            return self._make_dir(place, node, spath)
        if node.type in (FILE, HARDLINK):
            self._restore_file(place, node, spath)
        else:
            self._restore_special(place, node, spath)
        return True

    def _acquire(self, parts: Parts, spath: str) -> TargetDir | None:
        try:
            return self.target.acquire(parts)
        except UnsafeTargetError:
            return None  # reported once per link at the end
        except OSError as exc:
            self._write_error(spath, f"cannot create folder {exc.filename or ''}", exc)
            return None

    def _make_dir(self, place: tuple[Parts, str], node: Node, spath: str) -> bool:
        parts = (*place[0], place[1])
        if self._acquire(parts, spath) is None:
            return False
        self.target.release(parts)
        self._dirs.append((parts, node, spath))
        self.result.dirs += 1
        return True

    def _report_refused_links(self) -> None:
        for path, (error, count) in self.target.refused.items():
            where = (
                "nothing was written through it"
                if count == 1
                else (f"nothing was written through it ({count} folders refused)")
            )
            self.result.errors.append(Skipped(path, f"not restored: {error}; {where}"))

    # -- files ------------------------------------------------------------------------
    def _kept(self, parts: Parts, name: str, node: Node, spath: str) -> None:
        with self._lock:
            self.result.existing_kept.append(spath)
            if node.type in (FILE, HARDLINK):
                self._kept_files.append((parts, name, node, spath))

    def _may_write(
        self, folder: TargetDir, parts: Parts, name: str, node: Node, spath: str
    ) -> bool:
        if parts and parts in self.target.fresh:
            # A folder this restore created holds only what it put there (and a file that
            # appears meanwhile is still never replaced with "never": the rename refuses).
            return True
        try:
            st = folder.lstat(name)
        except OSError as exc:
            self._error(spath, f"cannot inspect target: {_describe(exc)}")
            return False
        if st is None:
            return True
        policy = self.options.overwrite
        if policy == "always":
            return True
        if policy == "if-changed" and not (
            stat.S_ISREG(st.st_mode) and st.st_size == node.size and st.st_mtime_ns == node.mtime_ns
        ):
            return True
        self._kept(parts, name, node, spath)
        return False

    def _temp_name(self) -> str:
        # Short: the real name may already use all 255 bytes.
        return f".praxisbackup-{self._pid}-{next(self._tmp_counter)}{TEMP_SUFFIX}"

    def _restore_file(self, place: tuple[Parts, str], node: Node, spath: str) -> None:
        parts, name = place
        folder = self._acquire(parts, spath)
        if folder is None:
            return
        if not self._may_write(folder, parts, name, node, spath):
            self.target.release(parts)
            return
        if node.type == HARDLINK:
            self.target.release(parts)
            self._hardlinks.append((parts, name, node, spath))
            return
        job = self._plan_file(folder, parts, name, node, spath)
        if job is not None:
            self._window.append(job)
            self._window_bytes += node.size
            if len(self._window) >= WINDOW_FILES or self._window_bytes >= WINDOW_BYTES:
                self._run_window()

    def _plan_file(
        self, folder: TargetDir, parts: Parts, name: str, node: Node, spath: str
    ) -> _FileJob | None:
        """The write job of one file (the caller has acquired ``folder``; finishing the file
        releases it), or None if it must not be created."""
        chunks = []
        offset = 0
        known = True
        for cid in node.content:
            loc = self.repo.index.lookup(DATA, cid)
            chunks.append((cid, offset))
            if loc is None:
                known = False
            else:
                offset += loc.raw_length
        if known and offset != node.size:
            # A crafted or damaged tree: never create a file of a size its data cannot fill.
            self.target.release(parts)
            self._error(spath, f"not restored: its size {node.size} does not match its content")
            return None
        tmp = self._temp_name()
        job = _FileJob(node, folder, parts, name, tmp, spath, len(chunks), self._replace, chunks)
        return job

    # -- writing, pack by pack ------------------------------------------------------------
    def _run_window(self) -> None:
        """Hand the planned files over for writing (after the window before them is done)."""
        window, self._window, self._window_bytes = self._window, [], 0
        self._wait_window()
        if window:
            assert self._windows is not None
            self._window_running = self._windows.submit(self._write_window, window)

    def _wait_window(self) -> None:
        running, self._window_running = self._window_running, None
        if running is not None:
            running.result()

    def _write_window(self, window: list[_FileJob]) -> None:
        """Write the planned files: every pack they need is read once (nearby blobs in one
        read), its blobs decrypted and decompressed by the workers and written into every file
        that needs them; a file is finished by whoever writes its last chunk."""
        packs: dict[str, dict[bytes, _Need]] = {}
        empty = []
        for job in window:
            if not job.chunks:
                empty.append(job)
            for cid, offset in job.chunks:
                loc = self.repo.index.lookup(DATA, cid)
                if loc is None:
                    self._chunk_done(job, None, f"data blob {cid.hex()[:12]} is missing")
                    continue
                need = packs.setdefault(loc.pack_id, {}).get(cid)
                if need is None:
                    need = packs[loc.pack_id][cid] = _Need(cid, loc, [])
                need.targets.append((job, offset))
        for job in empty:
            self._open_job(job)
            self._chunk_done(job, None, None, count=0)
        tasks = [sorted(needs.values(), key=lambda n: n.loc.offset) for needs in packs.values()]
        assert self._pool is not None
        try:
            for _ in self._pool.map(self._restore_pack, tasks):
                pass
        finally:
            for job in window:
                if job.fd >= 0:  # left open by an error that stopped the restore
                    os.close(job.fd)
                    job.fd = -1

    def _restore_pack(self, needs: list[_Need]) -> None:
        """Read the blobs one pack holds for this window and write them where they belong."""
        self.repo.check_lock()
        if self._full is not None:  # the target is full: these files cannot be finished
            for need in needs:
                for job, _offset in need.targets:
                    with job.lock:
                        job.damaged = job.write_failed = True
                        self._chunk_done(job, None, None, locked=True)
            return
        pack_id = needs[0].loc.pack_id
        sealed: list[bytes | memoryview | None]
        buffer = getattr(self._buffers, "buffer", None)
        if buffer is None:
            buffer = self._buffers.buffer = bytearray()
        try:
            sealed = list(
                self.repo.backend.read_ranges(
                    "data", pack_id, [(n.loc.offset, n.loc.length) for n in needs], buffer
                )
            )
        except StorageError:
            sealed = [None] * len(needs)  # each blob is then tried at its other copies
        dec = decompressor()
        for need, raw in zip(needs, sealed, strict=True):
            self.repo.check_lock()  # a lost lock stops the restore at the next blob
            data = self._decode(need, raw, dec)
            error = None
            if data is None:
                try:  # the next copy, if there is one (read_blob marks this one bad)
                    self.repo.index.mark_bad(pack_id, DATA, need.blob_id)
                    data = self.repo.read_blob(DATA, need.blob_id)
                except (IntegrityError, StorageError) as exc:
                    error = str(exc)
            for job, offset in need.targets:
                self._write_chunk(job, offset, data, error)

    def _decode(
        self, need: _Need, raw: bytes | memoryview | None, dec: zstandard.ZstdDecompressor
    ) -> bytes | memoryview | None:
        """Decrypt and decompress one blob; None if it does not authenticate or decompress.
        AES-GCM authenticates the blob's content and binds it to its id (associated data), so
        the id is not hashed again here (``check --read-data`` and ``--verify`` do)."""
        if raw is None:
            return None
        loc = need.loc
        try:
            payload = self.repo.cipher.open(
                raw, blob_ad(DATA, need.blob_id), f"data blob {need.blob_id.hex()[:12]}"
            )
            data = (
                dec.decompress(payload, max_output_size=loc.raw_length)
                if loc.compressed
                else payload
            )
        except (IntegrityError, zstandard.ZstdError):
            return None
        return data if len(data) == loc.raw_length else None

    def _open_job(self, job: _FileJob) -> bool:
        """Create the file's temporary name (under the job's lock); False if that failed."""
        if job.fd >= 0 or job.damaged:
            return job.fd >= 0
        mode = 0o600
        node = job.node
        if (
            job.folder.metadata_by_fd
            and not node.mode & ~0o777
            and not node.mode & self._umask
            and not (self._chown and (node.uid, node.gid) != self._own_ids)
        ):
            # Its final mode from the start (no setuid/setgid bits, nothing the umask drops, and
            # already its final owner, so nobody reads it who could not read the finished
            # file): saves the chmod; the fd stays writable whatever the mode says.
            mode, job.mode_set = node.mode, True
        try:
            job.fd = job.folder.open(job.tmp, _NEW_FILE, mode)
        except OSError as exc:
            job.damaged = job.write_failed = True
            self._write_error(job.spath, "not restored, cannot open for writing", exc)
            return False
        return True

    def _write_chunk(
        self, job: _FileJob, offset: int, data: bytes | memoryview | None, error: str | None
    ) -> None:
        with job.lock:
            if data is not None and self._open_job(job):
                try:
                    job.end = max(job.end, write_sparse(job.fd, offset, data))
                except OSError as exc:
                    if not job.damaged:
                        job.damaged = job.write_failed = True
                        self._write_error(job.spath, "not restored, write error", exc)
                else:
                    self.progress.advance(size=len(data))
            self._chunk_done(job, data, error, locked=True)

    def _chunk_done(
        self,
        job: _FileJob,
        data: bytes | memoryview | None,
        error: str | None,
        count: int = 1,
        locked: bool = False,
    ) -> None:
        """One chunk of ``job`` is written (or failed); the last one finishes the file."""
        with contextlib.nullcontext() if locked else job.lock:
            if error is not None and not job.damaged:
                job.damaged = True
                self._error(job.spath, f"not restored, data damaged: {error}")
            job.remaining -= count
            if job.remaining > 0:
                return
            fd, job.fd = job.fd, -1
        if fd >= 0 and not job.damaged:
            try:
                if job.end != job.node.size:
                    os.ftruncate(fd, job.node.size)  # trailing holes of sparse files
            except OSError as exc:
                job.damaged = job.write_failed = True
                self._write_error(job.spath, "not restored, write error", exc)
        self._finish_file(job, fd)

    def _finish_file(self, job: _FileJob, fd: int) -> None:
        """Owner, mode and times through the open file, then the rename that makes the file
        visible."""
        node, folder = job.node, job.folder
        try:
            try:
                if job.damaged or fd < 0:
                    if fd >= 0:
                        os.close(fd)
                        fd = -1
                    if folder.lstat(job.tmp) is None:
                        return
                    if job.write_failed:  # nothing to keep: the data was fine, the target not
                        folder.unlink(job.tmp)
                    else:  # what was readable, for someone who needs every byte
                        folder.rename(job.tmp, damaged_name(job.name), replace=True)
                    return
                # Everything, times included, is set before the rename, so a file under its
                # real name is complete in content *and* dates even after a crash.
                if folder.metadata_by_fd:
                    self._apply_metadata(folder, job.tmp, fd, node, job.spath, job.mode_set)
                    # (read back only while renames are being checked for keeping times)
                    stored = (
                        os.fstat(fd).st_mtime_ns if self._rename_checks_left > 0 else node.mtime_ns
                    )
                    os.close(fd)
                    fd = -1
                else:  # Windows: attributes and times are set by path once the file is closed
                    os.close(fd)
                    fd = -1
                    self._apply_metadata(folder, job.tmp, None, node, job.spath)
                    stored = folder.stat(job.tmp, None).st_mtime_ns
                try:
                    folder.rename(job.tmp, job.name, job.replace)
                except FileExistsError:
                    folder.unlink(job.tmp)  # appeared meanwhile: "never" keeps it
                    self._kept(job.parts, job.name, node, job.spath)
                    return
                self._times_after_rename(folder, job.name, node, stored)
            except OSError as exc:
                self._error(job.spath, f"cannot finish file: {_describe(exc)}")
                with contextlib.suppress(OSError):
                    folder.unlink(job.tmp)  # best effort; a leftover is only a temp file
                return
            finally:
                if fd >= 0:
                    os.close(fd)
            with self._lock:
                self.result.files += 1
                self.result.bytes += node.size
                # Kept only as far as needed: a million files' nodes would be a lot of memory.
                if node.links > 1:  # may be the first occurrence of a hard link
                    self._restored[job.spath] = (job.parts, job.name)
                if self.options.verify:
                    self._done_files.append((job.parts, job.name, node, job.spath))
            self.progress.advance(files=1)
        finally:
            self.target.release(job.parts)

    def _link_hardlinks(self) -> None:
        for parts, name, node, spath in self._hardlinks:
            folder = self._acquire(parts, spath)
            if folder is None:
                continue
            try:
                if self._link_one(folder, parts, name, node, spath):
                    continue
                # The first occurrence was not restored (or cannot be linked): write a copy.
                self.target.acquire(parts)  # released when the copy is finished
                copy = dataclasses.replace(node, type=FILE)
                job = self._plan_file(folder, parts, name, copy, spath)
                if job is not None:
                    self._window.append(job)
                    self._run_window()
                    self._wait_window()
                    # The copy stands in for the first occurrence: the group's other names
                    # become links to it (not one copy each).
                    if node.link and spath in self._restored:
                        self._restored.setdefault(node.link, self._restored[spath])
            finally:
                self.target.release(parts)
        self._hardlinks = []

    def _link_one(self, folder: TargetDir, parts: Parts, name: str, node: Node, spath: str) -> bool:
        """Hard link to the first occurrence; False if a copy must be written instead."""
        first = self._restored.get(node.link or "")
        if first is None:
            return False
        try:
            if not self._replace and folder.lstat(name) is not None:
                self._kept(parts, name, node, spath)
                return True
            tmp = self._temp_name()
            with self.target.folder(first[0], create=False) as source:
                folder.link_from(source, first[1], tmp)
            try:
                folder.rename(tmp, name, self._replace)
            except FileExistsError:
                folder.unlink(tmp)
                self._kept(parts, name, node, spath)
                return True
        except UnsafeTargetError:
            return True  # reported once per link at the end
        except OSError as exc:
            self.result.warnings.append(
                Skipped(spath, f"hard link not possible, copied: {_describe(exc)}")
            )
            return False
        self.result.links += 1
        return True

    # -- other entry types -------------------------------------------------------------
    def _restore_special(self, place: tuple[Parts, str], node: Node, spath: str) -> None:
        kind = {FIFO: "FIFO", CHARDEV: "device node", BLOCKDEV: "device node"}.get(node.type)
        if node.type == SOCKET:
            self.result.warnings.append(Skipped(spath, "sockets are not restored"))
            return
        if kind is not None and not self.options.special:
            self.result.warnings.append(Skipped(spath, f"{kind} not restored ({SPECIAL_HINT})"))
            return
        parts, name = place
        folder = self._acquire(parts, spath)
        if folder is None:
            return
        try:
            if folder.lstat(name) is not None and self.options.overwrite != "always":
                self._kept(parts, name, node, spath)
                return
            tmp = self._temp_name()
            if node.type == SYMLINK:
                folder.symlink(node.target or "", tmp)
            elif node.type == FIFO and hasattr(os, "mkfifo"):
                folder.mkfifo(tmp, 0o600)
            elif kind == "device node" and platform.can_restore_owner():
                mode = stat.S_IFCHR if node.type == CHARDEV else stat.S_IFBLK
                folder.mknod(tmp, mode | 0o600, node.rdev)
            else:
                self.result.warnings.append(
                    Skipped(spath, f"{node.type} entries cannot be restored here")
                )
                return
            try:
                self._apply_metadata(folder, tmp, None, node, spath)
                folder.rename(tmp, name, self._replace)
            except OSError:
                with contextlib.suppress(OSError):
                    folder.unlink(tmp)  # best effort; the error below names the entry
                raise
        except FileExistsError:
            self._kept(parts, name, node, spath)
        except OSError as exc:
            self._error(spath, f"cannot create {node.type}: {_describe(exc)}")
        finally:
            self.target.release(parts)

    # -- metadata -----------------------------------------------------------------------
    def _mode(self, node: Node, spath: str) -> int:
        if node.mode & SETID_BITS and not self.options.special and node.type != DIR:
            with self._lock:
                self.result.warnings.append(
                    Skipped(spath, f"setuid/setgid bit not restored ({SPECIAL_HINT})")
                )
            return node.mode & ~SETID_BITS
        return node.mode

    def _apply_metadata(
        self,
        folder: TargetDir,
        name: str,
        fd: int | None,
        node: Node,
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
        try:
            chowned = self._chown and (node.uid, node.gid) != self._own_ids
            if chowned:
                folder.chown(name, fd, node.uid, node.gid)
            if not is_link and not mode_set:
                folder.chmod(name, fd, self._mode(node, spath))
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED:
                raise
            self._note_unsupported(f"permissions/owner not supported by the target: {exc.strerror}")
        if platform.IS_WINDOWS and node.attributes is not None and not is_link:
            folder.set_attributes(name, node.attributes)
        self._apply_times(folder, name, fd, node)

    def _times_after_rename(self, folder: TargetDir, name: str, node: Node, stored: int) -> None:
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

    def _apply_times(self, folder: TargetDir, name: str, fd: int | None, node: Node) -> None:
        is_link = node.type == SYMLINK
        folder.utime(name, fd, node.atime_ns, node.mtime_ns)
        if node.btime_ns is not None and platform.IS_WINDOWS:
            folder.set_birthtime(name, node.btime_ns)
        if not is_link and self._precision_checks_left:
            # Read the times back: a coarse file system (FAT 2 s, ext4 with small inodes 1 s)
            # is reported, not silently accepted. Once enough files have matched exactly,
            # the target is known to be precise and the extra stat is skipped.
            st = folder.stat(name, fd)
            mdiff = abs(st.st_mtime_ns - node.mtime_ns)
            adiff = abs(st.st_atime_ns - node.atime_ns)
            with self._lock:
                if mdiff or adiff:
                    res = self.result
                    res.time_precision_lost_ns = max(res.time_precision_lost_ns, mdiff)
                    res.atime_precision_lost_ns = max(res.atime_precision_lost_ns, adiff)
                    self._precision_checks_left = -1  # imprecise: measure every file
                elif self._precision_checks_left > 0 and node.mtime_ns % 1_000_000_000:
                    self._precision_checks_left -= 1

    def _note_unsupported(self, message: str) -> None:
        with self._lock:
            if not any(w.reason == message for w in self.result.warnings):
                self.result.warnings.append(Skipped(self.options.target, message))

    def _finish_dirs(self) -> None:
        for parts, node, spath in reversed(self._dirs):
            try:
                with self.target.folder(parts, create=False) as own:
                    self._apply_metadata(own, os.curdir, own.fd, node, spath)
            except UnsafeTargetError as exc:
                self.result.errors.append(Skipped(spath, f"folder metadata not set: {exc}"))
            except OSError as exc:
                self.result.warnings.append(
                    Skipped(spath, f"folder metadata not set: {_describe(exc)}")
                )
        res = self.result
        if res.time_precision_lost_ns or res.atime_precision_lost_ns:
            res.warnings.append(
                Skipped(
                    self.options.target,
                    "the target file system stores file times less precisely than the backup: "
                    f"modification times differ by up to {res.time_precision_lost_ns / 1e9:.3f} s, "
                    f"access times by up to {res.atime_precision_lost_ns / 1e9:.3f} s",
                )
            )

    # -- verification -----------------------------------------------------------------
    def _verify(self) -> None:
        """Re-read every restored file and every existing file that was kept, and compare
        content (chunk ids), size and modification time with the snapshot."""
        for parts, name, node, spath in self._done_files:
            self._verify_entry(parts, name, node, spath, kept=False)
        for parts, name, node, spath in self._kept_files:
            self._verify_entry(parts, name, node, spath, kept=True)

    def _verify_entry(self, parts: Parts, name: str, node: Node, spath: str, kept: bool) -> None:
        try:
            with self.target.folder(parts, create=False) as folder:
                problem = self._verify_one(folder, name, node)
        except UnsafeTargetError as exc:
            problem = str(exc)
        except OSError as exc:
            problem = f"cannot read back: {_describe(exc)}"
        if problem and kept:
            problem = f"the existing file was kept and differs from the snapshot: {problem}"
        if problem:
            self.result.verify_failures.append(Skipped(spath, problem))
        else:
            self.result.verified_files += 1

    def _verify_one(self, folder: TargetDir, name: str, node: Node) -> str | None:
        try:
            fd = folder.open(name, os.O_RDONLY)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return "a link is in its place"
            return f"cannot read back: {_describe(exc)}"
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return "not a regular file"
            if st.st_size != node.size:
                return f"size {st.st_size} instead of {node.size}"
            tolerance = self.result.time_precision_lost_ns
            if abs(st.st_mtime_ns - node.mtime_ns) > tolerance:
                return "modification time differs"
            with os.fdopen(os.dup(fd), "rb") as fh:
                for cid in node.content:
                    loc = self.repo.index.lookup(DATA, cid)
                    if loc is None:
                        return "content cannot be compared (chunk missing in repository)"
                    data = fh.read(loc.raw_length)
                    if crypto.blob_id(self.repo.key, data) != cid:
                        return "content differs from the snapshot"
                if fh.read(1):
                    return "file is longer than in the snapshot"
            # Reading may have moved the access time (relatime); put the snapshot's back.
            if folder.metadata_by_fd:
                folder.utime(name, fd, node.atime_ns, node.mtime_ns)
        except OSError as exc:
            return f"cannot read back: {_describe(exc)}"
        finally:
            os.close(fd)
        if not folder.metadata_by_fd:
            folder.utime(name, None, node.atime_ns, node.mtime_ns)
        return None
