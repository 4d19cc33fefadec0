"""Backup: walk the sources, store new content, write trees and the snapshot.

Each snapshot is a complete tree, so every snapshot restores on its own (no incremental chain);
only *storage* is shared between snapshots through deduplication. Files whose size, mtime,
ctime and inode equal the parent snapshot's are not read again (unless ``force``): their
content list is taken over after checking that every chunk is still in the index.

A file that changes while it is read (size, mtime or ctime differ before and after) is read
once more; if it changes again the second reading is kept and a warning is recorded. A file
that cannot be read is recorded in ``skipped`` with the OS error, and the backup goes on.

Files that must be read are handed to worker processes in batches (:mod:`.pipeline`); the walk
goes on meanwhile. A folder's tree is stored when its last entry is known, so the walk never
waits for a folder's files - only the hard links' first occurrences are waited for, and every
source before the tree above it.
"""

from __future__ import annotations

import collections
import fnmatch
import os
import queue
import stat
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeAlias

from praxisbackup import __version__, platform
from praxisbackup.engine import crypto, pipeline
from praxisbackup.engine.listing import Examined, Listing, list_folder, unchanged_sizes
from praxisbackup.engine.pack import DATA, TREE
from praxisbackup.engine.paths import absolute_source, snapshot_path, split_source
from praxisbackup.engine.prewalk import Prewalk
from praxisbackup.engine.progress import Progress, quiet_gc
from praxisbackup.engine.readahead import ReadAhead
from praxisbackup.engine.repository import Repository
from praxisbackup.engine.snapshot import Skipped, Snapshot, Summary, list_snapshots, save_snapshot
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
    ParentEntry,
    decode_parent_tree,
    encode_tree,
)
from praxisbackup.engine.writer import BlobWriter
from praxisbackup.errors import IntegrityError, PraxisError, SourceError, StorageError

#: A batch for a worker holds up to this many files or bytes (a larger file goes alone).
BATCH_FILES = 48
BATCH_BYTES = 8 << 20
#: Batches that may wait for a worker before the walk waits too (bounds the files held in
#: memory while the workers are busy with large files; how many a worker takes at once is
#: :meth:`pipeline.WorkerPool.has_room_for_files`).
WAITING = 64
#: Reading up to this much is done in this process; past it, worker processes are started
#: (unless they were started early, see :func:`pipeline.prestart`).
INLINE_BYTES = 16 << 20
INLINE_FILES = 200


@dataclass
class BackupOptions:
    paths: list[str]
    excludes: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    host: str | None = None
    force: bool = False
    parent: str | None = None  # snapshot id; None = latest with the same host and paths
    drop_source_cache: bool = True
    #: Worker processes for reading files; None = one per core (at least two), 0 = none.
    workers: int | None = None


@dataclass
class SourceStats:
    """Figures per source path, for protocols."""

    path: str
    files: int = 0
    bytes: int = 0
    new_bytes: int = 0


@dataclass
class BackupResult:
    snapshot: Snapshot
    sources: list[SourceStats]

    @property
    def has_warnings(self) -> bool:
        return bool(self.snapshot.skipped or self.snapshot.warnings)


def _same_metadata(old: ParentEntry, st: os.stat_result) -> bool:
    return (
        old.type == FILE
        and old.size == st.st_size
        and old.mtime_ns == st.st_mtime_ns
        and old.ctime_ns == st.st_ctime_ns
        and old.inode == st.st_ino
    )


def node_from_stat(name: str, st: os.stat_result) -> Node:
    """Metadata of an entry, common to all types."""
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        kind = DIR
    elif stat.S_ISLNK(mode):
        kind = SYMLINK
    elif stat.S_ISREG(mode):
        kind = FILE
    elif stat.S_ISFIFO(mode):
        kind = FIFO
    elif stat.S_ISSOCK(mode):
        kind = SOCKET
    elif stat.S_ISCHR(mode):
        kind = CHARDEV
    else:
        kind = BLOCKDEV
    user, group = platform.owner_names(st.st_uid, st.st_gid)
    return Node(
        name=name,
        type=kind,
        mode=stat.S_IMODE(mode),
        mtime_ns=st.st_mtime_ns,
        atime_ns=st.st_atime_ns,
        ctime_ns=st.st_ctime_ns,
        btime_ns=platform.birthtime_ns(st),
        uid=st.st_uid,
        gid=st.st_gid,
        user=user,
        group=group,
        size=st.st_size if kind == FILE else 0,
        inode=st.st_ino,
        device=st.st_dev,
        links=st.st_nlink,
        rdev=getattr(st, "st_rdev", 0) if kind in (CHARDEV, BLOCKDEV) else 0,
        attributes=platform.file_attributes(st),
    )


_prewalk: Prewalk | None = None


def prepare(paths: list[str]) -> None:
    """Start what a backup of ``paths`` needs before the repository is opened (the key
    derivation takes a good part of a second and leaves the interpreter free): the worker
    processes, and a walk that brings the sources' folder listings and file metadata into the
    cache (:mod:`prewalk`; it ends with the backup)."""
    global _prewalk  # noqa: PLW0603 - one per command, ended by the backup
    pipeline.prestart()
    sources = [absolute_source(p) for p in paths if "\x00" not in p]
    if _prewalk is not None:
        _prewalk.stop()
    _prewalk = Prewalk(sources)


def cancel_prepared() -> None:
    """Undo :func:`prepare` when no backup follows (the nightly job stopped before it); after
    a backup there is nothing left to undo."""
    _end_prewalk()
    pipeline.discard_prestarted()


def _end_prewalk() -> None:
    global _prewalk  # noqa: PLW0603
    if _prewalk is not None:
        _prewalk.stop()
        _prewalk = None


#: Threads that list folders (and lstat their entries) ahead of the walk: on cold caches
#: listing a folder waits for the disk, and thousands of small folders are the common case.
LISTERS = 3
#: Sub-folders of a folder listed ahead of the walk (in a nightly run: examined by the
#: workers, in batches - enough for a few batches per worker).
LOOKAHEAD = 32
#: Folders nested deeper below a source (its sub-folders are level 1) are skipped with a
#: warning: the walk recurses (two interpreter frames per level), and a chain of a few hundred
#: folders that anyone with write access to the data can create must not fail the whole
#: night (found by an outsider: 500 levels ended the backup with an internal error). No
#: practice's data comes near it.
MAX_DEPTH = 300
#: What listing a folder gives: its entries and previous entries, or a worker's examination.
_Answer: TypeAlias = "tuple[Listing | OSError, dict[str, ParentEntry]] | Examined"


class _Dir:
    """A folder whose tree is stored once every entry is known (files being read, sub-folders
    not yet complete are ``missing``; the walk itself holds one until it has listed it)."""

    __slots__ = ("missing", "node", "nodes", "parent", "tree_id")

    def __init__(self, parent: _Dir | None, node: Node | None) -> None:
        self.nodes: list[Node | None] = []
        self.missing = 1
        self.parent = parent
        self.node = node  # the folder's entry in its parent, which gets the subtree id
        self.tree_id: bytes | None = None


@dataclass
class _Read:
    """A file handed to a worker."""

    path: str
    spath: str
    node: Node
    folder: _Dir
    slot: int
    source: SourceStats
    kind: str
    hardlink: tuple[int, int] | None = None
    done: bool = False


class Archiver:
    """Runs one backup. Not reusable."""

    def __init__(
        self, repo: Repository, options: BackupOptions, progress: Progress | None = None
    ) -> None:
        self.repo = repo
        self.options = options
        self.progress = progress or Progress()
        self.summary = Summary()
        self.skipped: list[Skipped] = []
        self.warnings: list[Skipped] = []
        self._hardlinks: dict[tuple[int, int], tuple[str, list[bytes], int]] = {}
        self._writer: BlobWriter | None = None
        self._source: SourceStats | None = None
        self._exclude = self._compile_excludes(options.excludes)
        # Reading: batches for the workers, reads in flight by token.
        self._pool: pipeline.WorkerPool | None = None
        self._inline: pipeline.FilePacker | None = None
        self._params: pipeline.PackerParams | None = None
        self._reads: dict[int, _Read] = {}
        self._next_token = 0
        self._batch: list[tuple[int, str, int]] = []
        self._batch_bytes = 0
        self._inline_bytes = 0
        self._inline_files = 0
        self._flushing = 0
        self._lister = ThreadPoolExecutor(LISTERS, thread_name_prefix="list")
        self._warn_lock = threading.Lock()
        #: A previous tree was unreadable: trees shared with earlier snapshots are verified.
        self._trees_suspect = False
        self._listings: dict[str, Future[_Answer]] = {}
        self._ahead: dict[str, tuple[str, bytes | None, str | None]] = {}
        #: Large files of folders listed ahead, read before the walk gets there.
        self._readahead = ReadAhead()
        #: Folders between the source and the one being walked (see MAX_DEPTH).
        self._depth = 0
        #: Batches waiting for a worker with room (the walk goes on meanwhile).
        self._waiting: collections.deque[list[tuple[int, str, int]]] = collections.deque()

    # -- helpers ------------------------------------------------------------------------
    @staticmethod
    def _compile_excludes(patterns: list[str]) -> Callable[[str, str], bool]:
        fold = platform.IS_WINDOWS
        pats = [p.lower() if fold else p for p in patterns]

        def excluded(path: str, name: str) -> bool:
            if not pats:
                return False
            p, n = (path.lower(), name.lower()) if fold else (path, name)
            p = p.replace("\\", "/")
            for pat in pats:
                if ("/" in pat and fnmatch.fnmatchcase(p, pat)) or fnmatch.fnmatchcase(n, pat):
                    return True
            return False

        return excluded

    def _parent_tree(self, tree_id: bytes | None, where: str = "") -> dict[str, ParentEntry]:
        if tree_id is None:
            return {}
        try:
            return decode_parent_tree(
                self.repo.read_blob(TREE, tree_id), f"tree {tree_id.hex()[:12]}"
            )
        except (IntegrityError, StorageError) as exc:
            # The folders below were listed in this tree only: their stored trees were never
            # read, so from now on a tree this run would share with an earlier one is read
            # first (see _store_tree).
            self._trees_suspect = True
            with self._warn_lock:  # also called by the lister threads
                self.warnings.append(
                    Skipped(
                        where or "(parent snapshot)",
                        f"its previous folder listing is unreadable, its files are read "
                        f"again: {exc}",
                    )
                )
            return {}

    def _store_tree(self, nodes: list[Node]) -> bytes:
        assert self._writer is not None
        raw = encode_tree(nodes)
        tid = crypto.blob_id(self.repo.key, raw)
        if self._trees_suspect and self.repo.index.has_good(TREE, tid):
            # After an unreadable previous tree: the stored copy may be damaged as well (the
            # outsider saw a new snapshot share a damaged tree). Reading it marks a damaged
            # copy, and the tree is then stored anew.
            self._tree_readable(tid)
        self._writer.add(TREE, tid, raw)
        return tid

    def _tree_readable(self, tid: bytes) -> bool:
        try:
            self.repo.read_blob(TREE, tid)
        except (IntegrityError, StorageError):
            return False  # every copy that failed is marked damaged in the index
        return True

    def _find_parent(self, host: str, paths: list[str]) -> Snapshot | None:
        snaps = list_snapshots(self.repo, errors={})
        if self.options.parent:
            for s in snaps:
                if s.id.startswith(self.options.parent):
                    return s
            return None
        same = [s for s in snaps if s.host == host and sorted(s.paths) == sorted(paths)]
        return same[-1] if same else None

    # -- the walk -------------------------------------------------------------------------
    def run(self) -> BackupResult:
        try:
            return self._run()
        finally:
            _end_prewalk()

    def _run(self) -> BackupResult:
        started = time.monotonic()
        start_time = datetime.now().astimezone()
        bad = [p for p in self.options.paths if "\x00" in p]
        if bad:
            raise SourceError(f"the source path {bad[0]!r} contains a NUL character")
        sources = [absolute_source(p) for p in self.options.paths]
        if not sources:
            raise SourceError("no source path given")
        for src in sources:
            if not os.path.lexists(src):
                raise SourceError(f"the source path {src} does not exist")
            if os.path.islink(src):
                # Only the link itself would be stored: a green night with no data.
                to = os.path.realpath(src)
                raise SourceError(
                    f"the source {src} is a symbolic link to {to}; only the link would be "
                    f"backed up - give {to} instead",
                    code="error.source_is_link",
                    path=src,
                    to=to,
                )
        host = self.options.host or platform.hostname()
        parent = self._find_parent(host, sources)
        self.repo.adopt_unindexed_packs()
        stats = [SourceStats(s) for s in sources]

        # Build the virtual tree of path components above the sources.
        root: dict[str, object] = {}  # component -> subdict, or (source, SourceStats)
        for src, st in zip(sources, stats, strict=True):
            level = root
            comps = split_source(src)
            for comp in comps[:-1]:
                nxt = level.setdefault(comp, {})
                if not isinstance(nxt, dict):
                    raise SourceError(f"source {src} lies inside another source path")
                level = nxt
            if comps[-1] in level:
                raise SourceError(f"source {src} is given twice or overlaps another source")
            level[comps[-1]] = (src, st)

        with BlobWriter(self.repo) as writer:
            self._writer = writer
            failed = True
            try:
                if self.options.workers != 0:
                    self._pool = pipeline.take_prestarted()
                if self._pool is not None and parent is not None and not self.options.force:
                    # Nightly run: the workers examine folders against the previous snapshot.
                    # (Inside the try: a worker gone already ends the run - and the others.)
                    self._pool.init(self._packer_params(), writer.add_pack)
                with quiet_gc():
                    root_id = self._archive_virtual(root, [], parent.tree_id if parent else None)
                    self._finish_reading()
                writer.flush()
                failed = False
            finally:
                for pending in self._listings.values():
                    pending.cancel()
                self._lister.shutdown(wait=True)
                if self._pool is not None:
                    self._pool.close(kill=failed)
                    self._pool = None
                self.progress.close()
            self.summary.blobs_new = writer.stats.blobs_new
            self.summary.data_added = writer.stats.bytes_new_raw
            self.summary.data_added_stored = writer.stats.bytes_new_stored
        self.summary.duration_seconds = round(time.monotonic() - started, 3)
        snap = Snapshot(
            time=start_time.isoformat(),
            host=host,
            user=platform.username(),
            paths=sources,
            tree=root_id.hex(),
            tags=list(self.options.tags),
            parent=parent.id if parent else None,
            program_version=__version__,
            summary=self.summary,
            skipped=self.skipped,
            warnings=self.warnings,
        )
        self.repo.confirm_locks()  # a lock removed meanwhile: no snapshot of lost data
        save_snapshot(self.repo, snap)
        return BackupResult(snap, stats)

    def _archive_virtual(
        self, level: dict[str, object], comps: list[str], parent_tree: bytes | None
    ) -> bytes:
        """A directory above the sources: only the components leading to sources are kept."""
        old = self._parent_tree(parent_tree)
        folder = _Dir(None, None)
        for name, child in sorted(level.items()):
            old_node = old.get(name)
            if isinstance(child, dict):
                real = self._real_path([*comps, name])
                try:
                    st = os.stat(real)
                    node = node_from_stat(name, st)
                except OSError:
                    node = Node(name=name, type=DIR, mode=0o755)
                node.type = DIR
                node.subtree = self._archive_virtual(
                    child, [*comps, name], old_node.subtree if old_node else None
                )
                folder.nodes.append(node)
            else:
                assert isinstance(child, tuple)
                src: str = child[0]
                self._source = child[1]
                self._archive_path(folder, src, name, snapshot_path([*comps, name]), old_node)
        # The tree above a source waits for everything below it.
        self._wait_all()
        self._release(folder)
        assert folder.tree_id is not None
        return folder.tree_id

    @staticmethod
    def _real_path(comps: list[str]) -> str:
        if platform.IS_WINDOWS:
            return comps[0] + ":\\" + "\\".join(comps[1:])
        return "/" + "/".join(comps)

    def _archive_path(
        self,
        folder: _Dir,
        path: str,
        name: str,
        spath: str,
        old: ParentEntry | None,
        st: os.stat_result | OSError | None = None,
    ) -> None:
        """Add the entry at ``path`` (``st``: its lstat, if already taken) to ``folder`` (now,
        or once it has been read)."""
        try:
            if st is None:
                st = os.lstat(path)
            elif isinstance(st, OSError):
                raise st
        except FileNotFoundError:
            self._warn(spath, "vanished during the backup")
            return
        except OSError as exc:
            self._skip(spath, f"cannot read metadata: {exc.strerror or exc}")
            return
        node = node_from_stat(name, st)
        if node.type == DIR:
            if self._depth > MAX_DEPTH:
                self._skip(spath, f"folder nested more than {MAX_DEPTH} levels deep")
                return
            self.summary.dirs += 1
            folder.nodes.append(node)
            folder.missing += 1
            self._depth += 1
            try:
                self._archive_dir(
                    _Dir(folder, node),
                    path,
                    spath,
                    old.subtree if old and old.type == DIR else None,
                )
            finally:
                self._depth -= 1
            return
        if node.type == SYMLINK:
            try:
                node.target = os.readlink(path)
            except OSError as exc:
                self._skip(spath, f"cannot read link: {exc.strerror or exc}")
                return
            self.summary.other += 1
            folder.nodes.append(node)
            return
        if node.type != FILE:
            self.summary.other += 1
            folder.nodes.append(node)
            return
        self._archive_file(folder, path, spath, st, node, old)

    def _list_with_parent(
        self, path: str, parent_tree: bytes | None
    ) -> tuple[Listing | OSError, dict[str, ParentEntry]]:
        """A folder's listing and its previous tree (run by the lister threads)."""
        listing = list_folder(path)
        if isinstance(listing, OSError):
            return listing, {}
        return listing, self._parent_tree(parent_tree, path)

    def _list_next(self, path: str) -> None:
        """The listing of ``path`` was taken: request the one LOOKAHEAD folders after it."""
        ahead = self._ahead.pop(path, None)
        if ahead is not None:
            self._request_listing(*ahead)

    def _request_listing(self, path: str, parent_tree: bytes | None, spath: str | None) -> None:
        """A folder's listing and previous entries, from a lister thread - or, in a nightly
        run, its examination by a worker process, which answers "unchanged" for a folder of
        untouched files without sending its entries."""
        pool = self._pool
        if parent_tree is not None and pool is not None and pool.ready and not self.options.force:
            assert self._writer is not None
            loc = self.repo.index.lookup(TREE, parent_tree)
            if loc is not None and self._writer.has(TREE, parent_tree):
                self._listings[path] = pool.examine(path, parent_tree, loc)
                return
        self._listings[path] = self._lister.submit(self._list_with_parent, path, parent_tree)
        if spath is not None:  # (None: the walk will skip it, nested too deep)
            self._readahead.folders[path] = spath

    def _archive_dir(self, folder: _Dir, path: str, spath: str, parent_tree: bytes | None) -> None:
        future = self._listings.pop(path, None)
        self._readahead.folders.pop(path, None)
        self._list_next(path)
        if future is not None and not future.done() and self._pool is not None:
            self._pool.send_examinations()
        answer = (
            self._await(future) if future is not None else self._list_with_parent(path, parent_tree)
        )
        if isinstance(answer, Examined):
            if (
                answer.unchanged is not None
                and parent_tree is not None
                and self._take_examined(folder, spath, answer.unchanged, parent_tree)
            ):
                return
            if answer.listing is None or answer.tree_error is not None:
                # (rare: a name now excluded, or the tree's first copy unreadable - the
                # archiver's own reading tries every copy and warns)
                answer = self._list_with_parent(path, parent_tree)
            else:
                answer = (answer.listing, answer.old)
        listing, old = answer
        if isinstance(listing, OSError):
            self._skip(spath, f"cannot list folder: {listing.strerror or listing}")
            self._release(folder)
            return
        entries = []
        subfolders: list[tuple[str, bytes | None, str | None]] = []
        deep = self._depth > MAX_DEPTH  # (its sub-folders are skipped: nothing is read ahead)
        for name, child, st in listing:
            child_spath = spath + "/" + name
            if self._exclude(child_spath, name):
                continue
            entries.append((name, child, child_spath, st))
            if isinstance(st, os.stat_result) and stat.S_ISDIR(st.st_mode):
                before = old.get(name)
                subtree = before.subtree if before is not None and before.type == DIR else None
                subfolders.append((child, subtree, None if deep else child_spath))
        # Sub-folders are listed (and their previous trees read) by the lister threads while
        # this one is walked - a few ahead of the walk, so a folder of thousands of folders
        # is not held in memory all at once: taking one listing requests the next.
        for i in range(len(subfolders) - LOOKAHEAD):
            self._ahead[subfolders[i][0]] = subfolders[i + LOOKAHEAD]
        for ahead in subfolders[:LOOKAHEAD]:
            self._request_listing(*ahead)
        if parent_tree is not None and self._unchanged_leaf(folder, entries, old, parent_tree):
            return
        for name, child, child_spath, st in entries:
            self._archive_path(folder, child, name, child_spath, old.get(name), st)
        for child, _subtree, _child_spath in subfolders:
            self._readahead.passed(child)  # (walked, or skipped)
        self._release(folder)

    def _await(self, future: Future[_Answer]) -> _Answer:
        """A folder's listing or examination. While the walk waits for it, the workers'
        answers are acted on: a worker that finished its files gets the waiting ones at once
        (measured on the nightly bench run: the database files' reading stopped for 0.5-0.75 s
        while the walk waited for the examination of a document folder)."""
        pool = self._pool
        if pool is None or not pool.ready or future.done():
            return future.result()
        pool.wake_on(future)
        while not future.done():
            self._handle_one()
        return future.result()

    def _unchanged_leaf(
        self,
        folder: _Dir,
        entries: list[tuple[str, str, str, os.stat_result | OSError]],
        old: dict[str, ParentEntry],
        old_tree: bytes,
    ) -> bool:
        """A folder of regular files that all look exactly as in the previous snapshot (every
        recorded field: type, mode, times, owner and names, size, inode, device, links) has a
        byte-identical tree: its previous tree is taken over, without building the entries
        again. The nightly run's common case (thousands of folders of unchanged documents)."""
        if self.options.force or len(entries) != len(old) or not entries:
            return False
        assert self._writer is not None
        writer = self._writer
        if not writer.has(TREE, old_tree):
            return False
        sizes = unchanged_sizes(
            ((name, st) for name, _child, _spath, st in entries),
            old,
            lambda c: writer.has(DATA, c),
        )
        if sizes is None:
            return False
        self._take_over(folder, old_tree, sizes)
        return True

    def _take_examined(
        self, folder: _Dir, spath: str, files: list[tuple[str, int]], old_tree: bytes
    ) -> bool:
        """A worker found the folder unchanged; it is taken over unless a name in it is
        excluded now (then it is gone through as usual)."""
        if any(self._exclude(f"{spath}/{name}", name) for name, _size in files):
            return False
        self._take_over(folder, old_tree, [size for _name, size in files])
        return True

    def _take_over(self, folder: _Dir, old_tree: bytes, sizes: list[int]) -> None:
        """An unchanged folder keeps its previous tree; its files are counted as unmodified."""
        assert self._source is not None
        source = self._source
        s = self.summary
        s.total_files += len(sizes)
        s.files_unmodified += len(sizes)
        s.total_bytes += sum(sizes)
        source.files += len(sizes)
        source.bytes += sum(sizes)
        self.progress.advance(files=len(sizes))
        folder.nodes = []
        folder.missing -= 1
        assert folder.missing == 0
        folder.tree_id = old_tree
        if folder.node is not None:
            folder.node.subtree = old_tree
        if folder.parent is not None:
            self._release(folder.parent)

    def _release(self, folder: _Dir) -> None:
        """One missing entry of ``folder`` is known: store the trees that are now complete."""
        current: _Dir | None = folder
        while current is not None:
            current.missing -= 1
            if current.missing:
                return
            current.tree_id = self._store_tree([n for n in current.nodes if n is not None])
            if current.node is not None:
                current.node.subtree = current.tree_id
            current = current.parent

    # -- files --------------------------------------------------------------------------
    def _skip(self, spath: str, reason: str) -> None:
        self.skipped.append(Skipped(spath, reason))

    def _warn(self, spath: str, reason: str) -> None:
        self.warnings.append(Skipped(spath, reason))

    def _count_file(self, node: Node, source: SourceStats, kind: str) -> None:
        s = self.summary
        s.total_files += 1
        s.total_bytes += node.size
        if kind == "unmodified":
            s.files_unmodified += 1
        elif kind == "new":
            s.files_new += 1
        elif kind == "changed":
            s.files_changed += 1
        source.files += 1
        source.bytes += node.size
        self.progress.advance(files=1)

    def _archive_file(
        self,
        folder: _Dir,
        path: str,
        spath: str,
        st: os.stat_result,
        node: Node,
        old: ParentEntry | None,
    ) -> None:
        assert self._writer is not None and self._source is not None
        source = self._source
        key = (st.st_dev, st.st_ino) if st.st_nlink > 1 else None
        if key is not None:
            first = self._hardlinks.get(key)
            if first is not None:
                node.type = HARDLINK
                node.link, node.content, node.size = first
                self._count_file(node, source, "link")
                folder.nodes.append(node)
                return
        content = self._unchanged_content(st, old)
        if content is not None:
            node.content = content
            self._count_file(node, source, "unmodified")
            if key is not None:
                self._hardlinks[key] = (spath, node.content, node.size)
            folder.nodes.append(node)
            return
        kind = "new" if old is None else "changed"
        folder.nodes.append(node)
        folder.missing += 1
        read = _Read(path, spath, node, folder, len(folder.nodes) - 1, source, kind, key)
        token = self._readahead.claim(path)
        if token is None:
            self._queue_read(read, st.st_size)
        else:
            self._reads[token] = read
            if (result := self._readahead.take(token)) is not None:
                self._file_done(token, result)
        if key is not None:
            # Later links need the content list of the first occurrence: wait for it.
            self._submit_batch()
            while not read.done:
                self._handle_one()

    def _unchanged_content(self, st: os.stat_result, old: ParentEntry | None) -> list[bytes] | None:
        """The content of a file that need not be read again: its previous entry has the same
        metadata and every chunk is in the repository."""
        if self.options.force or old is None or not _same_metadata(old, st):
            return None
        try:
            content = old.content
        except ValueError:
            return None  # a malformed previous entry: the file is read again
        assert self._writer is not None
        if not all(self._writer.has(DATA, c) for c in content):
            return None
        return content

    def _look_ahead(self) -> None:
        """Queue the large files of the folders listed ahead of the walk that it will read
        (see :mod:`readahead`)."""
        ahead = self._readahead
        for path, spath in list(ahead.folders.items()):
            future = self._listings.get(path)
            if future is None or not future.done():
                continue
            del ahead.folders[path]
            if future.cancelled() or future.exception() is not None:
                continue  # (the walk reports it when it gets there)
            answer = future.result()
            if isinstance(answer, Examined):
                continue
            listing, old = answer
            if isinstance(listing, OSError):
                continue
            for name, child, st in listing:
                if (
                    isinstance(st, os.stat_result)
                    and stat.S_ISREG(st.st_mode)
                    and st.st_size > pipeline.SMALL_FILE
                    and st.st_nlink == 1
                    and not self._exclude(spath + "/" + name, name)
                    and self._unchanged_content(st, old.get(name)) is None
                ):
                    ahead.add(self._next_token, path, child, st.st_size)
                    self._next_token += 1

    # -- reading in workers -----------------------------------------------------------------
    def _packer_params(self) -> pipeline.PackerParams:
        if self._params is None:
            index = self.repo.index
            known = sorted(b for b in index.blob_ids(DATA) if index.has_good(DATA, b))
            self._params = pipeline.PackerParams(
                encryption_key=self.repo.key.encryption,
                chunk_id_key=self.repo.key.chunk_id,
                chunker=self.repo.config.chunker,
                compression_level=self.repo.config.compression_level,
                pack_size=self.repo.config.pack_size,
                drop_cache=self.options.drop_source_cache,
                known=b"".join(known),
                location=self.repo.backend.location,
            )
        return self._params

    def _queue_read(self, read: _Read, size: int) -> None:
        token = self._next_token
        self._next_token += 1
        self._reads[token] = read
        if size > pipeline.SMALL_FILE:
            self._submit_batch()
        self._batch.append((token, read.path, size))
        self._batch_bytes += size
        if (
            size > pipeline.SMALL_FILE
            or len(self._batch) >= BATCH_FILES
            or self._batch_bytes >= BATCH_BYTES
        ):
            self._submit_batch()

    def _start_pool(self) -> None:
        try:
            count = self.options.workers or pipeline.default_worker_count()
            self._pool = pipeline.WorkerPool(count)
        except OSError:
            self.options.workers = 0  # cannot start processes here: read in this one

    def _submit_batch(self) -> None:
        batch, self._batch = self._batch, []
        size, self._batch_bytes = self._batch_bytes, 0
        if not batch:
            return
        if self._pool is None:
            self._inline_bytes += size
            self._inline_files += len(batch)
            if (
                self._inline_bytes > INLINE_BYTES or self._inline_files > INLINE_FILES
            ) and self.options.workers != 0:
                self._start_pool()
        if self._pool is None:
            self._read_inline(batch)
            return
        if not self._pool.ready:
            assert self._writer is not None
            self._pool.init(self._packer_params(), self._writer.add_pack)
        self._waiting.append(batch)
        self._pump()
        while len(self._waiting) > WAITING:
            self._look_ahead()
            self._handle_one()
        self._poll()

    def _pump(self) -> None:
        """Hand waiting batches to workers that have room; a file read ahead of the walk
        first while the oldest waiting batch is one of small files."""
        assert self._pool is not None
        while self._pool.has_room_for_files():
            head = self._waiting[0] if self._waiting else None
            batch = None
            if head is None or len(head) > 1 or head[0][2] <= pipeline.SMALL_FILE:
                batch = self._readahead.next_batch()
            if batch is None:
                if head is None:
                    return
                batch = self._waiting.popleft()
            self._pool.submit(batch)

    def _poll(self) -> None:
        """Act on the worker messages that have arrived, without waiting."""
        assert self._pool is not None
        while True:
            try:
                index, msg, payload = self._pool.results.get_nowait()
            except queue.Empty:
                return
            self._handle(index, msg, payload)

    def _read_inline(self, batch: list[tuple[int, str, int]]) -> None:
        assert self._writer is not None
        if self._inline is None:
            self._inline = pipeline.FilePacker(self._packer_params(), self._writer.add_pack)
        for token, result in self._inline.read_batch(batch):
            self._file_done(token, result)

    def _handle_one(self) -> None:
        """Wait for the next message from a worker and act on it."""
        assert self._pool is not None
        self._pool.send_examinations()
        try:
            index, msg, payload = self._pool.results.get(timeout=1.0)
        except queue.Empty:
            self.repo.check_lock()
            return
        self._handle(index, msg, payload)

    def _handle(self, index: int, msg: Any, payload: bytearray) -> None:
        assert self._pool is not None and self._writer is not None
        kind = msg[0]
        if kind == pipeline.WAKE:
            return
        if kind == "files":
            self._pool.files_answered(index)
            for token, _result in msg[1]:
                self._readahead.answered(token)
            self._pump()
            for token, result in msg[1]:
                self._file_done(token, result)
        elif kind == "flushed":
            self._pool.files_answered(index)
            self._flushing -= 1
        elif kind == "praxis-error":
            raise msg[1]
        elif kind == "error":
            raise pipeline.WorkerError.failed("backup", msg[1])
        else:  # eof
            raise PraxisError("a backup worker process ended unexpectedly")

    def _file_done(self, token: int, result: pipeline.FileRead) -> None:
        read = self._reads.pop(token, None)
        if read is None:
            self._readahead.keep(token, result)  # read ahead: the walk is not there yet
            return
        read.done = True
        node = read.node
        if result.status != "ok":
            if result.status == "vanished":
                self._warn(read.spath, "vanished during the backup")
            else:
                self._skip(read.spath, result.reason)
            read.folder.nodes[read.slot] = None
        else:
            if result.changed:
                self._warn(
                    read.spath,
                    "changed while being read, also on a second reading (the stored copy may "
                    "mix old and new content)",
                )
            node.content = result.ids
            node.size = result.size
            node.mtime_ns, node.ctime_ns = result.mtime_ns, result.ctime_ns
            node.atime_ns = result.atime_ns
            read.source.new_bytes += result.bytes_new
            self.summary.bytes_read += result.size
            self.progress.advance(size=result.size)
            self._count_file(node, read.source, read.kind)
            if read.hardlink is not None:
                self._hardlinks[read.hardlink] = (read.spath, node.content, node.size)
        self._release(read.folder)

    def _wait_all(self) -> None:
        """Read everything queued so far."""
        self._submit_batch()
        while self._reads:
            self._handle_one()

    def _finish_reading(self) -> None:
        """Every file is read: the packs still being filled are completed and stored."""
        self._wait_all()
        if self._inline is not None:
            self._inline.flush()
        if self._pool is not None and self._pool.ready:
            self._flushing = len(self._pool.workers)
            self._pool.flush_all()
            while self._flushing:
                self._handle_one()
