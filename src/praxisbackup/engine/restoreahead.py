"""Restoring large files ahead of the restore's walk.

The restore plans files in the order of its walk through the snapshot, depth first. A folder
of large files that do not compress (scans, archives) that lies after a folder of many small
documents is therefore written last, bound by the disk while the cores wait, after a phase in
which the cores were busy and the disk was not. Measured on the bench: the 50 scans (578 MB)
were written in the last 0.6-1 s of a restore with the disk 83-96 % busy and the cores half
idle, while during the 55 000 documents before them the disk was 30-55 % busy.

The walk notes the folders it has seen but not yet entered. Each time it hands a window of
small files to a worker while no worker has a large window, it looks into the first of those
folders (one tree more, read again when the walk gets there: trees are small) and restores up
to a window of their large files at once - the window goes to a worker beside the small ones.
When the walk enters such a folder, its files not restored yet are left to it; a file
restored ahead is skipped when the walk reaches it.

Everything else is as for any file: the same place, the same overwrite rule, the same window
writing, folder metadata at the end. It is used only where nothing can make two snapshot
folders one folder on disk (no followed links, no path mapping) and with no ``--include``.
"""

from __future__ import annotations

from collections import deque

from praxisbackup.engine.tree import DIR, FILE, Node

#: Files of at least this size are restored ahead of the walk.
LARGE_FILE = 1 << 20
#: Folders seen and not entered that are remembered for looking into (the first ones seen:
#: those the walk reaches last).
MAX_FOLDERS = 4096
#: Folders looked into at most per window of small files (each costs reading one tree).
LOOKS_PER_WINDOW = 4


class RestoreAhead:
    """The folders the walk has seen but not entered, and their large files found so far."""

    def __init__(self) -> None:
        self._folders: dict[str, bytes] = {}  # snapshot path -> tree id
        self._files: dict[str, deque[tuple[str, Node]]] = {}  # by folder
        #: Files restored ahead that the walk has not reached yet.
        self.done: set[str] = set()

    def seen(self, spath: str, nodes: list[Node]) -> None:
        """The walk read the folder ``spath`` (``nodes``): its sub-folders are ahead of it."""
        for node in nodes:
            if len(self._folders) >= MAX_FOLDERS:
                return
            if node.type == DIR and node.subtree is not None:
                self._folders[f"{spath}/{node.name}"] = node.subtree

    def entered(self, spath: str) -> None:
        """The walk enters ``spath``: what was found in it is the walk's again."""
        self._folders.pop(spath, None)
        self._files.pop(spath, None)

    def next_folder(self) -> tuple[str, bytes] | None:
        """The next folder to look into (it is forgotten: looked into once)."""
        if not self._folders:
            return None
        spath = next(iter(self._folders))
        return spath, self._folders.pop(spath)

    def found(self, spath: str, nodes: list[Node]) -> None:
        """The folder ``spath`` holds ``nodes``: remember its large files. (Its sub-folders
        are not looked into: only folders the walk itself has seen are, so that none lies
        below a folder the walk then does not enter.)"""
        large = deque(
            (f"{spath}/{n.name}", n) for n in nodes if n.type == FILE and n.size >= LARGE_FILE
        )
        if large:
            self._files[spath] = large

    def take(self, limit: int) -> list[tuple[str, Node]]:
        """Large files found, up to ``limit`` bytes (at least one), oldest folder first; each
        is marked as restored ahead."""
        taken: list[tuple[str, Node]] = []
        size = 0
        while self._files and size < limit:
            folder = next(iter(self._files))
            files = self._files[folder]
            spath, node = files.popleft()
            if not files:
                del self._files[folder]
            taken.append((spath, node))
            self.done.add(spath)
            size += node.size
        return taken

    @property
    def has_files(self) -> bool:
        return bool(self._files)
