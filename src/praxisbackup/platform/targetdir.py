"""Folders of a restore target, opened one component at a time without following links.

A restore must never write outside its target. A symbolic link (or, on Windows, a junction)
planted inside the target - ``TARGET/CompuMED -> /elsewhere`` - would otherwise carry every
file written below it to wherever it points. So every folder below the target root is opened
*relative to its already opened parent* and refused if it is a link, and files are created,
renamed and given their metadata relative to that open folder:

* POSIX (:class:`FdDir`): an ``openat`` walk - each folder is a file descriptor opened with
  ``O_DIRECTORY | O_NOFOLLOW`` relative to its parent's descriptor; files are opened with
  ``O_NOFOLLOW``; owner, mode and times are set through the open file (``fchown``,
  ``fchmod``, ``futimens``) or with ``AT_SYMLINK_NOFOLLOW``. Replacing a component after it was
  checked cannot redirect anything: the descriptor keeps pointing at the checked folder.
* Windows (:class:`PathDir`): there is no ``openat``; each component is checked with ``lstat``
  before use and refused if it is a symbolic link or a junction (a name-surrogate reparse
  point), and names Windows cannot hold are refused. (A process racing the restore with
  administrator rights could still swap a folder between check and use; such a process needs
  no link to do harm.) The same class runs on Linux in the tests.

Links that are legitimately part of an installation (the program folder moved to another
drive through a junction) are followed only when the caller allows exactly that path.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import sys

from praxisbackup.errors import UnsafeTargetError

IS_WINDOWS = sys.platform == "win32"
_O_BINARY = getattr(os, "O_BINARY", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
FILE_ATTRIBUTE_REPARSE_POINT = 0x400
#: Reparse tags with this bit name another place (symlinks, junctions); others (cloud files,
#: deduplication) are storage details of an ordinary file or folder.
REPARSE_TAG_NAME_SURROGATE = 0x20000000
_WINDOWS_BAD_CHARS = set('<>:"/\\|?*') | {chr(c) for c in range(32)}
_WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL"} | {
    f"{p}{d}" for p in ("COM", "LPT") for d in "123456789"
}


def is_link(st: os.stat_result) -> bool:
    """A symbolic link, or on Windows a junction / other name-surrogate reparse point."""
    if stat.S_ISLNK(st.st_mode):
        return True
    attributes = getattr(st, "st_file_attributes", 0)
    tag = getattr(st, "st_reparse_tag", 0)
    return bool(attributes & FILE_ATTRIBUTE_REPARSE_POINT and tag & REPARSE_TAG_NAME_SURROGATE)


def windows_name_problem(name: str) -> str | None:
    """Why Windows cannot hold this file name (None if it can). Names come from snapshots that
    may have been written on Linux, where ``a\\..\\b`` or ``aux`` are ordinary names."""
    if any(ch in _WINDOWS_BAD_CHARS for ch in name):
        return 'contains a character Windows does not allow in names (\\ / : * ? " < > |)'
    if name.endswith((" ", ".")):
        return "ends with a space or a dot, which Windows drops"
    if name.split(".", maxsplit=1)[0].rstrip(" ").upper() in _WINDOWS_DEVICES:
        return "is a reserved device name on Windows"
    return None


def _refuse(path: str) -> UnsafeTargetError:
    try:
        target = os.readlink(path)
    except (OSError, ValueError):
        target = "?"
    return UnsafeTargetError(path, target)


# -- renaming without replacing ----------------------------------------------------------------
RENAME_NOREPLACE = 1
_renameat2 = None
if sys.platform.startswith("linux"):
    try:
        _renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
        _renameat2.argtypes = (
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_uint,
        )
    except (OSError, AttributeError):  # pragma: no cover - glibc < 2.28 or another libc
        _renameat2 = None
AT_FDCWD = -100
#: errno values meaning "this file system cannot do that" (then the next method is tried).
_CANNOT = {errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM, errno.EXDEV}


def rename_noreplace(src_fd: int, src: str, dst_fd: int, dst: str) -> None:
    """Rename ``src`` to ``dst`` unless ``dst`` exists (then FileExistsError), atomically where
    the file system allows: ``renameat2(RENAME_NOREPLACE)``, else a hard link (fails atomically
    if the name exists) followed by removing the old name, else check-then-rename."""
    if _renameat2 is not None:
        if _renameat2(src_fd, os.fsencode(src), dst_fd, os.fsencode(dst), RENAME_NOREPLACE) == 0:
            return
        err = ctypes.get_errno()
        if err == errno.EEXIST:
            raise FileExistsError(err, os.strerror(err), dst)
        if err not in _CANNOT:
            raise OSError(err, os.strerror(err), dst)
    src_dir = None if src_fd == AT_FDCWD else src_fd
    dst_dir = None if dst_fd == AT_FDCWD else dst_fd
    try:
        os.link(src, dst, src_dir_fd=src_dir, dst_dir_fd=dst_dir, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in _CANNOT | {errno.EMLINK}:
            raise
        # No hard links either (FAT through FUSE, some shares): check, then rename.
        try:
            os.stat(dst, dir_fd=dst_dir, follow_symlinks=False)
        except FileNotFoundError:
            os.rename(src, dst, src_dir_fd=src_dir, dst_dir_fd=dst_dir)
            return
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), dst) from None
    os.unlink(src, dir_fd=src_dir)


# -- POSIX: descriptors ------------------------------------------------------------------------
class FdDir:
    """An open folder of the target (POSIX); every operation is relative to its descriptor."""

    metadata_by_fd = True

    def __init__(self, fd: int, path: str) -> None:
        self.fd = fd
        self.path = path
        #: This folder was created by the call that opened it.
        self.created = False

    @classmethod
    def root(cls, path: str) -> FdDir:
        """The target root itself: created if missing; links *above* and *at* the root are the
        caller's choice and are followed."""
        os.makedirs(path, exist_ok=True)
        return cls(os.open(path, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC), path)

    def join(self, name: str) -> str:
        return os.path.join(self.path, name)

    def child(self, name: str, create: bool, follow: bool = False, fresh: bool = False) -> FdDir:
        """Open the sub-folder ``name`` (creating it if asked). A link is refused unless
        ``follow`` (then UnsafeTargetError names it); a file there is NotADirectoryError.
        In a ``fresh`` folder (this restore made it) the sub-folder is made first: it is
        almost never there, and the open that would fail first costs a call per folder."""
        flags = os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC | (0 if follow else _O_NOFOLLOW)
        created = False
        if create and fresh:
            try:
                os.mkdir(name, dir_fd=self.fd)
                created = True
            except FileExistsError:
                pass  # made meanwhile (another thread or process): opened and checked below
        for attempt in (1, 2):
            try:
                opened = FdDir(os.open(name, flags, dir_fd=self.fd), self.join(name))
                opened.created = created
                return opened
            except FileNotFoundError:
                if not create or attempt == 2:
                    raise
                try:
                    os.mkdir(name, dir_fd=self.fd)
                    created = True
                except FileExistsError:
                    continue  # created meanwhile (by another restore thread or process)
            except OSError as exc:
                st = self.lstat(name)
                if st is not None and is_link(st):
                    raise _refuse(self.join(name)) from None
                if exc.errno in (errno.ENOTDIR, errno.ELOOP):
                    raise NotADirectoryError(
                        errno.ENOTDIR, "exists and is not a folder", self.join(name)
                    ) from None
                raise
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), self.join(name))

    def open(self, name: str, flags: int, mode: int = 0o600) -> int:
        """Open a file in this folder; a link in its place fails (ELOOP) instead of being
        followed."""
        return os.open(name, flags | _O_NOFOLLOW | _O_CLOEXEC | _O_BINARY, mode, dir_fd=self.fd)

    def lstat(self, name: str) -> os.stat_result | None:
        try:
            return os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def stat(self, name: str, fd: int | None) -> os.stat_result:
        if fd is not None:
            return os.fstat(fd)
        return os.stat(name, dir_fd=self.fd, follow_symlinks=False)

    def mkdir(self, name: str) -> None:
        os.mkdir(name, dir_fd=self.fd)

    def symlink(self, target: str, name: str) -> None:
        os.symlink(target, name, dir_fd=self.fd)

    def mkfifo(self, name: str, mode: int) -> None:
        os.mkfifo(name, mode, dir_fd=self.fd)

    def mknod(self, name: str, mode: int, device: int) -> None:
        os.mknod(name, mode, device, dir_fd=self.fd)

    def unlink(self, name: str) -> None:
        os.unlink(name, dir_fd=self.fd)

    def rename(self, src: str, dst: str, replace: bool) -> None:
        """Rename inside this folder; without ``replace`` an existing ``dst`` stays and
        FileExistsError is raised. A link at ``dst`` is replaced, never followed."""
        if replace:
            os.replace(src, dst, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        else:
            rename_noreplace(self.fd, src, self.fd, dst)

    def link_from(self, src_dir: FdDir | PathDir, src_name: str, name: str) -> None:
        """Hard link ``src_dir/src_name`` as ``name`` here (the source is not followed)."""
        assert isinstance(src_dir, FdDir)
        os.link(src_name, name, src_dir_fd=src_dir.fd, dst_dir_fd=self.fd, follow_symlinks=False)

    def chown(self, name: str, fd: int | None, uid: int, gid: int) -> None:
        if fd is not None:
            os.chown(fd, uid, gid)
        else:
            os.chown(name, uid, gid, dir_fd=self.fd, follow_symlinks=False)

    def chmod(self, name: str, fd: int | None, mode: int) -> None:
        if fd is not None:
            os.chmod(fd, mode)
            return
        try:
            os.chmod(name, mode, dir_fd=self.fd, follow_symlinks=False)
        except (NotImplementedError, ValueError):
            # fchmodat(AT_SYMLINK_NOFOLLOW) refuses links (and is missing on old libcs):
            # the mode of a link is never set, and nothing else is followed.
            raise OSError(errno.EOPNOTSUPP, "mode not settable", self.join(name)) from None

    def utime(self, name: str, fd: int | None, atime_ns: int, mtime_ns: int) -> None:
        if fd is not None:
            os.utime(fd, ns=(atime_ns, mtime_ns))
        else:
            os.utime(name, ns=(atime_ns, mtime_ns), dir_fd=self.fd, follow_symlinks=False)

    def set_attributes(self, name: str, attributes: int) -> None:
        """Windows attributes: nothing to do on POSIX."""

    def set_birthtime(self, name: str, value_ns: int) -> None:
        """Creation times cannot be set on POSIX."""

    def close(self) -> None:
        os.close(self.fd)


# -- Windows (and a portable fallback): checked paths ------------------------------------------
class PathDir:
    """A folder of the target addressed by path, every component checked with ``lstat`` before
    use (Windows has no ``openat``). Used on Windows; runs on Linux in the tests."""

    metadata_by_fd = False
    fd = None

    def __init__(self, path: str, windows_names: bool = IS_WINDOWS) -> None:
        self.path = path
        self.windows_names = windows_names
        #: This folder was created by the call that opened it.
        self.created = False

    @classmethod
    def root(cls, path: str, windows_names: bool = IS_WINDOWS) -> PathDir:
        os.makedirs(path, exist_ok=True)
        if not os.path.isdir(path):
            raise NotADirectoryError(errno.ENOTDIR, "is not a folder", path)
        return cls(path, windows_names)

    def join(self, name: str) -> str:
        if name == os.curdir:
            return self.path  # the folder itself (checked, or allowed, when it was opened)
        if self.windows_names:
            problem = windows_name_problem(name)
            if problem:
                raise OSError(errno.EINVAL, f"the name {problem}", os.path.join(self.path, name))
        return os.path.join(self.path, name)

    def _check_not_link(self, path: str) -> None:
        if path == self.path:
            return
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if is_link(st):
            raise _refuse(path)

    def child(self, name: str, create: bool, follow: bool = False, fresh: bool = False) -> PathDir:
        """(``fresh`` is for :meth:`FdDir.child`; Windows looks before it makes.)"""
        path = self.join(name)
        created = False
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            if not create:
                raise
            try:
                os.mkdir(path)
                created = True
            except FileExistsError:
                pass  # created meanwhile: checked below
            st = os.lstat(path)
        if is_link(st):
            if not follow:
                raise _refuse(path)
            if not os.path.isdir(path):
                raise NotADirectoryError(errno.ENOTDIR, "is not a folder", path)
        elif not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(errno.ENOTDIR, "exists and is not a folder", path)
        opened = PathDir(path, self.windows_names)
        opened.created = created and not is_link(st)
        return opened

    def open(self, name: str, flags: int, mode: int = 0o600) -> int:
        path = self.join(name)
        self._check_not_link(path)
        return os.open(path, flags | _O_BINARY | _O_NOFOLLOW, mode)

    def lstat(self, name: str) -> os.stat_result | None:
        try:
            return os.lstat(self.join(name))
        except FileNotFoundError:
            return None

    def stat(self, name: str, fd: int | None) -> os.stat_result:
        return os.lstat(self.join(name))

    def mkdir(self, name: str) -> None:
        os.mkdir(self.join(name))

    def symlink(self, target: str, name: str) -> None:
        os.symlink(target, self.join(name))

    def mkfifo(self, name: str, mode: int) -> None:
        os.mkfifo(self.join(name), mode)

    def mknod(self, name: str, mode: int, device: int) -> None:
        os.mknod(self.join(name), mode, device)

    def unlink(self, name: str) -> None:
        os.unlink(self.join(name))

    def rename(self, src: str, dst: str, replace: bool) -> None:
        src_path, dst_path = self.join(src), self.join(dst)
        if replace:
            os.replace(src_path, dst_path)
        elif IS_WINDOWS:  # pragma: no cover - MoveFileExW without REPLACE_EXISTING
            os.rename(src_path, dst_path)
        else:
            rename_noreplace(AT_FDCWD, src_path, AT_FDCWD, dst_path)

    def link_from(self, src_dir: FdDir | PathDir, src_name: str, name: str) -> None:
        source = src_dir.join(src_name)
        if isinstance(src_dir, PathDir):
            src_dir._check_not_link(source)
        if os.link in os.supports_follow_symlinks:
            os.link(source, self.join(name), follow_symlinks=False)
        else:  # pragma: no cover - Windows: the source was checked above
            os.link(source, self.join(name))

    def chown(self, name: str, fd: int | None, uid: int, gid: int) -> None:
        if hasattr(os, "lchown"):
            os.lchown(self.join(name), uid, gid)

    def chmod(self, name: str, fd: int | None, mode: int) -> None:
        path = self.join(name)
        self._check_not_link(path)
        os.chmod(path, mode)

    def utime(self, name: str, fd: int | None, atime_ns: int, mtime_ns: int) -> None:
        path = self.join(name)
        follow = os.utime not in os.supports_follow_symlinks
        if follow:  # pragma: no cover - every supported OS can set a link's own times
            self._check_not_link(path)
        os.utime(path, ns=(atime_ns, mtime_ns), follow_symlinks=follow)

    def set_attributes(self, name: str, attributes: int) -> None:
        if IS_WINDOWS:  # pragma: no cover - exercised on Windows only
            from praxisbackup.platform import _windows  # noqa: PLC0415

            _windows.set_file_attributes(self.join(name), attributes)

    def set_birthtime(self, name: str, value_ns: int) -> None:
        if IS_WINDOWS:  # pragma: no cover - exercised on Windows only
            from praxisbackup.platform import _windows  # noqa: PLC0415

            _windows.set_birthtime_ns(self.join(name), value_ns)

    def close(self) -> None:
        """Nothing is held open."""


TargetDir = FdDir | PathDir


def open_root(path: str) -> TargetDir:
    """The target root as the platform's folder handle."""
    if IS_WINDOWS or not hasattr(os, "O_NOFOLLOW"):  # pragma: no cover - Windows
        return PathDir.root(path)
    return FdDir.root(path)


def links_on_path(root: str, path: str) -> list[tuple[str, str]]:
    """Links (symlinks, junctions) between ``root`` (exclusive) and ``path`` (inclusive), as
    (path, where it points), for restore plans: these are refused unless allowed."""
    root, path = os.path.abspath(root), os.path.abspath(path)
    try:
        rel = os.path.relpath(path, root)
    except ValueError:  # another drive
        return []
    if rel == os.curdir or rel.startswith(os.pardir):
        return []
    found = []
    current = root
    for part in rel.split(os.sep):
        current = os.path.join(current, part)
        try:
            st = os.lstat(current)
        except OSError:
            break
        if is_link(st):
            found.append((current, _refuse(current).target))
    return found
