"""Mapping between file-system paths and paths inside a snapshot.

Snapshot paths always use ``/`` and start with ``/``; a Windows drive ``C:`` becomes the first
component ``C``. So ``C:\\CompuMED\\M1`` is ``/C/CompuMED/M1`` in a snapshot, on any OS.
"""

from __future__ import annotations

import ntpath
import os

from praxisbackup import platform


def split_source(path: str, windows: bool | None = None) -> list[str]:
    """Components of an absolute source path as stored in the snapshot tree."""
    windows = platform.IS_WINDOWS if windows is None else windows
    if windows:
        drive, rest = ntpath.splitdrive(path)
        parts = [p for p in rest.replace("/", "\\").split("\\") if p]
        if drive.startswith("\\\\"):
            head = [p for p in drive.split("\\") if p]
        else:
            head = [drive.rstrip(":")] if drive else []
        return head + parts
    return [p for p in path.split("/") if p]


def snapshot_path(components: list[str]) -> str:
    return "/" + "/".join(components)


def normalize_snapshot_path(path: str) -> str:
    """Accept ``C:\\CompuMED``, ``/C/CompuMED``, ``C/CompuMED`` or ``/srv/x`` for filters."""
    if ntpath.splitdrive(path)[0] and ":" in path[:3]:
        return snapshot_path(split_source(path, windows=True))
    return snapshot_path([p for p in path.replace("\\", "/").split("/") if p])


def absolute_source(path: str) -> str:
    """Absolute, normalized source path (no trailing separator)."""
    return os.path.normpath(os.path.abspath(path))


def native_path(spath: str, windows: bool | None = None) -> str:
    """A snapshot path as the person knows it on this system: ``/D/Praxis/Brief.txt`` is
    ``D:\\Praxis\\Brief.txt`` on Windows (a first component of one letter is the drive,
    anything else a UNC server); unchanged elsewhere."""
    windows = platform.IS_WINDOWS if windows is None else windows
    if not windows:
        return spath
    parts = [p for p in spath.split("/") if p]
    if parts and len(parts[0]) == 1 and parts[0].isalpha():
        return parts[0] + ":\\" + "\\".join(parts[1:])
    return "\\\\" + "\\".join(parts) if parts else "\\"
