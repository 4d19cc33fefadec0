"""Backup: walk the sources, store new content, write trees and the snapshot.

Each snapshot is a complete tree, so every snapshot restores on its own (no incremental chain);
only *storage* is shared between snapshots through deduplication. Files whose size, mtime,
ctime and inode equal the parent snapshot's are not read again (unless ``force``): their
content list is taken over after checking that every chunk is still in the index.

A file that changes while it is read (size, mtime or ctime differ before and after) is read
once more; if it changes again the second reading is kept and a warning is recorded. A file
that cannot be read is recorded in ``skipped`` with the OS error, and the backup goes on.
"""

from __future__ import annotations

import fnmatch
import io
import os
import stat
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from praxisbackup import __version__, platform
from praxisbackup.engine import crypto
from praxisbackup.engine.chunking import Chunker
from praxisbackup.engine.pack import DATA, TREE
from praxisbackup.engine.paths import absolute_source, snapshot_path, split_source
from praxisbackup.engine.progress import Progress
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
    decode_tree,
    encode_tree,
)
from praxisbackup.engine.writer import BlobWriter
from praxisbackup.errors import IntegrityError, SourceError, StorageError

#: Files up to this size are read in one call and chunked in memory; larger ones are streamed.
SMALL_FILE = 1 << 20
#: Files read in parallel: overlaps I/O latency (cold caches, USB and network disks) with CPU.
READERS = 2
_O_BINARY = getattr(os, "O_BINARY", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_NOATIME = getattr(os, "O_NOATIME", 0)


@dataclass
class BackupOptions:
    paths: list[str]
    excludes: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    host: str | None = None
    force: bool = False
    parent: str | None = None  # snapshot id; None = latest with the same host and paths
    drop_source_cache: bool = True


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


def _open_source(path: str) -> int:
    """Open a source file for reading without touching its access time where the OS allows
    (O_NOATIME needs ownership or root on Linux; without it the open is retried plainly)."""
    flags = os.O_RDONLY | _O_BINARY | _O_NOFOLLOW
    if _O_NOATIME:
        try:
            return os.open(path, flags | _O_NOATIME)
        except PermissionError:
            pass  # not the owner: fall through to a plain open, which may update atime
    return os.open(path, flags)


def _same_metadata(old: Node, st: os.stat_result) -> bool:
    return (
        old.type == FILE
        and old.size == st.st_size
        and old.mtime_ns == st.st_mtime_ns
        and old.ctime_ns == st.st_ctime_ns
        and old.inode == st.st_ino
    )


def _changed(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_size, a.st_mtime_ns, a.st_ctime_ns) != (b.st_size, b.st_mtime_ns, b.st_ctime_ns)


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
        self._local = threading.local()
        self._stats_lock = threading.Lock()
        self._readers = ThreadPoolExecutor(READERS, thread_name_prefix="read")
        self._read_slots = threading.BoundedSemaphore(READERS * 2)
        self._hardlinks: dict[tuple[int, int], tuple[str, list[bytes], int]] = {}
        self._writer: BlobWriter | None = None
        self._source: SourceStats | None = None
        self._exclude = self._compile_excludes(options.excludes)

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

    def _parent_tree(self, tree_id: bytes | None) -> dict[str, Node]:
        if tree_id is None:
            return {}
        try:
            nodes = decode_tree(self.repo.read_blob(TREE, tree_id), f"tree {tree_id.hex()[:12]}")
        except (IntegrityError, StorageError) as exc:
            self.warnings.append(
                Skipped("(parent snapshot)", f"parent tree unreadable, files are read again: {exc}")
            )
            return {}
        return {n.name: n for n in nodes}

    def _store_tree(self, nodes: list[Node]) -> bytes:
        assert self._writer is not None
        raw = encode_tree(nodes)
        tid = crypto.blob_id(self.repo.key, raw)
        self._writer.add(TREE, tid, raw)
        return tid

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
            try:
                root_id = self._archive_virtual(root, [], parent.tree_id if parent else None)
                writer.flush()
            finally:
                self._readers.shutdown(wait=True)
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
        save_snapshot(self.repo, snap)
        return BackupResult(snap, stats)

    def _archive_virtual(
        self, level: dict[str, object], comps: list[str], parent_tree: bytes | None
    ) -> bytes:
        """A directory above the sources: only the components leading to sources are kept."""
        old = self._parent_tree(parent_tree)
        nodes = []
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
                nodes.append(node)
            else:
                assert isinstance(child, tuple)
                src: str = child[0]
                self._source = child[1]
                entry = self._archive_path(src, name, snapshot_path([*comps, name]), old_node)
                if isinstance(entry, Future):
                    entry = entry.result()
                if entry is not None:
                    nodes.append(entry)
        return self._store_tree(nodes)

    @staticmethod
    def _real_path(comps: list[str]) -> str:
        if platform.IS_WINDOWS:
            return comps[0] + ":\\" + "\\".join(comps[1:])
        return "/" + "/".join(comps)

    def _archive_path(
        self, path: str, name: str, spath: str, old: Node | None
    ) -> Node | Future[Node | None] | None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            self._warn(spath, "vanished during the backup")
            return None
        except OSError as exc:
            self._skip(spath, f"cannot read metadata: {exc.strerror or exc}")
            return None
        node = node_from_stat(name, st)
        if node.type == DIR:
            self.summary.dirs += 1
            node.subtree = self._archive_dir(
                path, spath, old.subtree if old and old.type == DIR else None
            )
            return node
        if node.type == SYMLINK:
            try:
                node.target = os.readlink(path)
            except OSError as exc:
                self._skip(spath, f"cannot read link: {exc.strerror or exc}")
                return None
            self.summary.other += 1
            return node
        if node.type != FILE:
            self.summary.other += 1
            return node
        return self._archive_file(path, spath, st, node, old)

    def _archive_dir(self, path: str, spath: str, parent_tree: bytes | None) -> bytes:
        results: list[Node | Future[Node | None] | None] = []
        try:
            with os.scandir(path) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            self._skip(spath, f"cannot list folder: {exc.strerror or exc}")
            return self._store_tree([])
        old = self._parent_tree(parent_tree)
        for entry in entries:
            child_spath = spath + "/" + entry.name
            if self._exclude(child_spath, entry.name):
                continue
            results.append(
                self._archive_path(entry.path, entry.name, child_spath, old.get(entry.name))
            )
        nodes = []
        for item in results:
            node = item.result() if isinstance(item, Future) else item
            if node is not None:
                nodes.append(node)
        return self._store_tree(nodes)

    # -- files (read by a pool of reader threads) ---------------------------------------
    def _skip(self, spath: str, reason: str) -> None:
        with self._stats_lock:
            self.skipped.append(Skipped(spath, reason))

    def _warn(self, spath: str, reason: str) -> None:
        with self._stats_lock:
            self.warnings.append(Skipped(spath, reason))

    def _count_file(self, node: Node, source: SourceStats, kind: str) -> None:
        with self._stats_lock:
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
        self, path: str, spath: str, st: os.stat_result, node: Node, old: Node | None
    ) -> Node | Future[Node | None] | None:
        assert self._writer is not None and self._source is not None
        source = self._source
        if st.st_nlink > 1:
            first = self._hardlinks.get((st.st_dev, st.st_ino))
            if first is not None:
                node.type = HARDLINK
                node.link, node.content, node.size = first
                self._count_file(node, source, "link")
                return node
        writer = self._writer
        if (
            not self.options.force
            and old is not None
            and _same_metadata(old, st)
            and all(writer.has(DATA, c) for c in old.content)
        ):
            node.content = old.content
            self._count_file(node, source, "unmodified")
            if st.st_nlink > 1:
                self._hardlinks[(st.st_dev, st.st_ino)] = (spath, node.content, node.size)
            return node
        kind = "new" if old is None else "changed"
        if st.st_nlink > 1:
            # Hard-linked files are read right away: later links need their content list.
            result = self._read_job(path, spath, node, source, kind)
            if result is not None:
                self._hardlinks[(st.st_dev, st.st_ino)] = (spath, result.content, result.size)
            return result
        self._read_slots.acquire()
        future = self._readers.submit(self._read_job, path, spath, node, source, kind)
        future.add_done_callback(lambda _f: self._read_slots.release())
        return future

    def _read_job(
        self, path: str, spath: str, node: Node, source: SourceStats, kind: str
    ) -> Node | None:
        content = self._read_file(path, spath, node, source)
        if content is None:
            return None
        node.content = content
        self._count_file(node, source, kind)
        return node

    def _chunker(self) -> Chunker:
        chunker: Chunker | None = getattr(self._local, "chunker", None)
        if chunker is None:
            chunker = Chunker(self.repo.config.chunker)
            self._local.chunker = chunker
        return chunker

    def _read_file(
        self, path: str, spath: str, node: Node, source: SourceStats
    ) -> list[bytes] | None:
        """Read and chunk a file; re-read once if it changes meanwhile."""
        for attempt in (1, 2):
            try:
                fd = _open_source(path)
            except FileNotFoundError:
                self._warn(spath, "vanished during the backup")
                return None
            except OSError as exc:
                self._skip(spath, f"cannot open: {exc.strerror or exc} [errno {exc.errno}]")
                return None
            try:
                before = os.fstat(fd)
                ids, size = self._chunk_fd(fd, before.st_size, source)
                after = os.fstat(fd)
                if self.options.drop_source_cache:
                    platform.drop_cache(fd)
            except OSError as exc:
                self._skip(spath, f"read error: {exc.strerror or exc} [errno {exc.errno}]")
                return None
            finally:
                os.close(fd)
            if not _changed(before, after) and size == after.st_size:
                break
            if attempt == 2:
                self._warn(spath, "changed while being read (kept the second reading)")
        node.size = size
        node.mtime_ns, node.ctime_ns = after.st_mtime_ns, after.st_ctime_ns
        node.atime_ns = before.st_atime_ns
        return ids

    def _chunk_fd(self, fd: int, expected: int, source: SourceStats) -> tuple[list[bytes], int]:
        assert self._writer is not None
        writer, key, progress = self._writer, self.repo.key, self.progress
        chunker = self._chunker()
        ids: list[bytes] = []
        if expected <= SMALL_FILE:
            parts = []
            size = 0
            while True:
                block = os.read(fd, max(expected + 1 - size, 65536))
                if not block:
                    break
                parts.append(block)
                size += len(block)
            chunks = chunker.chunks_of(b"".join(parts) if len(parts) != 1 else parts[0])
        else:
            chunks = chunker.chunks(io.FileIO(fd, closefd=False))
        total = new = 0
        for chunk in chunks:
            cid = crypto.blob_id(key, chunk)
            if writer.add(DATA, cid, chunk):
                new += len(chunk)
            ids.append(cid)
            total += len(chunk)
            progress.advance(size=len(chunk))
        with self._stats_lock:
            source.new_bytes += new
            self.summary.bytes_read += total
        return ids, total
