"""Scheduling texts (Task Scheduler XML, systemd, cron), catch-up logic, serve, and setup."""

from __future__ import annotations

import json
import shlex
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime
from pathlib import Path

from conftest import run_cli
from praxisbackup.media.selection import prepare_medium
from praxisbackup.model.config import parse_config
from praxisbackup.platform import schedule
from praxisbackup.practice.sample import generate

NS = {"t": "http://schemas.microsoft.com/windows/2004/02/mit/task"}


def test_task_scheduler_xml_has_the_required_settings() -> None:
    xml = schedule.task_scheduler_xml(
        r"C:\ProgramData\praxisbackup\praxisbackup.toml", "22:30", date(2026, 11, 28)
    )
    root = ET.fromstring(xml.replace('encoding="UTF-16"', ""))
    assert (
        root.find("t:Triggers/t:CalendarTrigger/t:StartBoundary", NS).text == "2026-11-28T22:30:00"
    )  # type: ignore[union-attr]
    assert root.find("t:Principals/t:Principal/t:UserId", NS).text == "S-1-5-18"  # type: ignore[union-attr]
    assert root.find("t:Principals/t:Principal/t:RunLevel", NS).text == "HighestAvailable"  # type: ignore[union-attr]
    settings = root.find("t:Settings", NS)
    assert settings is not None
    assert settings.find("t:WakeToRun", NS).text == "true"  # type: ignore[union-attr]
    assert settings.find("t:StartWhenAvailable", NS).text == "true"  # type: ignore[union-attr]
    args = root.find("t:Actions/t:Exec/t:Arguments", NS).text  # type: ignore[union-attr]
    assert args is not None and args.endswith(" -q run") and "praxisbackup.toml" in args


def test_systemd_and_cron_texts() -> None:
    units = schedule.systemd_units("/etc/praxisbackup/praxisbackup.toml", "23:05")
    timer = units["praxisbackup-nightly.timer"]
    assert (
        "OnCalendar=*-*-* 23:05:00" in timer
        and "Persistent=true" in timer
        and "WakeSystem=true" in timer
    )
    assert "SuccessExitStatus=1" in units["praxisbackup-nightly.service"]
    line = schedule.cron_line("/etc/praxisbackup/praxisbackup.toml", "23:05")
    assert line.startswith("5 23 * * * root ") and line.rstrip().endswith("-q run")


def test_next_run_catches_up_a_missed_night() -> None:
    tz = UTC
    at = "22:30"
    evening = datetime(2026, 11, 27, 20, 0, tzinfo=tz)
    assert schedule.next_run(evening, at, None) == datetime(2026, 11, 27, 22, 30, tzinfo=tz)
    # Server was off at 22:30 and comes back at 01:00: run now.
    night = datetime(2026, 11, 28, 1, 0, tzinfo=tz)
    assert schedule.next_run(night, at, datetime(2026, 11, 26, 22, 30, tzinfo=tz)) == night
    # Ran at 22:30: next one tomorrow (the day after the slot date).
    assert schedule.next_run(night, at, datetime(2026, 11, 27, 22, 31, tzinfo=tz)) == datetime(
        2026, 11, 28, 22, 30, tzinfo=tz
    )
    # Too late for a catch-up (the practice is working): wait for tonight.
    noon = datetime(2026, 11, 28, 12, 0, tzinfo=tz)
    assert schedule.next_run(noon, at, datetime(2026, 11, 26, 22, 30, tzinfo=tz)) == datetime(
        2026, 11, 28, 22, 30, tzinfo=tz
    )


def test_setup_detects_windows_services_and_schedule_installs(tmp_path: Path) -> None:
    server = tmp_path / "server"
    generate(server, size_mb=2)
    (server / "Praxisarchiv").mkdir(exist_ok=True)
    cfg = tmp_path / "praxisbackup.toml"
    out = run_cli(
        "setup",
        "--root",
        str(server),
        "--practice",
        "Praxis Dr. Müller",
        "--medium",
        str(tmp_path / "usb*"),
        "--service",
        "M1Hintergrunddienst",
        "--service",
        "OracleServiceM1",
        "--service-kind",
        "windows",
        "--output",
        str(cfg),
        "--no-schedule",
        "--state-dir",
        str(tmp_path / "state"),
        "--yes",
        password=None,
    )
    assert out.returncode == 2, out.stderr  # written, but not ready: no media, no e-mail
    assert "Uniface 9 / Oracle 11g" in out.stdout
    config = parse_config(cfg.read_text(encoding="utf-8"), str(cfg))
    assert config.practice.name == "Praxis Dr. Müller"
    assert [s.label for s in config.sources] == [
        "CGM M1 PRO",
        "ifap praxisCENTER",
        "CGM PRAXISARCHIV",
    ]
    # Only the Oracle service is checked for open database files.
    assert not config.services[0].check_closed
    assert config.services[1].check_closed[0].endswith("Database")
    check = run_cli("-c", str(cfg), "config", "check", password=None)
    assert check.returncode == 2 and "CGM M1 PRO erkannt (Uniface 9 / Oracle 11g" in check.stdout
    assert "NICHT BEREIT" in check.stdout and "Keine geplante Ausführung" in check.stdout
    # Setup run again keeps the passphrase (the media and the recovery key depend on it).
    before = (tmp_path / "passphrase.txt").read_text(encoding="utf-8")
    again = run_cli(
        "setup",
        "--root",
        str(server),
        "--practice",
        "Praxis Dr. Müller",
        "-o",
        str(cfg),
        "--no-schedule",
        "--state-dir",
        str(tmp_path / "state"),
        "--yes",
        password=None,
    )
    assert again.returncode == 2, again.stderr
    assert (tmp_path / "passphrase.txt").read_text(encoding="utf-8") == before
    assert before.strip() not in again.stdout  # shown once, at the first setup only
    installed = run_cli(
        "-c", str(cfg), "schedule", "install", "--at", "21:15", "--root", str(tmp_path / "root")
    )
    assert installed.returncode == 0, installed.stderr
    cron = (tmp_path / "root" / "etc" / "cron.d" / "praxisbackup").read_text()
    assert cron.startswith("15 21 * * * root ") and str(cfg) in cron
    assert "cron:" in run_cli("schedule", "status", "--root", str(tmp_path / "root")).stdout
    check = run_cli("-c", str(cfg), "config", "check", "--root", str(tmp_path / "root"))
    assert "Geplante Ausführung: cron entry" in check.stdout
    run_cli("schedule", "remove", "--root", str(tmp_path / "root"), check=True)
    assert not (tmp_path / "root" / "etc" / "cron.d" / "praxisbackup").exists()


def test_serve_once_catches_up_and_runs(tmp_path: Path) -> None:
    server = tmp_path / "server"
    generate(server, size_mb=2)
    usb = tmp_path / "usb"
    now = datetime.now().astimezone()
    slot = f"{now.hour:02d}:{now.minute:02d}"
    cfg = tmp_path / "praxis.toml"
    cfg.write_text(
        f"""
state_dir = "{tmp_path / "state"}"
[practice]
name = "Praxis"
[[sources]]
label = "Archiv"
path = "{server / "Praxisarchiv"}"
[media]
candidates = ["{usb}"]
allow_same_disk = true
[schedule]
at = {json.dumps(slot)}
"""
    )
    prepare_medium(parse_config(cfg.read_text()), str(usb), "Mo", "pw")
    out = run_cli("-c", str(cfg), "serve", "--once", password="pw", timeout=120)
    assert out.returncode == 1, out.stdout + out.stderr  # yellow: same disk allowed for the test
    assert "run " in out.stdout and ": yellow" in out.stdout
    history = run_cli("-c", str(cfg), "report", "--list", check=True).stdout.splitlines()
    assert len(history) == 1 and "  GELB    Mo " in history[0]
    run_id = history[0].split()[-1]
    shown = run_cli("-c", str(cfg), "report", run_id, check=True).stdout
    assert "GELB" in shown and "Praxis" in shown


def test_a_configuration_path_with_percent_and_dollar_reaches_the_command_intact() -> None:
    """systemd expands %-specifiers and $VARIABLES in ExecStart and cron turns % into a new
    line (found by an outsider): both are escaped, so the command gets the path as it is."""
    path = "/srv/Praxis 100%/$HOME.toml"
    service = schedule.systemd_units(path, "23:05")["praxisbackup-nightly.service"]
    (exec_line,) = [line for line in service.splitlines() if line.startswith("ExecStart=")]
    # What systemd makes of it: %% is a %, $$ is a $.
    unescaped = exec_line.removeprefix("ExecStart=").replace("%%", "%").replace("$$", "$")
    assert "%/" not in exec_line.replace("%%", "") and "$H" not in exec_line.replace("$$", "")
    assert shlex.split(unescaped)[-4:] == ["-c", path, "-q", "run"]
    line = schedule.cron_line(path, "23:05")
    command = line.split(" root ", 1)[1]
    assert "%" not in command.replace("\\%", "")  # no bare % left for cron
    assert shlex.split(command.replace("\\%", "%"))[-4:] == ["-c", path, "-q", "run"]
