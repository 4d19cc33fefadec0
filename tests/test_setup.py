"""`setup` from nothing to a night that is green: with an answer file (as a service partner
sets up many practices), interactively at a console (German), and the refusals."""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pexpect
import pytest

from conftest import run_cli
from fsimages import ext4_image
from praxisbackup.media.selection import backup_day, plan_from_config
from praxisbackup.model.config import parse_config
from praxisbackup.practice.sample import generate
from smtpserver import PASSWORD, USER, SmtpServer

DAILY = ["Mo", "Di", "Mi", "Do", "Fr"]
QUARTER = [f"Quartal {n}" for n in range(1, 10)]


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    server = SmtpServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def database_service(base: Path) -> dict[str, str]:
    """A real background process standing in for the database, controlled by commands."""
    pidfile = base / "db.pid"
    service = f"{shlex.quote(sys.executable)} -m praxisbackup.practice.sample_service"
    return {
        "command_start": f"{service} start {pidfile}",
        "command_stop": f"{service} stop {pidfile}",
        "command_is_running": f"{service} status {pidfile}",
    }


def toml_value(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def answer_file(
    base: Path, server: SmtpServer, media: Path, prepare: list[str] | None = None
) -> Path:
    answers = {
        "language": "de",
        "practice_name": "Praxis Dr. Müller",
        "state": "BY",
        "search_roots": [str(base / "server")],
        "service_kind": "command",
        **database_service(base),
        "media_candidates": [str(media / "medium-*")],
        "daily": DAILY,
        "quarter_end": QUARTER,
        "smtp_host": "127.0.0.1",
        "smtp_port": server.port,
        "smtp_security": "starttls",
        "smtp_username": USER,
        "smtp_sender": "sicherung@praxis-mueller.de",
        "smtp_password": PASSWORD,
        "smtp_ca_file": str(server.cert),
        "schedule_at": "21:45",
        "state_dir": str(base / "state"),
    }
    lines = [f"{k} = {toml_value(v)}" for k, v in answers.items()]
    lines.append("[prepare_media]")
    for label in [*DAILY, *QUARTER] if prepare is None else prepare:
        lines.append(f"{toml_value(label)} = {toml_value(str(media / f'medium-{label}'))}")
    people = {
        "responsible": ("Anna Schmidt", "0821 1234-10", "empfang@praxis-mueller.de"),
        "deputy": ("Bernd Meier", "0821 1234-11", "vertretung@praxis-mueller.de"),
        "owner": ("Dr. Eva Müller", "0171 2345678", "dr.mueller@praxis-mueller.de"),
        "service_partner": ("IT-Partner Kurz", "0821 98765", "support@it-kurz.de"),
    }
    for role, (name, phone, email) in people.items():
        lines += [f"[{role}]", f"name = {toml_value(name)}", f"phone = {toml_value(phone)}"]
        lines.append(f"email = {toml_value(email)}")
    path = base / "antworten.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_answer_file_setup_ends_ready_and_the_night_is_green(
    tmp_path: Path, smtp: SmtpServer
) -> None:
    generate(tmp_path / "server", size_mb=2)
    cfg = tmp_path / "etc" / "praxisbackup.toml"
    with ext4_image(tmp_path, 200) as usb:
        answers = answer_file(tmp_path, smtp, usb)
        out = run_cli(
            "setup",
            "--answers",
            str(answers),
            "--yes",
            "-o",
            str(cfg),
            "--schedule-root",
            str(tmp_path / "root"),
            password=None,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert "CGM M1 PRO gefunden" in out.stdout and "BEREIT" in out.stdout
        assert "Testnachricht gesendet" in out.stdout
        # The passphrase is shown once and stored where only the nightly run can read it.
        passphrase_file = tmp_path / "etc" / "passphrase.txt"
        secret = passphrase_file.read_text(encoding="utf-8").strip()
        assert secret in out.stdout and len(secret) == 47
        assert stat.S_IMODE(passphrase_file.stat().st_mode) == 0o600
        config = parse_config(cfg.read_text(encoding="utf-8"), str(cfg))
        assert config.practice.state == "BY" and config.practice.name == "Praxis Dr. Müller"
        assert config.repository.password_file == str(passphrase_file)
        assert config.services[0].kind == "command" and config.services[0].check_closed
        assert config.contacts.deputy.phone == "0821 1234-11"
        assert config.notify.recipients.service_partner == ["support@it-kurz.de"]
        smtp_file = tmp_path / "etc" / "smtp-password.txt"
        assert config.notify.smtp is not None and config.notify.smtp.password_file == str(smtp_file)
        assert PASSWORD not in cfg.read_text(encoding="utf-8")  # never in the configuration
        assert stat.S_IMODE(smtp_file.stat().st_mode) == 0o600
        # The test message reached every recipient through the real server.
        (sender, rcpts, _body) = smtp.recorder.messages[-1]
        assert sender == "sicherung@praxis-mueller.de" and len(rcpts) == 4
        cron = (tmp_path / "root" / "etc" / "cron.d" / "praxisbackup").read_text()
        assert cron.startswith("45 21 * * * root ")
        sheet = tmp_path / "etc" / "Notfallblatt.pdf"
        assert stat.S_IMODE(sheet.stat().st_mode) == 0o600  # it holds the recovery key
        # Tonight's medium stays attached; the others go off-site (out of the candidate places).
        plan = plan_from_config(config)
        assert plan is not None
        slot = plan.slot(backup_day(datetime.now().astimezone()))
        tonight = slot.label if slot else "Mo"
        for label in [*DAILY, *QUARTER]:
            if label != tonight:
                (usb / f"medium-{label}").rename(usb / f"offsite-{label}")
        check = run_cli(
            "-c", str(cfg), "config", "check", "--root", str(tmp_path / "root"), password=None
        )
        assert check.returncode == 0, check.stdout
        assert "BEREIT: Die Einstellungen reichen für eine grüne Nacht." in check.stdout
        service = database_service(tmp_path)
        subprocess.run(service["command_start"], shell=True, check=True)
        try:
            night = run_cli("-c", str(cfg), "--json", "run", password=None)
        finally:
            subprocess.run(service["command_stop"], shell=True, check=True)
        protocol = json.loads(night.stdout)
        assert night.returncode == 0 and protocol["status"] == "green", protocol["findings"]
        actions = [e["action"] for e in protocol["services"]]
        assert actions == ["found running", "stopped", "started"]


def test_readiness_names_what_is_missing_and_exits_2(tmp_path: Path, smtp: SmtpServer) -> None:
    generate(tmp_path / "server", size_mb=1)
    cfg = tmp_path / "praxisbackup.toml"
    with ext4_image(tmp_path, 100) as usb:
        # Only one medium prepared now, the SMTP server down for the test message.
        answers = answer_file(tmp_path, smtp, usb, prepare=["Mo"])
        smtp.stop()
        out = run_cli(
            "setup",
            "--answers",
            str(answers),
            "--yes",
            "-o",
            str(cfg),
            "--no-schedule",
            password=None,
        )
        assert out.returncode == 2
        assert "Testnachricht NICHT gesendet" in out.stdout and "connect" in out.stdout
        check = run_cli(
            "-c", str(cfg), "--json", "config", "check", "--root", str(tmp_path), password=None
        )
        assert check.returncode == 2
        missing = {i["code"] for i in json.loads(check.stdout)["items"] if i["level"] == "missing"}
        assert missing == {"ready.no_schedule", "ready.media_unregistered", "ready.mail_untested"}
        unregistered = next(
            i for i in json.loads(check.stdout)["items"] if i["code"] == "ready.media_unregistered"
        )
        assert unregistered["labels"].startswith("Di, Mi, Do, Fr, Quartal 1")


def test_rotation_rule_broken_is_not_ready(tmp_path: Path, smtp: SmtpServer) -> None:
    generate(tmp_path / "server", size_mb=1)
    cfg = tmp_path / "praxisbackup.toml"
    with ext4_image(tmp_path, 60) as usb:
        answers = answer_file(tmp_path, smtp, usb)
        answers.write_text(
            answers.read_text(encoding="utf-8").replace(
                json.dumps(QUARTER, ensure_ascii=False), '["Q1", "Q2", "Q3", "Q4"]'
            ),
            encoding="utf-8",
        )
        out = run_cli(
            "setup",
            "--answers",
            str(answers),
            "--yes",
            "-o",
            str(cfg),
            "--no-test-mail",
            password=None,
        )
    # The configuration cannot even be built: the plan reuses archive media within two years.
    assert out.returncode == 2 and "holds the archive" in out.stderr and not cfg.exists()


def test_command_services_and_missing_answers(tmp_path: Path) -> None:
    generate(tmp_path / "server", size_mb=1)
    cfg = tmp_path / "c.toml"
    base = [
        "setup",
        "--root",
        str(tmp_path / "server"),
        "--practice",
        "Praxis Test",
        "--yes",
        "-o",
        str(cfg),
        "--no-schedule",
        "--no-test-mail",
        "--state-dir",
        str(tmp_path / "st"),
    ]
    no_commands = run_cli(*base, "--service-kind", "command", password=None)
    assert no_commands.returncode == 2
    assert "stop, start and is-running commands are required" in no_commands.stderr
    service = database_service(tmp_path)
    ok = run_cli(
        *base,
        "--service-kind",
        "command",
        "--stop",
        service["command_stop"],
        "--start",
        service["command_start"],
        "--is-running",
        service["command_is_running"],
        password=None,
    )
    assert ok.returncode == 2, ok.stderr  # valid, not ready yet (no media, no e-mail)
    config = parse_config(cfg.read_text(encoding="utf-8"))
    assert config.services[0].stop == service["command_stop"]
    nameless = run_cli(
        "setup",
        "--root",
        str(tmp_path / "server"),
        "--yes",
        "-o",
        str(tmp_path / "x.toml"),
        password=None,
    )
    assert nameless.returncode == 2 and "the practice's name is required" in nameless.stderr
    nowhere = run_cli(
        "setup",
        "--root",
        str(tmp_path / "leer"),
        "--practice",
        "x",
        "--yes",
        "-o",
        str(tmp_path / "y.toml"),
        password=None,
    )
    assert nowhere.returncode == 2
    assert "Keine CGM-M1-PRO-Installation (CompuMED\\M1) gefunden in" in nowhere.stderr
    assert "Traceback" not in nowhere.stderr + nameless.stderr + no_commands.stderr


def test_interactive_setup_at_a_console_in_german(tmp_path: Path) -> None:
    generate(tmp_path / "server", size_mb=1)
    cfg = tmp_path / "praxisbackup.toml"
    env = dict(os.environ, PRAXISBACKUP_KDF_N="1024", COLUMNS="200")
    env.pop("PRAXISBACKUP_PASSWORD", None)
    service = database_service(tmp_path)
    child = pexpect.spawn(
        sys.executable,
        [
            "-m",
            "praxisbackup.cli.main",
            "setup",
            "--root",
            str(tmp_path / "server"),
            "-o",
            str(cfg),
            "--schedule-root",
            str(tmp_path / "root"),
            "--state-dir",
            str(tmp_path / "state"),
        ],
        env=env,
        encoding="utf-8",
        timeout=60,
        # poll, not select: a pytest worker that ran many tests may hold descriptors past 1024
        use_poll=True,
    )
    child.expect("Name der Praxis")
    child.sendline("")  # required: asked again
    child.expect("Bitte etwas eingeben")
    child.expect("Name der Praxis")
    child.sendline("Praxis Dr. Schulz")
    child.expect("Bundesland")
    child.sendline("Bayern")  # not a state code: asked again
    child.expect("Bundesland")
    child.sendline("be")
    child.expect(r"Auch sichern: ifap praxisCENTER .*\[J/n\]")
    child.sendline("vielleicht")  # not an answer: asked again
    child.expect("Bitte mit j \\(ja\\) oder n \\(nein\\) antworten")
    child.sendline("ja")
    child.expect(r"Auch sichern: CGM PRAXISARCHIV")
    child.sendline("nein")
    child.expect("Wie werden Datenbank und Dienste beendet")
    child.sendline("command")
    for prompt, answer in (
        ("Befehl zum Beenden", service["command_stop"]),
        ("Befehl zum Starten", service["command_start"]),
        ("Befehl, der mit 0 endet", service["command_is_running"]),
    ):
        child.expect(prompt)
        child.sendline(answer)
    for role, name in (
        ("Verantwortliche Person", "Clara Vogel"),
        ("Vertretung", "Dirk Hahn"),
        ("Praxisinhaber/in", "Dr. Schulz"),
        ("Servicepartner", "IT Nord"),
    ):
        child.expect(f"{role} – Name")
        child.sendline(name)
        child.expect(f"{role} – Telefon")
        child.sendline("030 123")
        child.expect(f"{role} – E-Mail")
        child.sendline("")
    child.expect("Postausgangsserver")
    child.sendline("")
    child.expect("Wo erscheinen die Sicherungsmedien")
    child.sendline(str(tmp_path / "usb-*"))
    child.expect("Namen der Tagesmedien")
    child.sendline("Mo, Mo, Di, Mi, Do")
    child.expect("Jeder Name darf nur einmal vorkommen")
    child.expect("Namen der Tagesmedien")
    child.sendline("")
    child.expect("Namen der Quartalsmedien")
    child.sendline("")
    child.expect("Medium „Mo“ jetzt einrichten")
    child.sendline("")
    child.expect(r"Uhrzeit der nächtlichen Sicherung")
    child.sendline("25:99")
    child.expect("Bitte eine Uhrzeit wie 22:30 eingeben")
    child.expect(r"Uhrzeit der nächtlichen Sicherung")
    child.sendline("23:00")
    child.expect(pexpect.EOF)
    child.close()
    output = child.before or ""
    assert child.exitstatus == 2, output  # valid, but no media and no e-mail yet
    assert "Es wird nur jetzt angezeigt" in output and "NICHT BEREIT" in output
    config = parse_config(cfg.read_text(encoding="utf-8"))
    assert config.practice.state == "BE" and config.schedule.at == "23:00"
    assert config.contacts.responsible.name == "Clara Vogel"
    assert [s.label for s in config.sources] == ["CGM M1 PRO", "ifap praxisCENTER"]
