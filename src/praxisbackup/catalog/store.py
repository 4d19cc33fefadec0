"""The local SQLite database shared by the catalog, the register, the outbox and the daily
check: one file in the state folder, one way to open it."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from praxisbackup.platform.private import private_dir, private_file


class SqliteStore:
    """Base for the tables of the local catalog; ``SCHEMA`` is created on first use."""

    SCHEMA = ""

    def __init__(self, path: str) -> None:
        private_dir(os.path.dirname(os.path.abspath(path)))  # 0700 on POSIX
        private_file(path)  # 0600: the catalog names patients' files
        self.path = path
        with self._db() as db:
            db.executescript(self.SCHEMA)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """A connection in a transaction (committed on success), always closed."""
        db = sqlite3.connect(self.path, timeout=30)
        try:
            with db:
                yield db
        finally:
            db.close()
