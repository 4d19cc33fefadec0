"""restore-practice, drill and the emergency sheet, end to end through the CLI."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pypdf import PdfReader

from conftest import reopen, run_cli, tree_state
from fsimages import ext4_image
from praxisbackup.engine.pack import DATA
from praxisbackup.practice.sample import generate

PASS = "Praxis-Passwort"


def write_config(base: Path, server: Path, media_glob: str, services: str = "") -> Path:
    cfg = base / "praxis.toml"
    cfg.write_text(
        f"""
state_dir = "{base / "state"}"
[practice]
name = "Praxis Dr. Muster"
[[sources]]
label = "CGM M1 PRO"
profile = "cgm-m1-pro"
path = "{server / "CompuMED"}"
[[sources]]
label = "ifap"
path = "{server / "ifapDB"}"
{services}
[media]
candidates = ["{media_glob}"]
[notify.recipients]
service_partner = ["service@it-partner.de"]
"""
    )
    return cfg


def cli(cfg: Path, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return run_cli("-c", str(cfg), *args, password=PASS, **kw)  # type: ignore[arg-type]


@pytest.fixture
def practice(tmp_path: Path) -> Iterator[tuple[Path, Path, Path]]:
    """A backed-up sample server (with a medium on a loop-mounted disk) and its config."""
    server = tmp_path / "server"
    generate(server, size_mb=4)
    (server / "CompuMED" / "Sonstiges").mkdir()
    (server / "CompuMED" / "Sonstiges" / "nicht-zurueck.txt").write_text("not in the allowed set")
    with ext4_image(tmp_path, 96) as usb:
        cfg = write_config(tmp_path, server, str(usb))
        cli(cfg, "medium", "init", "Mo", str(usb), check=True)
        out = cli(cfg, "run")
        assert out.returncode == 0, out.stdout + out.stderr
        yield tmp_path, server, cfg


def test_restore_onto_a_fresh_installation_renames_and_restores_only_the_allowed_set(
    practice: tuple[Path, Path, Path],
) -> None:
    base, server, cfg = practice
    new = base / "neuer-server"
    generate(new, size_mb=2, seed=9)  # a fresh installation with other files
    fresh_bin = {p.name for p in (new / "CompuMED" / "M1" / "Bin").iterdir()}
    (new / "CompuMED" / "M1" / "Bin_Original").mkdir()  # left over from an earlier attempt
    plan = cli(cfg, "restore-practice", "--target-root", str(new), "--dry-run", check=True).stdout
    assert "Bin_Original_" in plan and "CompuMED/M1/Orant/DB_M1/Database" in plan
    assert not (new / "CompuMED" / "M1" / "Project_Original").exists()  # dry run changed nothing
    # A database service that runs: the restore stops it and starts it again.
    flag = base / "db-running"
    flag.touch()
    cfg = write_config(
        base,
        server,
        str(next(p for p in base.iterdir() if p.name == "ext4-mnt")),
        f"""
[[services]]
name = "m1-db"
kind = "command"
stop = "rm -f {flag}"
start = "touch {flag}"
is_running = "test -f {flag}"
""",
    )
    out = cli(cfg, "restore-practice", "--target-root", str(new), "--yes", "--by", "Herr Kurz")
    assert out.returncode == 0, out.stdout + out.stderr
    assert flag.exists()  # started again
    m1 = new / "CompuMED" / "M1"
    assert (m1 / "Project_Original").is_dir() and (
        m1 / "Orant" / "DB_M1" / "Database_Original"
    ).is_dir()
    assert [p.name for p in m1.iterdir() if p.name.startswith("Bin_Original_")]
    assert {p.name for p in (m1 / "Bin_Original").iterdir()} == set()  # the old leftover untouched
    for rel in (
        "CompuMED/M1/Bin",
        "CompuMED/M1/Orant/DB_M1/Database",
        "ifapDB/praxisCENTER3/Datenbank/T_HOUSELIST.adt",
    ):
        src, dst = server / rel, new / rel
        if src.is_dir():
            assert tree_state(dst, with_atime=False) == tree_state(src, with_atime=False)
        else:
            assert (
                dst.read_bytes() == src.read_bytes()
                and dst.stat().st_mtime_ns == src.stat().st_mtime_ns
            )
    assert (new / "ifapDB" / "praxisCENTER3" / "Datenbank" / "T_HOUSELIST.adt_Original").exists()
    assert not (new / "CompuMED" / "Sonstiges").exists()  # not part of the allowed set
    assert fresh_bin  # the fresh program files are kept under Bin_Original_<time>
    reports = {p.suffix: p for p in (base / "state" / "restores").iterdir()}
    assert set(reports) == {".txt", ".pdf", ".html", ".json"}
    text = reports[".txt"].read_text(encoding="utf-8")
    assert text.startswith("Rücksicherungsprotokoll – Praxis Dr. Muster")
    assert "Rücksicherung vollständig und geprüft" in text and "verified" not in text
    snapshot = json.loads(reports[".json"].read_text(encoding="utf-8"))["snapshot_id"][:8]
    reader = PdfReader(str(reports[".pdf"]))
    content = " ".join("\n".join(page.extract_text() for page in reader.pages).split())
    for fact in (
        "Rücksicherung vollständig und geprüft",
        "Medium „Mo“",
        snapshot,
        "Durchgeführt von Herr Kurz",
        "m1-db lief, wird beendet",
        "m1-db beendet",
        "m1-db wieder gestartet",
        "CompuMED/M1/Bin Ordner Bin_Original_",
        "CompuMED/M1/Project Ordner Project_Original",
        "geprüft von Datum Unterschrift",
        f"Seite 1 von {len(reader.pages)}",
    ):
        assert fact in content, fact
    assert "+00:00" not in content and "found running" not in content


def test_restore_from_a_snapshot_missing_a_required_folder_says_incomplete(
    practice: tuple[Path, Path, Path],
) -> None:
    base, server, cfg = practice
    usb = next(p for p in base.iterdir() if p.name == "ext4-mnt")
    # A snapshot taken by hand without CompuMED/M1/Project (e.g. an old, partial backup).
    partial = base / "partial"
    shutil.copytree(server, partial, symlinks=True)
    shutil.rmtree(partial / "CompuMED" / "M1" / "Project")
    run_cli(
        "backup",
        str(partial / "CompuMED"),
        str(partial / "ifapDB"),
        repo=usb / "praxisbackup",
        password=PASS,
        check=True,
    )
    new = base / "ziel"
    generate(new, size_mb=1, seed=3)
    dry = cli(
        cfg, "restore-practice", "--snapshot", "latest", "--target-root", str(new), "--dry-run"
    )
    assert "FEHLT in der Sicherung: CompuMED/M1/Project" in dry.stdout and "Project" in dry.stdout
    out = cli(cfg, "restore-practice", "--snapshot", "latest", "--target-root", str(new), "--yes")
    assert "UNVOLLSTÄNDIG" in out.stdout and "FEHLT in der Sicherung" in out.stdout
    assert out.returncode == 1  # finished, but incomplete: not "complete" (0)
    pdf = next((base / "state" / "restores").glob("*.pdf"))
    content = " ".join(page.extract_text() for page in PdfReader(str(pdf)).pages)
    content = " ".join(content.split())
    assert "Rücksicherung UNVOLLSTÄNDIG" in content and "M1/Project" in content
    assert "Rücksicherung vollständig" not in content


def test_restore_refused_while_files_are_open_or_a_service_will_not_stop(
    practice: tuple[Path, Path, Path],
) -> None:
    base, server, _cfg = practice
    usb = next(p for p in base.iterdir() if p.name == "ext4-mnt")
    db_file = next((server / "CompuMED" / "M1" / "Orant").rglob("*.DBF"))
    holder = subprocess.Popen(
        [sys.executable, "-c", f"f = open({str(db_file)!r}); import time; time.sleep(60)"]
    )
    try:
        time.sleep(0.5)
        services = f"""
[[services]]
name = "m1-db"
kind = "command"
stop = "true"
start = "true"
is_running = "false"
check_closed = ["{server / "CompuMED" / "M1" / "Orant"}"]
"""
        cfg = write_config(base, server, str(usb), services)
        out = cli(cfg, "restore-practice", "--yes")
        assert out.returncode == 2 and "files are still open" in out.stderr
    finally:
        holder.kill()
    stubborn = write_config(
        base,
        server,
        str(usb),
        """
[[services]]
name = "m1-db"
kind = "command"
stop = "exit 1"
start = "true"
is_running = "true"
""",
    )
    out = cli(stubborn, "restore-practice", "--yes")
    assert out.returncode == 2 and "could not be stopped" in out.stderr
    assert not (server / "CompuMED" / "M1" / "Bin_Original").exists()


def test_drill_on_another_machine_and_with_a_damaged_pack(
    practice: tuple[Path, Path, Path],
) -> None:
    base, _server, cfg = practice
    usb = next(p for p in base.iterdir() if p.name == "ext4-mnt")
    # "Another machine": no configuration, only the medium and the passphrase.
    paper = base / "rücksicherungstest.pdf"
    out = run_cli("--json", "drill", "--medium", str(usb), "--pdf", str(paper), password=PASS)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["ok"] and doc["verified"] == doc["files"] > 0 and doc["seconds"] > 0
    reader = PdfReader(str(paper))
    content = " ".join(" ".join(page.extract_text() for page in reader.pages).split())
    for fact in (
        "Rücksicherungstest – Medium „Mo“",
        "BESTANDEN",
        f"{doc['verified']} von {doc['files']} Dateien mit der Sicherung verglichen",
        doc["snapshot"][:8],
        "geprüft von Datum Unterschrift",
        f"Seite 1 von {len(reader.pages)}",
    ):
        assert fact in content, fact
    # The next nightly run on the server learns about the drill.
    cli(cfg, "run", check=True)
    shown = json.loads(cli(cfg, "--json", "medium", "show", "Mo", check=True).stdout)
    assert shown["last_drill"] == doc["time"]
    # Damage one data pack: the drill names the affected files and fails.
    repo = reopen(usb / "praxisbackup", PASS)
    pack = next(
        p for p, _s in repo.index.packs() if any(t == DATA for t, _b in repo.index.blobs_in_pack(p))
    )
    path = usb / "praxisbackup" / "data" / pack[:2] / pack
    data = bytearray(path.read_bytes())
    data[200] ^= 0xFF
    path.write_bytes(bytes(data))
    bad = cli(cfg, "--json", "drill", "--pdf", str(base / "bad.pdf"))
    assert bad.returncode == 5
    doc = json.loads(bad.stdout)
    assert not doc["ok"] and doc["errors"] and "data damaged" in doc["errors"][0]
    content = " ".join(page.extract_text() for page in PdfReader(str(base / "bad.pdf")).pages)
    assert "Rücksicherungstest – Praxis Dr. Muster" in content and "NICHT BESTANDEN" in content
    assert "Daten beschädigt" in content and "data damaged" not in content


def test_emergency_sheet_recovery_key_opens_the_repository(
    practice: tuple[Path, Path, Path],
) -> None:
    base, server, cfg = practice
    usb = next(p for p in base.iterdir() if p.name == "ext4-mnt")
    with cfg.open("a") as fh:
        fh.write(
            """
[contacts]
responsible = { name = "Anna Schmidt", phone = "0211 123456-10" }
owner = { name = "Dr. med. Eva Muster", phone = "0171 2345678" }
service_partner = { name = "IT-Partner GmbH, Herr Kurz", phone = "0211 987654" }
"""
        )
    cli(cfg, "medium", "init", "Reserve", str(base / "reserve"), "--allow-same-disk", check=True)
    cli(cfg, "medium", "retire", "Reserve", "--how", "destroyed", "--by", "Dr. Muster", check=True)
    sheet = base / "notfallblatt.pdf"
    cli(cfg, "emergency-sheet", "-o", str(sheet), check=True)
    reader = PdfReader(str(sheet))
    content = " ".join("\n".join(page.extract_text() for page in reader.pages).split())
    assert "Notfallblatt Datensicherung – Praxis Dr. Muster" in content
    for fact in (
        "Anna Schmidt",
        "0211 123456-10",
        "Dr. med. Eva Muster",
        "0171 2345678",
        "IT-Partner GmbH, Herr Kurz",
        "0211 987654",
        "service@it-partner.de",
        "_Original",
        "an der Konsole",
        f"Seite 1 von {len(reader.pages)}",
    ):
        assert fact in content, fact
    assert "Mo" in content and "Reserve" not in content  # the retired medium is left out
    key = re.search(r"([2-9A-Z]{5}(?:-[2-9A-Z]{5}){7})", content)
    assert key is not None
    # Regenerating keeps the same key.
    cli(cfg, "emergency-sheet", "-o", str(base / "again.pdf"), check=True)
    again = "\n".join(page.extract_text() for page in PdfReader(str(base / "again.pdf")).pages)
    assert key.group(1) in again
    # The key alone opens the medium and restores.
    target = base / "mit-schluessel"
    out = run_cli(
        "restore",
        "latest",
        "--target",
        str(target),
        "--verify",
        repo=usb / "praxisbackup",
        password=key.group(1),
    )
    assert out.returncode == 0, out.stderr
    restored = target / str(server).lstrip("/") / "CompuMED" / "M1" / "Bin"
    assert sorted(p.name for p in restored.iterdir()) == sorted(
        p.name for p in (server / "CompuMED" / "M1" / "Bin").iterdir()
    )


def test_single_file_restore_to_a_separate_folder_and_sheet_reminder(
    practice: tuple[Path, Path, Path],
) -> None:
    base, server, cfg = practice
    usb = next(p for p in base.iterdir() if p.name == "ext4-mnt")
    ini = server / "CompuMED" / "M1" / "Clients" / "arbeitsplatz-3.ini"
    original, mtime = ini.read_bytes(), ini.stat().st_mtime_ns
    ini.unlink()  # deleted by mistake
    found = run_cli(
        "find", "ARBEITSPLATZ-3*", repo=usb / "praxisbackup", password=PASS, check=True
    ).stdout
    assert str(ini) in found and "Sicherungsstand" in found and "geändert" in found
    out_dir = base / "zurueck"
    done = run_cli(
        "restore-file",
        "latest",
        str(ini),
        "--to",
        str(out_dir),
        repo=usb / "praxisbackup",
        password=PASS,
        check=True,
    )
    restored = out_dir / "arbeitsplatz-3.ini"  # directly into the folder, and said where
    assert f"Wiederhergestellt: {restored}" in done.stdout
    assert restored.read_bytes() == original and not ini.exists()  # original place untouched
    assert restored.stat().st_mtime_ns == mtime  # its own date
    again = run_cli(
        "restore-file",
        "latest",
        str(ini),
        "--to",
        str(out_dir),
        repo=usb / "praxisbackup",
        password=PASS,
    )
    assert again.returncode == 2 and "gibt es schon" in again.stderr
    # The emergency sheet reminder: never made -> info; made -> nothing; media changed -> yellow.
    p = json.loads(cli(cfg, "--json", "run").stdout)
    assert any(f["code"] == "sheet_outdated" and f["level"] == "info" for f in p["findings"])
    cli(cfg, "emergency-sheet", "-o", str(base / "sheet.pdf"), check=True)
    p = json.loads(cli(cfg, "--json", "run").stdout)
    assert not any(f["code"] == "sheet_outdated" for f in p["findings"])
    cli(cfg, "medium", "init", "Di", str(base / "di-im-schrank"), "--allow-same-disk", check=True)
    p = json.loads(cli(cfg, "--json", "run").stdout)
    assert any(f["code"] == "sheet_outdated" and f["level"] == "yellow" for f in p["findings"])
    protocols = (
        list((base / "state" / "restores").glob("*.pdf"))
        if (base / "state" / "restores").exists()
        else []
    )
    assert protocols == []  # no practice restore ran in this test


def test_restore_practice_refuses_a_planted_link_unless_it_is_allowed(
    practice: tuple[Path, Path, Path],
) -> None:
    """A link below the target root (TARGET/CompuMED -> elsewhere) is shown in the plan, and
    nothing is renamed or written through it unless it is allowed with --follow-link."""
    base, server, cfg = practice
    new = base / "neuer-server"
    generate(new, size_mb=1, seed=9)
    elsewhere = base / "anderes-laufwerk"
    (new / "CompuMED").rename(elsewhere)
    os.symlink(elsewhere, new / "CompuMED")
    before = tree_state(elsewhere, with_atime=False)
    plan = cli(cfg, "restore-practice", "--target-root", str(new), "--dry-run", check=True).stdout
    assert f"VERKNÜPFUNG {new / 'CompuMED'} -> {elsewhere} (VERWEIGERT" in plan
    out = cli(cfg, "restore-practice", "--target-root", str(new), "--yes")
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"{new / 'CompuMED'} is a link (to {elsewhere})" in out.stderr
    assert tree_state(elsewhere, with_atime=False) == before  # nothing renamed, nothing written
    allowed = cli(
        cfg,
        "restore-practice",
        "--target-root",
        str(new),
        "--yes",
        "--follow-link",
        str(new / "CompuMED"),
    )
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert (elsewhere / "M1" / "Bin_Original").is_dir()
    assert tree_state(elsewhere / "M1" / "Bin", with_atime=False) == tree_state(
        server / "CompuMED" / "M1" / "Bin", with_atime=False
    )


def test_a_junk_snapshot_file_does_not_block_restore_practice_or_a_drill(
    practice: tuple[Path, Path, Path],
) -> None:
    base, server, cfg = practice
    usb = next(p for p in base.iterdir() if p.name == "ext4-mnt")
    (usb / "praxisbackup" / "snapshots" / ("0" * 64)).write_bytes(b"")
    listing = cli(cfg, "restore-practice", "--list")
    assert listing.returncode == 0, listing.stderr
    new = base / "neuer-server"
    out = cli(cfg, "restore-practice", "--target-root", str(new), "--yes")
    assert out.returncode == 0, out.stdout + out.stderr
    assert tree_state(new / "CompuMED" / "M1" / "Bin", with_atime=False) == tree_state(
        server / "CompuMED" / "M1" / "Bin", with_atime=False
    )
    drill = cli(cfg, "drill")
    assert drill.returncode == 0, drill.stdout + drill.stderr
