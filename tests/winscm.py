"""Test helpers for the Windows lane: register, delete and kill real services in the SCM.

Only the tests create services; praxisbackup itself only queries, stops and starts them
(praxisbackup.services.windows).
"""

from __future__ import annotations

import ctypes
import os
from ctypes import wintypes
from typing import Any

from praxisbackup.services.windows import ERROR_SERVICE_DOES_NOT_EXIST, STOPPED, Scm

SC_MANAGER_ALL_ACCESS = 0xF003F
SERVICE_ALL_ACCESS = 0xF01FF
SERVICE_WIN32_OWN_PROCESS = 0x10
SERVICE_DEMAND_START = 3
SERVICE_ERROR_NORMAL = 1
PROCESS_TERMINATE = 0x0001
SYNCHRONIZE = 0x00100000
SERVICE_QUERY_CONFIG = 0x0001

_win: Any = ctypes


def _advapi() -> Any:
    dll = _win.WinDLL("advapi32", use_last_error=True)
    handle = wintypes.HANDLE
    dll.OpenSCManagerW.argtypes = (wintypes.LPCWSTR, wintypes.LPCWSTR, wintypes.DWORD)
    dll.OpenSCManagerW.restype = handle
    dll.OpenServiceW.argtypes = (handle, wintypes.LPCWSTR, wintypes.DWORD)
    dll.OpenServiceW.restype = handle
    dll.CreateServiceW.argtypes = (
        handle,
        wintypes.LPCWSTR,
        wintypes.LPCWSTR,
        wintypes.DWORD,
        wintypes.DWORD,
        wintypes.DWORD,
        wintypes.DWORD,
        wintypes.LPCWSTR,
        wintypes.LPCWSTR,
        ctypes.c_void_p,
        ctypes.c_wchar_p,
        wintypes.LPCWSTR,
        wintypes.LPCWSTR,
    )
    dll.CreateServiceW.restype = handle
    dll.DeleteService.argtypes = (handle,)
    dll.DeleteService.restype = wintypes.BOOL
    dll.CloseServiceHandle.argtypes = (handle,)
    dll.CloseServiceHandle.restype = wintypes.BOOL
    return dll


def create_service(name: str, command_line: str, depends_on: tuple[str, ...] = ()) -> None:
    """Register an own-process service started on demand (``sc create NAME binPath= ...``)."""
    dll = _advapi()
    manager = dll.OpenSCManagerW(None, None, SC_MANAGER_ALL_ACCESS)
    assert manager, f"OpenSCManager failed: {_win.get_last_error()}"
    try:
        # A double-NUL-terminated list; a plain str argument would end at its first NUL.
        text = "".join(f"{d}\0" for d in depends_on) + "\0"
        dependencies = (ctypes.c_wchar * len(text))(*text) if depends_on else None
        service = dll.CreateServiceW(
            manager,
            name,
            f"praxisbackup test {name}",
            SERVICE_ALL_ACCESS,
            SERVICE_WIN32_OWN_PROCESS,
            SERVICE_DEMAND_START,
            SERVICE_ERROR_NORMAL,
            command_line,
            None,
            None,
            dependencies,
            None,
            None,
        )
        assert service, f"CreateService {name} failed: {_win.get_last_error()}"
        dll.CloseServiceHandle(service)
    finally:
        dll.CloseServiceHandle(manager)


def kill_service_process(name: str) -> None:
    """End a service's process the hard way (for services that never stop by themselves) and
    wait until the process is gone."""
    status = Scm().query(name)
    if status.state == STOPPED or not status.process_id:
        return
    kernel32 = _win.WinDLL("kernel32", use_last_error=True)
    kernel32.OpenProcess.restype = wintypes.HANDLE
    kernel32.OpenProcess.argtypes = (wintypes.DWORD, wintypes.BOOL, wintypes.DWORD)
    kernel32.TerminateProcess.argtypes = (wintypes.HANDLE, wintypes.UINT)
    kernel32.WaitForSingleObject.argtypes = (wintypes.HANDLE, wintypes.DWORD)
    kernel32.CloseHandle.argtypes = (wintypes.HANDLE,)
    process = kernel32.OpenProcess(PROCESS_TERMINATE | SYNCHRONIZE, False, status.process_id)
    assert process, f"OpenProcess {status.process_id} failed: {_win.get_last_error()}"
    try:
        assert kernel32.TerminateProcess(process, 1), f"TerminateProcess: {_win.get_last_error()}"
        assert kernel32.WaitForSingleObject(process, 30_000) == 0, f"{name} process still alive"
    finally:
        kernel32.CloseHandle(process)


def delete_service(name: str) -> None:
    """Stop (by killing) and unregister a test service; nothing happens if it does not exist."""
    dll = _advapi()
    manager = dll.OpenSCManagerW(None, None, SC_MANAGER_ALL_ACCESS)
    assert manager, f"OpenSCManager failed: {_win.get_last_error()}"
    try:
        service = dll.OpenServiceW(manager, name, SERVICE_ALL_ACCESS)
        if not service:
            code = _win.get_last_error()
            assert code == ERROR_SERVICE_DOES_NOT_EXIST, f"OpenService {name}: error {code}"
            return
        try:
            kill_service_process(name)
            assert dll.DeleteService(service), f"DeleteService {name}: {_win.get_last_error()}"
        finally:
            dll.CloseServiceHandle(service)
    finally:
        dll.CloseServiceHandle(manager)


def service_exe() -> str:
    """The lane's compiled tests/winsvc/pbtestsvc.c (installed into the prefix by the lane)."""
    return os.environ["PRAXISBACKUP_TEST_SERVICE_EXE"]


class RegistryDependentsScm(Scm):
    """The real SCM, with the dependents read from the SCM's database in the registry.

    Wine's SCM keeps no dependency graph (its EnumDependentServicesW is a stub that returns no
    services, QueryServiceConfigW reports no dependencies, and starting a service does not start
    what it depends on), but it stores ``DependOnService`` as Windows does. This class lists
    the running services that name ``name`` there, directly or not, deepest first; everything
    else (stop, start, waits) stays the real SCM's.
    """

    def dependents(self, name: str) -> list[str]:
        import winreg  # type: ignore[import-not-found,unused-ignore]

        from praxisbackup.services.windows import stop_order

        root = r"SYSTEM\CurrentControlSet\Services"
        graph: dict[str, list[str]] = {}
        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, root) as services:
            index = 0
            while True:
                try:
                    service = winreg.EnumKey(services, index)
                except OSError:
                    break
                index += 1
                try:
                    with winreg.OpenKey(services, service) as key:
                        needs, _kind = winreg.QueryValueEx(key, "DependOnService")
                except OSError:
                    continue
                for needed in needs:
                    graph.setdefault(needed.casefold(), []).append(service)
        spelled = {n.casefold(): n for deps in graph.values() for n in deps}
        folded = {k: [d.casefold() for d in v] for k, v in graph.items()}
        order = stop_order(name.casefold(), folded)[:-1]
        return [spelled[n] for n in order if self.query(spelled[n]).state != STOPPED]


def service_config(name: str) -> tuple[int, str]:
    """Start type (2 = automatic) and command line of a service (QueryServiceConfigW)."""
    dll = _advapi()
    dll.QueryServiceConfigW.argtypes = (
        wintypes.HANDLE,
        ctypes.c_void_p,
        wintypes.DWORD,
        ctypes.POINTER(wintypes.DWORD),
    )
    dll.QueryServiceConfigW.restype = wintypes.BOOL
    manager = dll.OpenSCManagerW(None, None, SC_MANAGER_ALL_ACCESS)
    assert manager, f"OpenSCManager failed: {_win.get_last_error()}"
    try:
        service = dll.OpenServiceW(manager, name, SERVICE_QUERY_CONFIG)
        assert service, f"OpenService {name}: error {_win.get_last_error()}"
        try:
            buffer = ctypes.create_string_buffer(8192)
            needed = wintypes.DWORD()
            assert dll.QueryServiceConfigW(service, buffer, 8192, ctypes.byref(needed))
            fields = ctypes.cast(buffer, ctypes.POINTER(ctypes.c_uint32 * 2))[0]
            binary = ctypes.cast(buffer, ctypes.POINTER(ctypes.c_wchar_p * 3))[0][2]
            return int(fields[1]), str(binary)
        finally:
            dll.CloseServiceHandle(service)
    finally:
        dll.CloseServiceHandle(manager)
