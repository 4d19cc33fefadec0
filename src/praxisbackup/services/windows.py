"""Windows services through the Service Control Manager API (advapi32, called with ctypes).

States are the SCM's numbers (``SERVICE_STATUS_PROCESS.dwCurrentState``), never localized text,
so a German Windows behaves exactly like an English one. Before a service is stopped, every
running service that depends on it, directly or not, is stopped first (dependents before what
they depend on); :meth:`WindowsService.start` starts the service and then those dependents
again, in reverse order. The dependents are what ``EnumDependentServicesW`` lists (direct and
indirect, in stop order). Every wait has a deadline; a service that does not exist, refuses a
stop request or stays pending is named in the error.

Why ctypes and not pywin32: the calls needed are a handful of documented advapi32 functions;
ctypes is part of CPython (nothing to install, no DLLs to place in the embeddable Python the
installer ships, no post-install step), the platform layer already uses it, and the numeric
Win32 error codes stay at hand for precise messages.

:func:`parse_state` reads the state number from saved ``sc.exe query`` text (a partner's
support ticket, the Windows lane's cross-check against ``sc.exe``): it takes the number from the
position of the state field, so German ``STATUS`` reads like English ``STATE``. The control
path never parses text.
"""

from __future__ import annotations

import ctypes
import re
import time
from ctypes import wintypes
from dataclasses import dataclass
from typing import Any

from praxisbackup import platform
from praxisbackup.services.base import ServiceError

# SERVICE_STATUS.dwCurrentState values (winsvc.h)
STOPPED = 1
START_PENDING = 2
STOP_PENDING = 3
RUNNING = 4
CONTINUE_PENDING = 5
PAUSE_PENDING = 6
PAUSED = 7
STATE_NAMES = {
    STOPPED: "STOPPED",
    START_PENDING: "START_PENDING",
    STOP_PENDING: "STOP_PENDING",
    RUNNING: "RUNNING",
    CONTINUE_PENDING: "CONTINUE_PENDING",
    PAUSE_PENDING: "PAUSE_PENDING",
    PAUSED: "PAUSED",
}
POLL = 0.25

# Access rights and constants (winsvc.h, winerror.h)
SC_MANAGER_CONNECT = 0x0001
SERVICE_QUERY_STATUS = 0x0004
SERVICE_ENUMERATE_DEPENDENTS = 0x0008
SERVICE_START = 0x0010
SERVICE_STOP = 0x0020
SERVICE_CONTROL_STOP = 0x00000001
SERVICE_ACTIVE = 0x00000001
SC_STATUS_PROCESS_INFO = 0
ERROR_ACCESS_DENIED = 5
ERROR_MORE_DATA = 234
ERROR_DEPENDENT_SERVICES_RUNNING = 1051
ERROR_INVALID_SERVICE_CONTROL = 1052
ERROR_SERVICE_REQUEST_TIMEOUT = 1053
ERROR_SERVICE_ALREADY_RUNNING = 1056
ERROR_SERVICE_DISABLED = 1058
ERROR_SERVICE_DOES_NOT_EXIST = 1060
ERROR_SERVICE_CANNOT_ACCEPT_CTRL = 1061
ERROR_SERVICE_NOT_ACTIVE = 1062
ERROR_SERVICE_MARKED_FOR_DELETE = 1072

# ctypes' Windows-only names (WinDLL, get_last_error, FormatError), typed loosely so that the
# module type-checks the same on every platform.
_win: Any = ctypes


def _last_error() -> int:
    return int(_win.get_last_error())


_FIELD = re.compile(r"^\s*[^\s:]+\s*:\s*(\d+)\b")


def parse_state(output: str) -> int:
    """The state number from ``sc.exe query NAME`` output, in any language.

    ``sc.exe`` prints the same fields in the same order in every language (TYPE/TYP,
    STATE/STATUS/ÉTAT, WIN32_EXIT_CODE, ...), and only the labels and words are translated:
    the state is the second ``LABEL : number`` line of the service's block.
    """
    numbers = [int(m.group(1)) for line in output.splitlines() if (m := _FIELD.match(line))]
    if len(numbers) >= 2 and numbers[1] in STATE_NAMES:
        return numbers[1]
    raise ServiceError(f"unexpected sc.exe output: {output.strip()[:200]!r}")


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


def state_name(state: int) -> str:
    return STATE_NAMES.get(state, f"state {state}")


class _SERVICE_STATUS(ctypes.Structure):
    _fields_ = (
        ("dwServiceType", wintypes.DWORD),
        ("dwCurrentState", wintypes.DWORD),
        ("dwControlsAccepted", wintypes.DWORD),
        ("dwWin32ExitCode", wintypes.DWORD),
        ("dwServiceSpecificExitCode", wintypes.DWORD),
        ("dwCheckPoint", wintypes.DWORD),
        ("dwWaitHint", wintypes.DWORD),
    )


class _SERVICE_STATUS_PROCESS(ctypes.Structure):
    _fields_ = (
        *_SERVICE_STATUS._fields_,
        ("dwProcessId", wintypes.DWORD),
        ("dwServiceFlags", wintypes.DWORD),
    )


class _ENUM_SERVICE_STATUSW(ctypes.Structure):
    _fields_ = (
        ("lpServiceName", wintypes.LPWSTR),
        ("lpDisplayName", wintypes.LPWSTR),
        ("ServiceStatus", _SERVICE_STATUS),
    )


@dataclass(frozen=True)
class Status:
    """What the SCM reports about a service (numbers, as the API gives them)."""

    state: int
    exit_code: int
    specific_exit_code: int
    process_id: int
    controls_accepted: int


class Scm:
    """The few advapi32 calls the service backend needs, with typed arguments (handles are
    pointers: without argtypes/restype ctypes would cut them to 32 bits on x64)."""

    def __init__(self) -> None:
        if not platform.IS_WINDOWS:
            raise ServiceError("Windows services can only be controlled on Windows")
        dll: Any = _win.WinDLL("advapi32", use_last_error=True)
        handle, dword, bool_ = wintypes.HANDLE, wintypes.DWORD, wintypes.BOOL
        pdword = ctypes.POINTER(dword)
        dll.OpenSCManagerW.argtypes = (wintypes.LPCWSTR, wintypes.LPCWSTR, dword)
        dll.OpenSCManagerW.restype = handle
        dll.OpenServiceW.argtypes = (handle, wintypes.LPCWSTR, dword)
        dll.OpenServiceW.restype = handle
        dll.CloseServiceHandle.argtypes = (handle,)
        dll.CloseServiceHandle.restype = bool_
        dll.QueryServiceStatusEx.argtypes = (handle, ctypes.c_int, ctypes.c_void_p, dword, pdword)
        dll.QueryServiceStatusEx.restype = bool_
        dll.ControlService.argtypes = (handle, dword, ctypes.POINTER(_SERVICE_STATUS))
        dll.ControlService.restype = bool_
        dll.StartServiceW.argtypes = (handle, dword, ctypes.c_void_p)
        dll.StartServiceW.restype = bool_
        dll.EnumDependentServicesW.argtypes = (
            handle,
            dword,
            ctypes.c_void_p,
            dword,
            pdword,
            pdword,
        )
        dll.EnumDependentServicesW.restype = bool_
        self._dll = dll
        self._manager: int | None = None

    def _error(self, name: str, action: str, code: int) -> ServiceError:
        if code == ERROR_SERVICE_DOES_NOT_EXIST:
            return ServiceError(
                f"Windows service '{name}' does not exist (check the service name in the "
                "configuration: the short name shown by 'sc query', not the display name)"
            )
        if code == ERROR_ACCESS_DENIED:
            return ServiceError(
                f"access denied to {action} Windows service '{name}': praxisbackup must run as "
                "an administrator or as SYSTEM"
            )
        message = str(_win.FormatError(code)).strip()
        return ServiceError(
            f"cannot {action} Windows service '{name}': error {code} ({message or 'no text'})"
        )

    def _open(self, name: str, access: int) -> int:
        if self._manager is None:
            manager = self._dll.OpenSCManagerW(None, None, SC_MANAGER_CONNECT)
            if not manager:
                raise self._error(name, "open the Service Control Manager for", _last_error())
            self._manager = int(manager)
        service = self._dll.OpenServiceW(self._manager, name, access)
        if not service:
            raise self._error(name, "open", _last_error())
        return int(service)

    def close(self) -> None:
        if self._manager is not None:
            self._dll.CloseServiceHandle(self._manager)
            self._manager = None

    def query(self, name: str) -> Status:
        service = self._open(name, SERVICE_QUERY_STATUS)
        try:
            status = _SERVICE_STATUS_PROCESS()
            needed = wintypes.DWORD()
            if not self._dll.QueryServiceStatusEx(
                service,
                SC_STATUS_PROCESS_INFO,
                ctypes.byref(status),
                ctypes.sizeof(status),
                ctypes.byref(needed),
            ):
                raise self._error(name, "query", _last_error())
        finally:
            self._dll.CloseServiceHandle(service)
        return Status(
            state=int(status.dwCurrentState),
            exit_code=int(status.dwWin32ExitCode),
            specific_exit_code=int(status.dwServiceSpecificExitCode),
            process_id=int(status.dwProcessId),
            controls_accepted=int(status.dwControlsAccepted),
        )

    def dependents(self, name: str) -> list[str]:
        """Active services that depend on ``name``, directly or not, in the order in which
        they must be stopped (as EnumDependentServicesW returns them)."""
        service = self._open(name, SERVICE_ENUMERATE_DEPENDENTS)
        try:
            needed, count = wintypes.DWORD(), wintypes.DWORD()
            size = 0
            buffer: ctypes.Array[ctypes.c_char] | None = None
            for _attempt in range(4):
                ok = self._dll.EnumDependentServicesW(
                    service,
                    SERVICE_ACTIVE,
                    buffer,
                    size,
                    ctypes.byref(needed),
                    ctypes.byref(count),
                )
                if ok:
                    break
                code = _last_error()
                if code != ERROR_MORE_DATA:
                    raise self._error(name, "list the dependents of", code)
                size = int(needed.value)
                buffer = ctypes.create_string_buffer(size)
            else:
                raise ServiceError(f"the dependents of Windows service '{name}' kept changing")
            if not count.value or buffer is None:
                return []
            entries = ctypes.cast(buffer, ctypes.POINTER(_ENUM_SERVICE_STATUSW))
            return [str(entries[i].lpServiceName) for i in range(count.value)]
        finally:
            self._dll.CloseServiceHandle(service)

    def control_stop(self, name: str) -> int:
        """Send a stop request; 0 when sent, else the Win32 error code."""
        service = self._open(name, SERVICE_STOP)
        try:
            status = _SERVICE_STATUS()
            if self._dll.ControlService(service, SERVICE_CONTROL_STOP, ctypes.byref(status)):
                return 0
            return _last_error()
        finally:
            self._dll.CloseServiceHandle(service)

    def start(self, name: str) -> int:
        """Ask the SCM to start a service; 0 when accepted, else the Win32 error code."""
        service = self._open(name, SERVICE_START)
        try:
            if self._dll.StartServiceW(service, 0, None):
                return 0
            return _last_error()
        finally:
            self._dll.CloseServiceHandle(service)

    def error(self, name: str, action: str, code: int) -> ServiceError:
        return self._error(name, action, code)


class WindowsService:
    """A Windows service controlled through the Service Control Manager."""

    def __init__(self, name: str, scm: Scm | None = None) -> None:
        self.name = name
        self._scm = scm
        self._stopped_dependents: list[str] = []

    @property
    def scm(self) -> Scm:
        if self._scm is None:
            self._scm = Scm()
        return self._scm

    def state(self, name: str | None = None) -> int:
        return self.scm.query(name or self.name).state

    def is_running(self) -> bool:
        return self.state() == RUNNING

    def dependents(self) -> list[str]:
        """Running services that depend on this one, directly or not, in stop order."""
        return stop_order(self.name, {self.name: self.scm.dependents(self.name)})[:-1]

    def _wait(self, name: str, wanted: int, deadline: float, timeout: float) -> None:
        while True:
            status = self.scm.query(name)
            if status.state == wanted:
                return
            if wanted == RUNNING and status.state == STOPPED:
                code = status.specific_exit_code or status.exit_code
                raise ServiceError(
                    f"Windows service '{name}' stopped again while starting (exit code {code})"
                )
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"Windows service '{name}' is still {state_name(status.state)} after "
                    f"{timeout:.0f} s (wanted {state_name(wanted)})"
                )
            time.sleep(POLL)

    def _stop_one(self, name: str, deadline: float, timeout: float) -> bool:
        """Stop one service; False when it was not running."""
        status = self.scm.query(name)
        if status.state == STOPPED:
            return False
        if status.state in (START_PENDING, STOP_PENDING):
            # A pending service cannot take a stop request yet: let it settle first.
            while (current := self.scm.query(name).state) in (START_PENDING, STOP_PENDING):
                if time.monotonic() > deadline:
                    raise ServiceError(
                        f"Windows service '{name}' is still {state_name(current)} after "
                        f"{timeout:.0f} s (wanted STOPPED)"
                    )
                time.sleep(POLL)
            if current == STOPPED:
                return False
        code = self.scm.control_stop(name)
        if code in (ERROR_INVALID_SERVICE_CONTROL, ERROR_SERVICE_CANNOT_ACCEPT_CTRL):
            raise ServiceError(
                f"Windows service '{name}' refuses to be stopped (error {code}: it does not "
                "accept a stop request now)"
            )
        if code == ERROR_DEPENDENT_SERVICES_RUNNING:
            raise ServiceError(
                f"Windows service '{name}' cannot stop: a service that depends on it is running"
            )
        if code not in (0, ERROR_SERVICE_NOT_ACTIVE):
            raise self.scm.error(name, "stop", code)
        self._wait(name, STOPPED, deadline, timeout)
        return True

    def _start_one(self, name: str, deadline: float, timeout: float) -> None:
        code = self.scm.start(name)
        if code not in (0, ERROR_SERVICE_ALREADY_RUNNING):
            raise self.scm.error(name, "start", code)
        self._wait(name, RUNNING, deadline, timeout)

    def stop(self, timeout: float) -> None:
        """Stop the dependents (in the order the SCM gives), then the service; each must reach
        STOPPED within ``timeout`` seconds."""
        self._stopped_dependents = []
        for name in self.dependents():
            if self._stop_one(name, time.monotonic() + timeout, timeout):
                self._stopped_dependents.append(name)
        self._stop_one(self.name, time.monotonic() + timeout, timeout)

    def start(self, timeout: float) -> None:
        """Start the service, then the dependents that :meth:`stop` stopped (reverse order).
        Every dependent is tried even if one fails; the first failure is raised after."""
        self._start_one(self.name, time.monotonic() + timeout, timeout)
        failures: list[ServiceError] = []
        for name in reversed(self._stopped_dependents):
            try:
                self._start_one(name, time.monotonic() + timeout, timeout)
            except ServiceError as exc:
                failures.append(exc)
        self._stopped_dependents = []
        if failures:
            raise ServiceError("; ".join(str(f) for f in failures))
