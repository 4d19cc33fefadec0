"""Reading large files ahead of the backup's walk.

The walk hands files to the worker processes in its own order, and it runs at most a bounded
number of batches ahead of them (``archiver.WAITING``). A folder of large files that do not
compress (scans, archives, videos) therefore comes last when it lies after a folder of many
small documents: its reading is bound by the disk while the cores wait, after a phase in which
the cores were busy and the disk was not. Measured on the bench: the 50 scans (578 MB) were
read in the last 1.1-1.6 s of a first backup, the disk 96 % busy and the cores half idle,
while during the 55 000 documents before them the disk was 45 % busy.

The walk lists the sub-folders of a folder ahead of itself (``archiver.LOOKAHEAD``). While it
waits for the workers, it looks into those listings and queues the large files that it will
read when it gets there (new or changed; not hard-linked, not excluded). One such file at a
time goes to a worker while the oldest waiting batch is one of small files; when the walk
reaches the file it takes the answer (or waits for it). A file the walk reaches before its
read-ahead was sent is read as usual. Once the walk is past a folder (walked, or skipped: nested
too deep, unreadable), its read-aheads not sent yet are dropped; one already with a worker
whose answer the walk never takes only leaves blobs nothing refers to, which prune removes.

The walk's own ``lstat`` of the file is the one the read-ahead was decided on (both come from
the same listing), and the worker reads the file exactly as for the walk, checking that it did
not change while being read.
"""

from __future__ import annotations

from praxisbackup.engine.pipeline import FileRead

#: Files read ahead that may be with the workers at once (the other worker goes on with the
#: walk's batches of small files, which need the cores rather than the disk).
IN_FLIGHT = 1


class ReadAhead:
    """The files queued, sent and answered ahead of the walk, by token (the archiver's)."""

    def __init__(self) -> None:
        #: Folders listed ahead of the walk and not yet looked into: path -> snapshot path.
        self.folders: dict[str, str] = {}
        self._tokens: dict[str, int] = {}
        self._queued: dict[int, tuple[int, str, int]] = {}
        self._by_folder: dict[str, list[int]] = {}
        self._sent: set[int] = set()
        self._answers: dict[int, FileRead] = {}

    def add(self, token: int, folder: str, path: str, size: int) -> None:
        self._tokens[path] = token
        self._queued[token] = (token, path, size)
        self._by_folder.setdefault(folder, []).append(token)

    def passed(self, folder: str) -> None:
        """The walk is past ``folder`` (walked or skipped): nothing more is looked up in it,
        and its read-aheads not sent yet are dropped."""
        self.folders.pop(folder, None)
        for token in self._by_folder.pop(folder, ()):
            queued = self._queued.pop(token, None)
            if queued is not None:
                self._tokens.pop(queued[1], None)

    def next_batch(self) -> list[tuple[int, str, int]] | None:
        """A queued file for a worker, if fewer than :data:`IN_FLIGHT` are with one."""
        if len(self._sent) >= IN_FLIGHT or not self._queued:
            return None
        token = next(iter(self._queued))
        self._sent.add(token)
        return [self._queued.pop(token)]

    def claim(self, path: str) -> int | None:
        """The walk reached ``path``: the token of its read-ahead, if one was sent (its answer
        arrives, or is here, under that token). A read-ahead not sent yet is dropped: the walk
        reads the file as usual."""
        token = self._tokens.pop(path, None)
        if token is None or self._queued.pop(token, None) is not None:
            return None
        return token

    def answered(self, token: int) -> None:
        """A worker answered ``token`` (any file's)."""
        self._sent.discard(token)

    def keep(self, token: int, result: FileRead) -> None:
        """The answer to a read-ahead the walk has not reached yet."""
        self._answers[token] = result

    def take(self, token: int) -> FileRead | None:
        """The answer to a claimed read-ahead, if it has arrived."""
        return self._answers.pop(token, None)
