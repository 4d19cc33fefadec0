"""Services controlled by plain commands (e.g. ``pg_ctl`` for PostgreSQL, an Oracle
``SHUTDOWN IMMEDIATE`` script). ``is_running`` exits 0 when the service runs."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from typing import Any

from praxisbackup.services.base import ServiceError

POLL = 0.5


def run_command(
    command: str, timeout: float, name: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a shell command with a time limit (used for command services and hooks).

    Its output goes to temporary files, not pipes: a start command that leaves a daemon
    behind (holding inherited descriptors) must not block the job. ``name`` labels errors.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.run(
                command,
                shell=True,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                timeout=timeout,
                check=False,
                env=env,
                **_new_process_group(),
            )
        except subprocess.TimeoutExpired:
            raise ServiceError(
                f"{name}: '{command}' did not finish within {timeout:.0f} s"
            ) from None
        except OSError as exc:
            raise ServiceError(f"{name}: cannot run '{command}': {exc.strerror}") from None
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(
            command,
            proc.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
        )


def _new_process_group() -> dict[str, Any]:
    """Detach the command from our console: Ctrl-C at the console reaches the job (which
    restarts the services), not the service's own start command."""
    if sys.platform == "win32":  # pragma: no cover - Windows only
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
    return {"start_new_session": True}


class CommandService:
    def __init__(self, name: str, stop: str, start: str, is_running: str) -> None:
        self.name = name
        self._stop = stop
        self._start = start
        self._is_running = is_running

    def _run(self, command: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return run_command(command, timeout, self.name)

    def _failure(self, action: str, proc: subprocess.CompletedProcess[str]) -> str:
        detail = (proc.stderr or proc.stdout).strip()[:300]
        return f"{self.name}: {action} command failed (exit {proc.returncode}): {detail}"

    def is_running(self) -> bool:
        """Exit 0: running; any other exit: not running - except the shell's "cannot run"
        codes (126, 127: a typo in the command), which must not read as "already stopped"."""
        proc = self._run(self._is_running, 60)
        if proc.returncode in (126, 127):
            raise ServiceError(self._failure("is-running", proc))
        return proc.returncode == 0

    def _wait(self, running: bool, deadline: float, what: str) -> None:
        while self.is_running() != running:
            if time.monotonic() > deadline:
                raise ServiceError(f"{self.name} did not {what} in time")
            time.sleep(POLL)

    def stop(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        proc = self._run(self._stop, timeout)
        if proc.returncode != 0:
            raise ServiceError(self._failure("stop", proc))
        self._wait(False, deadline, "stop")

    def start(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        proc = self._run(self._start, timeout)
        if proc.returncode != 0:
            raise ServiceError(self._failure("start", proc))
        self._wait(True, deadline, "start")
