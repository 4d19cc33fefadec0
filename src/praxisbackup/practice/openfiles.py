"""Is a database file still held open by some process? (Checked after services stopped.)"""

from __future__ import annotations

import os

import psutil

from praxisbackup.practice.profiles import _inside


def open_files_below(paths: list[str]) -> list[str]:
    """Files below ``paths`` that any process has open (POSIX: via psutil's process table;
    Windows: by trying an exclusive open, see :func:`_locked_on_windows`)."""
    if not paths:
        return []
    if os.name == "nt":  # pragma: no cover - Windows only
        return _locked_on_windows(paths)
    found: set[str] = set()
    for proc in psutil.process_iter():
        try:
            files = proc.open_files()
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        for f in files:
            if any(_inside(f.path, p) for p in paths):
                found.add(f"{f.path} (pid {proc.pid} {proc.name()})")
    return sorted(found)


def _locked_on_windows(paths: list[str]) -> list[str]:  # pragma: no cover - Windows only
    """A file another process holds cannot be opened with share mode 0 (exclusive)."""
    import ctypes  # noqa: PLC0415

    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    generic_read, open_existing, invalid = 0x80000000, 3, -1
    locked = []
    for base in paths:
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                full = os.path.join(dirpath, name)
                handle = kernel32.CreateFileW(full, generic_read, 0, None, open_existing, 0, None)
                if handle == invalid:
                    locked.append(full)
                else:
                    kernel32.CloseHandle(handle)
    return locked
