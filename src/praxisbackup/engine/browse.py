"""Reading snapshot trees: listing, comparing and counting (ls, diff, stats)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from praxisbackup.engine.pack import DATA, TREE
from praxisbackup.engine.repository import Repository
from praxisbackup.engine.snapshot import Snapshot
from praxisbackup.engine.tree import DIR, FILE, HARDLINK, Node, decode_tree


def load_tree(repo: Repository, tree_id: bytes, what: str = "") -> list[Node]:
    return decode_tree(repo.read_blob(TREE, tree_id), f"tree {what or tree_id.hex()[:12]}")


def walk(repo: Repository, tree_id: bytes, prefix: str = "") -> Iterator[tuple[str, Node]]:
    """Depth-first (path, node) for every entry below a tree, in name order (iteratively:
    a crafted tree of any depth cannot exhaust the stack)."""
    stack = [(prefix, iter(load_tree(repo, tree_id, prefix or "/")))]
    while stack:
        parent, nodes = stack[-1]
        node = next(nodes, None)
        if node is None:
            stack.pop()
            continue
        path = f"{parent}/{node.name}"
        yield path, node
        if node.type == DIR and node.subtree is not None:
            stack.append((path, iter(load_tree(repo, node.subtree, path))))


def walk_from(repo: Repository, snap: Snapshot, start: str = "/") -> Iterator[tuple[str, Node]]:
    """Entries at and below a snapshot path (``/`` for everything)."""
    start = "/" + "/".join(p for p in start.split("/") if p)
    if start == "/":
        yield from walk(repo, snap.tree_id)
        return
    tree_id: bytes | None = snap.tree_id
    prefix = ""
    parts = [p for p in start.split("/") if p]
    for i, part in enumerate(parts):
        assert tree_id is not None
        match = next((n for n in load_tree(repo, tree_id, prefix or "/") if n.name == part), None)
        if match is None:
            return
        prefix = f"{prefix}/{part}"
        if i == len(parts) - 1:
            yield prefix, match
            if match.type == DIR and match.subtree is not None:
                yield from walk(repo, match.subtree, prefix)
            return
        if match.type != DIR:
            return
        tree_id = match.subtree


@dataclass
class DiffEntry:
    change: str  # "+" added, "-" removed, "M" content changed, "U" metadata only, "T" type changed
    path: str


def diff_trees(
    repo: Repository, a: bytes | None, b: bytes | None, prefix: str = ""
) -> Iterator[DiffEntry]:
    """Differences between two trees; identical subtrees are skipped by id without loading."""
    if a == b:
        return
    left = {n.name: n for n in (load_tree(repo, a) if a else [])}
    right = {n.name: n for n in (load_tree(repo, b) if b else [])}
    for name in sorted(left.keys() | right.keys()):
        path = f"{prefix}/{name}"
        old, new = left.get(name), right.get(name)
        if old is None or new is None:
            node = new or old
            assert node is not None
            sign = "+" if old is None else "-"
            yield DiffEntry(sign, path)
            if node.type == DIR and node.subtree is not None:
                yield from diff_trees(
                    repo,
                    None if sign == "+" else node.subtree,
                    node.subtree if sign == "+" else None,
                    path,
                )
            continue
        if old.type != new.type:
            yield DiffEntry("T", path)
        elif old.type == DIR:
            if (old.mode, old.mtime_ns) != (new.mode, new.mtime_ns):
                yield DiffEntry("U", path)
            yield from diff_trees(repo, old.subtree, new.subtree, path)
        elif old.content != new.content or old.target != new.target:
            yield DiffEntry("M", path)
        elif (old.mode, old.mtime_ns, old.uid, old.gid) != (
            new.mode,
            new.mtime_ns,
            new.uid,
            new.gid,
        ):
            yield DiffEntry("U", path)


@dataclass
class RepoStats:
    snapshots: int = 0
    files: int = 0
    restore_size: int = 0
    unique_chunks: int = 0
    unique_size: int = 0
    stored_size: int = 0
    packs: int = 0
    seen: set[bytes] = field(default_factory=set, repr=False)


def compute_stats(repo: Repository, snapshots: list[Snapshot]) -> RepoStats:
    """Logical size of the snapshots and the deduplicated size of the data they reference."""
    stats = RepoStats(snapshots=len(snapshots))
    for snap in snapshots:
        for _path, node in walk(repo, snap.tree_id):
            if node.type in (FILE, HARDLINK):
                stats.files += 1
                stats.restore_size += node.size
                for cid in node.content:
                    if cid not in stats.seen:
                        stats.seen.add(cid)
                        loc = repo.index.lookup(DATA, cid)
                        if loc is not None:
                            stats.unique_chunks += 1
                            stats.unique_size += loc.raw_length
                            stats.stored_size += loc.length
    stats.packs = sum(1 for _ in repo.index.packs())
    return stats
