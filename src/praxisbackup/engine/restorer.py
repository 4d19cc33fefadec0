"""Restore: put a snapshot's files back exactly - content, times, modes, links, owners.

Content is written by a thread pool (large files in segments, in parallel) into a temporary
name beside the target and renamed into place when complete, so a crash never leaves a
half-written file under a real name. Times are set after content; directory times and modes
are set last, deepest first, so writing the children does not change them again.

A file whose data is missing or damaged is not restored under its name: what could be read is
kept as ``<name>.praxisbackup-damaged`` and the file is reported. Every other file is restored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fnmatch
import functools
import itertools
import os
import stat
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from praxisbackup import platform
from praxisbackup.engine import crypto
from praxisbackup.engine.pack import DATA, TREE
from praxisbackup.engine.paths import normalize_snapshot_path
from praxisbackup.engine.progress import Progress
from praxisbackup.engine.repository import Repository
from praxisbackup.engine.snapshot import Skipped, Snapshot
from praxisbackup.engine.tree import DIR, FIFO, FILE, HARDLINK, SYMLINK, Node, decode_tree
from praxisbackup.errors import IntegrityError, PraxisError, StorageError

OVERWRITE_POLICIES = ("never", "if-changed", "always")
TEMP_SUFFIX = ".praxisbackup-tmp"
DAMAGED_SUFFIX = ".praxisbackup-damaged"
#: Chunks per write job; large files are split into several jobs that run in parallel.
SEGMENT_CHUNKS = 8
#: Small files are handed to the workers in batches of this many files or bytes.
BATCH_FILES = 32
BATCH_BYTES = 4 << 20
_O_BINARY = getattr(os, "O_BINARY", 0)
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_BINARY
_CREATE_NEW_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY


@dataclass
class RestoreOptions:
    target: str
    includes: list[str] = field(default_factory=list)
    overwrite: str = "never"
    verify: bool = False
    #: Maps a snapshot path (``/C/CompuMED/M1``) to a destination; default: below ``target``.
    path_map: Callable[[str], str] | None = None
    workers: int = 2


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
    """A file being written, possibly by several segment jobs."""

    node: Node
    dest: str
    tmp: str
    spath: str
    remaining: int
    damaged: bool = False
    mode_set: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


#: errno values meaning "this file system cannot store that" (FAT has no modes or owners).
_UNSUPPORTED = {errno.ENOSYS, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EINVAL}
_SPARSE_BLOCK = 64 * 1024
_ZEROS = bytes(_SPARSE_BLOCK)


def write_sparse(fd: int, pos: int, data: bytes) -> None:
    """Write ``data`` at ``pos`` but leave 64 KiB blocks of zeros unwritten, so holes of sparse
    files (and zero-filled database regions) stay holes. The caller truncates to the final size."""
    view = memoryview(data)
    run_start = None
    size = len(data)
    for start in range(0, size, _SPARSE_BLOCK):
        end = min(start + _SPARSE_BLOCK, size)
        zero = data[start] == 0 and data[end - 1] == 0 and view[start:end] == _ZEROS[: end - start]
        if zero:
            if run_start is not None:
                _write_at(fd, pos + run_start, view[run_start:start])
                run_start = None
        elif run_start is None:
            run_start = start
    if run_start is not None:
        _write_at(fd, pos + run_start, view[run_start:])


def _write_at(fd: int, offset: int, view: memoryview) -> None:
    os.lseek(fd, offset, os.SEEK_SET)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _current_umask() -> int:
    """The process umask (read by setting and restoring it, before any worker thread runs)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _run_all(jobs: list[Callable[[], None]]) -> Callable[[], None]:
    def run() -> None:
        for job in jobs:
            job()

    return run


def damaged_name(dest: str) -> str:
    """Where the readable part of a damaged file is kept (fits in 255 bytes)."""
    head, name = os.path.split(dest)
    limit = 255 - len(DAMAGED_SUFFIX.encode())
    while len(name.encode("utf-8", "surrogateescape")) > limit:
        name = name[:-1]
    return os.path.join(head, name + DAMAGED_SUFFIX)


def _include_matcher(includes: list[str]) -> Callable[[str], tuple[bool, bool]]:
    """Returns f(spath) -> (restore this entry fully, descend into it)."""
    norm = [normalize_snapshot_path(i) for i in includes]
    fold = platform.IS_WINDOWS

    def match(spath: str) -> tuple[bool, bool]:
        if not norm:
            return True, True
        p = spath.lower() if fold else spath
        for inc in norm:
            i = inc.lower() if fold else inc
            if p == i or p.startswith(i.rstrip("/") + "/") or fnmatch.fnmatchcase(p, i):
                return True, True
        for inc in norm:
            i = inc.lower() if fold else inc
            if i.startswith(p.rstrip("/") + "/"):
                return False, True
        return False, False

    return match


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
        self._match = _include_matcher(options.includes)
        self._lock = threading.Lock()
        self._dirs: list[tuple[str, Node]] = []
        self._done_files: list[tuple[str, Node, str]] = []  # dest, node, spath
        self._hardlinks: list[tuple[str, Node, str]] = []
        self._restored_paths: dict[str, str] = {}  # snapshot path -> destination
        self._target = os.path.abspath(options.target)
        #: With "never", files are created under their real name with O_EXCL: the existence
        #: check is atomic and no rename is needed. Other policies replace existing files and
        #: so write a temporary file first, renamed over the old one only when complete.
        self._direct = options.overwrite == "never"
        self._tmp_counter = itertools.count()
        self._chown = platform.can_restore_owner()
        self._create_flags = _CREATE_NEW_FLAGS if self._direct else _CREATE_FLAGS
        self._umask = _current_umask()
        #: Files with sub-second times that must read back exactly before the target counts
        #: as precise; -1 once any difference was seen (then every file is measured).
        self._precision_checks_left = 64
        self._own_ids = (os.geteuid(), os.getegid()) if hasattr(os, "geteuid") else (-1, -1)

    # -- paths ------------------------------------------------------------------------
    def _dest(self, spath: str) -> str:
        if self.options.path_map is not None:
            return self.options.path_map(spath)
        return os.path.join(self._target, *spath.split("/")[1:])

    def _load_tree(self, tree_id: bytes, spath: str) -> list[Node] | None:
        try:
            return decode_tree(self.repo.read_blob(TREE, tree_id), f"tree of {spath or '/'}")
        except (IntegrityError, StorageError) as exc:
            self.result.errors.append(Skipped(spath or "/", f"folder contents lost: {exc}"))
            return None

    def walk(self, tree_id: bytes, spath: str = "") -> Iterator[tuple[str, Node, bool]]:
        """Yield (snapshot path, node, restore fully) for entries selected by the includes."""
        nodes = self._load_tree(tree_id, spath)
        if nodes is None:
            return
        for node in nodes:
            child = f"{spath}/{node.name}"
            full, descend = self._match(child)
            if not descend:
                continue
            yield child, node, full
            if node.type == DIR and node.subtree is not None:
                yield from self.walk(node.subtree, child)

    # -- main -------------------------------------------------------------------------
    def run(self) -> RestoreResult:
        pool = ThreadPoolExecutor(self.options.workers, thread_name_prefix="restore")
        pending: set[Future[None]] = set()
        batch: list[Callable[[], None]] = []
        batch_bytes = 0
        try:
            for spath, node, full in self.walk(self.snapshot.tree_id):
                dest = self._dest(spath)
                if node.type == DIR:
                    self._make_dir(dest, node, spath, full)
                    continue
                if not full:
                    continue
                if node.type in (FILE, HARDLINK):
                    if not self._direct and not self._may_write(dest, node, spath):
                        continue
                    if node.type == HARDLINK:
                        self._hardlinks.append((dest, node, spath))
                        continue
                    jobs = self._file_jobs(dest, node, spath)
                    if len(jobs) == 1 and node.size < BATCH_BYTES:
                        # Small files go to the workers in batches (fewer thread hand-offs).
                        batch.append(jobs[0])
                        batch_bytes += node.size
                        if len(batch) < BATCH_FILES and batch_bytes < BATCH_BYTES:
                            continue
                        jobs, batch, batch_bytes = [_run_all(batch)], [], 0
                    for job in jobs:
                        pending.add(pool.submit(job))
                        if len(pending) > self.options.workers * 4:
                            done, pending = wait(pending, return_when=FIRST_COMPLETED)
                            for f in done:
                                f.result()
                else:
                    self._restore_special(dest, node, spath)
            if batch:
                pending.add(pool.submit(_run_all(batch)))
            for f in pending:
                f.result()
        finally:
            pool.shutdown(wait=True)
        self._link_hardlinks()
        self._finish_dirs()
        self.progress.close()
        if self.options.verify:
            self._verify()
        return self.result

    def _make_dir(self, dest: str, node: Node, spath: str, full: bool) -> None:
        try:
            try:
                os.mkdir(dest)
            except FileExistsError:
                pass  # merging into an existing folder is intended
            except FileNotFoundError:
                os.makedirs(dest, exist_ok=True)
        except OSError as exc:
            self.result.errors.append(
                Skipped(spath, f"cannot create folder: {exc.strerror or exc}")
            )
            return
        if full:
            self._dirs.append((dest, node))
            self.result.dirs += 1

    def _may_write(self, dest: str, node: Node, spath: str) -> bool:
        try:
            st = os.lstat(dest)
        except FileNotFoundError:
            return True
        except OSError as exc:
            self.result.errors.append(
                Skipped(spath, f"cannot inspect target: {exc.strerror or exc}")
            )
            return False
        policy = self.options.overwrite
        if policy == "always":
            return True
        if policy == "if-changed" and not (
            stat.S_ISREG(st.st_mode) and st.st_size == node.size and st.st_mtime_ns == node.mtime_ns
        ):
            return True
        self.result.existing_kept.append(spath)
        return False

    # -- files ------------------------------------------------------------------------
    def _file_jobs(self, dest: str, node: Node, spath: str) -> list[Callable[[], None]]:
        """Write jobs for one file. A file of up to SEGMENT_CHUNKS chunks (nearly all files) is
        created, written and finished by one job; a larger file is created here at its final
        size and filled by several jobs in parallel."""
        if self._direct:
            tmp = dest
        else:
            # A short temporary name: the real name may already use all 255 bytes.
            tmp = os.path.join(
                os.path.dirname(dest),
                f".praxisbackup-{os.getpid()}-{next(self._tmp_counter)}{TEMP_SUFFIX}",
            )
        content = node.content
        if len(content) <= SEGMENT_CHUNKS:
            job = _FileJob(node, dest, tmp, spath, remaining=1)
            return [functools.partial(self._write_segment, job, 0, content, True)]
        try:
            fd = os.open(tmp, self._create_flags, 0o600)
            try:
                os.ftruncate(fd, node.size)
            finally:
                os.close(fd)
        except FileExistsError:
            self.result.existing_kept.append(spath)
            return []
        except OSError as exc:
            self.result.errors.append(Skipped(spath, f"cannot create file: {exc.strerror or exc}"))
            return []
        segments = []
        offset = 0
        for start in range(0, len(content), SEGMENT_CHUNKS):
            ids = content[start : start + SEGMENT_CHUNKS]
            segments.append((offset, ids))
            for cid in ids:
                loc = self.repo.index.lookup(DATA, cid)
                offset += loc.raw_length if loc is not None else 0
        job = _FileJob(node, dest, tmp, spath, remaining=len(segments))
        return [
            functools.partial(self._write_segment, job, off, ids, False) for off, ids in segments
        ]

    def _write_segment(self, job: _FileJob, offset: int, ids: list[bytes], create: bool) -> None:
        damaged_msg = None
        try:
            if create:
                # Created with its final permission bits (a new file stays writable through
                # this descriptor even when the mode is read-only), which saves a chmod.
                fd = os.open(job.tmp, self._create_flags, job.node.mode & 0o777)
                job.mode_set = job.node.mode == job.node.mode & 0o777 & ~self._umask
            else:
                fd = os.open(job.tmp, os.O_WRONLY | _O_BINARY)
        except FileExistsError:
            with self._lock:
                self.result.existing_kept.append(job.spath)
            return
        except OSError as exc:
            damaged_msg = f"cannot open for writing: {exc.strerror or exc}"
        else:
            try:
                pos = offset
                for cid in ids:
                    try:
                        data = self.repo.read_blob(DATA, cid)
                    except (IntegrityError, StorageError) as exc:
                        damaged_msg = str(exc)
                        loc = self.repo.index.lookup(DATA, cid)
                        pos += loc.raw_length if loc is not None else 0
                        continue
                    write_sparse(fd, pos, data)
                    pos += len(data)
                    self.progress.advance(size=len(data))
                if create and os.fstat(fd).st_size != job.node.size:
                    os.ftruncate(fd, job.node.size)  # trailing holes of sparse files
            except OSError as exc:
                damaged_msg = f"write error: {exc.strerror or exc}"
            finally:
                os.close(fd)
        with job.lock:
            if damaged_msg is not None and not job.damaged:
                job.damaged = True
                with self._lock:
                    self.result.errors.append(
                        Skipped(job.spath, f"not restored, data damaged: {damaged_msg}")
                    )
            job.remaining -= 1
            last = job.remaining == 0
        if last:
            self._finish_file(job)

    def _finish_file(self, job: _FileJob) -> None:
        node = job.node
        try:
            if job.damaged:
                if os.path.exists(job.tmp):
                    os.replace(job.tmp, damaged_name(job.dest))
                return
            if job.tmp != job.dest:
                os.replace(job.tmp, job.dest)
            self._apply_metadata(job.dest, node, job.spath, mode_set=job.mode_set)
        except OSError as exc:
            with self._lock:
                self.result.errors.append(
                    Skipped(job.spath, f"cannot finish file: {exc.strerror or exc}")
                )
            return
        with self._lock:
            self.result.files += 1
            self.result.bytes += node.size
            self._restored_paths[job.spath] = job.dest
            self._done_files.append((job.dest, node, job.spath))
        self.progress.advance(files=1)

    def _link_hardlinks(self) -> None:
        for dest, node, spath in self._hardlinks:
            first = self._restored_paths.get(node.link or "")
            try:
                if first is not None:
                    if os.path.lexists(dest):
                        if self._direct:
                            self.result.existing_kept.append(spath)
                            continue
                        os.unlink(dest)
                    os.link(first, dest)
                    self.result.links += 1
                    continue
            except OSError as exc:
                self.result.warnings.append(
                    Skipped(spath, f"hard link not possible, copied: {exc.strerror}")
                )
            # The first occurrence was not restored: write the content as a normal file.
            for job in self._file_jobs(dest, dataclasses.replace(node, type=FILE), spath):
                job()

    # -- other entry types -------------------------------------------------------------
    def _restore_special(self, dest: str, node: Node, spath: str) -> None:
        if os.path.lexists(dest):
            if self.options.overwrite != "always":
                self.result.existing_kept.append(spath)
                return
            with contextlib.suppress(IsADirectoryError):
                os.unlink(dest)
        try:
            if node.type == SYMLINK:
                os.symlink(node.target or "", dest)
            elif node.type == FIFO and hasattr(os, "mkfifo"):
                os.mkfifo(dest, 0o600)
            elif node.type in ("chardev", "blockdev") and platform.can_restore_owner():
                kind = stat.S_IFCHR if node.type == "chardev" else stat.S_IFBLK
                os.mknod(dest, kind | 0o600, node.rdev)
            else:
                self.result.warnings.append(
                    Skipped(spath, f"{node.type} entries are not restored here")
                )
                return
            self._apply_metadata(dest, node, spath)
        except OSError as exc:
            self.result.errors.append(
                Skipped(spath, f"cannot create {node.type}: {exc.strerror or exc}")
            )

    # -- metadata -----------------------------------------------------------------------
    def _apply_metadata(self, dest: str, node: Node, spath: str, mode_set: bool = False) -> None:
        """Owner, mode, attributes, then times (last, since the others change ctime only).

        Owner and mode are best effort on file systems without them (FAT, exFAT, some shares):
        one warning says so. Times are essential (the M1 update check relies on file dates),
        so failing to set them is an error, and lost precision is measured and reported.
        """
        is_link = node.type == SYMLINK
        try:
            chowned = self._chown and (node.uid, node.gid) != self._own_ids
            if chowned:
                platform.restore_owner(dest, node.uid, node.gid)
            if not is_link and (chowned or not mode_set):
                os.chmod(dest, node.mode)
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED:
                raise
            self._note_unsupported(f"permissions/owner not supported by the target: {exc.strerror}")
        if platform.IS_WINDOWS and node.attributes is not None and not is_link:
            platform.set_file_attributes(dest, node.attributes)
        if not is_link or os.utime in os.supports_follow_symlinks:
            os.utime(dest, ns=(node.atime_ns, node.mtime_ns), follow_symlinks=not is_link)
        if node.btime_ns is not None and platform.IS_WINDOWS:
            platform.set_birthtime_ns(dest, node.btime_ns)
        if not is_link and self._precision_checks_left:
            # Read the times back: a coarse file system (FAT 2 s, ext4 with small inodes 1 s)
            # is reported, not silently accepted. Once enough files have matched exactly,
            # the target is known to be precise and the extra stat is skipped.
            st = os.stat(dest)
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
        for dest, node in reversed(self._dirs):
            try:
                self._apply_metadata(dest, node, "")
            except OSError as exc:
                self.result.warnings.append(
                    Skipped(dest, f"folder metadata not set: {exc.strerror or exc}")
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
        """Re-read every restored file and compare content (chunk ids) and times."""
        for dest, node, spath in self._done_files:
            problem = self._verify_one(dest, node)
            if problem:
                self.result.verify_failures.append(Skipped(spath, problem))
            else:
                self.result.verified_files += 1

    def _verify_one(self, dest: str, node: Node) -> str | None:
        try:
            st = os.stat(dest)
            if st.st_size != node.size:
                return f"size {st.st_size} instead of {node.size}"
            tolerance = self.result.time_precision_lost_ns
            if abs(st.st_mtime_ns - node.mtime_ns) > tolerance:
                return "modification time differs"
            with open(dest, "rb") as fh:
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
            os.utime(dest, ns=(node.atime_ns, node.mtime_ns))
        except OSError as exc:
            return f"cannot read back: {exc.strerror or exc}"
        return None
