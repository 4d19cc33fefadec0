"""Real small file systems for tests: loop-mounted ext4 (also with 1-second timestamps) and FAT
through FUSE (fusefat), created by the test itself. Needs root, e2fsprogs, dosfstools, fusefat
(installed by scripts/test-deps)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


@contextlib.contextmanager
def ext4_image(base: Path, size_mb: int, coarse_times: bool = False) -> Iterator[Path]:
    """A fresh ext4 of ``size_mb``; with ``coarse_times`` it has 128-byte inodes, which store
    file times in whole seconds."""
    img = base / "ext4.img"
    mnt = base / "ext4-mnt"
    mnt.mkdir()
    with open(img, "wb") as fh:
        fh.truncate(size_mb << 20)
    _run("mkfs.ext4", "-q", "-F", *(["-I", "128"] if coarse_times else []), str(img))
    _run("mount", "-o", "loop", str(img), str(mnt))
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False, capture_output=True)


def remount_readonly(mnt: Path) -> None:
    _run("mount", "-o", "remount,ro", str(mnt))


@contextlib.contextmanager
def fat_image(base: Path, size_mb: int = 64) -> Iterator[Path]:
    """A FAT file system (2-second modification times) mounted with fusefat."""
    img = base / "fat.img"
    mnt = base / "fat-mnt"
    mnt.mkdir()
    with open(img, "wb") as fh:
        fh.truncate(size_mb << 20)
    _run("mkfs.vfat", str(img))
    _run("fusefat", "-o", "rw+", str(img), str(mnt))
    try:
        yield mnt
    finally:
        fusermount = shutil.which("fusermount") or shutil.which("fusermount3") or "fusermount"
        subprocess.run([fusermount, "-u", "-z", str(mnt)], check=False, capture_output=True)
