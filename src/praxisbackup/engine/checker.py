"""check: prove that a repository is complete and every byte is readable.

Structure check (always): key slots and index files are intact, every indexed pack exists with
its recorded size, every snapshot loads, every tree decodes, every file's chunks are indexed.
Data check (``read_data``): every pack (or a subset) is read from the medium itself - its
cached pages are dropped first - hashed against its name, its header compared with the index,
and every blob decrypted, decompressed and checked against its id.

Damage is reported with the snapshots and file paths it affects. The damaged blob copies are
also written to the medium as a damage record (``meta/damage-*``, unless the medium cannot be
written): the next backup stores those blobs again and reads prefer other copies, until prune
removes the damaged copies. Apart from that record check writes nothing (its caller holds a
shared lock).
"""

from __future__ import annotations

import contextlib
import random
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from praxisbackup import platform
from praxisbackup.engine import crypto, pipeline
from praxisbackup.engine.lock import lock_repository
from praxisbackup.engine.pack import DATA, TREE
from praxisbackup.engine.packverify import PackVerdict, verify_pack
from praxisbackup.engine.progress import Progress, quiet_gc
from praxisbackup.engine.repository import Repository
from praxisbackup.engine.snapshot import list_snapshots
from praxisbackup.engine.tree import DIR, FILE, HARDLINK, Node, decode_tree
from praxisbackup.errors import IntegrityError, StorageError, UsageError

#: Packs read at once in this process: one thread can wait for the medium while the others
#: verify.
READERS = 3
#: Reading at least this much is worth starting worker processes, one per core (each costs
#: about a tenth of a second to start; decryption, decompression and hashing in threads of
#: one process take turns on the interpreter lock: bench 6.5 s with threads, see design.md).
WORKER_BYTES = 64 << 20
#: Packs queued per worker: the one being verified and the next.
IN_FLIGHT = 2


@dataclass
class Problem:
    kind: str  # key, index, pack, snapshot, tree, blob
    object: str
    message: str


@dataclass
class CheckResult:
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    snapshots: int = 0
    trees: int = 0
    packs_total: int = 0
    packs_read: int = 0
    blobs_read: int = 0
    bytes_read: int = 0
    #: snapshot id -> paths of files or folders that cannot be restored intact
    affected: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def parse_subset(spec: str) -> tuple[float | None, tuple[int, int] | None]:
    """``"10%"`` -> a random tenth of the packs; ``"2/5"`` -> the second of five groups."""
    spec = spec.strip()
    try:
        if spec.endswith("%"):
            pct = float(spec[:-1])
            if not 0 < pct <= 100:
                raise ValueError
            return pct / 100.0, None
        n, t = (int(x) for x in spec.split("/"))
        if not 1 <= n <= t:
            raise ValueError
        return None, (n, t)
    except ValueError:
        raise UsageError(f"--read-data-subset must be like '10%' or '2/5', not {spec!r}") from None


def prepare(read_data: bool) -> None:
    """Start what a data check needs before the repository is opened: the worker processes
    start while the passphrase's key is derived."""
    if read_data:
        pipeline.prestart()


class Checker:
    def __init__(self, repo: Repository, progress: Progress | None = None) -> None:
        self.repo = repo
        self.progress = progress or Progress()
        self.result = CheckResult()
        self._lock = threading.Lock()
        self._tree_memo: dict[bytes, list[str]] = {}
        #: Where the examination of snapshots and folders puts its findings (merged into
        #: ``result`` when it is final, see :meth:`_run`).
        self._structure = self.result
        #: The data reading found damage (then the structure examination is repeated).
        self._data_damage = False
        #: The index's size of every pack: a pack of another size is not read.
        self._pack_sizes: dict[str, int] = {}
        self._recorded: set[tuple[str, int, bytes]] = set()

    def run(
        self,
        read_data: bool = False,
        subset: str | None = None,
        record_damage: bool = True,
        lock: bool = True,
    ) -> CheckResult:
        """Check the repository, holding a shared lock (``lock=False`` when the caller holds
        one already, or for a medium that cannot be written)."""
        if not lock:
            return self._run(read_data, subset, record_damage)
        with lock_repository(self.repo, exclusive=False, command="check", reader=True):
            return self._run(read_data, subset, record_damage)

    def _run(self, read_data: bool, subset: str | None, record_damage: bool) -> CheckResult:
        res = self.result
        self._check_keys()
        report = self.repo.load_index(tolerate_damage=True)
        self._recorded = set(self.repo.index.bad_locations())
        for name, msg in report.damaged.items():
            res.errors.append(Problem("index", name, msg))
        on_medium = {info.name: info.size for info in self.repo.backend.list("data")}
        indexed = dict(self.repo.index.packs())
        res.packs_total = len(indexed)
        for pack_id, size in indexed.items():
            actual = on_medium.get(pack_id)
            if actual is None:
                res.errors.append(Problem("pack", pack_id, "pack is missing from the medium"))
                self._mark_pack_bad(pack_id)
            elif actual != size:
                res.errors.append(
                    Problem("pack", pack_id, f"pack has {actual} bytes, the index says {size}")
                )
                self._mark_pack_bad(pack_id)
        for pack_id in on_medium.keys() - indexed.keys():
            res.warnings.append(
                Problem(
                    "pack",
                    pack_id,
                    "pack is in no index (left by an interrupted run; 'prune' removes it, "
                    "'repair' indexes it)",
                )
            )
        read: list[str] = []
        if read_data or subset:
            packs = [p for p in indexed if p in on_medium and indexed[p] == on_medium[p]]
            read = self._select(packs, subset)
            # The folder structure is examined while worker processes read the data; which
            # files damage affects depends on what the reading found, so on damage that
            # examination is repeated.
            self._read_packs(read, alongside=self._check_snapshots)
            if self._data_damage:
                self._check_snapshots()
        else:
            self._check_snapshots()
        self._merge_structure()
        self._report_recorded(set(read))
        if record_damage:
            self._record_damage()
        self.progress.close()
        return res

    def verify_packs(self, pack_ids: list[str], record_damage: bool = True) -> CheckResult:
        """Read the given packs from the medium (uncached) and verify every blob in them;
        used by the nightly job right after a backup. Damage found is recorded on the medium,
        so the next backup stores the affected blobs again."""
        indexed = dict(self.repo.index.packs())
        self._recorded = set(self.repo.index.bad_locations())
        self._read_packs([p for p in pack_ids if p in indexed])
        if record_damage:
            self._record_damage()
        return self.result

    def _record_damage(self) -> None:
        new = [c for c in self.repo.index.bad_locations() if c not in self._recorded]
        try:
            self.repo.record_damage(new, "check")
        except StorageError as exc:
            self.result.warnings.append(
                Problem("damage record", "-", f"not written to the medium: {exc}")
            )
        self._recorded.update(new)

    def _report_recorded(self, read: set[str]) -> None:
        """Damage an earlier check recorded, in packs not read this time."""
        for pack_id, blob_type, blob_id in sorted(self._recorded):
            if pack_id in read or not self.repo.index.has_pack(pack_id):
                continue
            if self.repo.index.has_good(blob_type, blob_id):
                self.result.warnings.append(
                    Problem(
                        "blob",
                        blob_id.hex(),
                        f"the copy in pack {pack_id[:12]} was found damaged earlier; another "
                        "copy is intact ('prune' removes the damaged one)",
                    )
                )
            else:
                self.result.errors.append(
                    Problem(
                        "blob",
                        blob_id.hex(),
                        f"the only copy, in pack {pack_id[:12]}, was found damaged earlier "
                        "(damage record); the next backup stores the data again if it still has it",
                    )
                )

    def check_snapshot_tree(self, tree_id: bytes) -> list[str]:
        """Paths below a snapshot's tree whose data is not (or not intact) in the index."""
        return self._tree_damage(tree_id, "")

    # -- keys ----------------------------------------------------------------------------
    def _check_keys(self) -> None:
        for name in self.repo.list_keys():
            try:
                raw = self.repo.backend.read("keys", name)
            except StorageError as exc:
                self.result.errors.append(Problem("key", name, str(exc)))
                continue
            if crypto.storage_id(raw) != name:
                self.result.errors.append(
                    Problem("key", name, "key slot does not match its name (damaged)")
                )
                continue
            try:
                crypto.parse_key_slot(raw, "key slot")
            except IntegrityError as exc:
                self.result.errors.append(Problem("key", name, str(exc)))

    # -- data ---------------------------------------------------------------------------
    @staticmethod
    def _select(packs: list[str], subset: str | None) -> list[str]:
        if not subset:
            return packs
        fraction, group = parse_subset(subset)
        ordered = sorted(packs)
        if group is not None:
            n, t = group
            return [p for p in ordered if int(p[:8], 16) % t == n - 1]
        assert fraction is not None
        count = max(1, round(len(ordered) * fraction)) if ordered else 0
        return random.sample(ordered, count)

    def _mark_pack_bad(self, pack_id: str) -> None:
        for blob_type, blob_id in self.repo.index.blobs_in_pack(pack_id):
            self.repo.index.mark_bad(pack_id, blob_type, blob_id)

    def _read_packs(self, packs: list[str], alongside: Callable[[], None] | None = None) -> None:
        """Verify ``packs``; ``alongside`` runs in this process meanwhile if the verification
        runs in worker processes (otherwise after it)."""
        sizes = self._pack_sizes = dict(self.repo.index.packs())
        total = sum(sizes[p] for p in packs)
        self.progress.set_total(len(packs), total)
        indexed = self.repo.index.pack_records(packs)
        pool = pipeline.take_prestarted()
        if pool is None and total >= WORKER_BYTES and len(packs) > 1:
            with contextlib.suppress(OSError):  # cannot start processes: verify in this one
                pool = pipeline.WorkerPool(pipeline.default_worker_count())
        with quiet_gc():
            if pool is None:
                self._verify_here(packs, indexed)
                if alongside is not None:
                    alongside()
                return
            failed = True
            try:
                with ThreadPoolExecutor(1, thread_name_prefix="check-structure") as side:
                    examined = side.submit(alongside) if alongside is not None else None
                    self._verify_in_workers(pool, packs, indexed)
                    failed = False
                    if examined is not None:
                        examined.result()
            finally:
                pool.close(kill=failed)

    def _verify_here(self, packs: list[str], indexed: dict[str, bytearray]) -> None:
        """Verify in this process; threads let one wait for the medium while another works."""
        local = threading.local()

        def verify(pack_id: str) -> PackVerdict:
            self.repo.check_lock()
            buffer = getattr(local, "buffer", None)
            if buffer is None:
                buffer = local.buffer = platform.ReadBuffer()
            repo = self.repo
            return verify_pack(
                repo.backend,
                repo.key,
                repo.cipher,
                pack_id,
                indexed.pop(pack_id, b""),
                buffer,
                self._pack_sizes.get(pack_id),
            )

        with ThreadPoolExecutor(READERS, thread_name_prefix="check") as threads:
            for verdict in threads.map(verify, packs):
                self._take(verdict)

    def _verify_in_workers(
        self,
        pool: pipeline.WorkerPool,
        packs: list[str],
        indexed: dict[str, bytearray],
    ) -> None:
        """Verify in worker processes (one per core), each with ``IN_FLIGHT`` packs queued so
        that its next read is ready when it finishes one."""
        pool.broadcast(("verify-init", pipeline.RepositoryAccess.of(self.repo)))
        # Largest first: the last packs are the small ones, so the workers finish together
        # (in the index's order, a late large pack kept one worker busy alone at the end).
        waiting = deque(sorted(packs, key=lambda p: -self._pack_sizes.get(p, 0)))
        done = 0
        while done < len(packs):
            while waiting and pool.has_room(IN_FLIGHT):
                pack_id = waiting.popleft()
                size = self._pack_sizes.get(pack_id)
                pool.request(("verify", pack_id, indexed.pop(pack_id, b""), size))
            answer = pool.next_answer(self.repo.check_lock, "check")
            if answer is not None:
                done += 1
                self.repo.check_lock()
                self._take(answer[1][1])

    def _take(self, verdict: PackVerdict) -> None:
        with self._lock:
            self._data_damage = self._data_damage or bool(verdict.bad or verdict.problems)
            self.result.errors.extend(Problem(*p) for p in verdict.problems)
            for blob_type, blob_id in verdict.bad:
                self.repo.index.mark_bad(verdict.pack_id, blob_type, blob_id)
            self.result.packs_read += 1
            self.result.blobs_read += verdict.blobs
            self.result.bytes_read += verdict.bytes
        self.progress.advance(files=1, size=verdict.bytes)

    # -- snapshots and trees -------------------------------------------------------------
    def _check_snapshots(self) -> None:
        """Load every snapshot and examine its folders (into a fresh ``_structure``)."""
        res = self._structure = CheckResult()
        self._tree_memo = {}
        errors: dict[str, str] = {}
        snaps = list_snapshots(self.repo, errors=errors)
        for name, msg in errors.items():
            res.errors.append(Problem("snapshot", name, msg))
        res.snapshots = len(snaps)
        for snap in snaps:
            try:
                tree_id = snap.tree_id
            except ValueError:
                res.errors.append(Problem("snapshot", snap.id, "malformed tree id"))
                continue
            lost = self._tree_damage(tree_id, "")
            if lost:
                res.affected[snap.id] = lost

    def _merge_structure(self) -> None:
        found, res = self._structure, self.result
        if found is res:
            return
        res.errors.extend(found.errors)
        res.snapshots, res.trees, res.affected = found.snapshots, found.trees, found.affected
        self._structure = res

    def _blob_ok(self, blob_type: int, blob_id: bytes) -> bool:
        """An intact copy is known (damaged copies are marked in the index)."""
        return self.repo.index.has_good(blob_type, blob_id)

    def _tree_damage(self, tree_id: bytes, spath: str) -> list[str]:
        """Paths below ``spath`` that cannot be restored intact (memoized per tree). Walks
        iteratively, so a crafted tree of any depth cannot exhaust the stack."""
        memo = self._tree_memo
        if tree_id not in memo:
            stack = [self._open_frame(tree_id)]
            while stack:
                frame = stack[-1]
                if frame.waiting is not None:  # the sub-folder just finished
                    self._add_sub(frame, memo[frame.waiting])
                    frame.waiting = None
                while frame.next < len(frame.nodes):
                    node = frame.nodes[frame.next]
                    frame.next += 1
                    child = "/" + node.name
                    if node.type == DIR and node.subtree is not None:
                        frame.child = child
                        if node.subtree in memo:
                            self._add_sub(frame, memo[node.subtree])
                            continue
                        frame.waiting = node.subtree
                        stack.append(self._open_frame(node.subtree))
                        break
                    if node.type in (FILE, HARDLINK):
                        self._file_damage(frame.rel, child, node.content)
                else:
                    memo[frame.tree_id] = frame.rel
                    stack.pop()
        return [spath + r for r in memo[tree_id]]

    @staticmethod
    def _add_sub(frame: _Frame, sub: list[str]) -> None:
        frame.rel.extend(frame.child + r if r != "/" else frame.child for r in sub)

    def _file_damage(self, rel: list[str], child: str, content: list[bytes]) -> None:
        missing = [c for c in content if not self._blob_ok(DATA, c)]
        if missing:
            rel.append(child)
            for c in missing:
                if not self.repo.index.has(DATA, c):
                    self._structure.errors.append(
                        Problem("blob", c.hex(), f"data blob of {child} is missing from the index")
                    )

    def _open_frame(self, tree_id: bytes) -> _Frame:
        """Load one folder listing; a missing or damaged one makes the folder itself lost."""
        if not self._blob_ok(TREE, tree_id):
            kind = "missing" if not self.repo.index.has(TREE, tree_id) else "damaged"
            problem = Problem("tree", tree_id.hex(), f"folder listing is {kind}")
            self._structure.errors.append(problem)
            return _Frame(tree_id, [], ["/"])
        self._structure.trees += 1
        try:
            nodes = decode_tree(self.repo.read_blob(TREE, tree_id), f"tree {tree_id.hex()[:12]}")
        except (IntegrityError, StorageError) as exc:
            self._structure.errors.append(Problem("tree", tree_id.hex(), str(exc)))
            return _Frame(tree_id, [], ["/"])
        return _Frame(tree_id, nodes, [])


@dataclass
class _Frame:
    """A folder listing being examined by the iterative walk of :meth:`Checker._tree_damage`."""

    tree_id: bytes
    nodes: list[Node]
    rel: list[str]
    next: int = 0
    child: str = ""
    waiting: bytes | None = None
