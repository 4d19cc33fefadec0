"""E-mail against a real SMTP server with STARTTLS and AUTH; outbox; the daily check's timing."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email import message_from_bytes, policy
from io import BytesIO
from pathlib import Path

import pytest
from pypdf import PdfReader

from conftest import run_cli
from praxisbackup.app.daily import DailyCheck
from praxisbackup.app.job import NightlyJob
from praxisbackup.catalog.runs import Catalog
from praxisbackup.model.config import Config, parse_config
from praxisbackup.model.locations import catalog_path
from praxisbackup.model.protocol import RunProtocol
from praxisbackup.notify.outbox import Outbox
from praxisbackup.practice.sample import generate
from smtpserver import PASSWORD, USER, SmtpServer

TZ = timezone(timedelta(hours=1))
MONDAY_NIGHT = datetime(2026, 11, 30, 22, 30, tzinfo=TZ)


@pytest.fixture
def smtp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpServer]:
    server = SmtpServer(tmp_path)
    server.start()
    monkeypatch.setenv("PRAXISBACKUP_SMTP_PASSWORD", PASSWORD)
    monkeypatch.setenv("PRAXISBACKUP_PASSWORD", "pw")
    try:
        yield server
    finally:
        server.stop()


def config_text(tmp: Path, server: SmtpServer, extra: str = "", smtp_extra: str = "") -> str:
    generate(tmp / "server", size_mb=1) if not (tmp / "server").exists() else None
    return f"""
state_dir = "{tmp / "state"}"
[practice]
name = "Praxis Dr. Müller"
[[sources]]
label = "Archiv"
path = "{tmp / "server" / "Praxisarchiv"}"
[media]
candidates = ["{tmp / "nothing-attached-*"}"]
[notify.smtp]
host = "127.0.0.1"
port = {server.port}
security = "starttls"
username = "{USER}"
sender = "sicherung@praxis-mueller.de"
ca_file = "{server.cert}"
timeout_seconds = 10
{smtp_extra}
[notify.recipients]
responsible = ["anna@praxis-mueller.de"]
deputy = ["ben@praxis-mueller.de"]
service_partner = ["service@it-partner.de"]
owner = ["dr.mueller@praxis-mueller.de"]
{extra}
"""


def received(server: SmtpServer) -> list[tuple[list[str], object]]:
    return [
        (rcpts, message_from_bytes(raw, policy=policy.default))
        for _f, rcpts, raw in server.recorder.messages
    ]


def test_red_run_mail_subject_body_attachments_and_recipients(
    smtp: SmtpServer, tmp_path: Path
) -> None:
    cfg = parse_config(config_text(tmp_path, smtp))
    record(cfg, datetime(2026, 11, 27, 22, 30, tzinfo=TZ))  # Friday's backup was fine
    DailyCheck(cfg).ack("Anna", "", datetime(2026, 11, 30, 8, 0, tzinfo=TZ))
    p = NightlyJob(cfg, clock=lambda: MONDAY_NIGHT).run()
    assert p.status == "red"
    mails = received(smtp)
    assert len(mails) == 1
    rcpts, msg = mails[0]
    assert sorted(rcpts) == ["anna@praxis-mueller.de", "service@it-partner.de"]
    assert msg[
        "Subject"
    ] == "[ROT] Datensicherung fehlgeschlagen – Praxis Dr. Müller – Sa 28.11.2026" or msg[
        "Subject"
    ].startswith("[ROT] Datensicherung fehlgeschlagen – Praxis Dr. Müller – ")
    body = msg.get_body(preferencelist=("plain",)).get_content()  # type: ignore[attr-defined]
    assert "Kein Sicherungsmedium angeschlossen" in body and "Servicepartner informieren" in body
    attachments = {a.get_filename(): a.get_content() for a in msg.iter_attachments()}  # type: ignore[attr-defined]
    pdf = next(v for k, v in attachments.items() if k.endswith(".pdf"))
    assert "ROT" in PdfReader(BytesIO(pdf)).pages[0].extract_text()
    html = next(v for k, v in attachments.items() if k.endswith(".html"))
    assert "<h1>Sicherungsprotokoll – Praxis Dr. Müller</h1>" in html


def test_absent_responsible_routes_to_the_deputy(smtp: SmtpServer, tmp_path: Path) -> None:
    cfg = parse_config(config_text(tmp_path, smtp))
    record(cfg, datetime(2026, 11, 27, 22, 30, tzinfo=TZ))
    DailyCheck(cfg).ack("Ben", "", datetime(2026, 11, 30, 8, 0, tzinfo=TZ))
    DailyCheck(cfg).add_absence(
        datetime(2026, 11, 23).date(), datetime(2026, 12, 4).date(), "Ben", "Urlaub", MONDAY_NIGHT
    )
    NightlyJob(cfg, clock=lambda: MONDAY_NIGHT).run()
    assert sorted(received(smtp)[0][0]) == ["ben@praxis-mueller.de", "service@it-partner.de"]


def test_smtp_down_outbox_then_delivered_exactly_once(smtp: SmtpServer, tmp_path: Path) -> None:
    cfg_path = tmp_path / "praxis.toml"
    # The night is a fixed date, the flush runs now: the alert must not be too old to deliver
    # whenever the suite runs (with the default 72 hours it was given up from 3 December on).
    cfg_path.write_text(config_text(tmp_path, smtp, smtp_extra="give_up_after_hours = 876000"))
    cfg = parse_config(cfg_path.read_text())
    record(cfg, datetime(2026, 11, 27, 22, 30, tzinfo=TZ))
    DailyCheck(cfg).ack("Anna", "", datetime(2026, 11, 30, 8, 0, tzinfo=TZ))
    smtp.stop()
    p = NightlyJob(cfg, clock=lambda: MONDAY_NIGHT).run()
    assert any(f.code == "alert_problem" and "connect" in f.params["problem"] for f in p.findings)
    outbox = Outbox(str(tmp_path / "state" / "catalog.sqlite"))
    assert len(outbox.pending()) == 1
    smtp.start()
    out = run_cli(
        "-c", str(cfg_path), "notify", "flush", env={"PRAXISBACKUP_SMTP_PASSWORD": PASSWORD}
    )
    assert out.returncode == 0, out.stdout + out.stderr
    again = run_cli(
        "-c", str(cfg_path), "notify", "flush", env={"PRAXISBACKUP_SMTP_PASSWORD": PASSWORD}
    )
    assert again.returncode == 0
    assert len(received(smtp)) == 1 and outbox.pending() == []


def test_notify_test_names_what_failed(smtp: SmtpServer, tmp_path: Path) -> None:
    cfg_path = tmp_path / "praxis.toml"
    cfg_path.write_text(config_text(tmp_path, smtp))
    ok = run_cli(
        "-c", str(cfg_path), "notify", "test", env={"PRAXISBACKUP_SMTP_PASSWORD": PASSWORD}
    )
    assert ok.returncode == 0, ok.stderr
    wrong = run_cli(
        "-c", str(cfg_path), "notify", "test", env={"PRAXISBACKUP_SMTP_PASSWORD": "falsch"}
    )
    assert wrong.returncode == 2 and "auth: the SMTP server refused user 'praxis'" in wrong.stderr
    assert "falsch" not in wrong.stderr
    refused = run_cli(
        "-c",
        str(cfg_path),
        "notify",
        "test",
        "--to",
        "x@abgelehnt.test",
        env={"PRAXISBACKUP_SMTP_PASSWORD": PASSWORD},
    )
    assert refused.returncode == 2 and "recipient:" in refused.stderr
    no_ca = tmp_path / "noca.toml"
    no_ca.write_text(config_text(tmp_path, smtp).replace(f'ca_file = "{smtp.cert}"', ""))
    tls = run_cli("-c", str(no_ca), "notify", "test", env={"PRAXISBACKUP_SMTP_PASSWORD": PASSWORD})
    assert tls.returncode == 2 and "tls:" in tls.stderr and "certificate" in tls.stderr.lower()
    smtp.stop()
    down = run_cli(
        "-c", str(cfg_path), "notify", "test", env={"PRAXISBACKUP_SMTP_PASSWORD": PASSWORD}
    )
    assert down.returncode == 2 and "connect:" in down.stderr
    dns = tmp_path / "dns.toml"
    dns.write_text(
        config_text(tmp_path, smtp).replace(
            'host = "127.0.0.1"', 'host = "smtp.nicht-vorhanden.invalid"'
        )
    )
    bad = run_cli("-c", str(dns), "notify", "test", env={"PRAXISBACKUP_SMTP_PASSWORD": PASSWORD})
    assert bad.returncode == 2 and "dns:" in bad.stderr


def record(cfg: Config, started: datetime, status: str = "green") -> None:
    p = RunProtocol(
        run_id=started.strftime("%Y%m%d-%H%M%S"),
        practice="x",
        host="h",
        started=started.isoformat(),
        program_version="t",
        finished=(started + timedelta(minutes=20)).isoformat(),
    )
    if status == "red":
        p.add("red", "no_medium", candidates="E:", expected="Mo")
    Catalog(catalog_path(cfg)).record_run(p)


def queued_bodies(cfg: Config) -> list[str]:
    """The text of every queued message, oldest first (read from the outbox's table)."""
    with sqlite3.connect(catalog_path(cfg)) as db:
        rows = db.execute("SELECT message FROM outbox ORDER BY id").fetchall()
    bodies = []
    for (raw,) in rows:
        msg = message_from_bytes(raw, policy=policy.default)
        part = msg.get_body(("plain",))
        assert part is not None
        bodies.append(str(part.get_content()))
    return bodies


def subjects(cfg: Config) -> list[str]:
    return [p.subject for p in Outbox(catalog_path(cfg)).pending()]


def test_missed_backup_repeats_then_back_to_normal_once(tmp_path: Path) -> None:
    server = SmtpServer(tmp_path)  # configured, not running: messages stay in the outbox
    cfg = parse_config(config_text(tmp_path, server))
    check = DailyCheck(cfg)
    record(cfg, datetime(2026, 11, 26, 22, 30, tzinfo=TZ))  # Thursday night: fine
    check.ack("Anna", "", datetime(2026, 11, 27, 8, 0, tzinfo=TZ))
    # Friday 27th 06:59: not yet late; 07:05: no backup since Thursday noon? There is one.
    assert not check.evaluate(datetime(2026, 11, 27, 7, 5, tzinfo=TZ)).missed
    # Monday 07:05: nothing since Friday noon -> alert, once; repeated after six hours.
    state = check.evaluate(datetime(2026, 11, 30, 7, 5, tzinfo=TZ))
    assert state.missed and len(state.messages) == 1
    assert "Keine Datensicherung in der letzten Nacht" in state.messages[0]
    assert not check.evaluate(datetime(2026, 11, 30, 9, 0, tzinfo=TZ)).messages
    assert len(check.evaluate(datetime(2026, 11, 30, 13, 10, tzinfo=TZ)).messages) == 1
    record(cfg, datetime(2026, 11, 30, 22, 30, tzinfo=TZ))
    normal = check.evaluate(datetime(2026, 12, 1, 7, 30, tzinfo=TZ))
    assert normal.back_to_normal and "Datensicherung läuft wieder" in normal.messages[0]
    assert not check.evaluate(datetime(2026, 12, 1, 8, 0, tzinfo=TZ)).back_to_normal
    # A holiday morning (Christmas) expects nothing.
    assert not check.evaluate(datetime(2026, 12, 25, 9, 0, tzinfo=TZ)).missed
    assert len(subjects(cfg)) == 3


def test_unconfirmed_check_escalates_to_deputy_then_owner(tmp_path: Path) -> None:
    server = SmtpServer(tmp_path)
    cfg = parse_config(config_text(tmp_path, server))
    check = DailyCheck(cfg)
    record(cfg, datetime(2026, 11, 30, 22, 30, tzinfo=TZ))
    assert not check.evaluate(datetime(2026, 12, 1, 9, 0, tzinfo=TZ)).escalated_to
    assert check.evaluate(datetime(2026, 12, 1, 10, 5, tzinfo=TZ)).escalated_to == [
        "ben@praxis-mueller.de"
    ]
    assert check.evaluate(datetime(2026, 12, 1, 10, 30, tzinfo=TZ)).escalated_to == []
    owner = check.evaluate(datetime(2026, 12, 1, 12, 5, tzinfo=TZ)).escalated_to
    assert owner == ["dr.mueller@praxis-mueller.de", "service@it-partner.de"]
    runs = check.ack("Anna", "Medium Di eingelegt", datetime(2026, 12, 1, 12, 30, tzinfo=TZ))
    assert len(runs) == 1 and check.evaluate(datetime(2026, 12, 1, 13, 0, tzinfo=TZ)).acknowledged
    evidence = check.escalations()
    assert [e["kind"] for e in evidence] == ["ack-deputy", "ack-owner"]
    assert check.acks()[0]["by"] == "Anna"
    # The deputy is told what is unconfirmed, and that the night itself was fine.
    deputy_mail = queued_bodies(cfg)[0]
    assert "Noch nicht bestätigt:" in deputy_mail and "30.11.2026" in deputy_mail
    assert ": GRÜN, Medium" in deputy_mail
    assert "FEHLGESCHLAGEN" not in deputy_mail


def test_the_deputy_learns_that_an_unconfirmed_night_failed(tmp_path: Path) -> None:
    cfg = parse_config(config_text(tmp_path, SmtpServer(tmp_path)))
    record(cfg, datetime(2026, 11, 30, 22, 30, tzinfo=TZ), status="red")
    DailyCheck(cfg).evaluate(datetime(2026, 12, 1, 10, 5, tzinfo=TZ))
    (subject,) = [s for s in subjects(cfg) if "nicht kontrolliert" in s]
    assert subject.startswith("[ROT]")
    body = next(b for b in queued_bodies(cfg) if "Noch nicht bestätigt:" in b)
    assert "30.11.2026" in body and ": ROT, Medium" in body
    assert "Die letzte Nacht ist FEHLGESCHLAGEN" in body


def test_heartbeat_pings_and_today_shows_undelivered_alerts(tmp_path: Path) -> None:
    import http.server
    import threading

    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args: object) -> None:
            return

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        server = SmtpServer(tmp_path)  # not started: mail stays in the outbox
        url = f"http://127.0.0.1:{httpd.server_address[1]}/ping/praxis"
        cfg_path = tmp_path / "praxis.toml"
        cfg_path.write_text(
            config_text(tmp_path, server, extra=f'[notify]\nheartbeat_url = "{url}"')
        )
        out = run_cli(
            "-c", str(cfg_path), "run", password="pw", env={"PRAXISBACKUP_SMTP_PASSWORD": PASSWORD}
        )
        assert out.returncode == 2
        assert hits == ["/ping/praxis/start", "/ping/praxis/fail"]
        today = run_cli(
            "-c", str(cfg_path), "today", env={"PRAXISBACKUP_SMTP_PASSWORD": PASSWORD}
        ).stdout
        assert "Nicht zugestellte Benachrichtigung: [ROT] Datensicherung fehlgeschlagen" in today
        assert "connect:" in today
    finally:
        httpd.shutdown()
