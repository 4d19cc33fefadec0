"""Shared fixtures: real repositories in temporary folders, real files, real processes."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from praxisbackup.engine.paths import normalize_snapshot_path, split_source
from praxisbackup.engine.repository import Repository
from praxisbackup.storage import LocalBackend

PASSWORD = "correct horse battery staple"

# Windows behaviour that only a Windows Python can show (real SCM services, drive letters,
# file attributes): scripts/windows-lane runs these under Wine; elsewhere they are not collected.
WINDOWS_ONLY = ["test_windows_scm.py", "test_windows_roundtrip.py", "test_windows_platform.py"]
collect_ignore = [] if sys.platform == "win32" else WINDOWS_ONLY


@pytest.fixture(autouse=True)
def _fast_kdf(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests use a cheap scrypt cost; the parameters are stored per key slot, so this changes
    nothing else about the format. A configuration without ``state_dir`` keeps its catalog
    in the test's folder, never in the machine's /var/lib/praxisbackup."""
    monkeypatch.setenv("PRAXISBACKUP_KDF_N", "1024")
    monkeypatch.setenv("PRAXISBACKUP_STATE_DIR", str(tmp_path / "default-state"))


@pytest.fixture
def repo_path(tmp_path: Path) -> Path:
    return tmp_path / "medium" / "repo"


@pytest.fixture
def repo(repo_path: Path) -> Iterator[Repository]:
    r = Repository.init(LocalBackend(str(repo_path)), PASSWORD)
    r.load_index()
    yield r
    r.close()


def restored_path(target: Path, src: Path) -> Path:
    """Where a restore to ``target`` puts source folder ``src`` (``C:\\x`` -> ``target/C/x``)."""
    return target.joinpath(*split_source(str(src)))


def snap_path(path: Path | str) -> str:
    """The snapshot path of a file-system path, as commands print it (``/C/x``, ``/srv/x``)."""
    return normalize_snapshot_path(str(path))


@pytest.fixture
def world_dir() -> Iterator[Path]:
    """A folder every user can enter (pytest's tmp_path is private to root)."""
    d = Path(tempfile.mkdtemp(prefix="pxb-world-"))
    d.chmod(0o777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def reopen(path: Path, password: str = PASSWORD) -> Repository:
    r = Repository.open(LocalBackend(str(path)), password)
    r.load_index()
    return r


def run_cli(
    *args: str,
    repo: Path | None = None,
    password: str | None = PASSWORD,
    env: dict[str, str] | None = None,
    check: bool = False,
    user: str | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run the real console entry point in a subprocess."""
    full_env = dict(os.environ)
    full_env.pop("PRAXISBACKUP_PASSWORD", None)
    full_env["PRAXISBACKUP_KDF_N"] = "1024"
    full_env["PYTHONIOENCODING"] = "utf-8"  # Windows: not the ANSI code page
    if repo is not None:
        full_env["PRAXISBACKUP_REPOSITORY"] = str(repo)
    if password is not None:
        full_env["PRAXISBACKUP_PASSWORD"] = password
    full_env.update(env or {})
    cmd = [sys.executable, "-m", "praxisbackup.cli.main", *args]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", "--regid=nogroup", "--clear-groups", *cmd]
    # No terminal: a command that would prompt must fail at once, as in a scheduled run.
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=full_env,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def read_noatime(path: Path) -> bytes:
    """Read a file without updating its access time (so comparing trees does not change them)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOATIME", 0))
    try:
        chunks = []
        while block := os.read(fd, 1 << 20):
            chunks.append(block)
        return b"".join(chunks)
    finally:
        os.close(fd)


def tree_state(root: Path, with_atime: bool = True) -> dict[str, tuple[object, ...]]:
    """Everything restore must reproduce, per relative path: type, content, mode, times, links."""
    state: dict[str, tuple[object, ...]] = {}
    inodes: dict[tuple[int, int], str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                state[rel] = ("link", os.readlink(p), st.st_mtime_ns)
            elif stat.S_ISDIR(st.st_mode):
                state[rel] = ("dir", stat.S_IMODE(st.st_mode), st.st_mtime_ns)
            elif stat.S_ISREG(st.st_mode):
                link_group = None
                if st.st_nlink > 1:
                    link_group = inodes.setdefault((st.st_dev, st.st_ino), rel)
                state[rel] = (
                    "file",
                    read_noatime(p),
                    stat.S_IMODE(st.st_mode),
                    st.st_mtime_ns,
                    st.st_atime_ns if with_atime else None,
                    link_group,
                )
            else:
                state[rel] = ("other", stat.S_IFMT(st.st_mode), st.st_mtime_ns)
    return state
