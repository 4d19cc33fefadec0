"""Windows implementations of the platform interface.

Written against the documented Win32 API. Linux CI exercises the pure conversions
(:func:`filetime_from_ns`); the ctypes calls run only on Windows.
"""

from __future__ import annotations

import _thread
import contextlib
import ctypes
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

#: 100-ns intervals between 1601-01-01 (FILETIME epoch) and 1970-01-01 (Unix epoch).
FILETIME_EPOCH_OFFSET = 116_444_736_000_000_000

FILE_WRITE_ATTRIBUTES = 0x100
FILE_SHARE_ALL = 0x1 | 0x2 | 0x4
OPEN_EXISTING = 3
FILE_FLAG_BACKUP_SEMANTICS = 0x02000000  # needed to open directories
FILE_FLAG_OPEN_REPARSE_POINT = 0x00200000  # act on a symlink itself
INVALID_HANDLE_VALUE = -1


def filetime_from_ns(ns: int) -> tuple[int, int]:
    """Split a Unix-epoch nanosecond time into FILETIME (low, high) 32-bit words."""
    ticks = ns // 100 + FILETIME_EPOCH_OFFSET
    return ticks & 0xFFFFFFFF, ticks >> 32


def ns_from_filetime(low: int, high: int) -> int:
    """Inverse of :func:`filetime_from_ns` (100-ns precision)."""
    return (((high << 32) | low) - FILETIME_EPOCH_OFFSET) * 100


def birthtime_ns(st: os.stat_result) -> int | None:
    """Creation time: ``st_birthtime_ns`` (Python >= 3.12) or ``st_ctime_ns`` before that,
    which on Windows is documented to be the creation time."""
    value = getattr(st, "st_birthtime_ns", None)
    return int(value) if value is not None else int(st.st_ctime_ns)


def file_attributes(st: os.stat_result) -> int | None:
    """FILE_ATTRIBUTE_* flags (read-only, hidden, system, archive, ...)."""
    return getattr(st, "st_file_attributes", None)


class _FILETIME(ctypes.Structure):
    _fields_ = (("low", ctypes.c_uint32), ("high", ctypes.c_uint32))


def set_birthtime_ns(path: str, value: int) -> bool:
    """Set the creation time via CreateFileW + SetFileTime (lpCreationTime only)."""
    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    handle = kernel32.CreateFileW(
        path,
        FILE_WRITE_ATTRIBUTES,
        FILE_SHARE_ALL,
        None,
        OPEN_EXISTING,
        FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT,
        None,
    )
    if handle == INVALID_HANDLE_VALUE:
        raise ctypes.WinError()  # type: ignore[attr-defined]
    try:
        low, high = filetime_from_ns(value)
        created = _FILETIME(low, high)
        if not kernel32.SetFileTime(handle, ctypes.byref(created), None, None):
            raise ctypes.WinError()  # type: ignore[attr-defined]
    finally:
        kernel32.CloseHandle(handle)
    return True


def set_file_attributes(path: str, attributes: int) -> bool:
    """SetFileAttributesW; only the settable bits are passed."""
    # READONLY, HIDDEN, SYSTEM, ARCHIVE, NORMAL, TEMPORARY, OFFLINE, NOT_CONTENT_INDEXED
    settable = attributes & 0x0000_3127
    if not ctypes.windll.kernel32.SetFileAttributesW(path, settable):  # type: ignore[attr-defined]
        raise ctypes.WinError()  # type: ignore[attr-defined]
    return True


def drop_cache(fd: int) -> None:
    """Windows has no per-file cache advice; verification opens files normally.

    Reading a medium uncached on Windows needs FILE_FLAG_NO_BUFFERING with sector-aligned
    reads; until that is implemented, a USB medium should be re-attached before a drill.
    """


def prefetch(fd: int) -> None:
    """No read-ahead advice on Windows (the cache manager reads ahead on its own)."""


def background_thread() -> None:
    """Lower the calling thread's priority (``THREAD_PRIORITY_BELOW_NORMAL``): work that helps
    but must not slow the thread it runs beside, such as the key derivation."""
    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    kernel32.SetThreadPriority(kernel32.GetCurrentThread(), -1)


def fsync_directory(path: str) -> None:
    """NTFS journals renames; directory handles cannot be flushed with os.fsync."""


def owner_names(uid: int, gid: int) -> tuple[str, str]:
    """Windows ACL owners are not recorded as uid/gid."""
    return "", ""


def can_restore_owner() -> bool:
    """Ownership is not restored on Windows (ACLs are out of scope)."""
    return False


def restore_owner(path: str, uid: int, gid: int) -> None:
    """No-op on Windows."""


_pread_lock = threading.Lock()


def pread(fd: int, length: int, offset: int) -> bytes:
    """Windows has no os.pread: seek and read under a lock."""
    with _pread_lock:
        os.lseek(fd, offset, os.SEEK_SET)
        return os.read(fd, length)


def pread_into(fd: int, view: memoryview, offset: int) -> int:
    """Windows has no preadv: read (seek and read under a lock), then copy."""
    data = pread(fd, len(view), offset)
    view[: len(data)] = data
    return len(data)


def pwrite(fd: int, data: bytes | memoryview, offset: int) -> int:
    """Windows has no os.pwrite: seek and write under a lock."""
    with _pread_lock:
        os.lseek(fd, offset, os.SEEK_SET)
        return os.write(fd, data)


def tune_memory() -> None:
    """The Windows heap needs no tuning."""


@contextlib.contextmanager
def interrupts_held_from_children() -> Iterator[None]:
    """Nothing to hold on Windows: workers start without a console (``CREATE_NO_WINDOW``), so a
    console's Ctrl-C does not reach them while their interpreter starts."""
    yield


def open_file_limit() -> int:
    """Windows has no small per-process limit on open handles; the C runtime's descriptors
    (used by ``os.open``) go up to 8192."""
    return 8192


def descriptors_in_use() -> int:
    """Not counted on Windows (the C runtime's 8192 descriptors are far from used up): a
    guess."""
    return 16


def raise_open_file_limit() -> int:
    """Nothing to raise (see open_file_limit)."""
    return open_file_limit()


def disk_identity(path: str) -> str:
    """The volume serial number (``st_dev`` on Windows). Two partitions of one physical disk
    differ here; IOCTL_VOLUME_GET_VOLUME_DISK_EXTENTS would tell the disk (not yet used)."""
    return f"volume:{os.stat(path).st_dev}"


#: SDDL of praxisbackup's data folder (%ProgramData%\praxisbackup): full control for SYSTEM
#: (the service) and the Administrators group, nothing for anyone else; protected, i.e. no
#: entries inherited from ProgramData (where every user may read and create). Files and folders
#: below inherit it (OI/CI).
# ctypes' Windows-only names, typed loosely so the module type-checks on every platform.
_win: Any = ctypes
PRIVATE_DIRECTORY_SDDL = "D:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)"
SE_FILE_OBJECT = 1
DACL_SECURITY_INFORMATION = 0x4
PROTECTED_DACL_SECURITY_INFORMATION = 0x80000000
SDDL_REVISION_1 = 1


def _advapi32() -> Any:
    from ctypes import wintypes  # noqa: PLC0415

    dll = _win.WinDLL("advapi32", use_last_error=True)
    f = dll.ConvertStringSecurityDescriptorToSecurityDescriptorW
    f.argtypes = (
        wintypes.LPCWSTR,
        wintypes.DWORD,
        ctypes.POINTER(ctypes.c_void_p),
        ctypes.c_void_p,
    )
    f.restype = wintypes.BOOL
    f = dll.GetSecurityDescriptorDacl
    f.argtypes = (
        ctypes.c_void_p,
        ctypes.POINTER(wintypes.BOOL),
        ctypes.POINTER(ctypes.c_void_p),
        ctypes.POINTER(wintypes.BOOL),
    )
    f.restype = wintypes.BOOL
    f = dll.SetNamedSecurityInfoW
    f.argtypes = (
        wintypes.LPWSTR,
        ctypes.c_int,
        wintypes.DWORD,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_void_p,
    )
    f.restype = wintypes.DWORD
    f = dll.GetNamedSecurityInfoW
    f.argtypes = (
        wintypes.LPCWSTR,
        ctypes.c_int,
        wintypes.DWORD,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_void_p),
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_void_p),
    )
    f.restype = wintypes.DWORD
    f = dll.ConvertSecurityDescriptorToStringSecurityDescriptorW
    f.argtypes = (
        ctypes.c_void_p,
        wintypes.DWORD,
        wintypes.DWORD,
        ctypes.POINTER(wintypes.LPWSTR),
        ctypes.c_void_p,
    )
    f.restype = wintypes.BOOL
    return dll


def set_private_acl(path: str, sddl: str = PRIVATE_DIRECTORY_SDDL) -> None:
    """Replace the DACL of ``path`` by ``sddl`` (protected: nothing inherited from above)."""
    dll = _advapi32()
    kernel32 = _win.windll.kernel32
    kernel32.LocalFree.argtypes = (ctypes.c_void_p,)
    descriptor = ctypes.c_void_p()
    if not dll.ConvertStringSecurityDescriptorToSecurityDescriptorW(
        sddl, SDDL_REVISION_1, ctypes.byref(descriptor), None
    ):
        raise _win.WinError(_win.get_last_error())
    try:
        from ctypes import wintypes  # noqa: PLC0415

        present, defaulted = wintypes.BOOL(), wintypes.BOOL()
        dacl = ctypes.c_void_p()
        if not dll.GetSecurityDescriptorDacl(
            descriptor, ctypes.byref(present), ctypes.byref(dacl), ctypes.byref(defaulted)
        ):
            raise _win.WinError(_win.get_last_error())
        error = dll.SetNamedSecurityInfoW(
            path,
            SE_FILE_OBJECT,
            DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
            None,
            None,
            dacl,
            None,
        )
        if error:
            raise _win.WinError(error)
    finally:
        kernel32.LocalFree(descriptor)


def acl_sddl(path: str) -> str:
    """The DACL of ``path`` as SDDL (to check what :func:`set_private_acl` stored)."""
    dll = _advapi32()
    kernel32 = _win.windll.kernel32
    kernel32.LocalFree.argtypes = (ctypes.c_void_p,)
    dacl, descriptor = ctypes.c_void_p(), ctypes.c_void_p()
    error = dll.GetNamedSecurityInfoW(
        path,
        SE_FILE_OBJECT,
        DACL_SECURITY_INFORMATION,
        None,
        None,
        ctypes.byref(dacl),
        None,
        ctypes.byref(descriptor),
    )
    if error:
        raise _win.WinError(error)
    try:
        from ctypes import wintypes  # noqa: PLC0415

        text = wintypes.LPWSTR()
        if not dll.ConvertSecurityDescriptorToStringSecurityDescriptorW(
            descriptor, SDDL_REVISION_1, DACL_SECURITY_INFORMATION, ctypes.byref(text), None
        ):
            raise _win.WinError(_win.get_last_error())
        try:
            return str(text.value)
        finally:
            kernel32.LocalFree(text)
    finally:
        kernel32.LocalFree(descriptor)


PRIVATE_FILE_SDDL = "D:PAI(A;;FA;;;SY)(A;;FA;;;BA)"
_CRYPTPROTECT_UI_FORBIDDEN = 0x1
_CRYPTPROTECT_LOCAL_MACHINE = 0x4


class _DataBlob(ctypes.Structure):
    _fields_ = (("cbData", ctypes.c_uint32), ("pbData", ctypes.POINTER(ctypes.c_char)))


def _dpapi(data: bytes, protect: bool) -> bytes:
    """CryptProtectData/CryptUnprotectData with the machine's key: any process on this
    machine that may read the file can decrypt it (the nightly run as SYSTEM, an
    administrator), a copy of the file on another machine cannot."""
    crypt32 = _win.windll.crypt32
    kernel32 = _win.windll.kernel32
    kernel32.LocalFree.argtypes = (ctypes.c_void_p,)
    buffer = ctypes.create_string_buffer(data, len(data))
    source = _DataBlob(len(data), ctypes.cast(buffer, ctypes.POINTER(ctypes.c_char)))
    result = _DataBlob()
    flags = _CRYPTPROTECT_UI_FORBIDDEN | (_CRYPTPROTECT_LOCAL_MACHINE if protect else 0)
    call = crypt32.CryptProtectData if protect else crypt32.CryptUnprotectData
    if not call(ctypes.byref(source), None, None, None, None, flags, ctypes.byref(result)):
        raise _win.WinError(_win.get_last_error())
    try:
        return ctypes.string_at(result.pbData, result.cbData)
    finally:
        kernel32.LocalFree(ctypes.cast(result.pbData, ctypes.c_void_p))


def protect_secret(data: bytes) -> bytes:
    return _dpapi(data, True)


def unprotect_secret(data: bytes) -> bytes:
    return _dpapi(data, False)


class _GUID(ctypes.Structure):
    _fields_ = (
        ("Data1", ctypes.c_uint32),
        ("Data2", ctypes.c_uint16),
        ("Data3", ctypes.c_uint16),
        ("Data4", ctypes.c_ubyte * 8),
    )


#: FOLDERID_ProgramData {62AB5D82-FDC1-4DC3-A9DD-070D1D495D97}
_FOLDERID_PROGRAM_DATA = _GUID(
    0x62AB5D82, 0xFDC1, 0x4DC3, (ctypes.c_ubyte * 8)(0xA9, 0xDD, 0x07, 0x0D, 0x1D, 0x49, 0x5D, 0x97)
)


def program_data() -> str:
    """The machine's ProgramData folder as the shell knows it (SHGetKnownFolderPath), the same
    for every account - unlike the environment variable, which a service may not have (and
    which Wine sets differently for services)."""
    shell32 = _win.windll.shell32
    ole32 = _win.windll.ole32
    path = ctypes.c_wchar_p()
    if shell32.SHGetKnownFolderPath(
        ctypes.byref(_FOLDERID_PROGRAM_DATA), 0, None, ctypes.byref(path)
    ):
        return os.environ.get("PROGRAMDATA", r"C:\ProgramData")
    try:
        return str(path.value)
    finally:
        ole32.CoTaskMemFree(path)


#: Set by the service wrapper (installer/service/pbservice.c) for the ``serve`` it starts.
STOP_EVENT_ENV = "PRAXISBACKUP_STOP_EVENT"
_SYNCHRONIZE = 0x00100000
_WAIT_OBJECT_0 = 0


def watch_stop_event(on_stop: Callable[[], None]) -> bool:
    """When started by the service wrapper, wait in a thread for its named stop event; then
    call ``on_stop`` and deliver SIGBREAK to the main thread (a running nightly job turns it
    into an orderly stop that starts the practice's services again). The wrapper also sends
    CTRL_BREAK, which Wine does not deliver to a service's child; the event works everywhere.
    Returns whether an event is watched."""
    name = os.environ.get(STOP_EVENT_ENV)
    if not name:
        return False
    kernel32 = _win.windll.kernel32
    kernel32.OpenEventW.restype = ctypes.c_void_p
    kernel32.OpenEventW.argtypes = (ctypes.c_uint32, ctypes.c_int, ctypes.c_wchar_p)
    kernel32.WaitForSingleObject.argtypes = (ctypes.c_void_p, ctypes.c_uint32)
    handle = kernel32.OpenEventW(_SYNCHRONIZE, 0, name)
    if not handle:
        return False

    def wait() -> None:
        if kernel32.WaitForSingleObject(handle, 0xFFFFFFFF) == _WAIT_OBJECT_0:
            on_stop()
            _thread.interrupt_main(signal.SIGBREAK)  # type: ignore[attr-defined,unused-ignore]

    threading.Thread(target=wait, name="service-stop", daemon=True).start()
    return True


_ERROR_SHARING_VIOLATION = 32
_ERROR_LOCK_VIOLATION = 33


def files_held_open(paths: list[str]) -> list[str]:
    """Files below ``paths`` that another process holds: a file opened elsewhere cannot be
    opened with share mode 0 (exclusive) - the error is then a sharing or lock violation.
    Other errors (access denied to an unreadable file) are not "held open"; the backup reports
    such files itself."""
    kernel32 = _win.WinDLL("kernel32", use_last_error=True)
    kernel32.CreateFileW.restype = ctypes.c_void_p
    kernel32.CreateFileW.argtypes = (
        ctypes.c_wchar_p,
        ctypes.c_uint32,
        ctypes.c_uint32,
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_uint32,
        ctypes.c_void_p,
    )
    kernel32.CloseHandle.argtypes = (ctypes.c_void_p,)
    generic_read, open_existing = 0x80000000, 3
    invalid = ctypes.c_void_p(-1).value
    held = []
    for base in paths:
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                full = os.path.join(dirpath, name)
                handle = kernel32.CreateFileW(full, generic_read, 0, None, open_existing, 0, None)
                if handle is None or handle == invalid:
                    if _win.get_last_error() in (_ERROR_SHARING_VIOLATION, _ERROR_LOCK_VIOLATION):
                        held.append(full)
                else:
                    kernel32.CloseHandle(handle)
    return held


def has_console() -> bool:
    """A person can type at this process: its standard input is a real console. (``isatty``
    is also true for NUL, which a scheduled task or a service gets: a prompt would hang.)"""
    import msvcrt  # noqa: PLC0415

    get_handle: Any = getattr(msvcrt, "get_osfhandle")  # noqa: B009 - Windows-only attribute
    try:
        handle = get_handle(sys.stdin.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    kernel32 = _win.windll.kernel32
    kernel32.GetConsoleMode.argtypes = (ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32))
    mode = ctypes.c_uint32()
    return bool(kernel32.GetConsoleMode(ctypes.c_void_p(handle), ctypes.byref(mode)))
