"""Running the nightly job unattended (seed S11).

* Windows: a Task Scheduler task (XML, schema 1.2) that runs whether a user is logged on or
  not, with highest privileges, wakes the computer, and starts as soon as possible after a
  missed start (``StartWhenAvailable``).
* Linux with systemd: a service + timer with ``Persistent=true`` (catches up a missed run)
  and ``WakeSystem=true``.
* Elsewhere: a line in ``/etc/cron.d``.
* ``praxisbackup serve``: the job's own scheduler loop (see :func:`next_run`).

The texts are produced by pure functions (tested on Linux); installing them is a thin layer.
"""

from __future__ import annotations

import locale
import os
import shlex
import shutil
import subprocess
import sys
from datetime import date, datetime, time, timedelta
from pathlib import Path
from xml.sax.saxutils import escape

from praxisbackup.errors import PraxisError

TASK_NAME = "praxisbackup nightly"
UNIT = "praxisbackup-nightly"


class ScheduleError(PraxisError):
    """The schedule could not be installed or removed."""


def parse_at(at: str) -> time:
    hours, minutes = (int(x) for x in at.split(":"))
    return time(hours, minutes)


def next_run(
    now: datetime, at: str, last_run_started: datetime | None, catch_up_hours: float = 8
) -> datetime:
    """When the job should run next.

    Normally today's (or tomorrow's) slot. If today's slot has passed without a run and we are
    still within ``catch_up_hours`` of it (server was off, service restarted), run right away.
    """
    slot_time = parse_at(at)
    today_slot = datetime.combine(now.date(), slot_time, tzinfo=now.tzinfo)
    yesterday_slot = today_slot - timedelta(days=1)
    for slot in (today_slot, yesterday_slot):
        missed = now >= slot and (last_run_started is None or last_run_started < slot)
        if missed and now - slot <= timedelta(hours=catch_up_hours):
            return now
    if now < today_slot:
        return today_slot
    return today_slot + timedelta(days=1)


def command_line(config_path: str) -> list[str]:
    """The command the scheduler starts."""
    return [
        sys.executable,
        "-P",  # not the scheduler's current folder on the import path
        "-m",
        "praxisbackup.cli.main",
        "-c",
        os.path.abspath(config_path),
        "-q",
        "run",
    ]


def task_scheduler_xml(config_path: str, at: str, today: date | None = None) -> str:
    """Task Scheduler 1.2 XML: daily at ``at``, as SYSTEM, highest privileges, wake, catch up."""
    start = datetime.combine(today or date.today(), parse_at(at)).isoformat()
    cmd = command_line(config_path)
    args = " ".join(f'"{a}"' if " " in a else a for a in cmd[1:])
    return f"""<?xml version="1.0" encoding="UTF-16"?>
<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">
  <RegistrationInfo>
    <Description>praxisbackup: nightly encrypted, verified backup</Description>
  </RegistrationInfo>
  <Triggers>
    <CalendarTrigger>
      <StartBoundary>{start}</StartBoundary>
      <Enabled>true</Enabled>
      <ScheduleByDay><DaysInterval>1</DaysInterval></ScheduleByDay>
    </CalendarTrigger>
  </Triggers>
  <Principals>
    <Principal id="Author">
      <UserId>S-1-5-18</UserId>
      <RunLevel>HighestAvailable</RunLevel>
    </Principal>
  </Principals>
  <Settings>
    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>
    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>
    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>
    <StartWhenAvailable>true</StartWhenAvailable>
    <WakeToRun>true</WakeToRun>
    <ExecutionTimeLimit>PT12H</ExecutionTimeLimit>
    <Enabled>true</Enabled>
  </Settings>
  <Actions Context="Author">
    <Exec>
      <Command>{escape(cmd[0])}</Command>
      <Arguments>{escape(args)}</Arguments>
    </Exec>
  </Actions>
</Task>
"""


def systemd_units(config_path: str, at: str) -> dict[str, str]:
    # systemd expands %-specifiers and $VARIABLES in ExecStart, quoted or not: doubled, each
    # stands for itself (a configuration path may contain either).
    cmd = shlex.join(command_line(config_path)).replace("%", "%%").replace("$", "$$")
    return {
        f"{UNIT}.service": f"""[Unit]
Description=praxisbackup nightly backup
After=local-fs.target network-online.target

[Service]
Type=oneshot
ExecStart={cmd}
# Exit code 1 (yellow) is a finished backup with warnings, not a failure of the unit.
SuccessExitStatus=1
TimeoutStopSec=10min
""",
        f"{UNIT}.timer": f"""[Unit]
Description=praxisbackup nightly backup at {at}

[Timer]
OnCalendar=*-*-* {at}:00
Persistent=true
WakeSystem=true

[Install]
WantedBy=timers.target
""",
    }


#: Seconds an external scheduler command may take: a readiness check or setup must never hang
#: on one (seen under Wine with schtasks).
COMMAND_TIMEOUT = 60


def _command(args: list[str]) -> subprocess.CompletedProcess[bytes]:
    """Run a scheduler command without input and with a deadline."""
    try:
        return subprocess.run(
            args,
            capture_output=True,
            check=False,
            stdin=subprocess.DEVNULL,
            timeout=COMMAND_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        raise ScheduleError(
            f"{' '.join(args)} did not answer within {COMMAND_TIMEOUT} s",
            code="error.schedule_timeout",
            command=" ".join(args),
            seconds=COMMAND_TIMEOUT,
        ) from None
    except OSError as exc:
        raise ScheduleError(f"{args[0]} cannot be started: {exc}") from None


def _output(proc: subprocess.CompletedProcess[bytes]) -> str:
    """A command's output (or, without any, its error output) as text, in the encoding the
    system's commands write (what ``text=True`` would use)."""
    return (proc.stdout or proc.stderr).decode(locale.getpreferredencoding(False), "replace")


def cron_line(config_path: str, at: str) -> str:
    hours, minutes = at.split(":")
    # cron turns an unescaped % of the command into a new line.
    cmd = shlex.join(command_line(config_path)).replace("%", "\\%")
    return f"{int(minutes)} {int(hours)} * * * root {cmd}\n"


def _has_systemd() -> bool:
    return os.path.isdir("/run/systemd/system") and shutil.which("systemctl") is not None


def install(config_path: str, at: str, root: str = "/") -> str:
    """Install the schedule; returns a description of what was done."""
    if sys.platform == "win32":  # pragma: no cover - Windows only
        xml_path = Path(os.environ.get("TEMP", ".")) / "praxisbackup-task.xml"
        xml_path.write_text(task_scheduler_xml(config_path, at), encoding="utf-16")
        proc = _command(["schtasks", "/Create", "/F", "/TN", TASK_NAME, "/XML", str(xml_path)])
        if proc.returncode != 0:
            raise ScheduleError(f"schtasks failed: {_output(proc).strip()}")
        return f"Task Scheduler task '{TASK_NAME}' daily at {at}"
    if root == "/" and _has_systemd():
        unit_dir = Path("/etc/systemd/system")
        for name, text in systemd_units(config_path, at).items():
            (unit_dir / name).write_text(text)
        for args in (["daemon-reload"], ["enable", "--now", f"{UNIT}.timer"]):
            proc = _command(["systemctl", *args])
            if proc.returncode != 0:
                raise ScheduleError(f"systemctl {args[0]} failed: {_output(proc).strip()}")
        return f"systemd timer {UNIT}.timer daily at {at}"
    cron = Path(root) / "etc" / "cron.d"
    cron.mkdir(parents=True, exist_ok=True)
    (cron / "praxisbackup").write_text(cron_line(config_path, at))
    return f"cron entry {cron / 'praxisbackup'} daily at {at}"


def remove(root: str = "/") -> str:
    if sys.platform == "win32":  # pragma: no cover - Windows only
        _command(["schtasks", "/Delete", "/F", "/TN", TASK_NAME])
        return f"removed task '{TASK_NAME}'"
    removed = []
    if root == "/" and _has_systemd():
        _command(["systemctl", "disable", "--now", f"{UNIT}.timer"])
        for name in systemd_units("x", "00:00"):
            path = Path("/etc/systemd/system") / name
            if path.exists():
                path.unlink()
                removed.append(str(path))
    cron = Path(root) / "etc" / "cron.d" / "praxisbackup"
    if cron.exists():
        cron.unlink()
        removed.append(str(cron))
    return "removed " + (", ".join(removed) if removed else "nothing (no schedule installed)")


def installed(root: str = "/", config_path: str | None = None) -> str | None:
    """What starts the nightly run for ``config_path`` on this machine (None: nothing, or an
    entry that runs another configuration). The Windows service that runs ``praxisbackup
    serve`` is checked by the caller (it lives in the service layer)."""
    if sys.platform == "win32":  # pragma: no cover - Windows only
        proc = _command(["schtasks", "/Query", "/TN", TASK_NAME, "/XML"])
        xml = proc.stdout.decode("utf-16", "replace")  # schtasks /XML writes UTF-16
        found = proc.returncode == 0 and _names(xml, config_path)
        return f"Task Scheduler task '{TASK_NAME}'" if found else None
    for path, what in (
        (
            Path(root) / "etc" / "systemd" / "system" / f"{UNIT}.service",
            f"systemd timer {UNIT}.timer",
        ),
        (
            Path(root) / "etc" / "cron.d" / "praxisbackup",
            f"cron entry {Path(root) / 'etc' / 'cron.d' / 'praxisbackup'}",
        ),
    ):
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            continue
        if _names(text, config_path):
            return what
    return None


def _names(entry: str, config_path: str | None) -> bool:
    """Does a schedule entry run this configuration?"""
    return config_path is None or os.path.abspath(config_path) in entry or config_path in entry


def status(root: str = "/") -> str:
    if sys.platform == "win32":  # pragma: no cover - Windows only
        proc = _command(["schtasks", "/Query", "/TN", TASK_NAME, "/V", "/FO", "LIST"])
        return _output(proc) if proc.returncode == 0 else "no scheduled task"
    if root == "/" and _has_systemd():
        out = _output(_command(["systemctl", "list-timers", f"{UNIT}.timer", "--all"]))
        if f"{UNIT}.timer" in out:
            return out
    cron = Path(root) / "etc" / "cron.d" / "praxisbackup"
    return f"cron: {cron.read_text().strip()}" if cron.exists() else "no schedule installed"
