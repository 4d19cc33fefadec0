"""POSIX implementations of the platform interface (Linux, BSD, macOS)."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import grp
import os
import pwd
import sys
import threading
from collections.abc import Callable, Iterator


def birthtime_ns(st: os.stat_result) -> int | None:
    """Creation time where the stat call reports one (BSD/macOS); Linux's statx is not exposed."""
    value = getattr(st, "st_birthtime_ns", None)
    if value is None:
        seconds = getattr(st, "st_birthtime", None)
        return None if seconds is None else int(seconds * 1_000_000_000)
    return int(value)


def file_attributes(st: os.stat_result) -> int | None:
    """Windows file attributes do not exist on POSIX."""
    return None


def set_birthtime_ns(path: str, value: int) -> bool:
    """POSIX offers no portable way to set a creation time; report that it was not set."""
    return False


def set_file_attributes(path: str, attributes: int) -> bool:
    """No Windows attributes on POSIX."""
    return False


def drop_cache(fd: int) -> None:
    """Ask the kernel to forget cached pages of a file.

    Used twice: after reading a source file (so a nightly backup does not evict the server's
    working set) and before reading a pack during verification (so the bytes come from the
    medium, not from memory). Dirty pages are not dropped by the kernel, so callers that wrote
    the file fsync it first.
    """
    if hasattr(os, "posix_fadvise"):
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError:
            # Some file systems (e.g. FUSE mounts) refuse advice; reading still works, only the
            # cache is not dropped, which affects memory use and not correctness.
            return


def prefetch(fd: int) -> None:
    """Ask the kernel to start reading a whole file now (``POSIX_FADV_WILLNEED``): a backup
    worker does this for every small file of a batch before reading the first, so the disk
    sees many reads at once instead of one at a time (cold caches, tens of thousands of
    documents). Advice only: errors are ignored."""
    if hasattr(os, "posix_fadvise"):
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
        except OSError:
            return


def background_thread() -> None:
    """Lower the calling thread's scheduling priority (work that helps but must not slow the
    thread it runs beside, such as the key derivation). On Linux ``setpriority`` with a
    thread id sets that thread's nice value; elsewhere nothing is changed."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


def fsync_directory(path: str) -> None:
    """Make a rename or create inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@functools.lru_cache(maxsize=1024)
def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return ""


@functools.lru_cache(maxsize=1024)
def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return ""


def owner_names(uid: int, gid: int) -> tuple[str, str]:
    """User and group names for ids (empty strings when unknown)."""
    return _user_name(uid), _group_name(gid)


def can_restore_owner() -> bool:
    """Only root may give files away."""
    return hasattr(os, "geteuid") and os.geteuid() == 0


def restore_owner(path: str, uid: int, gid: int) -> None:
    """Set ownership without following a symlink."""
    os.lchown(path, uid, gid)


def pread(fd: int, length: int, offset: int) -> bytes:
    """Positional read that does not move a shared file offset (thread-safe)."""
    return os.pread(fd, length, offset)


def pread_into(fd: int, view: memoryview, offset: int) -> int:
    """Positional read into an existing buffer (no new pages per read); returns the bytes
    read, fewer only at the end of the file."""
    got = 0
    while got < len(view):
        n = os.preadv(fd, [view[got:]], offset + got)
        if n == 0:
            break
        got += n
    return got


def pwrite(fd: int, data: bytes | memoryview, offset: int) -> int:
    """Positional write that does not move a shared file offset."""
    return os.pwrite(fd, data, offset)


_M_MMAP_THRESHOLD = -3
#: Buffers from this size on get their own mapping (returned at once when freed); smaller ones
#: come from the heap and are reused. Chunks are at most 4 MiB, so decompressed chunks (restore,
#: check) are reused heap memory instead of fresh zeroed pages every time.
MMAP_THRESHOLD = 8 << 20
_M_ARENA_MAX = -8


def tune_memory() -> None:
    """Keep the resident size of a long backup small on glibc.

    glibc raises its mmap threshold dynamically after large buffers are freed, after which
    multi-MiB chunk buffers come from per-thread heaps that are rarely returned to the OS.
    A fixed threshold and two arenas keep peak RSS bounded; the threshold lies above the largest
    chunk (4 MiB), so decompressed chunks reuse heap memory instead of faulting in fresh pages
    for every blob (restore, check). Other C libraries are left alone.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return  # not glibc (e.g. musl): nothing to tune
    mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    mallopt(_M_ARENA_MAX, 2)


#: Descriptors a process asks for at most when it raises its soft limit (macOS reports an
#: unlimited hard limit but refuses more than OPEN_MAX).
_WANTED_FILES = 10240


@contextlib.contextmanager
def interrupts_held_from_children() -> Iterator[None]:
    """Processes started inside begin with Ctrl-C (SIGINT) blocked: a child inherits the signal
    mask of the thread that starts it, so a Ctrl-C to the terminal's process group stays
    pending in a worker until it has set the signal to be ignored, instead of interrupting
    its interpreter's start-up with a traceback (found by an outsider: 3 of 12 Ctrl-Cs while
    a restore's workers started). This thread gets a Ctrl-C of the meantime when the block
    ends; another thread of this process takes it at once."""
    import signal  # noqa: PLC0415 - POSIX only

    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def open_file_limit() -> int:
    """The soft limit of open files (what caches of open files are sized to)."""
    import resource  # noqa: PLC0415 - POSIX only

    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return _WANTED_FILES if soft == resource.RLIM_INFINITY else int(soft)


def descriptors_in_use() -> int:
    """The descriptors this process has open (Linux: ``/proc/self/fd``; elsewhere a guess)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 16


def raise_open_file_limit() -> int:
    """Raise the soft limit of open files towards the hard limit (as Go programs such as restic
    do at start) and return it: a restore holds many folders open, and the default soft limit
    is 1024 on Linux and 256 on macOS."""
    import resource  # noqa: PLC0415 - POSIX only

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = _WANTED_FILES if hard == resource.RLIM_INFINITY else min(hard, _WANTED_FILES)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            return int(soft)  # not allowed to raise it: the caller sizes its caches to it
    return open_file_limit()


def disk_identity(path: str) -> str:
    """The physical disk a path lives on: the whole-disk block device behind its file system
    (partitions of one disk compare equal), or the file system's device number if unknown."""
    dev = os.stat(path).st_dev
    major, minor = os.major(dev), os.minor(dev)
    sys_path = f"/sys/dev/block/{major}:{minor}"
    try:
        real = os.path.realpath(sys_path)
        if os.path.exists(os.path.join(real, "partition")):
            real = os.path.dirname(real)
        if os.path.isdir(real):
            return "disk:" + os.path.basename(real)
    except OSError:
        pass  # no sysfs (container, BSD): fall back to the device number
    return f"dev:{major}:{minor}"


def set_private_acl(path: str, sddl: str = "") -> None:
    """Only SYSTEM/Administrators on Windows; on POSIX: owner only (mode 0700)."""
    os.chmod(path, 0o700)


def acl_sddl(path: str) -> str:
    """POSIX has no SDDL; the mode in octal tells the same."""
    return oct(os.stat(path).st_mode & 0o777)


def protect_secret(data: bytes) -> bytes:
    """POSIX has no machine-bound encryption like DPAPI; the file's mode protects it."""
    return data


def unprotect_secret(data: bytes) -> bytes:
    return data


def program_data() -> str:
    """Windows only; POSIX keeps state in /var/lib and /etc (see model/locations.py)."""
    raise NotImplementedError("ProgramData exists on Windows only")


def watch_stop_event(on_stop: Callable[[], None]) -> bool:
    """Windows services only; on POSIX a service manager sends SIGTERM."""
    return False


def files_held_open(paths: list[str]) -> list[str]:
    """Files below ``paths`` that any process has open, from the process table (psutil), each
    with the process holding it."""
    import psutil  # noqa: PLC0415 - only for this check

    roots = [os.path.realpath(p) for p in paths]
    found: set[str] = set()
    for proc in psutil.process_iter():
        try:
            files = proc.open_files()
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        for f in files:
            real = os.path.realpath(f.path)
            if any(real == r or real.startswith(r.rstrip("/") + "/") for r in roots):
                found.add(f"{f.path} (pid {proc.pid} {proc.name()})")
    return sorted(found)


def has_console() -> bool:
    """A person can type at this process (standard input and error are terminals)."""
    try:
        return sys.stdin.isatty() and sys.stderr.isatty()
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


#: POSIX files are protected by their mode; Windows uses this SDDL (see _windows.py).
PRIVATE_FILE_SDDL = ""
