"""Windows services through the real Service Control Manager (Windows lane only).

The services are real: tests/winsvc/pbtestsvc.c, built with mingw-w64 by scripts/windows-lane,
registered in the Wine prefix with CreateService. One holds a database file open exclusively
while it runs, with two services depending on it (one of them indirectly); one refuses stop
requests; one accepts a stop request and never finishes stopping. Everything happens inside one
Windows Python process: Wine's service state lives only as long as its wineserver.

Wine's SCM keeps no dependency graph, so the database service's dependents are read from the
SCM's registry database by winscm.RegistryDependentsScm; stopping and starting them in order is
praxisbackup's real code against the real SCM.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from praxisbackup.app.job import NightlyJob
from praxisbackup.media.selection import prepare_medium
from praxisbackup.model.config import parse_config
from praxisbackup.practice.openfiles import open_files_below
from praxisbackup.services import ServiceError, ServiceSequence
from praxisbackup.services.windows import (
    RUNNING,
    STOP_PENDING,
    STOPPED,
    WindowsService,
    parse_state,
)
from winscm import (
    RegistryDependentsScm,
    create_service,
    delete_service,
    kill_service_process,
    service_exe,
)

DB = "PBTestDatenbank"
BACKGROUND = "PBTestHintergrund"  # depends on DB
PRINTING = "PBTestDrucken"  # depends on BACKGROUND, so indirectly on DB
NOSTOP = "PBTestStopVerweigert"
HANG = "PBTestHaengt"
ALL = [PRINTING, BACKGROUND, DB, NOSTOP, HANG]
PASS = "Praxis-Passwort"


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Path]:
    """The test services, registered and started; the database file lives in tmp_path/db."""
    for name in ALL:
        delete_service(name)  # left over from an interrupted run
    exe = service_exe()
    db = tmp_path / "db"
    db.mkdir()
    log = tmp_path / "services.log"

    def hold(name: str, delay_ms: int) -> str:
        return f'"{exe}" hold "{db / (name + ".DBF")}" {delay_ms} "{log}"'

    create_service(DB, hold(DB, 1500))
    create_service(BACKGROUND, hold(BACKGROUND, 0), depends_on=(DB,))
    create_service(PRINTING, hold(PRINTING, 0), depends_on=(BACKGROUND,))
    create_service(NOSTOP, f'"{exe}" nostop')
    create_service(HANG, f'"{exe}" hang')
    try:
        for name in (DB, BACKGROUND, PRINTING):
            WindowsService(name).start(timeout=30)
        yield tmp_path
    finally:
        for name in ALL:
            delete_service(name)


def log_lines(base: Path) -> list[str]:
    return (base / "services.log").read_text(encoding="ascii").splitlines()


def sc_query(name: str) -> str:
    proc = subprocess.run(
        ["sc.exe", "query", name],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return proc.stdout


def test_database_service_stops_after_its_dependents_and_releases_its_file(
    services: Path,
) -> None:
    db_dir = services / "db"
    held = sorted(open_files_below([str(db_dir)]))
    assert sorted(Path(p).name for p in held) == sorted(
        f"{n}.DBF" for n in (DB, BACKGROUND, PRINTING)
    )
    svc = WindowsService(DB, RegistryDependentsScm())
    assert svc.is_running()
    # The SCM's number agrees with what sc.exe prints (parsed by position, any language).
    assert parse_state(sc_query(DB)) == RUNNING
    assert svc.dependents() == [PRINTING, BACKGROUND]

    svc.stop(timeout=30)

    assert [svc.state(n) for n in (DB, BACKGROUND, PRINTING)] == [STOPPED] * 3
    assert parse_state(sc_query(DB)) == STOPPED
    assert open_files_below([str(db_dir)]) == []
    # Exclusive access works now: this is what the backup relies on.
    with open(db_dir / f"{DB}.DBF", "r+b") as fh:
        assert fh.read(8) == b"PBTESTDB"
    assert log_lines(services)[-3:] == [f"stop {PRINTING}", f"stop {BACKGROUND}", f"stop {DB}"]

    svc.start(timeout=30)

    assert [svc.state(n) for n in (DB, BACKGROUND, PRINTING)] == [RUNNING] * 3
    assert log_lines(services)[-3:] == [f"start {DB}", f"start {BACKGROUND}", f"start {PRINTING}"]
    assert len(open_files_below([str(db_dir)])) == 3


def test_service_that_refuses_to_stop_is_named_and_keeps_running(services: Path) -> None:
    refusing = WindowsService(NOSTOP)
    refusing.start(timeout=30)
    with pytest.raises(ServiceError, match=f"'{NOSTOP}' refuses to be stopped"):
        refusing.stop(timeout=10)
    assert refusing.is_running()
    # Through the sequence the job uses: the failure is recorded, the database service that
    # was stopped before it is started again.
    sequence = ServiceSequence(
        [(WindowsService(DB, RegistryDependentsScm()), 30), (WindowsService(NOSTOP), 10)]
    )
    with pytest.raises(ServiceError):
        sequence.stop_all()
    assert sequence.timeline.failed_to_stop == [NOSTOP]
    assert WindowsService(DB).state() == STOPPED
    sequence.start_all()
    assert sequence.timeline.failed_to_start == []
    assert [WindowsService(n).state() for n in (DB, BACKGROUND, PRINTING, NOSTOP)] == [RUNNING] * 4


def test_service_that_never_finishes_stopping_times_out(services: Path) -> None:
    hanging = WindowsService(HANG)
    hanging.start(timeout=30)
    with pytest.raises(ServiceError, match=f"'{HANG}' is still STOP_PENDING after 2 s"):
        hanging.stop(timeout=2)
    assert hanging.state() == STOP_PENDING
    kill_service_process(HANG)


def test_service_that_does_not_exist_is_named() -> None:
    missing = WindowsService("PBGibtEsNicht")
    with pytest.raises(ServiceError, match="Windows service 'PBGibtEsNicht' does not exist"):
        missing.is_running()
    with pytest.raises(ServiceError, match="'PBGibtEsNicht' does not exist"):
        missing.stop(timeout=5)


def test_service_that_fails_while_starting_reports_its_exit_code(tmp_path: Path) -> None:
    name = "PBTestStartFehler"
    delete_service(name)
    missing_folder = tmp_path / "gibt-es-nicht" / "x.DBF"
    create_service(name, f'"{service_exe()}" hold "{missing_folder}"')
    try:
        with pytest.raises(ServiceError, match=f"'{name}' stopped again while starting"):
            WindowsService(name).start(timeout=30)
    finally:
        delete_service(name)


def test_nightly_job_backs_up_the_closed_database_and_restarts_the_services(
    services: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRAXISBACKUP_PASSWORD", PASS)
    base = services
    (base / "db" / "Briefe").mkdir()
    (base / "db" / "Briefe" / "Brief-Müller.txt").write_text("Befund", encoding="utf-8")
    config = parse_config(
        f"""
state_dir = {json.dumps(str(base / "state"))}
[practice]
name = "Praxis Dr. Muster"
[[sources]]
label = "Datenbank"
path = {json.dumps(str(base / "db"))}
[[services]]
name = "{DB}"
kind = "windows"
timeout_seconds = 30
check_closed = [{json.dumps(str(base / "db"))}]
[media]
candidates = [{json.dumps(str(base / "medium-*"))}]
allow_same_disk = true
"""
    )
    prepare_medium(config, str(base / "medium-Mo"), "Mo", PASS)
    protocol = NightlyJob(
        config, service_factory=lambda s: WindowsService(s.name, RegistryDependentsScm())
    ).run()
    assert protocol.status != "red", protocol.findings
    assert protocol.snapshot_id
    assert [(e["service"], e["action"]) for e in protocol.services] == [
        (DB, "found running"),
        (DB, "stopped"),
        (DB, "started"),
    ]
    assert log_lines(services)[-6:] == [
        f"stop {PRINTING}",
        f"stop {BACKGROUND}",
        f"stop {DB}",
        f"start {DB}",
        f"start {BACKGROUND}",
        f"start {PRINTING}",
    ]
    assert [WindowsService(n).state() for n in (DB, BACKGROUND, PRINTING)] == [RUNNING] * 3
    # The file the service held was copied whole (it was closed during the backup).
    assert protocol.sources[0].files == 4
