"""Is a database file still held open by some process? (Checked after services stopped.)"""

from __future__ import annotations

from praxisbackup import platform


def open_files_below(paths: list[str]) -> list[str]:
    """Files below ``paths`` that another process holds open (POSIX: from the process table;
    Windows: a file another process holds cannot be opened exclusively)."""
    if not paths:
        return []
    return platform.files_held_open(paths)
