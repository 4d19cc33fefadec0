"""Files and folders of the local state that only the backup's own account may read.

The state folder holds the catalog (names of patients' files), logs, restore protocols and the
sealed recovery key: on POSIX the folder is 0700 and the catalog and logs 0600 - also when an
older installation left them more open. On Windows the folder's ACLs decide (see the Windows
issue); these functions then only create what is missing.
"""

from __future__ import annotations

import os
from typing import IO, Any

from praxisbackup import platform

_POSIX = os.name != "nt"


def _tighten(path: str, mode: int) -> None:
    if not _POSIX:  # pragma: no cover - Windows: ACLs
        return
    st = os.stat(path)
    if st.st_mode & 0o777 & ~mode and st.st_uid == os.geteuid():
        os.chmod(path, mode)


def private_dir(path: str) -> None:
    """Create a folder (and its parents) readable only by this account; tighten it if it
    exists with more rights. On Windows a folder this creates gets the private ACL (SYSTEM and
    Administrators only); an existing one keeps the ACL the installer gave it."""
    if not _POSIX and not os.path.isdir(path):  # pragma: no cover - Windows only
        os.makedirs(path, exist_ok=True)
        platform.set_private_acl(path)
        return
    os.makedirs(path, mode=0o700, exist_ok=True)
    _tighten(path, 0o700)


def private_file(path: str) -> None:
    """Make sure a file exists and only this account can read it (before SQLite opens it)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o600)
    os.close(fd)
    _tighten(path, 0o600)


def open_private(path: str, mode: str = "w", **kwargs: Any) -> IO[Any]:
    """``open(path, mode)`` for writing a new file readable only by this account."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags, 0o600)
    _tighten(path, 0o600)
    return os.fdopen(fd, mode, **kwargs)
