"""Nothing readable leaves the server: content, names and metadata are encrypted on the medium."""

from __future__ import annotations

import os
from pathlib import Path

from conftest import run_cli

MARKER = "PATIENTMUELLERXYZ"


def test_no_plaintext_on_the_medium(tmp_path: Path) -> None:
    src = tmp_path / "Praxis-Dr-Muster"
    (src / f"Akte-{MARKER}").mkdir(parents=True)
    (src / f"Akte-{MARKER}" / f"Befund-{MARKER}.txt").write_text(f"Diagnose für {MARKER}\n" * 1000)
    (src / "incompressible.bin").write_bytes(
        os.urandom(100_000) + MARKER.encode() + os.urandom(1000)
    )
    (src / "tiny.txt").write_text(MARKER)
    os.symlink(f"/ziel/{MARKER}", src / "verweis")
    repo = tmp_path / "medium"
    run_cli("init", repo=repo, check=True)
    run_cli(
        "backup",
        str(src),
        "--tag",
        f"tag-{MARKER}",
        "--host",
        f"host-{MARKER}",
        repo=repo,
        check=True,
    )
    needles = [MARKER.encode(), MARKER.encode("utf-16-le"), b"Praxis-Dr-Muster", b"Diagnose"]
    scanned = 0
    for f in repo.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            scanned += len(data)
            for needle in needles:
                assert needle not in data, f"{needle!r} readable in {f}"
        assert MARKER not in f.name
    assert scanned > 100_000


def test_repository_files_are_private(tmp_path: Path) -> None:
    repo = tmp_path / "medium"
    run_cli("init", repo=repo, check=True)
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_text("a")
    run_cli("backup", str(src), repo=repo, check=True)
    for f in repo.rglob("*"):
        if f.is_file():
            assert f.stat().st_mode & 0o077 == 0, f


def test_passphrase_not_in_output_or_process_arguments(tmp_path: Path) -> None:
    secret = "Geheim-Passwort-4711"
    repo = tmp_path / "medium"
    out = run_cli("init", repo=repo, password=secret, check=True)
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_text("a")
    out = run_cli("backup", str(src), repo=repo, password=secret, check=True)
    assert secret not in out.stdout + out.stderr
    wrong = run_cli("snapshots", repo=repo, password=secret + "x")
    assert secret not in wrong.stdout + wrong.stderr
    # The CLI offers no option that would put a passphrase on the command line.
    helptext = run_cli("--help", repo=repo).stdout
    assert "--password " not in helptext and "--password=" not in helptext
