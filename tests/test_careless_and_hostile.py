"""What an outside tester found: careless input and an ordinary user with bad intentions must
not destroy secrets, redirect the nightly run's writes, fake a medium, or get a false READY."""

from __future__ import annotations

import json
import os
import shlex
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import run_cli
from praxisbackup.app.job import NightlyJob
from praxisbackup.app.readiness import check
from praxisbackup.media.selection import prepare_medium
from praxisbackup.model.config import parse_config
from praxisbackup.practice.sample import generate

PASS = "Praxis-Passwort"
TZ = timezone(timedelta(hours=1))


def config_text(base: Path, extra: str = "", services: str = "") -> str:
    return f"""
state_dir = "{base / "state"}"
[practice]
name = "Praxis Dr. Muster"
[[sources]]
label = "Archiv"
path = "{base / "server" / "Praxisarchiv"}"
{services}
[media]
candidates = ["{base / "usb" / "*"}"]
allow_same_disk = true
{extra}
"""


@pytest.fixture
def base(tmp_path: Path) -> Path:
    generate(tmp_path / "server", size_mb=1)
    (tmp_path / "usb").mkdir()
    return tmp_path


def test_output_options_never_overwrite_a_file_without_force(base: Path) -> None:
    cfg = base / "praxis.toml"
    cfg.write_text(config_text(base), encoding="utf-8")
    prepare_medium(parse_config(cfg.read_text()), str(base / "usb" / "Mo"), "Mo", PASS)
    assert run_cli("-c", str(cfg), "run", password=PASS).returncode == 1  # yellow: same disk
    secret = base / "passphrase.txt"
    secret.write_text(PASS + "\n", encoding="utf-8")
    out = run_cli("-c", str(cfg), "report", "--format", "html", "-o", str(secret))
    assert out.returncode == 2 and "gibt es schon" in out.stderr
    assert secret.read_text(encoding="utf-8") == PASS + "\n"
    sheet = run_cli("-c", str(cfg), "emergency-sheet", "-o", str(cfg), password=PASS)
    assert sheet.returncode == 2 and cfg.read_text(encoding="utf-8").startswith("\nstate_dir")
    forced = run_cli("-c", str(cfg), "report", "--format", "html", "-o", str(secret), "--force")
    assert forced.returncode == 0 and secret.read_text(encoding="utf-8").startswith("<!DOCTYPE")
    new = base / "blatt.pdf"
    assert run_cli("-c", str(cfg), "emergency-sheet", "-o", str(new), password=PASS).returncode == 0
    assert new.stat().st_mode & 0o777 == 0o600  # the recovery key is on it


def test_a_state_folder_of_another_user_or_a_planted_link_is_refused(world_dir: Path) -> None:
    generate(world_dir / "server", size_mb=1)
    victim = world_dir / "victim"
    victim.mkdir(mode=0o755)
    (victim / "secret.txt").write_text("nur root\n", encoding="utf-8")
    state = world_dir / "state"
    state.mkdir()
    os.chown(state, 65534, 65534)  # nobody's folder
    cfg = world_dir / "praxis.toml"
    cfg.write_text(config_text(world_dir), encoding="utf-8")
    out = run_cli("-c", str(cfg), "run", password=PASS)
    assert out.returncode == 2 and "gehört einem anderen Benutzer" in out.stderr
    os.chown(state, 0, 0)
    state.chmod(0o700)
    os.symlink(victim / "secret.txt", state / "run.lock")  # planted before the folder was ours
    out = run_cli("-c", str(cfg), "run", password=PASS)
    assert out.returncode == 2 and "ist eine Verknüpfung" in out.stderr
    assert (victim / "secret.txt").read_text(encoding="utf-8") == "nur root\n"
    assert victim.stat().st_mode & 0o777 == 0o755


def test_a_passphrase_file_others_can_read_is_refused(base: Path) -> None:
    pw = base / "pw.txt"
    pw.write_text(PASS + "\n", encoding="utf-8")
    pw.chmod(0o644)
    cfg = base / "praxis.toml"
    repository = f'[repository]\npassword_file = "{pw}"\n[practice]'
    cfg.write_text(config_text(base).replace("[practice]", repository), encoding="utf-8")
    prepare_medium(parse_config(cfg.read_text()), str(base / "usb" / "Mo"), "Mo", PASS)
    out = run_cli("-c", str(cfg), "run", password=None)
    protocol = run_cli("-c", str(cfg), "report", password=None).stdout
    assert out.returncode == 2 and "readable by other users (mode 644)" in protocol
    ready = json.loads(run_cli("-c", str(cfg), "--json", "config", "check", password=None).stdout)
    assert "ready.no_passphrase" in {i["code"] for i in ready["items"]}
    pw.chmod(0o600)
    ready = json.loads(run_cli("-c", str(cfg), "--json", "config", "check", password=None).stdout)
    assert "ready.no_passphrase" not in {i["code"] for i in ready["items"]}


def test_a_copied_label_file_cannot_push_the_real_medium_aside(base: Path) -> None:
    cfg = parse_config(config_text(base))
    prepare_medium(cfg, str(base / "usb" / "Mo"), "Mo", PASS)
    fake = base / "usb" / "AAA"
    fake.mkdir()
    (fake / "praxisbackup-medium.json").write_bytes(
        (base / "usb" / "Mo" / "praxisbackup-medium.json").read_bytes()
    )
    p = NightlyJob(cfg, passphrase=PASS).run()
    assert p.status == "yellow" and p.snapshot_id and p.medium_path == str(base / "usb" / "Mo")
    problems = [f.params.get("problem", "") for f in p.findings if f.code == "medium_problem"]
    assert any("copied label file" in x for x in problems)


def test_readiness_sees_what_would_make_the_night_red(base: Path) -> None:
    pidfile = base / "db.pid"
    service = f"{shlex.quote(sys.executable)} -m praxisbackup.practice.sample_service"
    services = (
        '[[services]]\nname = "Datenbank"\nkind = "command"\n'
        f'stop = "{service} stop {pidfile}"\nstart = "{service} start {pidfile}"\n'
        'is_running = "no-such-command-xyz"\n'
        '[[services]]\nname = "OracleServiceM1"\nkind = "windows"\n'
    )
    cfg = parse_config(config_text(base, services=services))
    prepare_medium(cfg, str(base / "usb" / "Mo"), "Mo", "ein anderes Passwort")
    os.environ["PRAXISBACKUP_PASSWORD"] = PASS
    try:
        result = check(cfg, str(base / "root"))
    finally:
        del os.environ["PRAXISBACKUP_PASSWORD"]
    missing = {
        (i.code, i.params.get("service") or i.params.get("label"))
        for i in result.items
        if i.level == "missing"
    }
    assert ("ready.passphrase_wrong", "Mo") in missing
    assert ("ready.service_unusable", "Datenbank") in missing  # is_running: exit 127
    assert ("ready.service_unusable", "OracleServiceM1") in missing  # Windows only
    assert result.exit_code == 2


def test_a_schedule_for_another_configuration_does_not_count(base: Path) -> None:
    cfg = base / "praxis.toml"
    cfg.write_text(config_text(base), encoding="utf-8")
    other = base / "andere.toml"
    other.write_text(config_text(base), encoding="utf-8")
    root = base / "root"
    run_cli("-c", str(other), "schedule", "install", "--root", str(root), check=True)
    ready = json.loads(
        run_cli("-c", str(cfg), "--json", "config", "check", "--root", str(root)).stdout
    )
    assert "ready.no_schedule" in {i["code"] for i in ready["items"]}


def test_a_weekend_night_without_medium_is_not_an_alarm(base: Path) -> None:
    rotation = (
        '[rotation]\ndaily = ["Mo", "Di", "Mi", "Do", "Fr"]\n'
        f"quarter_end = {json.dumps([f'Quartal {n}' for n in range(1, 10)])}\n"
    )
    cfg = parse_config(config_text(base, extra=rotation))
    saturday = datetime(2026, 11, 28, 22, 30, tzinfo=TZ)
    p = NightlyJob(cfg, passphrase=PASS, clock=lambda: saturday).run()
    assert p.status == "green" and not p.planned and not p.snapshot_id
    assert [f.code for f in p.findings] == ["no_backup_planned"]
    friday = NightlyJob(cfg, passphrase=PASS, clock=lambda: saturday - timedelta(days=1)).run()
    assert friday.status == "red" and "no_medium" in [f.code for f in friday.findings]


def test_careless_staff_input_gets_german_one_line_answers(base: Path) -> None:
    cfg = base / "praxis.toml"
    cfg.write_text("\ufeff" + config_text(base), encoding="utf-8")  # Notepad's byte-order mark
    prepare_medium(parse_config(config_text(base)), str(base / "usb" / "Mo"), "Mo", PASS)
    plan = run_cli("-c", str(cfg), "plan", "--from", "30.12.9999", "--days", "5")
    assert plan.returncode == 2 and "kein Datum" in plan.stderr and "Traceback" not in plan.stderr
    assert run_cli("-c", str(cfg), "plan", "--days", "-5").returncode == 2
    gone = run_cli("-c", str(cfg), "absence", "add", "--from", "01.01.2020", "--to", "02.01.2020")
    assert gone.returncode == 2 and "nicht schon vorbei sein" in gone.stderr
    later = (datetime.now() + timedelta(days=3)).strftime("%d.%m.%Y")
    added = run_cli("-c", str(cfg), "absence", "add", "--from", later, "--to", later, check=True)
    assert "Abwesend von" in added.stdout
    listed = run_cli("-c", str(cfg), "absence", "list", check=True).stdout
    number = listed.split()[0]
    removed = run_cli("-c", str(cfg), "absence", "remove", number, check=True)
    assert "entfernt" in removed.stdout
    assert "Keine Abwesenheiten" in run_cli("-c", str(cfg), "absence", "list").stdout
    assert run_cli("-c", str(cfg), "run", password=PASS).returncode == 1  # the medium is used
    moved = run_cli("-c", str(cfg), "medium", "move", "Mo", "außer-haus")
    assert moved.returncode == 2 and "noch angeschlossen" in moved.stderr  # still plugged in
    listing = run_cli("-c", str(cfg), "medium", "list", check=True).stdout
    assert "angeschlossen" in listing
    (base / "usb" / "Mo").rename(base / "usb-weg")  # unplugged
    assert "in der Praxis (abgezogen)" in run_cli("-c", str(cfg), "medium", "list").stdout
    moved = run_cli("-c", str(cfg), "medium", "move", "Mo", "Außer Haus", "--by", "Anna")
    assert moved.returncode == 0 and "„Mo“ ist jetzt: außer Haus" in moved.stdout
    ack = run_cli("-c", str(cfg), "ack", check=True, env={"USER": "empfang2"})
    assert "Kontrolle bestätigt von empfang2" in ack.stdout


def test_file_names_cannot_write_to_the_terminal(base: Path) -> None:
    evil = base / "server" / "Praxisarchiv" / "evil\x1b[31mROT\x1b[0m\nZeile2.txt"
    evil.write_text("x", encoding="utf-8")
    repo = base / "repo"
    run_cli("init", repo=repo, check=True)
    run_cli("backup", str(base / "server" / "Praxisarchiv"), repo=repo, check=True)
    found = run_cli("find", "evil*", repo=repo, check=True).stdout
    assert "\x1b" not in found and "evil\\x1b[31mROT\\x1b[0m\\x0aZeile2.txt" in found
