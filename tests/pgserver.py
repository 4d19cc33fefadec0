"""A real PostgreSQL cluster (Debian's packages) standing in for the practice database.

The cluster runs as the ``postgres`` user on a Unix socket in a folder of the test (no TCP),
with data checksums on, so a restored copy can be checked with PostgreSQL's own tools.
"""

from __future__ import annotations

import glob
import os
import shlex
import shutil
import subprocess
from pathlib import Path


def pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed (scripts/test-deps installs it)")
    return Path(found[-1]).parent


def as_postgres(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", "postgres", "--", *cmd], capture_output=True, text=True, check=check
    )


class PgCluster:
    def __init__(self, data: Path, sockdir: Path, port: int) -> None:
        self.data, self.sockdir, self.port = data, sockdir, port
        self.bin = pg_bin()
        self.log = sockdir / f"pg-{port}.log"

    def _ctl(self, action: str) -> list[str]:
        opts = f"-p {self.port} -k {self.sockdir} -c listen_addresses=''"
        return [
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            opts,
            "-w",
            action,
        ]

    def shell(self, action: str) -> str:
        """The command line a praxisbackup command service uses."""
        extra = " -m fast" if action == "stop" else ""
        return "runuser -u postgres -- " + shlex.join(self._ctl(action)) + extra

    def init(self) -> None:
        self.sockdir.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.sockdir, "postgres", "postgres")
        self.data.mkdir(parents=True)
        shutil.chown(self.data, "postgres", "postgres")
        as_postgres(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "--data-checksums",
            "-U",
            "postgres",
            "-A",
            "trust",
        )

    def start(self) -> None:
        as_postgres(*self._ctl("start"))

    def stop(self) -> None:
        as_postgres(*[*self._ctl("stop"), "-m", "fast"], check=False)

    def running(self) -> bool:
        return as_postgres(*self._ctl("status"), check=False).returncode == 0

    def sql(self, query: str) -> str:
        return as_postgres(
            "psql",
            "-h",
            str(self.sockdir),
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-At",
            "-c",
            query,
        ).stdout.strip()


def world_dir(base: str) -> Path:
    """A folder the postgres user can enter."""
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    for p in [path, *path.parents]:
        if str(p) in ("/", "/tmp"):
            break
        os.chmod(p, 0o755)
    return path
