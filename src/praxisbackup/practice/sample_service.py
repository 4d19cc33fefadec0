"""A stand-in "practice database service" for the demo: a real background process that holds
a database file open while it runs, as Oracle does.

``python -m praxisbackup.practice.sample_service start PIDFILE [DBFOLDER]`` starts it (holding
the first file of DBFOLDER open), ``stop PIDFILE`` ends it, ``status PIDFILE`` exits 0 while it
runs. The demo's configuration controls it through the ``command`` service backend, exactly as a
real installation controls ``pg_ctl`` or an Oracle script.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import psutil

HOLDER = (
    "import sys, time\n"
    "files = sys.argv[1:]\n"
    "held = [open(f, 'rb') for f in files]\n"
    "time.sleep(7 * 86400)\n"
)


def _pid(pidfile: str) -> int | None:
    try:
        with open(pidfile, encoding="ascii") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def _detached() -> dict[str, Any]:
    """Let the stand-in outlive the command that started it (and its console)."""
    if sys.platform == "win32":  # pragma: no cover - Windows only
        flags = subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP
        return {"creationflags": flags}
    return {"start_new_session": True}


def _first_file(folder: str) -> list[str]:
    try:
        names = sorted(e.path for e in os.scandir(folder) if e.is_file())
    except OSError:
        return []
    return names[:1]


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: start|stop|status PIDFILE [DBFOLDER]", file=sys.stderr)
        return 2
    action, pidfile = argv[0], argv[1]
    pid = _pid(pidfile)
    alive = pid is not None and psutil.pid_exists(pid)
    if action == "status":
        return 0 if alive else 1
    if action == "start":
        if not alive:
            held = _first_file(argv[2]) if len(argv) > 2 else []
            proc = subprocess.Popen(
                [sys.executable, "-P", "-c", HOLDER, *held],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                **_detached(),
            )
            with open(pidfile, "w", encoding="ascii") as fh:
                fh.write(str(proc.pid))
        return 0
    if action == "stop":
        if alive and pid is not None:
            try:
                process = psutil.Process(pid)
                process.terminate()
                process.wait(timeout=30)
            except psutil.NoSuchProcess:
                alive = False  # it ended by itself in the meantime: stopped is what we want
        if os.path.exists(pidfile):
            os.remove(pidfile)
        return 0
    print(f"unknown action {action!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
