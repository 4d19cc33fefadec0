"""Faults at every step of the nightly job: each ends with services in their original state,
a red protocol that names the cause, and earlier snapshots untouched."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from conftest import reopen
from fsimages import ext4_image
from praxisbackup.app.job import NightlyJob
from praxisbackup.catalog.runs import Catalog
from praxisbackup.engine import pipeline
from praxisbackup.engine.archiver import Archiver
from praxisbackup.engine.checker import Checker
from praxisbackup.media.label import MediumError
from praxisbackup.media.selection import prepare_medium
from praxisbackup.model.config import parse_config
from praxisbackup.model.protocol import RunProtocol
from praxisbackup.practice.sample import generate

PASS = "Praxis-Passwort"


class Service:
    """A real background process controlled through shell commands and a pid file."""

    def __init__(self, base: Path) -> None:
        self.pidfile = base / "service.pid"
        self.start_cmd = (
            f"nohup {sys.executable} -c 'import time; time.sleep(3600)' >/dev/null 2>&1 & "
            f"echo $! > {self.pidfile}"
        )
        self.stop_cmd = f"kill $(cat {self.pidfile}) && rm -f {self.pidfile}"
        self.status_cmd = f"test -f {self.pidfile} && kill -0 $(cat {self.pidfile})"

    def running(self) -> bool:
        return subprocess.run(self.status_cmd, shell=True, check=False).returncode == 0

    def start(self) -> None:
        subprocess.run(self.start_cmd, shell=True, check=True)

    def stop(self) -> None:
        subprocess.run(self.stop_cmd, shell=True, check=False)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Service]]:
    monkeypatch.setenv("PRAXISBACKUP_PASSWORD", PASS)
    generate(tmp_path / "server", size_mb=4)
    svc = Service(tmp_path)
    svc.start()
    try:
        yield tmp_path, svc
    finally:
        svc.stop()


def config_text(base: Path, svc: Service, medium_glob: str, **overrides: str) -> str:
    stop = overrides.get("stop", svc.stop_cmd)
    start = overrides.get("start", svc.start_cmd)
    return f"""
state_dir = "{base / "state"}"
[practice]
name = "Praxis Dr. Muster"
[[sources]]
label = "CGM M1 PRO"
profile = "cgm-m1-pro"
path = "{base / "server" / "CompuMED"}"
[[sources]]
label = "ifap"
path = "{base / "server" / "ifapDB"}"
[[services]]
name = "m1-dienst"
kind = "command"
stop = {json.dumps(stop)}
start = {json.dumps(start)}
is_running = {json.dumps(svc.status_cmd)}
timeout_seconds = 10
check_closed = ["{base / "server" / "CompuMED" / "M1" / "Orant"}"]
[media]
candidates = ["{medium_glob}"]
{overrides.get("extra", "")}
"""


def run_job(text: str) -> RunProtocol:
    return NightlyJob(parse_config(text)).run()


def codes(p: RunProtocol, level: str = "red") -> list[str]:
    return [f.code for f in p.findings if f.level == level]


def init_medium(
    root: str, label: str, password: str, base: Path, allow_same_disk: bool = False
) -> None:
    """`medium init` as the CLI does it: repository, label and register entry."""
    config = parse_config(config_text(base, Service(base), root))
    prepare_medium(config, root, label, password, allow_same_disk=allow_same_disk)


@pytest.fixture
def usb(tmp_path: Path) -> Iterator[Path]:
    with ext4_image(tmp_path, 100) as mnt:
        init_medium(str(mnt), "Mo", PASS, tmp_path)
        yield mnt


def test_green_run_then_service_that_will_not_stop(env: tuple[Path, Service], usb: Path) -> None:
    base, svc = env
    first = run_job(config_text(base, svc, str(usb)))
    assert first.status == "green", first.findings
    p = run_job(config_text(base, svc, str(usb), stop="echo 'Zugriff verweigert' >&2; exit 1"))
    assert p.status == "red" and codes(p) == ["service_stop_failed"]
    assert "Zugriff verweigert" in next(f for f in p.findings if f.level == "red").params["error"]
    assert svc.running() and not p.snapshot_id
    # It never stopped: it is not "started again" and there was no downtime.
    assert [e["action"] for e in p.services] == ["found running", "stop failed"]
    assert p.downtime_seconds is None
    assert len(Catalog(str(base / "state" / "catalog.sqlite")).runs()) == 2
    # Earlier snapshot untouched.
    assert Checker(reopen(usb / "praxisbackup", PASS)).run(read_data=True).ok


def test_service_whose_stop_command_fails_after_stopping_it_is_started_again(
    env: tuple[Path, Service], usb: Path
) -> None:
    base, svc = env
    p = run_job(config_text(base, svc, str(usb), stop=f"{svc.stop_cmd}; exit 1"))
    assert p.status == "red" and codes(p) == ["service_stop_failed"] and not p.snapshot_id
    assert [e["action"] for e in p.services] == ["found running", "stop failed", "started"]
    assert p.downtime_seconds is not None and svc.running()


def test_service_that_will_not_start_again_is_its_own_alarm(
    env: tuple[Path, Service], usb: Path
) -> None:
    base, svc = env
    p = run_job(config_text(base, svc, str(usb), start="exit 3"))
    assert p.status == "red" and "service_start_failed" in codes(p)
    assert p.snapshot_id  # the backup itself was made
    assert not svc.running()


def test_required_item_missing_stops_nothing(env: tuple[Path, Service], usb: Path) -> None:
    base, svc = env
    shutil.rmtree(base / "server" / "CompuMED" / "M1" / "Bin")
    p = run_job(config_text(base, svc, str(usb)))
    assert p.status == "red" and codes(p) == ["profile_missing"]
    assert [f.params["path"] for f in p.findings if f.level == "red"] == [
        str(base / "server" / "CompuMED" / "M1" / "Bin")
    ]
    assert p.services == [] and svc.running()


def test_files_still_open_copy_nothing(env: tuple[Path, Service], usb: Path) -> None:
    base, svc = env
    dbf = next((base / "server" / "CompuMED" / "M1" / "Orant").rglob("*.DBF"))
    holder = subprocess.Popen(
        [sys.executable, "-c", f"f = open({str(dbf)!r}); import time; time.sleep(60)"]
    )
    try:
        time.sleep(0.5)
        p = run_job(config_text(base, svc, str(usb)))
    finally:
        holder.kill()
    assert p.status == "red" and codes(p) == ["files_open"] and not p.snapshot_id
    assert str(dbf) in next(f for f in p.findings if f.level == "red").params["paths"]
    assert svc.running()


def test_no_medium_and_same_disk(env: tuple[Path, Service], tmp_path: Path) -> None:
    base, svc = env
    p = run_job(config_text(base, svc, str(tmp_path / "usb-*")))
    assert p.status == "red" and codes(p) == ["no_medium"] and p.services == []
    with pytest.raises(MediumError, match="same disk as the practice data"):
        init_medium(str(tmp_path / "usb-1"), "Mo", PASS, base)
    init_medium(str(tmp_path / "usb-1"), "Mo", PASS, base, allow_same_disk=True)  # as a demo
    p = run_job(config_text(base, svc, str(tmp_path / "usb-*")))
    assert p.status == "red" and codes(p) == ["same_disk"] and not p.snapshot_id
    allowed = run_job(
        config_text(base, svc, str(tmp_path / "usb-*"), extra="allow_same_disk = true")
    )
    assert allowed.status == "yellow" and "same_disk_allowed" in codes(allowed, "yellow")
    assert svc.running()


def test_full_medium(env: tuple[Path, Service], usb: Path) -> None:
    base, svc = env
    big = base / "server" / "CompuMED" / "M1" / "Project" / "scan.bin"
    big.write_bytes(os.urandom(120 << 20))
    p = run_job(config_text(base, svc, str(usb)))
    assert p.status == "red" and codes(p) == ["backup_failed"]
    assert (
        "the backup medium is full"
        in next(f for f in p.findings if f.level == "red").params["error"]
    )
    assert svc.running()
    assert Checker(reopen(usb / "praxisbackup", PASS)).run().ok


def test_exception_in_the_middle(
    env: tuple[Path, Service], usb: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, svc = env

    def explode(self: Archiver) -> None:
        raise RuntimeError("Festplatte meldet Fehler")

    monkeypatch.setattr(Archiver, "run", explode)
    p = run_job(config_text(base, svc, str(usb)))
    assert p.status == "red" and codes(p) == ["backup_failed"]
    assert next(f for f in p.findings if f.level == "red").params["error"] == (
        "RuntimeError: Festplatte meldet Fehler"
    )
    assert [e["action"] for e in p.services] == ["found running", "stopped", "started"]
    assert svc.running()


def test_sigterm_during_the_copy(env: tuple[Path, Service], tmp_path: Path) -> None:
    base, svc = env
    (base / "server" / "CompuMED" / "M1" / "Project" / "big.bin").write_bytes(os.urandom(300 << 20))
    marker = base / "stopped.marker"
    with ext4_image(tmp_path, 600) as mnt:
        init_medium(str(mnt), "Mo", PASS, base)
        cfg = base / "praxis.toml"
        cfg.write_text(config_text(base, svc, str(mnt), stop=f"{svc.stop_cmd} && touch {marker}"))
        env_vars = dict(os.environ, PRAXISBACKUP_PASSWORD=PASS, PRAXISBACKUP_KDF_N="1024")
        proc = subprocess.Popen(
            [sys.executable, "-m", "praxisbackup.cli.main", "-c", str(cfg), "run"],
            env=env_vars,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists()
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, out + err
        assert svc.running(), "the service must be started again after SIGTERM"
        last = Catalog(str(base / "state" / "catalog.sqlite")).runs(limit=1)[0]
        assert last.status == "red" and "interrupted" in codes(last)
        assert Checker(reopen(mnt / "praxisbackup", PASS)).run(read_data=True).ok


def test_start_command_that_leaves_a_daemon_does_not_block(tmp_path: Path) -> None:
    """A start script whose daemon keeps the inherited stdout open must not hang the job."""
    from praxisbackup.services.command import CommandService

    marker, pidfile = tmp_path / "up", tmp_path / "daemon.pid"
    svc = CommandService(
        "daemon",
        stop=f"rm -f {marker}",
        start=f"sleep 300 & echo $! > {pidfile}; touch {marker}; echo gestartet",
        is_running=f"test -f {marker}",
    )
    try:
        svc.start(timeout=5)  # raises ServiceError if the command's output pipe kept it waiting
        assert svc.is_running()
        svc.stop(timeout=5)
        assert not svc.is_running()
    finally:
        if pidfile.exists():  # end exactly the daemon this test started
            os.kill(int(pidfile.read_text()), signal.SIGKILL)


def test_snapshots_deleted_from_the_medium_are_noticed(
    env: tuple[Path, Service], usb: Path
) -> None:
    base, svc = env
    first = run_job(config_text(base, svc, str(usb)))
    assert first.status == "green"
    (usb / "praxisbackup" / "snapshots" / first.snapshot_id).unlink()  # tampering / old copy
    second = run_job(config_text(base, svc, str(usb)))
    assert second.status == "yellow" and codes(second, "yellow") == ["snapshots_missing"]
    assert (
        second.findings[[f.code for f in second.findings].index("snapshots_missing")].params["ids"]
        == first.snapshot_id[:8]
    )


def hook(name: str, when: str, stage: str, command: str) -> str:
    return (
        f"[[hooks]]\nname = {json.dumps(name)}\nwhen = {json.dumps(when)}\n"
        f"stage = {json.dumps(stage)}\ncommand = {json.dumps(command)}\n"
    )


def test_failing_before_night_hook_is_red_and_stops_nothing(
    env: tuple[Path, Service], usb: Path
) -> None:
    base, svc = env
    seen = base / "on-error.txt"
    hooks = hook("NAS aufwecken", "before", "night", "echo NAS schläft >&2; exit 4") + hook(
        "Meldung", "on_error", "night", f'echo "$PRAXISBACKUP_STATUS" > {seen}'
    )
    p = run_job(config_text(base, svc, str(usb), extra="") + hooks)
    assert p.status == "red" and codes(p) == ["hook_failed"]
    failed = next(f for f in p.findings if f.code == "hook_failed")
    assert failed.params == {"hook": "NAS aufwecken", "when": "before", "error": "exit 4"}
    assert p.services == [] and not p.snapshot_id and svc.running()
    assert [(h["name"], h["exit"]) for h in p.hooks] == [("NAS aufwecken", 4), ("Meldung", 0)]
    assert "NAS schläft" in p.hooks[0]["output"]
    assert seen.read_text().strip() == "red"


def test_failing_before_backup_hook_restarts_the_services(
    env: tuple[Path, Service], usb: Path
) -> None:
    base, svc = env
    p = run_job(config_text(base, svc, str(usb)) + hook("Export", "before", "backup", "exit 1"))
    assert p.status == "red" and codes(p) == ["hook_failed"] and not p.snapshot_id
    assert [e["action"] for e in p.services] == ["found running", "stopped", "started"]
    assert svc.running()


def test_hooks_run_inside_the_downtime_and_after_the_night(
    env: tuple[Path, Service], usb: Path
) -> None:
    base, svc = env
    after = base / "after.txt"
    hooks = (
        # Exits 0 only while the service is stopped: proves the stage is the downtime window.
        hook("Export", "before", "backup", f"! ( {svc.status_cmd} ) && echo exportiert")
        + hook("Fertig", "after", "backup", f"! ( {svc.status_cmd} )")
        + hook(
            "Tray", "after", "night", f'echo "$PRAXISBACKUP_STATUS $PRAXISBACKUP_MEDIUM" > {after}'
        )
        + hook("Alarm", "on_error", "night", "exit 9")  # must not run on a good night
    )
    p = run_job(config_text(base, svc, str(usb)) + hooks)
    assert p.status == "green", p.findings
    assert [(h["name"], h["exit"]) for h in p.hooks] == [("Export", 0), ("Fertig", 0), ("Tray", 0)]
    assert "exportiert" in p.hooks[0]["output"]
    assert after.read_text().strip() == "green Mo"
    assert svc.running()


def test_failing_after_hook_is_yellow(env: tuple[Path, Service], usb: Path) -> None:
    base, svc = env
    p = run_job(config_text(base, svc, str(usb)) + hook("Tray", "after", "night", "exit 2"))
    assert p.status == "yellow" and codes(p, "yellow") == ["hook_failed"] and p.snapshot_id


def _worker_processes() -> list[psutil.Process]:
    """Backup worker processes still running below this test's process."""
    return [
        child
        for child in psutil.Process().children(recursive=True)
        if any("worker_main" in part for part in child.cmdline())
    ]


def test_the_night_starts_workers_early_and_leaves_none_behind(
    env: tuple[Path, Service], usb: Path
) -> None:
    """The nightly job starts its worker processes and the metadata prewalk while the key is
    derived, as the backup command does; a night that ends before its backup (here: a service
    that will not stop) ends them too."""
    base, svc = env
    started: list[int] = []
    real_pool = pipeline.WorkerPool

    def counting_pool(count: int) -> pipeline.WorkerPool:
        started.append(count)
        return real_pool(count)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "WorkerPool", counting_pool)
        first = run_job(config_text(base, svc, str(usb)))
        assert first.status == "green", first.findings
        assert started, "the night started worker processes early"
        assert pipeline._prestarted is None and not _worker_processes()
        started.clear()
        p = run_job(config_text(base, svc, str(usb), stop="exit 1"))
    assert p.status == "red" and codes(p) == ["service_stop_failed"] and not p.snapshot_id
    assert started, "workers were started before the services were stopped"
    assert pipeline._prestarted is None and not _worker_processes()
