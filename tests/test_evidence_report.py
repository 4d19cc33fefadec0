"""The audit evidence report for a quarter of real history: every working night of Q4 2026 run
by the real nightly job (injectable clock) on media of a real disk, swapped as the plan says;
confirmations every morning (by the deputy while the responsible person is away), a night
without a medium, a night the server was off, a morning nobody confirmed (escalations), media
taken off-site by name, a restore test on another machine, the quarter-end archive. The report
is made by the real command line and its facts are checked through the PDF's text (pypdf); the
pages are rendered to PNG in test-output/report for people to look at.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from io import BytesIO
from pathlib import Path

import holidays
import pytest
from pypdf import PdfReader

from browser import output_dir
from conftest import run_cli
from fsimages import ext4_image
from praxisbackup import platform
from praxisbackup.app.daily import DailyCheck
from praxisbackup.app.drill import run_drill
from praxisbackup.app.evidence import evidence, parse_period
from praxisbackup.app.job import NightlyJob
from praxisbackup.app.medium import move_medium, open_medium
from praxisbackup.media.selection import plan_from_config, prepare_medium
from praxisbackup.model.config import Config, parse_config
from praxisbackup.report.evidence import evidence_pdf
from smtpserver import PASSWORD as SMTP_PASSWORD
from smtpserver import USER as SMTP_USER
from smtpserver import SmtpServer

PASS = "Quartal-Passwort 2026"
DAILY = ["Mo", "Di", "Mi", "Do", "Fr"]
QUARTER = [f"Quartal {n}" for n in range(1, 10)]
FIRST, LAST = date(2026, 10, 1), date(2026, 12, 31)
NO_MEDIUM = date(2026, 10, 14)  # nobody connected the disk
SERVER_OFF = date(2026, 11, 18)  # no run at all
UNCONFIRMED = date(2026, 12, 8)  # nobody confirms until the owner is told
ABSENT = (date(2026, 11, 2), date(2026, 11, 6))  # the responsible person's holiday
DRILL_DAY = datetime(2026, 11, 20, 14, 0)
PATIENT = "Befund Müller, Hans.pdf"


@dataclass
class History:
    base: Path
    config: Config
    config_path: Path
    env: dict[str, str]
    statuses: dict[date, str] = field(default_factory=dict)
    findings: dict[date, list[str]] = field(default_factory=dict)
    acks: int = 0
    quarter_label: str = ""
    hold_until: str = ""

    def report(self, *args: str) -> str:
        """Run ``praxisbackup report ...`` and return the PDF's text (all pages)."""
        target = self.base / f"report-{len(list(self.base.glob('report-*.pdf')))}.pdf"
        out = run_cli("-c", str(self.config_path), "report", *args, "-o", str(target), env=self.env)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == f"Geschrieben: {target}"
        self.last_pdf = target
        reader = PdfReader(BytesIO(target.read_bytes()))
        return "\n".join(page.extract_text() for page in reader.pages)


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute).astimezone()


def config_text(base: Path, disk: Path, mail: SmtpServer) -> str:
    return f"""
state_dir = "{base / "state"}"
[practice]
name = "Praxis Dr. Muster"
state = "NW"
[[sources]]
label = "Praxisdaten"
path = "{base / "Praxisdaten"}"
[media]
candidates = ["{disk}/slot-*"]
[rotation]
daily = {json.dumps(DAILY)}
quarter_end = {json.dumps(QUARTER)}
closed = ["2026-12-24"]
[notify.smtp]
host = "127.0.0.1"
port = {mail.port}
security = "starttls"
username = "{SMTP_USER}"
sender = "praxis@example.de"
ca_file = "{mail.cert}"
[notify.recipients]
responsible = ["empfang@example.de"]
deputy = ["vertretung@example.de"]
owner = ["dr.muster@example.de"]
service_partner = ["support@it-partner.example"]
[contacts.responsible]
name = "Anna Schmidt"
[contacts.deputy]
name = "Bernd Meier"
[contacts.owner]
name = "Dr. med. Eva Muster"
[contacts.service_partner]
name = "IT-Partner GmbH"
"""


def slug(label: str) -> str:
    return label.replace(" ", "-")


@pytest.fixture(scope="module")
def quarter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    base = tmp_path_factory.mktemp("quartal")
    data = base / "Praxisdaten"
    (data / "Befunde").mkdir(parents=True)
    (data / "Befunde" / PATIENT).write_bytes(b"%PDF-1.4 Befund\n" * 200)
    for i in range(10):
        (data / f"brief-{i}.txt").write_text(f"Brief {i}\n" * 100)
    env = dict(os.environ, PRAXISBACKUP_PASSWORD=PASS, PRAXISBACKUP_KDF_N="1024")
    mail = SmtpServer(base)  # the practice's mail provider: escalations are delivered
    mail.start()
    with pytest.MonkeyPatch.context() as mp, ext4_image(base, 300) as disk:
        mp.setenv("PRAXISBACKUP_PASSWORD", PASS)
        mp.setenv("PRAXISBACKUP_KDF_N", "1024")
        mp.setenv("PRAXISBACKUP_SMTP_PASSWORD", SMTP_PASSWORD)
        config_path = base / "praxisbackup.toml"
        config_path.write_text(config_text(base, disk, mail))
        config = parse_config(config_path.read_text(), str(config_path))
        plan = plan_from_config(config)
        assert plan is not None
        last_slot = plan.slot(LAST)
        assert last_slot is not None and last_slot.role == "quarter_end"
        history = History(base, config, config_path, env, quarter_label=last_slot.label)
        for label in [*DAILY, last_slot.label]:
            prepare_medium(config, str(disk / f"shelf-{slug(label)}"), label, PASS)
        check = DailyCheck(config)
        check.add_absence(*ABSENT, "Anna Schmidt", "Urlaub", local(date(2026, 10, 28), 9))
        previous: str = ""  # the medium of the last night, taken off-site in the morning
        day = FIRST
        while day <= LAST:
            slot = plan.slot(day)
            if slot is None:
                day += timedelta(days=1)
                continue
            # The morning: the daily check looks; someone confirms and takes the disk away.
            if day > FIRST:
                check.evaluate(local(day, 7, 30))
            person = "Bernd Meier" if ABSENT[0] <= day <= ABSENT[1] else "Anna Schmidt"
            if day == UNCONFIRMED:
                check.evaluate(local(day, 10, 30))  # the deputy is told
                check.evaluate(local(day, 12, 30))  # the owner and the service partner
                check.ack(person, "nachgeholt", local(day, 13, 5))
                history.acks += 1
            elif previous or day == NO_MEDIUM + timedelta(days=1):
                check.ack(person, "", local(day, 8, 10))
                history.acks += 1
            if previous:
                move_medium(config, previous, "offsite", person, "", local(day, 8, 15))
            # The evening: the planned disk is connected (except twice), the job runs.
            previous = ""
            if day == DRILL_DAY.date():
                # A restore test of "Di" on the service partner's laptop, from the shelf.
                medium, repo = open_medium(str(disk / "shelf-Di"), PASS)
                run_drill(repo, medium, clock=DRILL_DAY.astimezone)
                repo.close()
            if day != SERVER_OFF:
                attached = day != NO_MEDIUM
                if attached:
                    (disk / f"shelf-{slug(slot.label)}").rename(disk / f"slot-{slug(slot.label)}")
                night = local(day, 22, 30)
                protocol = NightlyJob(config, clock=lambda night=night: night).run()
                history.statuses[day] = protocol.status
                history.findings[day] = [
                    f"{f.level} {f.code} {f.params}" for f in protocol.findings if f.level != "info"
                ]
                if protocol.hold_until:
                    history.hold_until = protocol.hold_until
                if attached:
                    (disk / f"slot-{slug(slot.label)}").rename(disk / f"shelf-{slug(slot.label)}")
                    previous = slot.label
            day += timedelta(days=1)
        mail.stop()
        yield history


def working_days() -> list[date]:
    """Q4 2026 working days by an independent calendar: Monday to Friday, minus North
    Rhine-Westphalia's public holidays, minus the practice's closing day."""
    public = holidays.Germany(subdiv="NW", years=2026)
    days, day = [], FIRST
    while day <= LAST:
        if day.weekday() < 5 and day not in public and day != date(2026, 12, 24):
            days.append(day)
        day += timedelta(days=1)
    return days


def pdf_text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(BytesIO(pdf)).pages)


def flat(text: str) -> str:
    """The PDF's text with line breaks inside table cells joined."""
    return " ".join(text.split())


def test_the_quarter_ran_as_planned(quarter: History) -> None:
    assert len(working_days()) == 64
    assert set(quarter.statuses) == set(working_days()) - {SERVER_OFF}
    assert quarter.statuses[NO_MEDIUM] == "red"
    others = {
        d: quarter.findings[d]
        for d, s in quarter.statuses.items()
        if d != NO_MEDIUM and s != "green"
    }
    assert others == {}


def test_german_evidence_report_of_the_quarter(quarter: History) -> None:
    text = quarter.report("--period", "2026-Q4")
    words = flat(text)
    assert "Nachweis der Datensicherung – Praxis Dr. Muster" in words
    assert "Zeitraum: 01.10.2026 bis 31.12.2026" in words
    assert "62 von 64 Arbeitsnächten gesichert" in words
    # Summary.
    assert "Arbeitsnächte im Zeitraum 64" in words
    assert "Davon gesichert 62 grün, 0 gelb" in words
    assert "Arbeitsnächte ohne Sicherung 2" in words
    assert "Nächte mit fehlgeschlagenem Lauf 1" in words
    assert f"({quarter.acks} Bestätigungen)" in words
    assert "Rücksicherungstests 1, davon 1 erfolgreich" in words
    # The concept, from the configuration.
    assert "Praxisdaten:" in words and "Tagesmedien im Wechsel: Mo, Di, Mi, Do, Fr" in words
    assert "Quartalsende (Archiv, 730 Tage gesperrt)" in words
    assert "AES-256-GCM" in words and "Schließtage: 2026-12-24" in words
    assert "Kontrolle: Anna Schmidt; Vertretung: Bernd Meier" in words
    # Every night: a green one with its medium and verification, the closing day, a holiday.
    assert "Do, 01.10.2026 Do grün Do vollständig ✓" in words
    assert "Fr, 02.10.2026 Fr grün Fr" in words
    assert "Do, 24.12.2026 – keine geplant Praxis geschlossen" in words
    assert "Fr, 25.12.2026 – keine geplant Erster Weihnachtstag" in words
    assert f"Do, 31.12.2026 {quarter.quarter_label} grün {quarter.quarter_label}" in words
    assert "Archiv bis 30.12.2028" in words
    # The two nights without a backup, and why, and when it was reported.
    assert "Mi, 14.10.2026 Mi ROT – – Kein Sicherungsmedium angeschlossen" in words
    assert (
        "Mi, 18.11.2026 Mi FEHLT – – Keine Sicherung gelaufen. Gemeldet: Do, 19.11.2026 07:30."
        in words
    )
    assert "Die Sicherung ist nicht gelaufen (Server aus oder Dienst gestoppt)." in words
    # Confirmations (the deputy while the responsible person was away), escalations.
    assert "Mo, 02.11.2026 08:10 Bernd Meier" in words
    assert "Di, 08.12.2026 13:05 Anna Schmidt nachgeholt" in words
    assert (
        "Di, 08.12.2026 10:30 Nicht bestätigt – Vertretung benachrichtigt vertretung@example.de"
        in words
    )
    assert "Nicht bestätigt – Praxisinhaber/in und Servicepartner benachrichtigt" in words
    assert "Do, 15.10.2026 07:30 Keine Sicherung – gemeldet" in words
    # Media: where each was at the end, who took which one off-site.
    assert "Fr, 02.10.2026 08:15 Do gebracht außer Haus Anna Schmidt" in words
    assert "Di, 03.11.2026 08:15 Mo gebracht außer Haus Bernd Meier" in words
    # The archive hold and the restore test (machine, amount, duration, result).
    assert f"Do, 31.12.2026 {quarter.quarter_label}" in words and "Sa, 30.12.2028" in words
    assert f"Fr, 20.11.2026 14:00 {platform.hostname()} Di" in words
    assert "erfolgreich" in words
    # Open at the end: the last night is not confirmed (the next morning is in January).
    assert "Die Kontrolle der Sicherung vom Do, 31.12.2026 22:30 ist nicht bestätigt." in words
    # The mapping to the audit items and the signature.
    assert "Test der Datensicherung – KBV Anl. 1 Nr. 25; BSI CON.3.A15" in words
    assert "Regelmäßige Datensicherung – KBV Anl. 1 Nr. 21; BSI CON.3.A5" in words
    assert "Gelesen und geprüft:" in words and "Unterschrift" in words
    pages = len(PdfReader(BytesIO(quarter.last_pdf.read_bytes())).pages)
    assert f"Seite 1 von {pages}" in words and f"Seite {pages} von {pages}" in words
    # Nothing that could name a patient, no English, no ISO times.
    assert "Müller" not in words and "Befunde" not in words
    for english in ("green", "yellow", "Period", "+00:00", "T22:"):
        assert english not in words
    folder = output_dir("report")
    for old in folder.glob("nachweis-2026-Q4-*.png"):
        old.unlink()
    subprocess.run(
        ["pdftoppm", "-r", "70", "-png", str(quarter.last_pdf), str(folder / "nachweis-2026-Q4")],
        check=True,
    )
    assert len(list(folder.glob("nachweis-2026-Q4-*.png"))) == pages


def test_english_evidence_report(quarter: History) -> None:
    words = flat(quarter.report("--period", "2026-Q4", "--lang", "en"))
    assert "Backup evidence report – Praxis Dr. Muster" in words
    assert "Period: 01.10.2026 to 31.12.2026" in words
    assert "62 of 64 working nights backed up" in words
    assert "Testing the backup – KBV annex 1 no. 25; BSI CON.3.A15" in words
    assert "Not confirmed – deputy notified" in words
    assert "Page 1 of" in words
    for german in ("Zeitraum", "Arbeitsnächte", "gesichert", "Unterschrift"):
        assert german not in words


def test_a_week_by_from_and_to_with_german_dates(quarter: History) -> None:
    words = flat(quarter.report("--from", "12.10.2026", "--to", "2026-10-16"))
    assert "Zeitraum: 12.10.2026 bis 16.10.2026" in words
    assert "4 von 5 Arbeitsnächten gesichert" in words
    assert "Arbeitsnächte ohne Sicherung 1" in words
    assert "Mo, 19.10.2026" not in words


def test_wrong_periods_are_one_line_errors(quarter: History) -> None:
    for args, message in (
        (("--period", "2026-Q5"), "„2026-Q5“ ist kein Zeitraum (Beispiele: 2026-Q4"),
        (("--from", "31.12.2026"), "--from und --to gehören zusammen"),
        (("--from", "02.01.2027", "--to", "01.01.2027"), "Der Zeitraum endet, bevor er beginnt."),
        (("--period", "2026-Q4", "--to", "01.01.2027"), "entweder --period oder --from/--to"),
        (("--from", "32.12.2026", "--to", "01.01.2027"), "„32.12.2026“ ist kein Datum"),
    ):
        out = run_cli("-c", str(quarter.config_path), "report", *args, env=quarter.env)
        assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr


def test_periods() -> None:
    assert parse_period("2026-Q4") == (date(2026, 10, 1), date(2026, 12, 31))
    assert parse_period("2027-q1") == (date(2027, 1, 1), date(2027, 3, 31))
    assert parse_period("2028-02") == (date(2028, 2, 1), date(2028, 2, 29))
    assert parse_period("2026") == (date(2026, 1, 1), date(2026, 12, 31))


def test_nights_that_are_not_over_are_not_reported_as_missing(quarter: History) -> None:
    """A report made on 13 January at 10:00 for all of January lists the nights up to the
    12th (all without a backup: the history ends in December), not tonight or later ones."""
    now = datetime(2027, 1, 13, 10, 0).astimezone()
    ev = evidence(quarter.config, date(2027, 1, 1), date(2027, 1, 31), now=now)
    assert [n.day for n in ev.nights] == [date(2027, 1, d) for d in range(1, 13)]
    public = holidays.Germany(subdiv="NW", years=2027)
    working = [n.day for n in ev.nights if n.day.weekday() < 5 and n.day not in public]
    assert working == [date(2027, 1, d) for d in (4, 5, 6, 7, 8, 11, 12)]
    assert [n.day for n in ev.nights_without_backup] == working
    words = flat(pdf_text(evidence_pdf(ev, "de")))
    assert "Die Nächte ab Mi, 13.01.2027 sind noch nicht vorbei" in words
    assert "Di, 12.01.2027 Di FEHLT" in words
    assert "13.01.2027 Mi" not in words and "14.01.2027" not in words
