"""Operating-system specific operations behind one small interface.

The engine never calls POSIX- or Windows-only functions directly; it calls the functions
exported here, which come from :mod:`._posix` or :mod:`._windows`. The Windows module is written
against the documented Win32 API (kernel32 ``CreateFileW``/``SetFileTime``/``SetFileAttributesW``)
through :mod:`ctypes`; on Linux only its pure helpers are exercised by tests.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys

if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    from praxisbackup.platform import _windows as _impl
else:
    from praxisbackup.platform import _posix as _impl

IS_WINDOWS = sys.platform == "win32"

from praxisbackup.platform.direct import ALIGN  # noqa: E402
from praxisbackup.platform.direct import WRITE_BLOCK as WRITE_BLOCK  # noqa: E402
from praxisbackup.platform.direct import DirectFile as DirectFile  # noqa: E402
from praxisbackup.platform.direct import DirectRefused as DirectRefused  # noqa: E402
from praxisbackup.platform.direct import ReadBuffer as ReadBuffer  # noqa: E402
from praxisbackup.platform.direct import open_direct as open_direct  # noqa: E402
from praxisbackup.platform.direct import open_regular as open_regular  # noqa: E402
from praxisbackup.platform.direct import read_aligned as read_aligned  # noqa: E402
from praxisbackup.platform.direct import read_direct as read_direct  # noqa: E402
from praxisbackup.platform.direct import write_direct as write_direct  # noqa: E402

birthtime_ns = _impl.birthtime_ns
file_attributes = _impl.file_attributes
set_birthtime_ns = _impl.set_birthtime_ns
set_file_attributes = _impl.set_file_attributes
drop_cache = _impl.drop_cache
prefetch = _impl.prefetch
background_thread = _impl.background_thread
fsync_directory = _impl.fsync_directory
owner_names = _impl.owner_names
restore_owner = _impl.restore_owner
can_restore_owner = _impl.can_restore_owner
pread = _impl.pread
pread_into = _impl.pread_into
pwrite = _impl.pwrite
tune_memory = _impl.tune_memory
open_file_limit = _impl.open_file_limit
interrupts_held_from_children = _impl.interrupts_held_from_children
descriptors_in_use = _impl.descriptors_in_use
raise_open_file_limit = _impl.raise_open_file_limit
disk_identity = _impl.disk_identity
set_private_acl = _impl.set_private_acl
protect_secret = _impl.protect_secret
has_console = _impl.has_console
files_held_open = _impl.files_held_open
watch_stop_event = _impl.watch_stop_event
program_data = _impl.program_data
unprotect_secret = _impl.unprotect_secret
PRIVATE_FILE_SDDL = _impl.PRIVATE_FILE_SDDL
acl_sddl = _impl.acl_sddl


def shell_join(args: list[str]) -> str:
    """One command line for the system shell (cmd.exe on Windows, sh elsewhere) that runs
    exactly ``args``: service and hook commands are written into the configuration as text."""
    if IS_WINDOWS:
        return subprocess.list2cmdline(args)
    return shlex.join(args)


def hostname() -> str:
    """The machine's name as recorded in snapshots and locks."""
    return socket.gethostname()


def username() -> str:
    """The account running praxisbackup (best effort, never fails)."""
    for var in ("USER", "USERNAME", "LOGNAME"):
        value = os.environ.get(var)
        if value:
            return value
    return ""


__all__ = [
    "ALIGN",
    "IS_WINDOWS",
    "PRIVATE_FILE_SDDL",
    "acl_sddl",
    "birthtime_ns",
    "can_restore_owner",
    "descriptors_in_use",
    "disk_identity",
    "drop_cache",
    "file_attributes",
    "files_held_open",
    "fsync_directory",
    "has_console",
    "hostname",
    "interrupts_held_from_children",
    "open_file_limit",
    "owner_names",
    "pread",
    "pread_into",
    "prefetch",
    "program_data",
    "protect_secret",
    "pwrite",
    "raise_open_file_limit",
    "restore_owner",
    "set_birthtime_ns",
    "set_file_attributes",
    "set_private_acl",
    "shell_join",
    "tune_memory",
    "unprotect_secret",
    "username",
    "watch_stop_event",
]
