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
        """Parse and validate one node. Everything a restore hands to the operating system is
        checked here, so a crafted tree ends in one clear error instead of an exception deep in
        a system call (an embedded NUL, a negative owner, a time no clock can hold). (Written
        out rather than field by field through helpers: every tree of every snapshot passes
        here in check and restore.)"""
        if not isinstance(doc, dict):
            raise ValueError("a tree entry is not an object")
        name = doc["name"]
        if type(name) is not str or not name or "/" in name or "\x00" in name or name in _DOTS:
            raise ValueError(f"invalid entry name {name!r}")
        kind = doc["type"]
        if type(kind) is not str or kind not in _NODE_TYPE_SET:
            raise ValueError(f"unknown node type {kind!r}")
        required = []
        for key, lo, hi in _REQUIRED_INTS:
            value = doc[key]
            if type(value) is not int or not lo <= value <= hi:
                raise ValueError(f"{key} {value!r} is out of range")
            required.append(value)
        mode, mtime, atime, ctime, uid, gid, size, inode, device, links = required
        get = doc.get
        rdev = get("rdev", 0)
        if type(rdev) is not int or not 0 <= rdev <= U64_MAX:
            raise ValueError(f"rdev {rdev!r} is out of range")
        content = get("content", [])
        if not isinstance(content, list):
            raise ValueError(f"{name!r}: content is not a list")
        subtree = get("subtree")
        node = cls(
            name,
            kind,
            mode,
            mtime,
            atime,
            ctime,
            _opt_int(doc, "btime_ns", *TIME_RANGE),
            uid,
            gid,
            _text(doc, "user", ""),
            _text(doc, "group", ""),
            size,
            inode,
            device,
            links,
            rdev,
            _opt_int(doc, "attributes", 0, ID_MAX),
            [_blob_id(c, name) for c in content],
            _blob_id(subtree, name) if subtree else None,
            _opt_text(doc, "target"),
            _opt_text(doc, "link"),
        )
        if kind == DIR and node.subtree is None:
            raise ValueError(f"directory {name!r} has no subtree")
        if kind == SYMLINK and node.target is None:
            raise ValueError(f"symbolic link {name!r} has no target")
        return node


#: Times are nanoseconds since 1970 in a signed 64-bit number (years 1677-2262), what
#: ``stat`` reports and ``utime`` accepts.
TIME_RANGE = (-(1 << 63), (1 << 63) - 1)
ID_MAX = (1 << 32) - 1
SIZE_MAX = (1 << 63) - 1
U64_MAX = (1 << 64) - 1
#: The integer fields every node has, in the order of :class:`Node`'s fields, with their ranges.
_REQUIRED_INTS = (
    ("mode", 0, 0o7777),
    ("mtime_ns", *TIME_RANGE),
    ("atime_ns", *TIME_RANGE),
    ("ctime_ns", *TIME_RANGE),
    ("uid", 0, ID_MAX),
    ("gid", 0, ID_MAX),
    ("size", 0, SIZE_MAX),
    ("inode", 0, U64_MAX),
    ("device", 0, U64_MAX),
    ("links", 0, U64_MAX),
)
_NODE_TYPE_SET = frozenset(NODE_TYPES)
_DOTS = frozenset((".", ".."))


def _int(doc: dict[str, Any], key: str, lo: int, hi: int, default: int | None = None) -> int:
    value = doc.get(key, default) if default is not None else doc[key]
    if type(value) is not int or not lo <= value <= hi:
        raise ValueError(f"{key} {value!r} is out of range")
    return value


def _opt_int(doc: dict[str, Any], key: str, lo: int, hi: int) -> int | None:
    return None if doc.get(key) is None else _int(doc, key, lo, hi)


def _text(doc: dict[str, Any], key: str, default: str | None = None) -> str:
    value = doc.get(key, default) if default is not None else doc[key]
    if not isinstance(value, str):
        raise ValueError(f"{key} is not text")
    return value


def _opt_text(doc: dict[str, Any], key: str) -> str | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or "\x00" in value:
        raise ValueError(f"{key} {value!r} is not a valid text")
    return value


def _blob_id(value: object, name: str) -> bytes:
    if not isinstance(value, str) or len(value) != 64:
        raise ValueError(f"{name!r} has a malformed blob id")
    return bytes.fromhex(value)


def name_key(name: str) -> bytes:
    """The order of entries in a tree: the UTF-8 bytes of their names."""
    return name.encode("utf-8", "surrogatepass")


def encode_tree(nodes: list[Node]) -> bytes:
    """Serialize nodes (sorted by name for deterministic, deduplicable trees)."""
    ordered = sorted(nodes, key=lambda n: name_key(n.name))
    text = json.dumps(
        {"nodes": [n.to_doc() for n in ordered]}, ensure_ascii=False, separators=(",", ":")
    )
    return text.encode("utf-8", "surrogatepass")


def decode_tree(raw: bytes, what: str) -> list[Node]:
    """Parse a tree blob. Entries must be strictly sorted by name: a tree with two entries of
    one name (e.g. a symlink ``a`` and a folder ``a``, which would make a restore write through
    the link) or out of order was not written by praxisbackup and is rejected as malformed."""
    try:
        doc = json.loads(raw.decode("utf-8", "surrogatepass"))
        nodes = [Node.from_doc(n) for n in doc["nodes"]]
        keys = [name_key(n.name) for n in nodes]
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError) as exc:
        raise IntegrityError(f"{what} is malformed: {exc}") from None
    for before, after, node in zip(keys, keys[1:], nodes[1:], strict=False):
        if before >= after:
            problem = "twice" if before == after else "out of order"
            raise IntegrityError(f"{what} is malformed: entry {node.name!r} is listed {problem}")
    return nodes


class ParentEntry:
    """What a backup needs of an entry of the previous snapshot: enough to tell an unchanged
    file (type, size, times, inode) and to take over its content, or to find a folder's
    previous tree. Decoded without the full validation of :meth:`Node.from_doc` (a backup
    reads every folder of the previous snapshot; a restore validates what it restores)."""

    __slots__ = ("_content", "ctime_ns", "doc", "inode", "mtime_ns", "size", "subtree", "type")

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.type = doc["type"]
        self.size = doc.get("size")
        self.mtime_ns = doc.get("mtime_ns")
        self.ctime_ns = doc.get("ctime_ns")
        self.inode = doc.get("inode")
        self._content = doc.get("content", [])
        subtree = doc.get("subtree")
        self.subtree = _blob_id(subtree, "subtree") if subtree else None

    @property
    def content(self) -> list[bytes]:
        """The content ids (checked when taken over; ValueError if malformed)."""
        if not isinstance(self._content, list):
            raise ValueError("content is not a list")
        return [_blob_id(c, "content") for c in self._content]


def decode_parent_tree(raw: bytes, what: str) -> dict[str, ParentEntry]:
    """The entries of a previous snapshot's tree by name (see :class:`ParentEntry`); entries
    that cannot be used are left out (their files are simply read again)."""
    try:
        docs = json.loads(raw.decode("utf-8", "surrogatepass"))["nodes"]
        if not isinstance(docs, list):
            raise TypeError("nodes is not a list")
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"{what} is malformed: {exc}") from None
    entries: dict[str, ParentEntry] = {}
    for doc in docs:
        try:
            name = doc["name"]
            if isinstance(name, str):
                entries[name] = ParentEntry(doc)
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    return entries
