"""Windows services through the Service Control Manager's command line, ``sc.exe``.

Only numeric fields are parsed (``STATE : 4 RUNNING`` -> 4), never the localized words, so a
German Windows ("WIRD AUSGEFÜHRT") behaves like an English one. Dependent services are stopped
first (``sc.exe enumdepend``) and started after the service they depend on.
The parsing and ordering are pure functions, unit-tested on Linux.
"""

from __future__ import annotations

import re
import subprocess
import time

from praxisbackup.services.base import ServiceError

# SERVICE_STATUS.dwCurrentState values (winsvc.h)
STOPPED = 1
START_PENDING = 2
STOP_PENDING = 3
RUNNING = 4
CONTINUE_PENDING = 5
PAUSE_PENDING = 6
PAUSED = 7
POLL = 1.0

_STATE = re.compile(r"^\s*[A-Z_]+\s*:\s*(\d+)\s", re.MULTILINE)
_SERVICE_NAME = re.compile(r"^\s*SERVICE_NAME\s*:\s*(\S.*?)\s*$", re.MULTILINE)


def parse_state(output: str) -> int:
    """The numeric state from ``sc.exe query NAME`` output (the first 'KEY : n' with n 1..7
    after a 'STATE' line; labels are ignored)."""
    for line in output.splitlines():
        if line.strip().upper().startswith("STATE"):
            match = re.search(r":\s*(\d+)", line)
            if match:
                return int(match.group(1))
    raise ServiceError(f"unexpected sc.exe output: {output.strip()[:200]!r}")


def parse_dependents(output: str) -> list[str]:
    """Service names from ``sc.exe enumdepend NAME`` (SERVICE_NAME is not localized)."""
    return _SERVICE_NAME.findall(output)


def stop_order(service: str, dependents: dict[str, list[str]]) -> list[str]:
    """Services to stop, dependents first (depth-first), each once, ending with ``service``."""
    order: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in path:
            return  # a dependency cycle would be a broken SCM database; do not loop
        for dep in dependents.get(name, []):
            visit(dep, (*path, name))
        if name not in order:
            order.append(name)

    visit(service, ())
    return order


class WindowsService:
    """A Windows service controlled through ``sc.exe``."""

    def __init__(self, name: str, sc: str = "sc.exe") -> None:
        self.name = name
        self._sc = sc
        self._stopped_dependents: list[str] = []

    def _run(self, *args: str) -> str:
        try:
            proc = subprocess.run(
                [self._sc, *args], capture_output=True, text=True, timeout=60, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ServiceError(f"sc.exe {' '.join(args)} failed: {exc}") from None
        return proc.stdout

    def state(self, name: str | None = None) -> int:
        return parse_state(self._run("query", name or self.name))

    def is_running(self) -> bool:
        return self.state() == RUNNING

    def _wait(self, name: str, wanted: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while (current := self.state(name)) != wanted:
            if time.monotonic() > deadline:
                raise ServiceError(f"service {name} stayed in state {current} (wanted {wanted})")
            time.sleep(POLL)

    def stop(self, timeout: float) -> None:
        dependents: dict[str, list[str]] = {}
        pending = [self.name]
        while pending:
            name = pending.pop()
            if name in dependents:
                continue
            dependents[name] = parse_dependents(self._run("enumdepend", name))
            pending.extend(dependents[name])
        self._stopped_dependents = []
        for name in stop_order(self.name, dependents):
            if self.state(name) == STOPPED:
                continue
            self._run("stop", name)
            self._wait(name, STOPPED, timeout)
            if name != self.name:
                self._stopped_dependents.append(name)

    def start(self, timeout: float) -> None:
        for name in [self.name, *reversed(self._stopped_dependents)]:
            self._run("start", name)
            self._wait(name, RUNNING, timeout)
