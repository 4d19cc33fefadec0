"""The papers a practice files, rendered for real and read back with pypdf: embedded Unicode
font, German quotes and dashes, page footer, signature line, local German dates, no English
fragments in German documents, aligned columns, red lines in bold, QR code clear of text."""

from __future__ import annotations

import re
from datetime import date, datetime
from io import BytesIO
from typing import Any

from pypdf import PdfReader

from praxisbackup.app.plan import PlanRow
from praxisbackup.model.drill import DrillRecord
from praxisbackup.model.protocol import RunProtocol, SourceResult, Verification
from praxisbackup.model.restore import RestoreRecord
from praxisbackup.report import i18n
from praxisbackup.report.drill import drill_lines, drill_pdf
from praxisbackup.report.plan import plan_lines, plan_pdf
from praxisbackup.report.render import render_html, render_pdf, render_text
from praxisbackup.report.restore import restore_protocol_lines, restore_protocol_pdf
from praxisbackup.report.sheet import SheetContent, SheetMedium, emergency_sheet_pdf

#: English phrases that lower layers record and that must not reach a German document.
ENGLISH = (
    "found running",
    "found stopped",
    "left stopped",
    "start failed",
    "not delivered",
    "outbox",
    "wrong passphrase",
    "key slot",
    "Permission denied",
    "changed while being read",
    "did not start in time",
    "exit 3",
    "+00:00",
    "T22:",
)


def protocol() -> RunProtocol:
    p = RunProtocol(
        run_id="20261130-223000-abc123",
        practice="Praxis „Dr. Müller“ – Innere Medizin",
        host="PRAXIS-SRV",
        started="2026-11-30T22:30:00+00:00",
        finished="2026-11-30T22:41:13+00:00",
        program_version="0.1.0",
        medium_id="m1",
        medium_label="Mo",
        medium_path="E:\\",
        snapshot_id="0123456789abcdef" * 4,
        expected_medium="Di",
    )
    p.sources = [
        SourceResult("CGM M1 PRO", "C:\\CompuMED", 12345, 1610612736, 52428800),
        SourceResult("ifap", "C:\\ifapDB", 20, 4096, 0),
    ]
    p.services = [
        {
            "time": "2026-11-30T22:30:05+00:00",
            "service": "OracleServiceM1",
            "action": "found running",
            "detail": "",
        },
        {
            "time": "2026-11-30T22:30:15+00:00",
            "service": "OracleServiceM1",
            "action": "stopped",
            "detail": "",
        },
        {
            "time": "2026-11-30T22:30:16+00:00",
            "service": "M1Dienst",
            "action": "found stopped",
            "detail": "left stopped afterwards",
        },
        {
            "time": "2026-11-30T22:40:16+00:00",
            "service": "OracleServiceM1",
            "action": "start failed",
            "detail": "OracleServiceM1 did not start in time",
        },
    ]
    p.downtime_seconds = 601.5
    p.verification = Verification(level="new-data", packs_read=12, bytes_read=52428800, ok=True)
    p.skipped = [
        {
            "path": "C:\\CompuMED\\M1\\Bin\\lock.dat",
            "reason": "cannot open: Permission denied [errno 13]",
        }
    ]
    p.warnings = [
        {
            "path": "C:\\CompuMED\\x.ini",
            "reason": "changed while being read (kept the second reading)",
        },
        {
            "path": "C:\\CompuMED\\y.ini",
            "reason": "changed while being read, also on a second reading (the stored copy "
            "may mix old and new content)",
        },
    ]
    p.hooks = [
        {
            "name": "vss",
            "when": "before",
            "stage": "backup",
            "exit": 3,
            "seconds": 1.5,
            "output": "x",
        }
    ]
    p.add("yellow", "wrong_medium", expected="Di", used="Mo")
    p.add("red", "service_start_failed", service="OracleServiceM1")
    p.add(
        "yellow",
        "alert_problem",
        problem="e-mail not delivered yet (kept in the outbox, retried later): timed out",
    )
    p.add(
        "red",
        "backup_failed",
        error="wrong passphrase: it opens none of the 2 key slot(s) of the repository at /mnt/x",
    )
    p.add("info", "verify_ok", packs=12, size="50.0 MiB")
    p.add("yellow", "snapshot_forgotten", snapshot="abcd1234", time="2026-10-01T22:30", id="x")
    p.add("yellow", "medium_unseen", medium="Fr", days=12, location="offsite")
    p.add("yellow", "hook_failed", hook="vss", when="before", error="exit 3")
    return p


def pdf_text(data: bytes) -> tuple[PdfReader, str]:
    reader = PdfReader(BytesIO(data))
    return reader, flat("\n".join(page.extract_text() for page in reader.pages))


def flat(content: str) -> str:
    """Text with line breaks of wrapped cells joined: facts are checked, not the layout."""
    return " ".join(content.split())


def runs(data: bytes, page: int = 0) -> list[tuple[float, float, str, str, float]]:
    """(x, y, text, font name, size) of every text run on a page, in PDF points."""
    found: list[tuple[float, float, str, str, float]] = []

    def visit(body: str, cm: Any, tm: Any, font: Any, size: float) -> None:
        if body.strip():
            x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
            y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
            name = str(font.get("/BaseFont", "")) if font else ""
            found.append((x, y, body.strip(), name, size * tm[0] * cm[0] or size))

    PdfReader(BytesIO(data)).pages[page].extract_text(visitor_text=visit)
    return found


def embedded_fonts(reader: PdfReader) -> set[str]:
    names = set()
    for page in reader.pages:
        for ref in page["/Resources"]["/Font"].values():
            font = ref.get_object()
            descriptor = font["/DescendantFonts"][0].get_object()["/FontDescriptor"]
            assert "/FontFile2" in descriptor  # the TrueType program is in the file
            names.add(str(font["/BaseFont"]).split("+")[-1])
    return names


def assert_footer(reader: PdfReader, content: str, practice: str, lang: str = "de") -> None:
    pages = len(reader.pages)
    for n in range(1, pages + 1):
        word = ("Seite {} von {}" if lang == "de" else "Page {} of {}").format(n, pages)
        assert word in reader.pages[n - 1].extract_text()
    assert content.count(practice) >= pages
    assert ("erstellt: " if lang == "de" else "created: ") in content


def test_run_protocol_pdf_is_german_throughout_with_footer_and_signature() -> None:
    p = protocol()
    reader, content = pdf_text(render_pdf(p, "de"))
    fonts = embedded_fonts(reader)
    assert {"DejaVuSansBook", "DejaVuSansBold"} <= fonts, fonts
    assert "Praxis „Dr. Müller“ – Innere Medizin" in content  # quotes and dash intact
    assert_footer(reader, content, "Praxis „Dr. Müller“ – Innere Medizin")
    for word in ("geprüft von", "Datum", "Unterschrift"):
        assert word in content
    assert i18n.when(p.started, "de") in content and re.search(r"Mo, 30\.11\.2026", content)
    for german in (
        "lief, wird beendet",
        "bleibt danach beendet",
        "ließ sich NICHT starten",
        "E-Mail noch nicht zugestellt",
        "Falsches Passwort",
        "Zugriff verweigert",
        "1,5 GiB",
        "12.345",
        "601,5 Sekunden",
        "außer Haus",
        "vor der Sicherung",
    ):
        assert german in content, german
    for english in ENGLISH:
        assert english not in content, english


def test_red_findings_are_bold_and_table_columns_line_up() -> None:
    data = render_pdf(protocol(), "de")
    first = runs(data, 0)
    red = [r for r in first if "ließ sich NICHT wieder starten" in r[2]]
    assert red and all("Bold" in r[3] for r in red)
    info = [r for r in first if r[2].startswith("Sicherung vom Medium")]
    assert info and all("Bold" not in r[3] for r in info)
    everywhere = [r for page in range(2) for r in runs(data, page)]
    # The service column of the timeline: every row starts at the same x.
    xs = {round(r[0], 1) for r in everywhere if r[2] in ("OracleServiceM1", "M1Dienst")}
    assert len(xs) == 1
    # Numbers are right-aligned: "20" starts further right than "12.345" by exactly the width
    # difference (DejaVu Sans: digits 1303/2048 em, the period 651/2048 em), so both end at the
    # same x.
    counts = {r[2]: r for r in everywhere if r[2] in ("12.345", "20")}
    assert set(counts) == {"12.345", "20"}
    size = counts["20"][4]
    difference = (3 * 1303 + 651) / 2048 * size
    assert abs((counts["20"][0] - counts["12.345"][0]) - difference) < 0.5


def test_run_protocol_text_and_html_in_both_languages() -> None:
    p = protocol()
    de_text, de_html = render_text(p, "de"), render_html(p, "de")
    for doc in (de_text, de_html):
        assert "lief, wird beendet" in doc and "E-Mail noch nicht zugestellt" in doc
        for english in ENGLISH:
            assert english not in doc, english
    assert "Mo, 30.11.2026" in de_text and "1,5 GiB" in de_text
    en = render_text(p, "en")
    assert "found running" in en and "wrong passphrase" in en and "1.5 GiB" in en
    assert "lief" not in en and "Falsches" not in en and "Mon, 30.11.2026" in en


def test_plan_is_a_weekly_checklist_with_german_days_and_holidays() -> None:
    rows = [
        PlanRow(date(2026, 12, 21), "Mo", "daily"),
        PlanRow(date(2026, 12, 23), "Q4 A", "quarter_end", date(2028, 12, 22)),
        PlanRow(date(2026, 12, 24), None, reason="closed"),
        PlanRow(date(2026, 12, 25), None, reason="Erster Weihnachtstag"),
        PlanRow(date(2026, 12, 26), None, reason="Zweiter Weihnachtstag"),  # a Saturday
        PlanRow(date(2026, 12, 27), None, reason="weekend"),
        PlanRow(date(2026, 12, 28), "Mo", "daily"),
    ]
    reader, content = pdf_text(plan_pdf(rows, "Praxis Dr. Muster", "de"))
    assert_footer(reader, content, "Praxis Dr. Muster")
    assert "KW 52: 21.12.2026 – 25.12.2026" in content and "KW 53:" in content
    for head in ("Tag", "Datum", "Medium", "angeschlossen", "außer Haus", "gebracht", "Kürzel"):
        assert head in content
    assert re.search(r"Mi\s+23\.12\.2026\s+Q4 A", content)
    assert "aufbewahren bis Fr, 22.12.2028" in content
    assert "Erster Weihnachtstag" in content and "Praxis geschlossen" in content
    assert "Zweiter Weihnachtstag" not in content and "Wochenende" not in content  # no weekends
    assert content.count("☐") == 2 * 3  # connected + taken off-site for the three backup nights
    lines = plan_lines(rows, "Praxis Dr. Muster", "de")
    assert "Mi, 23.12.2026   Q4 A         Quartalsende" in "\n".join(lines)
    assert not any(re.search(r"\d{4}-\d{2}-\d{2}", line) for line in lines)
    _reader, english = pdf_text(plan_pdf(rows, "Praxis Dr. Muster", "en"))
    assert "Week 52" in english and "connected" in english and "Initials" in english


def restore_record(**kw: Any) -> RestoreRecord:
    base: dict[str, Any] = {
        "practice": "Praxis Dr. Muster",
        "started": "2026-12-02T09:15:00+00:00",
        "finished": "2026-12-02T09:31:00+00:00",
        "by": "Herr Kurz (IT-Partner)",
        "machine": "NEUER-SERVER",
        "medium_label": "Mo",
        "snapshot_id": "fedcba98" * 8,
        "snapshot_time": "2026-12-01T22:30:00+00:00",
        "target_root": "C:\\",
        "restored": True,
        "files": 1234,
        "dirs": 56,
        "bytes": 3 << 30,
        "verified": 1234,
        "seconds": 950.0,
        "services": [
            {
                "time": "2026-12-02T09:15:01+00:00",
                "service": "OracleServiceM1",
                "action": "found running",
                "detail": "",
            },
            {
                "time": "2026-12-02T09:15:09+00:00",
                "service": "OracleServiceM1",
                "action": "stopped",
                "detail": "",
            },
            {
                "time": "2026-12-02T09:30:59+00:00",
                "service": "OracleServiceM1",
                "action": "started",
                "detail": "",
            },
        ],
        "renamed": [("C:\\CompuMED\\M1\\Bin", "C:\\CompuMED\\M1\\Bin_Original")],
        "items": [{"path": "/C/CompuMED/M1/Bin", "target": "C:\\CompuMED\\M1\\Bin", "kind": "dir"}],
    }
    base.update(kw)
    return RestoreRecord(**base)


def test_restore_protocol_names_medium_snapshot_services_person_and_signature() -> None:
    record = restore_record()
    assert record.status == "complete"
    reader, content = pdf_text(restore_protocol_pdf(record, "de"))
    assert_footer(reader, content, "Praxis Dr. Muster")
    assert "Rücksicherung vollständig und geprüft" in content
    for fact in (
        "„Mo“",
        "fedcba98",
        "Di, 01.12.2026",
        "Herr Kurz (IT-Partner)",
        "NEUER-SERVER",
        "OracleServiceM1",
        "beendet",
        "wieder gestartet",
        "1.234 Dateien, 56 Ordner, 3 GiB",
        "Bin_Original",
        "geprüft von",
        "Unterschrift",
    ):
        assert fact in content, fact
    for english in ENGLISH:
        assert english not in content, english


def test_restore_with_missing_items_is_incomplete_never_complete() -> None:
    record = restore_record(missing=["CompuMED/M1/Project"])
    assert record.status == "incomplete"
    lines = restore_protocol_lines(record, "de")
    _reader, content = pdf_text(restore_protocol_pdf(record, "de"))
    for doc in ("\n".join(lines), content):
        assert "UNVOLLSTÄNDIG" in doc and "FEHLT in der Sicherung: CompuMED/M1/Project" in doc
        assert "Rücksicherung vollständig" not in doc
    failed = restore_record(restored=False, errors=[{"path": "/x", "reason": "read error: EIO"}])
    assert failed.status == "failed"
    assert "FEHLERN" in restore_protocol_lines(failed, "de")[1]


def drill_record(**kw: Any) -> DrillRecord:
    base: dict[str, Any] = {
        "time": "2027-05-03T14:00:00+00:00",
        "machine": "LAPTOP-TEST",
        "system": "Windows 11",
        "medium_id": "m1",
        "medium_label": "Fr",
        "snapshot": "abcdef01" * 8,
        "files": 4321,
        "bytes": 1 << 30,
        "verified": 4321,
        "seconds": 312.5,
        "ok": True,
        "check_command": "pruefe-datenbank.cmd",
        "check_ok": True,
        "check_output": "Datenbank „M1“ geöffnet",
    }
    base.update(kw)
    return DrillRecord(**base)


def test_drill_result_pdf_with_signature_and_damage_in_german() -> None:
    reader, content = pdf_text(drill_pdf(drill_record(), "Praxis Dr. Muster", "de"))
    assert_footer(reader, content, "Praxis Dr. Muster")
    for fact in (
        "Rücksicherungstest",
        "BESTANDEN",
        "LAPTOP-TEST (Windows 11)",
        "„Fr“",
        "abcdef01",
        "4.321 von 4.321 Dateien",
        "312,5 Sekunden",
        "„pruefe-datenbank.cmd“ erfolgreich",
        "Datenbank „M1“ geöffnet",
        "geprüft von",
        "Unterschrift",
    ):
        assert fact in content, fact
    bad = drill_record(
        ok=False, errors=["C:\\Daten\\brief.doc: not restored, data damaged: pack 12ab unreadable"]
    )
    _reader, failed = pdf_text(drill_pdf(bad, "", "de"))
    assert "NICHT BESTANDEN" in failed and "Medium „Fr“" in failed
    assert "nicht zurückgesichert, Daten beschädigt" in failed and "not restored" not in failed
    assert "data damaged" in "\n".join(drill_lines(bad, "en"))


def sheet_content() -> SheetContent:
    return SheetContent(
        practice="Praxis Dr. Muster",
        key="K73AG-E88X7-JFQPL-G4PUP-MM5NL-Q9ALG-SVXQD-6CGL9",
        created=datetime(2026, 11, 30, 18, 5),
        media=[SheetMedium("Mo", "daily", "offsite", "9bed09daad50281b" * 4)],
        services=[("OracleServiceM1", "windows")],
        items=["\\CompuMED\\M1\\Bin"],
        contacts=[
            ("responsible", "Anna Schmidt", "0211 123456-10", "empfang@example.de"),
            ("deputy", "", "", ""),
            ("owner", "Dr. med. Eva Muster", "0171 2345678", ""),
            ("service_partner", "IT-Partner GmbH", "0211 987654", "support@it.example"),
        ],
    )


def test_emergency_sheet_qr_code_is_clear_of_every_text() -> None:
    data = emergency_sheet_pdf(sheet_content(), "de")
    stream = PdfReader(BytesIO(data)).pages[0].get_contents()
    assert stream is not None
    placed = re.search(rb"([\d.]+) 0 0 ([\d.]+) ([\d.]+) ([\d.]+) cm /I\w+ Do", stream.get_data())
    assert placed is not None
    width, height, left, bottom = (float(v) for v in placed.groups())
    texts = runs(data, 0)
    assert len(texts) > 30
    for x, y, body, _font, size in texts:
        inside_band = bottom - 2 <= y <= bottom + height + 2
        # A generous width estimate: DejaVu Sans glyphs average well under 0.62 em.
        right = x + len(body) * size * 0.62
        assert not (inside_band and right > left and x < left + width), body


def test_emergency_sheet_sections_point_by_number_and_name_the_contacts() -> None:
    reader, content = pdf_text(emergency_sheet_pdf(sheet_content(), "de"))
    assert_footer(reader, content, "Praxis Dr. Muster")
    assert "K73AG-E88X7-JFQPL-G4PUP-MM5NL-Q9ALG-SVXQD-6CGL9" in content
    assert "siehe unten" not in content and "siehe oben" not in content
    for section in (
        "1 Wiederherstellungsschlüssel",
        "2 Kontakte",
        "3 Rücksicherung auf einem neuen Server",
        "4 Dienste",
        "5 Sicherungsmedien",
        "6 Zurückgesicherte Ordner",
    ):
        assert section in content
    for reference in ("Abschnitt 1", "Abschnitt 2", "Abschnitt 4", "Abschnitt 5"):
        assert reference in content
    for fact in (
        "Anna Schmidt",
        "0211 123456-10",
        "Dr. med. Eva Muster",
        "0171 2345678",
        "IT-Partner GmbH",
        "0211 987654",
        "– nicht eingetragen –",
        "Windows-Dienst",
        "außer Haus",
        "Tagesmedium",
        "an der Konsole",
        "Wiederherstellungsschlüssel",
        "Übergeben an",
        "Aufbewahrungsort",
    ):
        assert fact in content, fact


def test_a_path_longer_than_a_page_is_shortened_not_fatal() -> None:
    p = protocol()
    deep = "/srv/praxis/" + "/".join(f"{i:02d}-{'x' * 120}" for i in range(40)) + "/tief.txt"
    p.skipped.append({"path": deep, "reason": "cannot open: File name too long [errno 36]"})
    _reader, content = pdf_text(render_pdf(p, "de"))
    packed = "".join(content.split())  # a long path wraps anywhere
    assert "/srv/praxis/00-xxx" in packed and "xxx/tief.txt" in packed and "x…x" in packed
    assert deep[300:1000] not in packed  # the middle is left out
    assert deep in render_text(p, "de")  # the text protocol keeps the whole path
