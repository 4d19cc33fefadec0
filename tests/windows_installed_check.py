"""Checks of the installed copy (run by scripts/windows-lane under Wine after a silent install).

Everything runs in this one Windows process, because Wine forgets service state a few seconds
after its last process ends. Exits non-zero with the failed check's message.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tomllib
import winreg  # type: ignore[import-not-found,unused-ignore]
from pathlib import Path

from praxisbackup import platform
from praxisbackup.services.windows import RUNNING, STOPPED, WindowsService

# The embeddable Python's ._pth file keeps the script's folder off sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from winscm import service_config

INSTDIR = Path(r"C:\Program Files\praxisbackup")
DATADIR = Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData")) / "praxisbackup"
ENVKEY = r"SYSTEM\CurrentControlSet\Control\Session Manager\Environment"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, ENVKEY) as key:
        path, _kind = winreg.QueryValueEx(key, "Path")
    env = dict(os.environ, PATH=path, PYTHONIOENCODING="utf-8")
    return subprocess.run(
        ["cmd.exe", "/c", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=300,
        check=False,
    )


def check(name: str, ok: bool, detail: object = "") -> None:
    print(f"[{'ok' if ok else 'FAIL'}] {name}{': ' + str(detail) if detail else ''}", flush=True)
    if not ok:
        sys.exit(1)


def main(expected_version: str) -> None:
    check("python in Program Files", (INSTDIR / "python" / "python.exe").is_file())
    with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, ENVKEY) as key:
        path, _kind = winreg.QueryValueEx(key, "Path")
    check("bin on the system PATH", str(INSTDIR / "bin") in path.split(";"), path)
    version = run("praxisbackup", "--version")
    check(
        "praxisbackup --version (from PATH)",
        version.returncode == 0 and expected_version in version.stdout,
        (version.stdout + version.stderr).strip(),
    )
    example = run("praxisbackup", "config", "example")
    check(
        "praxisbackup config example",
        example.returncode == 0 and bool(tomllib.loads(example.stdout)["practice"]["name"]),
        example.stderr.strip()[-300:],
    )
    # The setup aborts when SetNamedSecurityInfoW fails. Wine accepts the DACL but keeps none
    # (it reads back one derived from Unix modes), so what is stored is shown, not checked.
    print(f"[info] ACL of {DATADIR} as Wine reports it: {platform.acl_sddl(str(DATADIR))}")
    check("example configuration written", (DATADIR / "praxisbackup.example.toml").is_file())
    start_type, binary = service_config("praxisbackup")
    check(
        "service registered: automatic start, the wrapper as its program",
        start_type == 2 and binary.endswith('praxisbackup-service.exe"'),
        f"start type {start_type}, {binary}",
    )
    service = WindowsService("praxisbackup")
    deadline = time.monotonic() + 60
    while service.state() != RUNNING and time.monotonic() < deadline:
        time.sleep(0.5)
    check("service started by the setup (a configuration was given)", service.is_running())
    log = DATADIR / "logs" / "service.log"
    deadline = time.monotonic() + 60
    while "next run at" not in _text(log) and time.monotonic() < deadline:
        time.sleep(0.5)
    check("serve runs in the service and logs (next run)", "next run at" in _text(log), log)
    page = _status_page()
    check("the status page answers inside the service", "Datensicherung" in page, page[:200])
    # The readiness check asks the SCM for the service (no schtasks call that could hang) and
    # counts it as the nightly schedule.
    ready = run("praxisbackup", "--json", "config", "check")
    levels = (
        {i["code"]: i["level"] for i in json.loads(ready.stdout)["items"]}
        if ready.returncode in (0, 1, 2)
        else {}
    )
    check(
        "config check answers; the service counts as the nightly schedule",
        levels.get("ready.schedule") == "ok",
        (ready.stdout + ready.stderr).strip()[-400:],
    )
    started = time.monotonic()
    service.stop(timeout=60)
    check(
        "service stops on request (serve ends on the stop event)",
        service.state() == STOPPED,
        f"{time.monotonic() - started:.1f} s",
    )
    service.start(timeout=60)
    check("service starts again", service.state() == RUNNING)
    service.stop(timeout=60)


def _status_page() -> str:
    """The staff's page, served by the same service on 127.0.0.1:8765."""
    import urllib.request

    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen("http://127.0.0.1:8765/", timeout=5) as response:
                return str(response.read().decode("utf-8", "replace"))
        except OSError as exc:
            if time.monotonic() > deadline:
                return f"no answer: {exc}"
            time.sleep(0.5)


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


if __name__ == "__main__":
    main(sys.argv[1])
