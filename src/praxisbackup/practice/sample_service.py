"""A stand-in "practice database service" for the demo: a real background process.

``python -m praxisbackup.practice.sample_service start|stop|status PIDFILE``; ``status`` exits 0
while the process runs. The demo's configuration controls it through the ``command`` service
backend, exactly as a real installation controls ``pg_ctl`` or an Oracle script.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil


def _pid(pidfile: str) -> int | None:
    try:
        with open(pidfile, encoding="ascii") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def main(argv: list[str]) -> int:
    action, pidfile = argv
    pid = _pid(pidfile)
    alive = pid is not None and psutil.pid_exists(pid)
    if action == "status":
        return 0 if alive else 1
    if action == "start":
        if not alive:
            proc = subprocess.Popen(
                [sys.executable, "-c", "import time; time.sleep(7 * 86400)"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            with open(pidfile, "w", encoding="ascii") as fh:
                fh.write(str(proc.pid))
        return 0
    if action == "stop":
        if alive and pid is not None:
            os.kill(pid, signal.SIGTERM)
            psutil.Process(pid).wait(timeout=30)
        if os.path.exists(pidfile):
            os.remove(pidfile)
        return 0
    print(f"unknown action {action!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
