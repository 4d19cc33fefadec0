"""Listing a source folder and comparing it with the previous snapshot's tree: the nightly
run's common case, a folder of documents nobody touched.

Used by the archiver's process and - for folders that have a previous tree - by the backup's
worker processes, which list, ``lstat`` and compare a folder on their own core and answer
"unchanged" with just the names and sizes (see :class:`Examined`); the archiver then takes
over the previous tree. One definition of "unchanged" for both.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from operator import itemgetter

from praxisbackup import platform
from praxisbackup.engine.tree import FILE, ParentEntry

#: A folder's entries: (name, path, lstat or the error it gave), sorted by name.
Listing = list[tuple[str, str, "os.stat_result | OSError"]]


#: Listing a folder through a descriptor opened with O_NOATIME leaves its access time as it
#: was (Linux; the owner or root). Otherwise the listing would change the very time a backup
#: records for the folder (relatime updates it once a day) - the prewalk lists every folder
#: before the walk takes its metadata.
_O_NOATIME = getattr(os, "O_NOATIME", 0)
_FOLDER_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)


@contextlib.contextmanager
def scan(path: str, touch: bool = True) -> Iterator[Iterator[os.DirEntry[str]]]:
    """``os.scandir`` of a folder without changing its access time where the system allows.
    The entries' ``path`` is then only their name: callers join ``path`` and ``entry.name``.
    A folder that is a link now (the last component of ``path``) is not followed (an error,
    like a vanished folder). Where the access time cannot be spared (not the owner, not root)
    the folder is listed anyway - unless ``touch`` is False: then PermissionError (the
    prewalk, which would change the time before the walk records it)."""
    if not _O_NOATIME or os.scandir not in os.supports_fd:
        with os.scandir(path) as it:
            yield it
        return
    try:
        fd = os.open(path, _FOLDER_FLAGS | _O_NOATIME)
    except PermissionError:  # not the owner: a plain listing (it may update the access time)
        if not touch:
            raise
        fd = os.open(path, _FOLDER_FLAGS)
    try:
        with os.scandir(fd) as it:
            yield it
    finally:
        os.close(fd)


def list_folder(path: str) -> Listing | OSError:
    """A folder's entries sorted by name, each with its lstat (or the error it gave). Each
    entry is looked at relative to the listed folder's descriptor where :func:`scan` has one
    (one name to resolve, not the whole path: a fifth less time for the nightly walk)."""
    try:
        with scan(path) as it:
            found = [(entry.name, _lstat(entry)) for entry in it]
    except OSError as exc:
        return exc
    found.sort(key=itemgetter(0))
    prefix = os.path.join(path, "")
    return [(name, prefix + name, st) for name, st in found]


#: Windows' directory listing carries no file ids and link counts (``DirEntry.stat`` gives
#: 0): there the entry's path is ``lstat``-ed.
_LSTAT_PATH = platform.IS_WINDOWS


def _lstat(entry: os.DirEntry[str]) -> os.stat_result | OSError:
    try:
        return os.lstat(entry.path) if _LSTAT_PATH else entry.stat(follow_symlinks=False)
    except OSError as exc:
        return exc


def same_file(old: ParentEntry, st: os.stat_result) -> bool:
    """A regular file without further links whose every recorded field equals the previous
    snapshot's entry (so its node would encode to the same bytes)."""
    doc = old.doc
    if not (stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and doc.get("type") == FILE):
        return False
    user, group = platform.owner_names(st.st_uid, st.st_gid)
    return (
        doc.get("mode") == stat.S_IMODE(st.st_mode)
        and doc.get("mtime_ns") == st.st_mtime_ns
        and doc.get("atime_ns") == st.st_atime_ns
        and doc.get("ctime_ns") == st.st_ctime_ns
        and doc.get("size") == st.st_size
        and doc.get("inode") == st.st_ino
        and doc.get("device") == st.st_dev
        and doc.get("links") == st.st_nlink
        and doc.get("uid") == st.st_uid
        and doc.get("gid") == st.st_gid
        and doc.get("user", "") == user
        and doc.get("group", "") == group
        and doc.get("btime_ns") == platform.birthtime_ns(st)
        and doc.get("attributes") == platform.file_attributes(st)
        and not doc.get("rdev")
        and "target" not in doc
        and "link" not in doc
        and "subtree" not in doc
    )


def unchanged_sizes(
    entries: Iterable[tuple[str, os.stat_result | OSError]],
    old: dict[str, ParentEntry],
    has_data: Callable[[bytes], bool],
) -> list[int] | None:
    """The sizes of a folder's entries if it holds only regular files that all look exactly as
    in the previous snapshot (every recorded field) and whose content the repository holds
    intact - then its previous tree is byte-identical and can be taken over; else None."""
    sizes: list[int] = []
    for name, st in entries:
        entry = old.get(name)
        if entry is None or not isinstance(st, os.stat_result) or not same_file(entry, st):
            return None
        try:
            content = entry.content
        except ValueError:
            return None
        if not all(has_data(c) for c in content):
            return None
        sizes.append(st.st_size)
    if not sizes or len(sizes) != len(old):
        return None
    return sizes


@dataclass
class Examined:
    """What a worker process found in a folder: either ``unchanged`` (the names and sizes of
    its files, all as in the previous tree) or its ``listing`` and previous ``old`` entries
    for the archiver to go through. ``tree_error`` says why the previous tree could not be
    read (then every file is read again)."""

    unchanged: list[tuple[str, int]] | None
    listing: Listing | OSError | None
    old: dict[str, ParentEntry]
    tree_error: str | None = None
