"""plan, today and the media register through the CLI, in German and English."""

from __future__ import annotations

import json
from pathlib import Path

from pypdf import PdfReader

from conftest import run_cli
from praxisbackup.model.example import example_toml


def write_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "praxis.toml"
    cfg.write_text(f'state_dir = "{tmp_path / "state"}"\n' + example_toml())
    return cfg


def test_plan_calendar_in_both_languages_and_as_pdf(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    de = run_cli("-c", str(cfg), "plan", "--from", "2026-12-21", "--days", "14", check=True).stdout
    assert (
        "Mi, 23.12.2026   Quartal 8" in de
        and "Quartalsende (Archiv, mind. 2 Jahre), aufbewahren bis Fr, 22.12.2028" in de
    )
    assert "Fr, 25.12.2026   –            Erster Weihnachtstag" in de
    assert "Mo, 28.12.2026   –            Praxis geschlossen" in de
    assert "Christmas" not in de and "2026-12" not in de
    en = run_cli(
        "-c", str(cfg), "plan", "--from", "2027-01-04", "--days", "5", "--lang", "en", check=True
    ).stdout
    assert "Mon, 04.01.2027  Mo           daily medium" in en
    holidays_en = run_cli(
        "-c", str(cfg), "plan", "--from", "2026-12-25", "--days", "1", "--lang", "en", check=True
    ).stdout
    assert "Christmas Day" in holidays_en
    doc = json.loads(
        run_cli(
            "-c", str(cfg), "--json", "plan", "--from", "2027-01-29", "--days", "1", check=True
        ).stdout
    )
    assert doc == [
        {
            "date": "2027-01-29",
            "medium": "Monat 16",
            "note": "Monatsende (Archiv), aufbewahren bis So, 28.01.2029",
        }
    ]
    pdf = tmp_path / "plan.pdf"
    run_cli(
        "-c",
        str(cfg),
        "plan",
        "--format",
        "pdf",
        "-o",
        str(pdf),
        "--from",
        "2026-12-21",
        check=True,
    )
    reader = PdfReader(str(pdf))
    content = " ".join("\n".join(page.extract_text() for page in reader.pages).split())
    assert "Sicherungsplan – Praxis Dr. Muster" in content
    assert "Mi 23.12.2026 Quartal 8" in content and "Erster Weihnachtstag" in content
    assert "Neujahr" in content and "KW 53: 28.12.2026 – 01.01.2027" in content
    assert "angeschlossen" in content and "außer Haus gebracht" in content and "Kürzel" in content
    assert f"Seite 1 von {len(reader.pages)}" in content and "Christmas" not in content


def test_register_move_retire_and_today(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    for label in ("Mo", "Di"):
        run_cli("-c", str(cfg), "medium", "init", label, str(tmp_path / f"usb-{label}"), check=True)
    listing = json.loads(run_cli("-c", str(cfg), "--json", "medium", "list", check=True).stdout)
    assert {m["label"]: m["role"] for m in listing} == {"Di": "daily", "Mo": "daily"}
    run_cli("-c", str(cfg), "medium", "move", "Mo", "offsite", "--by", "Frau Schmidt", check=True)
    shown = json.loads(run_cli("-c", str(cfg), "--json", "medium", "show", "Mo", check=True).stdout)
    assert shown["location"] == "offsite" and shown["location_by"] == "Frau Schmidt"
    assert [h["kind"] for h in shown["history"]] == ["registered", "moved"]
    shown_today = run_cli("-c", str(cfg), "today")
    state = json.loads(run_cli("-c", str(cfg), "--json", "today").stdout)
    # The exit code tells the state, for monitoring.
    assert shown_today.returncode == {"green": 0, "yellow": 1, "red": 2}[state["status"]]
    today = shown_today.stdout
    assert today.startswith("Datensicherung heute") and "Noch keine Sicherung gelaufen" in today
    retired = run_cli(
        "-c", str(cfg), "medium", "retire", "Di", "--how", "destroyed", "--by", "Dr. Muster"
    )
    assert retired.returncode == 0
    moved = run_cli("-c", str(cfg), "medium", "move", "Di", "practice")
    assert moved.returncode == 2 and "Das Medium „Di“ ist ausgemustert." in moved.stderr
    unknown = run_cli("-c", str(cfg), "medium", "show", "Sa")
    assert unknown.returncode == 2 and "Kein eingerichtetes Medium heißt „Sa“" in unknown.stderr


def test_medium_init_speaks_german_and_refuses_typos_duplicates_and_media(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    usb = tmp_path / "usb-Mo"
    ok = run_cli("-c", str(cfg), "medium", "init", "Mo", str(usb), check=True).stdout
    assert f"Medium „Mo“ (Tagesmedium) ist bereit unter {usb} (Medium " in ok
    typo = run_cli("-c", str(cfg), "medium", "init", "Di", str(tmp_path / "nicht-da" / "Dii"))
    assert typo.returncode == 2
    assert (
        f"praxisbackup: Fehler: {tmp_path / 'nicht-da'} gibt es nicht: Ist die Platte "
        "angeschlossen, ist der Pfad richtig geschrieben?" in typo.stderr
    )
    again = run_cli("-c", str(cfg), "medium", "init", "Mo", str(tmp_path / "usb-2"))
    assert again.returncode == 2 and "Ein Medium „Mo“ ist bereits eingetragen" in again.stderr
    twice = run_cli("-c", str(cfg), "medium", "init", "Di", str(usb))
    assert twice.returncode == 2
    assert f"{usb} ist bereits ein praxisbackup-Medium." in twice.stderr
    assert not (tmp_path / "nicht-da").exists() and not (tmp_path / "usb-2").exists()
