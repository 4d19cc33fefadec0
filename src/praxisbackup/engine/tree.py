"""Directory objects (trees) and the metadata kept for every entry.

A tree is the JSON document ``{"nodes": [node, ...]}`` with nodes sorted by name, stored as a
*tree blob* (deduplicated like data: an unchanged directory costs nothing). Names and symlink
targets are stored exactly as the file system gave them: on POSIX undecodable bytes survive via
Python's surrogate escapes, encoded with ``surrogatepass``; NFC and NFD spellings stay distinct.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from praxisbackup.errors import IntegrityError

FILE = "file"
DIR = "dir"
SYMLINK = "symlink"
HARDLINK = "hardlink"
FIFO = "fifo"
SOCKET = "socket"
CHARDEV = "chardev"
BLOCKDEV = "blockdev"
NODE_TYPES = (FILE, DIR, SYMLINK, HARDLINK, FIFO, SOCKET, CHARDEV, BLOCKDEV)


@dataclass(slots=True)
class Node:
    """One directory entry with everything needed to restore it exactly."""

    name: str
    type: str
    mode: int = 0
    mtime_ns: int = 0
    atime_ns: int = 0
    ctime_ns: int = 0
    btime_ns: int | None = None
    uid: int = 0
    gid: int = 0
    user: str = ""
    group: str = ""
    size: int = 0
    inode: int = 0
    device: int = 0
    links: int = 1
    rdev: int = 0
    attributes: int | None = None
    content: list[bytes] = field(default_factory=list)
    subtree: bytes | None = None
    target: str | None = None  # symlink target
    link: str | None = None  # hardlink: snapshot path of the first occurrence

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "mode": self.mode,
            "mtime_ns": self.mtime_ns,
            "atime_ns": self.atime_ns,
            "ctime_ns": self.ctime_ns,
            "uid": self.uid,
            "gid": self.gid,
            "size": self.size,
            "inode": self.inode,
            "device": self.device,
            "links": self.links,
        }
        if self.btime_ns is not None:
            doc["btime_ns"] = self.btime_ns
        if self.user:
            doc["user"] = self.user
        if self.group:
            doc["group"] = self.group
        if self.rdev:
            doc["rdev"] = self.rdev
        if self.attributes is not None:
            doc["attributes"] = self.attributes
        if self.content:
            doc["content"] = [c.hex() for c in self.content]
        if self.subtree is not None:
            doc["subtree"] = self.subtree.hex()
        if self.target is not None:
            doc["target"] = self.target
        if self.link is not None:
            doc["link"] = self.link
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Node:
        node = cls(
            name=str(doc["name"]),
            type=str(doc["type"]),
            mode=int(doc["mode"]),
            mtime_ns=int(doc["mtime_ns"]),
            atime_ns=int(doc["atime_ns"]),
            ctime_ns=int(doc["ctime_ns"]),
            btime_ns=None if doc.get("btime_ns") is None else int(doc["btime_ns"]),
            uid=int(doc["uid"]),
            gid=int(doc["gid"]),
            user=str(doc.get("user", "")),
            group=str(doc.get("group", "")),
            size=int(doc["size"]),
            inode=int(doc["inode"]),
            device=int(doc["device"]),
            links=int(doc["links"]),
            rdev=int(doc.get("rdev", 0)),
            attributes=None if doc.get("attributes") is None else int(doc["attributes"]),
            content=[bytes.fromhex(c) for c in doc.get("content", [])],
            subtree=bytes.fromhex(doc["subtree"]) if doc.get("subtree") else None,
            target=doc.get("target"),
            link=doc.get("link"),
        )
        if node.type not in NODE_TYPES:
            raise ValueError(f"unknown node type {node.type!r}")
        if node.type == DIR and node.subtree is None:
            raise ValueError(f"directory {node.name!r} has no subtree")
        if any(len(c) != 32 for c in node.content):
            raise ValueError(f"file {node.name!r} has a malformed content id")
        if not node.name or "/" in node.name or node.name in (".", ".."):
            raise ValueError(f"invalid entry name {node.name!r}")
        return node


def encode_tree(nodes: list[Node]) -> bytes:
    """Serialize nodes (sorted by name for deterministic, deduplicable trees)."""
    ordered = sorted(nodes, key=lambda n: n.name.encode("utf-8", "surrogatepass"))
    text = json.dumps(
        {"nodes": [n.to_doc() for n in ordered]}, ensure_ascii=False, separators=(",", ":")
    )
    return text.encode("utf-8", "surrogatepass")


def decode_tree(raw: bytes, what: str) -> list[Node]:
    try:
        doc = json.loads(raw.decode("utf-8", "surrogatepass"))
        return [Node.from_doc(n) for n in doc["nodes"]]
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError) as exc:
        raise IntegrityError(f"{what} is malformed: {exc}") from None
