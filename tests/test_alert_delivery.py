"""Alarms are delivered once per recipient, or say why not (issue #11), against the real SMTP
server of tests/smtpserver.py (which refuses every address @abgelehnt.test with 550)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from conftest import run_cli
from praxisbackup.app.job import NightlyJob
from praxisbackup.model.config import Config, parse_config
from praxisbackup.model.locations import catalog_path
from praxisbackup.notify.mail import build_message
from praxisbackup.notify.outbox import RED, YELLOW, Outbox
from smtpserver import PASSWORD, SmtpServer
from test_alerts import MONDAY_NIGHT, TZ, config_text, received, smtp  # noqa: F401 - fixture

PEOPLE = ["anna@praxis-mueller.de", "gibt-es-nicht@abgelehnt.test", "ben@praxis-mueller.de"]


def alarm(cfg: Config) -> Outbox:
    outbox = Outbox(catalog_path(cfg))
    assert cfg.notify.smtp is not None
    msg = build_message(cfg.notify.smtp.sender, PEOPLE, "[ROT] Datensicherung", "Bitte prüfen.")
    outbox.enqueue("run-red", msg, MONDAY_NIGHT)
    return outbox


def test_a_refused_recipient_gets_a_finding_and_the_others_one_copy(
    smtp: SmtpServer,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    cfg = parse_config(config_text(tmp_path, smtp))
    outbox = alarm(cfg)
    first = outbox.deliver(cfg.notify.smtp, MONDAY_NIGHT, force=True)
    assert [f.severity for f in first] == [YELLOW]
    assert "recipient gibt-es-nicht@abgelehnt.test refused by the mail server (550" in first[0].text
    for hour in range(1, 5):  # later runs, serve, today: nothing is sent again
        assert outbox.deliver(cfg.notify.smtp, MONDAY_NIGHT + timedelta(hours=hour), True) == []
    mails = received(smtp)
    assert len(mails) == 1
    assert sorted(mails[0][0]) == ["anna@praxis-mueller.de", "ben@praxis-mueller.de"]
    assert outbox.delivered_to(1) == ["anna@praxis-mueller.de", "ben@praxis-mueller.de"]
    (shown,) = outbox.pending(MONDAY_NIGHT + timedelta(days=1))
    assert shown.refused == ["gibt-es-nicht@abgelehnt.test"]
    assert "recipient refused by the mail server" in shown.last_error
    assert outbox.pending(MONDAY_NIGHT + timedelta(days=8)) == []  # a week later: history


def test_an_alert_is_given_up_after_its_attempts_and_becomes_red(
    smtp: SmtpServer,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    text = config_text(tmp_path, smtp).replace(
        "timeout_seconds = 10", "timeout_seconds = 10\nmax_attempts = 3"
    )
    cfg = parse_config(text)
    outbox = alarm(cfg)
    smtp.stop()
    for hour in range(3):
        findings = outbox.deliver(cfg.notify.smtp, MONDAY_NIGHT + timedelta(hours=hour), True)
        assert [f.severity for f in findings] == [YELLOW] and "connect" in findings[0].text
    given_up = outbox.deliver(cfg.notify.smtp, MONDAY_NIGHT + timedelta(hours=3), True)
    assert [f.severity for f in given_up] == [RED]
    assert "alert given up after 3 attempts" in given_up[0].text
    smtp.start()
    assert outbox.deliver(cfg.notify.smtp, MONDAY_NIGHT + timedelta(hours=4), True) == []
    assert received(smtp) == []
    (shown,) = outbox.pending(MONDAY_NIGHT + timedelta(hours=5))
    assert shown.gave_up and shown.last_error.startswith("given up after 3 attempts")


def test_an_alert_too_old_to_matter_is_given_up(
    smtp: SmtpServer,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    text = config_text(tmp_path, smtp).replace(
        "timeout_seconds = 10", "timeout_seconds = 10\ngive_up_after_hours = 24"
    )
    cfg = parse_config(text)
    outbox = alarm(cfg)
    smtp.stop()
    assert outbox.deliver(cfg.notify.smtp, MONDAY_NIGHT, True)[0].severity == YELLOW
    late = outbox.deliver(cfg.notify.smtp, MONDAY_NIGHT + timedelta(hours=25), True)
    assert [f.severity for f in late] == [RED]


def test_the_protocol_and_today_name_a_refused_recipient(
    smtp: SmtpServer,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    cfg_path = tmp_path / "praxis.toml"
    cfg_path.write_text(
        config_text(tmp_path, smtp).replace(
            'service_partner = ["service@it-partner.de"]',
            'service_partner = ["service@abgelehnt.test"]',
        )
    )
    cfg = parse_config(cfg_path.read_text())
    protocol = NightlyJob(cfg, clock=lambda: MONDAY_NIGHT).run()  # red: no medium attached
    problems = [f for f in protocol.findings if f.code == "alert_problem"]
    assert problems and all(f.level == YELLOW for f in problems)
    for finding in problems:
        assert "service@abgelehnt.test refused by the mail server" in finding.params["problem"]
    mails = received(smtp)  # the red run and the missed-backup alert, each once
    assert len(mails) == len(problems)
    assert all("service@abgelehnt.test" not in rcpts for rcpts, _m in mails)
    # `today` runs with the real clock: an alert refused today is shown there.
    now = datetime.now(TZ)
    assert cfg.notify.smtp is not None
    outbox = Outbox(catalog_path(cfg))
    msg = build_message(cfg.notify.smtp.sender, PEOPLE, "[GELB] Datensicherung", "Hinweis")
    outbox.enqueue("run-yellow", msg, now)
    outbox.deliver(cfg.notify.smtp, now, force=True)
    today = run_cli("-c", str(cfg_path), "today", env={"PRAXISBACKUP_SMTP_PASSWORD": PASSWORD})
    assert today.returncode == 2, today.stderr  # red: the last run failed
    assert "[GELB] Datensicherung" in today.stdout
    assert "gibt-es-nicht@abgelehnt.test (550" in today.stdout
