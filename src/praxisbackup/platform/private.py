"""Files and folders of the local state that only the backup's own account may read.

The state folder holds the catalog (names of patients' files), logs, restore protocols, the
sealed recovery key and the passphrase file: on POSIX the folder is 0700 and its files 0600 -
also when an older installation left them more open. A folder or file there that another user
owns, or a symbolic link planted in its place, is refused: the nightly run (root, SYSTEM) must
never write through what an ordinary user controls. On Windows the folder gets the private
ACL (SYSTEM and Administrators only) when praxisbackup creates it; the installer sets it for
``%ProgramData%\\praxisbackup``.
"""

from __future__ import annotations

import os
import stat
from typing import IO, Any

from praxisbackup import platform
from praxisbackup.errors import PraxisError

_POSIX = os.name != "nt"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_BINARY = getattr(os, "O_BINARY", 0)


class UnsafeStateError(PraxisError):
    """A path of the local state is a link or belongs to another user."""


def _check_owned(path: str, st: os.stat_result) -> None:
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeStateError(
            f"{path} is a symbolic link; praxisbackup does not write its state through links "
            "(remove it)",
            code="error.state_link",
            path=path,
        )
    if _POSIX and st.st_uid not in (os.geteuid(), 0):
        raise UnsafeStateError(
            f"{path} belongs to another user (uid {st.st_uid}); the backup's state must belong "
            "to the account the backup runs as",
            code="error.state_owner",
            path=path,
        )


def _tighten(path: str, st: os.stat_result, mode: int) -> None:
    if _POSIX and st.st_mode & 0o777 & ~mode and st.st_uid == os.geteuid():
        os.chmod(path, mode, follow_symlinks=False)


def private_dir(path: str) -> None:
    """Create a folder (and its parents) readable only by this account; tighten it if it
    exists with more rights; refuse a link or a folder of another user."""
    if not _POSIX and not os.path.isdir(path):  # pragma: no cover - Windows only
        os.makedirs(path, exist_ok=True)
        platform.set_private_acl(path)
        return
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.lstat(path)
    _check_owned(path, st)
    _tighten(path, st, 0o700)


def _open_private_fd(path: str, flags: int) -> int:
    """Open a file of the state (created 0600) without following a link planted there."""
    try:
        fd = os.open(path, flags | _NOFOLLOW | _BINARY, 0o600)
    except OSError as exc:
        if os.path.islink(path):
            _check_owned(path, os.lstat(path))
        raise exc from None
    st = os.fstat(fd)
    try:
        _check_owned(path, st)
    except UnsafeStateError:
        os.close(fd)
        raise
    if _POSIX and st.st_mode & 0o077 and st.st_uid == os.geteuid():
        os.fchmod(fd, 0o600)
    return fd


def private_file(path: str) -> None:
    """Make sure a file exists and only this account can read it (before SQLite opens it)."""
    os.close(_open_private_fd(path, os.O_WRONLY | os.O_CREAT))


def open_private(path: str, mode: str = "w", **kwargs: Any) -> IO[Any]:
    """``open(path, mode)`` for writing a file readable only by this account."""
    fd = _open_private_fd(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    return os.fdopen(fd, mode, **kwargs)


def open_private_fd(path: str, flags: int) -> int:
    """A descriptor of a state file (e.g. the run lock) opened without following links."""
    return _open_private_fd(path, flags)


def write_private_file(path: str, data: bytes) -> None:
    """Write a file only this account (on Windows: SYSTEM and Administrators) may read."""
    with open_private(path, "wb") as fh:
        fh.write(data)
    if not _POSIX:  # pragma: no cover - Windows only
        platform.set_private_acl(path, platform.PRIVATE_FILE_SDDL)
