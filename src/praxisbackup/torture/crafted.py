"""Crafted repositories: what an attacker with the passphrase (or a buggy other program) could
put on a medium, built with the project's own code - trees with duplicate or unsorted names,
links and device nodes, absurd ids and times, key slots that demand gigabytes.

Used by the tests and by the malicious-repository campaign of the torture harness.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from praxisbackup.engine import crypto
from praxisbackup.engine.pack import DATA, TREE
from praxisbackup.engine.repository import Repository
from praxisbackup.engine.snapshot import Snapshot, save_snapshot
from praxisbackup.engine.tree import DIR, FILE, SYMLINK, Node
from praxisbackup.engine.writer import BlobWriter

NS = 1_700_000_000_000_000_000


class Crafter:
    """Stores hand-made trees and snapshots in an opened repository."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.writer = BlobWriter(repo)

    def file(self, name: str, data: bytes, **fields: Any) -> Node:
        cid = crypto.blob_id(self.repo.key, data)
        self.writer.add(DATA, cid, data)
        base = {"mode": 0o644, "mtime_ns": NS, "atime_ns": NS, "size": len(data)}
        return Node(name=name, type=FILE, content=[cid], **(base | fields))

    def symlink(self, name: str, target: str) -> Node:
        return Node(name=name, type=SYMLINK, target=target, mode=0o777, mtime_ns=NS, atime_ns=NS)

    def dir(self, name: str, children: list[Node], sort: bool = True, **fields: Any) -> Node:
        base = {"mode": 0o755, "mtime_ns": NS, "atime_ns": NS}
        return Node(name, DIR, subtree=self.tree(children, sort), **(base | fields))

    def tree(self, nodes: list[Node], sort: bool = True) -> bytes:
        """Store a tree blob; ``sort=False`` keeps the given order (and duplicates)."""
        return self.raw_tree([n.to_doc() for n in nodes], sort)

    def raw_tree(self, docs: list[dict[str, Any]], sort: bool = True) -> bytes:
        if sort:
            docs = sorted(docs, key=lambda d: str(d["name"]).encode("utf-8", "surrogatepass"))
        raw = json.dumps({"nodes": docs}, ensure_ascii=False, separators=(",", ":")).encode(
            "utf-8", "surrogatepass"
        )
        tid = crypto.blob_id(self.repo.key, raw)
        self.writer.add(TREE, tid, raw)
        return tid

    def snapshot(self, root_children: list[Node], path: str = "/praxis", sort: bool = True) -> str:
        """Finish the blobs and write a snapshot whose root tree holds ``root_children``."""
        root = self.tree(root_children, sort)
        self.writer.flush()
        self.writer.close()
        self.writer = BlobWriter(self.repo)
        snap = Snapshot(
            time=datetime.now().astimezone().isoformat(),
            host="crafted",
            user="attacker",
            paths=[path],
            tree=root.hex(),
        )
        return save_snapshot(self.repo, snap)

    def close(self) -> None:
        self.writer.close()
