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
  they are set again afterwards). A crash or a stop leaves only ``*.praxisbackup-tmp``
  files - at most one per writing thread - which a later restore does not remove (README,
  Known gaps).
* **Special entries only when asked.** Device nodes, FIFOs and setuid/setgid bits are restored
  only with ``special=True`` (like ``tar -p`` as root); otherwise each is named as skipped.
* **Verification covers what the target holds**: with ``verify``, files this run wrote *and*
  existing files it kept are read back and compared with the snapshot.
* **Readers are protected**: the restore holds a shared repository lock (unless ``lock`` is off
  for a read-only medium), so prune cannot delete packs under it.

Content is written window by window (:mod:`restorewindow`): by worker processes for large
restores on POSIX (they receive the open folders as descriptors), else by threads of this
process. Times are set after content; folder times and modes after the folder's contents,
deepest first (those nothing pending touches while the last windows are written). A
file whose data is missing or damaged is not restored under its name: what could be read is
kept as ``<name>.praxisbackup-damaged`` and the file is reported. Every other file is
restored.
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
from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from praxisbackup import platform
from praxisbackup.engine import crypto, pipeline
from praxisbackup.engine.index import BlobLocation
from praxisbackup.engine.lock import lock_repository
from praxisbackup.engine.pack import DATA, TREE
from praxisbackup.engine.paths import normalize_snapshot_path
from praxisbackup.engine.progress import Progress, quiet_gc
from praxisbackup.engine.repository import Repository
from praxisbackup.engine.restoreahead import LOOKS_PER_WINDOW, RestoreAhead
from praxisbackup.engine.restorewindow import (
    DONE,
    FULL_ERRNOS,
    KEPT,
    SPECIAL_HINT,
    TEMP_SUFFIX,
    FileMeta,
    FilePlan,
    MetadataWriter,
    NeedPlan,
    WindowOutcome,
    WindowPlan,
    WindowWriter,
    WriteSettings,
    describe,
)
from praxisbackup.engine.snapshot import Skipped, Snapshot
from praxisbackup.engine.target import OPEN_LIMIT, Parts, TargetTree
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
from praxisbackup.platform.targetdir import FdDir, TargetDir

OVERWRITE_POLICIES = ("never", "if-changed", "always")
#: Files are planned in windows of this many files or bytes; each window's data is read pack
#: by pack (every needed pack once, nearby blobs in one read) and written by the workers.
WINDOW_FILES = 256
WINDOW_BYTES = 64 << 20
#: ... or this many folders (a window's folders stay open until it is written; one file per
#: folder must not hold hundreds of folders open per window).
WINDOW_FOLDERS = 64
#: Threads per worker process: one can wait for the medium or the target while the other works.
RESTORE_THREADS_PER_PROCESS = 2
#: Windows handed to one worker process at a time: the one it writes and the next.
WINDOWS_PER_PROCESS = 2
#: A window of this many bytes or more is *large* (a database file, scans): its writing waits
#: for the target more than for a core. Large windows go to at most all but one worker
#: process at a time, so one keeps writing small files (which need cores) beside them; the
#: planner holds up to :data:`HELD_LARGE` large windows back and plans on meanwhile. (Bench:
#: while both processes wrote the 1.7 GB of database files, a third of the two cores idled
#: and the 55 000 documents waited.)
LARGE_WINDOW = WINDOW_BYTES // 2
HELD_LARGE = 8


@dataclass
class RestoreOptions:
    target: str
    includes: list[str] = field(default_factory=list)
    overwrite: str = "never"
    verify: bool = False
    #: Maps a snapshot path (``/C/CompuMED/M1``) to a destination; default: below ``target``.
    #: Destinations must lie inside ``target``.
    path_map: Callable[[str], str] | None = None
    #: Threads that decrypt, decompress and write in the restoring process: two per core,
    #: because a thread waiting in the kernel (open, pwrite, rename) holds no core (bench:
    #: 13.1 s with 2 on two cores, 12.0 s with 4, 12.3 s with 6).
    workers: int = field(default_factory=lambda: min(8, 2 * (os.cpu_count() or 1)))
    #: Worker processes writing the files (None: one per core once a window is full; N: N
    #: from the first window; 0: none). POSIX only: they receive the open folders of the
    #: target as descriptors, and open the medium themselves by its location (so a backend
    #: with injected faults needs 0).
    processes: int | None = None
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
class _Planned:
    """A file planned for a window: where it goes (its folder is held until the window is
    written) and what it is."""

    node: Node
    folder: TargetDir
    parts: Parts
    name: str
    tmp: str
    spath: str
    replace: bool
    #: (blob id, offset in the file, its preferred location; None: the index lacks it)
    chunks: list[tuple[bytes, int, BlobLocation | None]]


def _umask() -> int:
    """The process's umask (read by setting it and putting it back, before any thread runs)."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


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


def _drained(meta: MetadataWriter) -> WindowOutcome:
    """What a metadata writer found (warnings, time precision) as an outcome of no files."""
    outcome = WindowOutcome([])
    meta.drain(outcome)
    return outcome


#: Below this many open files (plus a few per worker) the workers are not started early:
#: each holds descriptors (pipes, a socket) that a low limit needs for the target's folders
#: and files, and started at the first full window they are not started at all when the
#: descriptors are short (the restore writes in its own process then).
PRESTART_FILES = 256


def prepare(processes: int | None) -> None:
    """Start the worker processes a restore writes with before the repository is opened:
    they load while the passphrase's key is derived, as a backup's and a check's do (started
    at the first full window, they had taken about 0.1 s to load on the bench while that
    window waited). A restore that does not use them ends them (:meth:`Restorer.run`)."""
    if processes == 0 or not pipeline.can_pass_folders():
        return
    count = processes or pipeline.default_worker_count()
    if platform.raise_open_file_limit() >= PRESTART_FILES + 8 * count:
        pipeline.prestart(count)


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
        self._window: list[_Planned] = []
        self._window_bytes = 0
        self._window_dirs: set[int] = set()
        self._window_files = WINDOW_FILES
        self._window_folders = WINDOW_FOLDERS
        self._windows: ThreadPoolExecutor | None = None
        self._window_running: Future[None] | None = None
        self._settings = WriteSettings(
            chown=self._chown,
            own_ids=(os.geteuid(), os.getegid()) if hasattr(os, "geteuid") else (-1, -1),
            umask=_umask(),
            special=options.special,
            target=options.target,
        )
        self._meta = MetadataWriter(self._settings)
        self._writer: WindowWriter | None = None
        #: Worker processes writing windows (POSIX, large restores), and what each has.
        self._workers: pipeline.WorkerPool | None = None
        self._sent: dict[int, deque[tuple[list[_Planned], bool]]] = {}
        #: Large windows planned but not yet handed to a worker (see LARGE_WINDOW).
        self._held: deque[tuple[list[_Planned], WindowPlan, list[TargetDir]]] = deque()
        self._seen_warnings: set[tuple[str, str]] = set()
        self._pid = os.getpid()
        #: The first "no space left" error: the restore stops planning and writing.
        self._full: OSError | None = None
        #: Large files of folders ahead of the walk, restored beside its small files (None:
        #: not here - see :mod:`restoreahead`).
        self._ahead: RestoreAhead | None = None
        if not (options.includes or options.follow_links or options.path_map is not None):
            self._ahead = RestoreAhead()
        self._restoring_ahead = False

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

    def _load_tree(self, tree_id: bytes, spath: str, report: bool = True) -> list[Node] | None:
        """A folder's entries; None if its tree cannot be read (reported unless ``report`` is
        False: a look ahead of the walk, which reports it when it gets there)."""
        try:
            return decode_tree(self.repo.read_blob(TREE, tree_id), f"tree of {spath or '/'}")
        except (IntegrityError, StorageError) as exc:
            if report:
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
            if self._ahead is not None:
                self._ahead.seen(spath, nodes)
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
            if node.type == DIR and self._ahead is not None:
                self._ahead.entered(child)  # (also one not entered: nothing goes in it)
            if node.type == DIR and node.subtree is not None and enter is not False:
                sub = self._load_tree(node.subtree, child)
                if sub is not None:
                    stack.append((child, iter(sub)))
                    if self._ahead is not None:
                        self._ahead.seen(child, sub)

    # -- main -------------------------------------------------------------------------
    def run(self) -> RestoreResult:
        lock = (
            lock_repository(self.repo, exclusive=False, command="restore", reader=True)
            if self.options.lock
            else contextlib.nullcontext()
        )
        with lock:
            # Sized to the open-file limit (raised where allowed): the folders the target tree
            # keeps open, the windows' folders (two per worker process, the one being planned
            # and the large ones held back - these hold few folders: a few large files), their
            # files.
            files = platform.raise_open_file_limit()
            self._window_files = max(8, min(WINDOW_FILES, files // 8))
            self._window_folders = max(2, min(WINDOW_FOLDERS, files // 32))
            open_limit = max(8, min(OPEN_LIMIT, files // 4))
            self._target = TargetTree(self.options.target, self.options.follow_links, open_limit)
            try:
                self._run()
            finally:
                self._target.close()
                pipeline.discard_prestarted()  # (started by prepare(), not needed after all)
        return self.result

    def _run(self) -> None:
        repo = self.repo
        self._writer = WindowWriter(
            repo.backend,
            repo.key,
            repo.cipher,
            self._meta,
            max(1, self.options.workers),
            repo.check_lock,
            self.progress,
        )
        # Windows are written by this thread (or by worker processes) while the walk plans
        # the next one.
        self._windows = ThreadPoolExecutor(1, thread_name_prefix="restore-window")
        failed = True
        try:
            with quiet_gc():
                self._write_all()
                self._finish_dirs_early()
                self._wait_window()
            self._link_hardlinks()
            self._wait_window()
            failed = False
        finally:
            self._windows.shutdown(wait=True)
            self._writer.close()
            if self._workers is not None:
                self._workers.close(kill=failed)
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
            if self._ahead is not None and spath in self._ahead.done:
                self._ahead.done.discard(spath)  # restored ahead of the walk
                enter = True
            else:
                enter = self._restore_entry(spath, node, full)
            try:
                item = walker.send(enter)
            except StopIteration:
                item = None
        self._ahead = None  # (every folder is entered: nothing is ahead any more)
        self._run_window()
        self._hand_out_held()

    def _error(self, spath: str, reason: str) -> None:
        with self._lock:
            self.result.errors.append(Skipped(spath, reason))

    def _write_error(self, spath: str, what: str, exc: OSError) -> None:
        """A file or folder that could not be written; a full target is reported once (at the
        end) and stops the restore instead of failing every remaining file."""
        if exc.errno in FULL_ERRNOS:
            with self._lock:
                if self._full is None:
                    self._full = exc
            return
        self._error(spath, f"{what}: {describe(exc)}")

    def _report_full(self) -> None:
        if self._full is not None:
            self.result.errors.append(
                Skipped(
                    self.options.target,
                    f"the restore target is full ({describe(self._full)}); the restore "
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
            self._error(spath, f"cannot inspect target: {describe(exc)}")
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
        planned = self._plan_file(folder, parts, name, node, spath)
        if planned is not None:
            self._window.append(planned)
            self._window_bytes += node.size
            self._window_dirs.add(id(folder))
            if (
                len(self._window) >= self._window_files
                or self._window_bytes >= WINDOW_BYTES
                or len(self._window_dirs) >= self._window_folders
            ):
                self._run_window()

    def _plan_file(
        self, folder: TargetDir, parts: Parts, name: str, node: Node, spath: str
    ) -> _Planned | None:
        """The write job of one file (the caller has acquired ``folder``; finishing the file
        releases it), or None if it must not be created."""
        chunks = []
        offset = 0
        known = True
        lookup = self.repo.index.lookup
        for cid in node.content:
            loc = lookup(DATA, cid)
            chunks.append((cid, offset, loc))
            if loc is None:
                known = False
            else:
                offset += loc.raw_length
        if known and offset != node.size:
            # A crafted or damaged tree: never create a file of a size its data cannot fill.
            self.target.release(parts)
            self._error(spath, f"not restored: its size {node.size} does not match its content")
            return None
        return _Planned(node, folder, parts, name, self._temp_name(), spath, self._replace, chunks)

    # -- writing, pack by pack ------------------------------------------------------------
    def _run_window(self) -> None:
        """Hand the planned files over for writing: to a worker process with room, or to this
        process's window thread (after the window before them is done)."""
        full = (
            len(self._window) >= self._window_files
            or self._window_bytes >= WINDOW_BYTES
            or len(self._window_dirs) >= self._window_folders
        )
        large = self._window_bytes >= LARGE_WINDOW
        window, self._window, self._window_bytes = self._window, [], 0
        self._window_dirs = set()
        if not window:
            return
        plan, folders = self._plan_window(window)
        if self._workers is None and (full or (self.options.processes or 0) > 0):
            self._start_workers()
        if self._workers is not None:
            if large:
                self._held.append((window, plan, folders))
                self._send_held()
                while len(self._held) > HELD_LARGE:
                    self._take_result()
            else:
                self._send_window(window, plan, folders, large=False)
                self._restore_ahead()
            return
        self._wait_window()
        assert self._windows is not None
        self._window_running = self._windows.submit(self._write_here, window, plan, folders)

    def _restore_ahead(self) -> None:
        """After a window of small files went to a worker: while no worker has a large window,
        restore up to a window of large files from folders ahead of the walk (see
        :mod:`restoreahead`)."""
        ahead, pool = self._ahead, self._workers
        if ahead is None or pool is None or len(pool.workers) < 2 or self._restoring_ahead:
            return
        if self._held or self._full is not None:
            return
        if any(self._large_at(w.index) for w in pool.workers):
            return
        looks = 0
        while not ahead.has_files and looks < LOOKS_PER_WINDOW:
            folder = ahead.next_folder()
            if folder is None:
                return
            looks += 1
            spath, tree_id = folder
            nodes = self._load_tree(tree_id, spath, report=False)
            if nodes is not None:  # (else the walk reports it when it gets there)
                ahead.found(spath, nodes)
        self._restoring_ahead = True
        try:
            for spath, node in ahead.take(WINDOW_BYTES):
                if self._folder_ready(spath):
                    self._restore_entry(spath, node, True)
                else:  # the walk restores the folder's files, and reports why it cannot
                    ahead.done.discard(spath)
                    ahead.entered(spath.rsplit("/", 1)[0])
            self._run_window()
        finally:
            self._restoring_ahead = False

    def _folder_ready(self, spath: str) -> bool:
        """The folder of ``spath`` exists in the target or could be made, without a report
        (a file in its place, a refused link: one report from the walk, not one per file)."""
        place = self._place(spath)
        assert place is not None  # (a file's place: never the target root itself)
        try:
            self.target.acquire(place[0], quiet=True)
        except (UnsafeTargetError, OSError):
            return False
        self.target.release(place[0])
        return True

    def _plan_window(self, window: list[_Planned]) -> tuple[WindowPlan, list[TargetDir]]:
        """Every pack the window needs, the blobs to read from each (in file order) and where
        they go; the window's folders, each listed once."""
        index = self.repo.index
        folders: list[TargetDir] = []
        folder_no: dict[int, int] = {}
        files: list[FilePlan] = []
        packs: dict[str, dict[bytes, NeedPlan]] = {}
        missing: list[tuple[int, str]] = []
        for no, planned in enumerate(window):
            key = id(planned.folder)
            if key not in folder_no:
                folder_no[key] = len(folders)
                folders.append(planned.folder)
            files.append(
                FilePlan(
                    FileMeta.of(planned.node),
                    folder_no[key],
                    planned.name,
                    planned.tmp,
                    planned.spath,
                    planned.replace,
                    len(planned.chunks),
                )
            )
            for cid, offset, loc in planned.chunks:
                if loc is None:
                    missing.append((no, f"data blob {cid.hex()[:12]} is missing"))
                    continue
                need = packs.setdefault(loc.pack_id, {}).get(cid)
                if need is None:
                    # (the other copies only for the rare blob stored more than once)
                    others = (
                        tuple(index.locations(DATA, cid)) if index.has_copies(DATA, cid) else ()
                    )
                    need = packs[loc.pack_id][cid] = NeedPlan(cid, loc, others, [])
                need.targets.append((no, offset))
        ordered = [sorted(needs.values(), key=lambda n: n.loc.offset) for needs in packs.values()]
        return WindowPlan(files, ordered, missing), folders

    def _write_here(
        self, window: list[_Planned], plan: WindowPlan, folders: list[TargetDir]
    ) -> None:
        assert self._writer is not None
        try:
            outcome = self._writer.write(plan, folders)
        except BaseException:
            for planned in window:
                self.target.release(planned.parts)
            raise
        self._merge(window, outcome, sizes_counted=True)

    def _merge(self, window: list[_Planned], outcome: WindowOutcome, sizes_counted: bool) -> None:
        """Take over what writing a window found; its folders are released."""
        res = self.result
        done = 0
        with self._lock:
            res.errors.extend(outcome.errors)
            for w in outcome.warnings:
                if (w.path, w.reason) not in self._seen_warnings:
                    self._seen_warnings.add((w.path, w.reason))
                    res.warnings.append(w)
            for pack_id, blob_id in outcome.bad_copies:
                self.repo.index.mark_bad(pack_id, DATA, blob_id)
            res.time_precision_lost_ns = max(res.time_precision_lost_ns, outcome.time_lost_ns)
            res.atime_precision_lost_ns = max(res.atime_precision_lost_ns, outcome.atime_lost_ns)
            if outcome.full is not None and self._full is None:
                self._full = OSError(*outcome.full)
            for planned, status in zip(window, outcome.status, strict=True):
                node = planned.node
                if status == DONE:
                    done += 1
                    res.files += 1
                    res.bytes += node.size
                    # Kept only as far as needed: a million files' nodes would be a lot of memory.
                    if node.links > 1:  # may be the first occurrence of a hard link
                        self._restored[planned.spath] = (planned.parts, planned.name)
                    if self.options.verify:
                        self._done_files.append((planned.parts, planned.name, node, planned.spath))
        for planned, status in zip(window, outcome.status, strict=True):
            if status == KEPT:  # appeared meanwhile: "never" kept it
                self._kept(planned.parts, planned.name, planned.node, planned.spath)
            self.target.release(planned.parts)
        self.progress.advance(files=done, size=0 if sizes_counted else outcome.bytes)

    def _wait_window(self) -> None:
        running, self._window_running = self._window_running, None
        if running is not None:
            running.result()
        while self._workers is not None and (self._held or any(self._sent.values())):
            self._send_held(last=True)
            self._take_result()

    # -- worker processes --------------------------------------------------------------------
    def _start_workers(self) -> None:
        if (
            self.options.processes == 0
            or not pipeline.can_pass_folders()
            or not self.target.by_descriptor
        ):
            return
        pool = pipeline.take_prestarted()
        if pool is None:
            count = self.options.processes or pipeline.default_worker_count()
            try:
                pool = pipeline.WorkerPool(count)
            except OSError:
                self.options.processes = 0  # cannot start processes here: write in this one
                return
        self._wait_window()  # the window thread's last window, before the workers take over
        access = pipeline.RepositoryAccess.of(self.repo)
        params = pipeline.RestoreParams(access, self._settings, RESTORE_THREADS_PER_PROCESS)
        pool.broadcast(("restore-init", params))
        self._workers = pool
        self._sent = {w.index: deque() for w in pool.workers}

    def _large_at(self, index: int) -> int:
        """Large windows handed to worker ``index`` and not yet written."""
        return sum(large for _window, large in self._sent[index])

    def _send_held(self, last: bool = False) -> None:
        """Hand held large windows to workers while fewer than all but one worker (at least
        one) have a large window - all of them once the walk is done (``last``): no small
        window is left to keep a worker for."""
        pool = self._workers
        assert pool is not None
        limit = len(pool.workers) if last else max(1, len(pool.workers) - 1)
        while self._held and sum(self._large_at(w.index) > 0 for w in pool.workers) < limit:
            to = self._worker_for(large=True)
            if to is None:
                return
            self._send_window(*self._held.popleft(), large=True, to=to)

    def _hand_out_held(self) -> None:
        """Once the walk is done, hand every held large window out at once, each to the worker
        with the fewest bytes still to write: the folders' metadata (:meth:`_finish_dirs_early`)
        is then set while they are written. (Handed out as workers had room, four windows of
        the bench's scans were still held during that pass, 0.22 s, while the workers ran
        out of work.)"""
        pool = self._workers
        if pool is None or self._full is not None:
            return
        while self._held:
            to = min(pool.workers, key=lambda w: self._bytes_at(w.index)).index
            self._send_window(*self._held.popleft(), large=True, to=to)

    def _bytes_at(self, index: int) -> int:
        """Bytes of the windows handed to worker ``index`` and not yet written."""
        return sum(p.node.size for window, _large in self._sent[index] for p in window)

    def _worker_for(self, large: bool) -> int | None:
        """The worker to give a window: the least busy with room; for a small window one
        without a large window if there is one (queued behind it, it would wait for it)."""
        pool = self._workers
        assert pool is not None
        room = [w for w in pool.workers if w.outstanding < WINDOWS_PER_PROCESS]
        if not large and any(self._large_at(w.index) == 0 for w in pool.workers):
            room = [w for w in room if self._large_at(w.index) == 0]
        return min(room, key=lambda w: w.outstanding).index if room else None

    def _send_window(
        self,
        window: list[_Planned],
        plan: WindowPlan,
        folders: list[TargetDir],
        large: bool,
        to: int | None = None,
    ) -> None:
        pool = self._workers
        assert pool is not None
        while to is None:
            to = self._worker_for(large)
            if to is None:
                self._take_result()
        fds = [f.fd for f in folders if isinstance(f, FdDir)]
        assert len(fds) == len(folders)  # worker processes only where folders are descriptors
        pool.request(("restore-window", plan.to_wire(), [f.path for f in folders]), fds, to)
        self._sent[to].append((window, large))

    def _take_result(self) -> None:
        """Wait for the next window a worker finished and take it over."""
        assert self._workers is not None
        answer = self._workers.next_answer(self.repo.check_lock, "restore")
        if answer is not None:
            index, msg = answer
            self._merge(self._sent[index].popleft()[0], msg[1], sizes_counted=False)
            self.repo.check_lock()
        self._send_held()

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
                planned = self._plan_file(folder, parts, name, copy, spath)
                if planned is not None:
                    self._window.append(planned)
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
                Skipped(spath, f"hard link not possible, copied: {describe(exc)}")
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
                self._meta.apply(folder, tmp, None, node, spath)
                folder.rename(tmp, name, self._replace)
            except OSError:
                with contextlib.suppress(OSError):
                    folder.unlink(tmp)  # best effort; the error below names the entry
                raise
        except FileExistsError:
            self._kept(parts, name, node, spath)
        except OSError as exc:
            self._error(spath, f"cannot create {node.type}: {describe(exc)}")
        finally:
            self.target.release(parts)

    # -- metadata -----------------------------------------------------------------------
    def _finish_dirs_early(self) -> None:
        """Once the walk is done, the folders that no window still being written and no hard
        link still to be made touches (as its place or its source) - in them or below them -
        get their metadata while the last windows are written: nothing changes in them any
        more. (On the bench the scans at the end wait for the disk while the cores idle; the
        folder pass took 0.2-0.3 s after them.)"""
        if self._workers is None or self._full is not None:
            return
        if self.options.follow_links or self.options.path_map is not None:
            # Two snapshot folders may be one folder on disk (a followed link, a mapping):
            # pending work is known by snapshot place only (found by an outsider).
            return
        while not self._workers.results.empty():  # (windows written meanwhile: not pending)
            self._take_result()
        pending = [
            p.parts for window, _large in itertools.chain(*self._sent.values()) for p in window
        ]
        pending += [p.parts for window, _plan, _folders in self._held for p in window]
        for parts, _name, node, _spath in self._hardlinks:
            pending.append(parts)
            first = self._restored.get(node.link or "")
            if first is not None:  # (its folder is opened to link from)
                pending.append(first[0])
        touched = {parts[:depth] for parts in pending for depth in range(len(parts) + 1)}
        done = [entry for entry in self._dirs if entry[0] not in touched]
        self._dirs = [entry for entry in self._dirs if entry[0] in touched]
        self._set_dir_metadata(done)

    def _finish_dirs(self) -> None:
        self._set_dir_metadata(self._dirs)
        res = self.result
        self._merge([], _drained(self._meta), sizes_counted=True)
        if res.time_precision_lost_ns or res.atime_precision_lost_ns:
            res.warnings.append(
                Skipped(
                    self.options.target,
                    "the target file system stores file times less precisely than the backup: "
                    f"modification times differ by up to {res.time_precision_lost_ns / 1e9:.3f} s, "
                    f"access times by up to {res.atime_precision_lost_ns / 1e9:.3f} s",
                )
            )

    def _set_dir_metadata(self, dirs: list[tuple[Parts, Node, str]]) -> None:
        """Folder metadata, deepest first (the walk listed every folder before its contents):
        a folder's restrictive mode must not keep the restore out of the folders below it."""
        for parts, node, spath in reversed(dirs):
            try:
                with self.target.folder(parts, create=False) as own:
                    self._meta.apply(own, os.curdir, own.fd, node, spath)
            except UnsafeTargetError as exc:
                self.result.errors.append(Skipped(spath, f"folder metadata not set: {exc}"))
            except OSError as exc:
                self.result.warnings.append(
                    Skipped(spath, f"folder metadata not set: {describe(exc)}")
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
            problem = f"cannot read back: {describe(exc)}"
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
            return f"cannot read back: {describe(exc)}"
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
            return f"cannot read back: {describe(exc)}"
        finally:
            os.close(fd)
        if not folder.metadata_by_fd:
            folder.utime(name, None, node.atime_ns, node.mtime_ns)
        return None
