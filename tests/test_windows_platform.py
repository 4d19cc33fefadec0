"""Windows-only platform behaviour (Windows lane only): the passphrase kept DPAPI-protected,
no prompt without a console, the open-file check, the private state folder, Windows paths."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import run_cli
from praxisbackup import platform
from praxisbackup.credentials import DPAPI_PREFIX, read_secret_file, store_secret
from praxisbackup.engine.paths import native_path
from praxisbackup.practice.openfiles import open_files_below


def test_the_passphrase_file_is_dpapi_encrypted_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "passphrase.txt"
    store_secret(str(path), "ABCDE-23456-Müller")
    raw = path.read_text(encoding="utf-8")
    assert raw.startswith(DPAPI_PREFIX) and "Müller" not in raw and "ABCDE" not in raw
    assert read_secret_file(str(path), "passphrase") == "ABCDE-23456-Müller"


def test_no_prompt_without_a_console(tmp_path: Path) -> None:
    # The test's stdin is NUL (isatty() is True for it): the command must fail at once.
    repo = tmp_path / "repo"
    run_cli("init", repo=repo, check=True)
    # A prompt would wait for typing until run_cli's timeout raises.
    out = run_cli("snapshots", repo=repo, password=None, timeout=60)
    assert out.returncode == 3 and "Traceback" not in out.stderr
    assert not platform.has_console()


def test_a_file_held_open_elsewhere_is_found_and_released(tmp_path: Path) -> None:
    db = tmp_path / "db"
    db.mkdir()
    held = db / "M1DATA00.DBF"
    held.write_bytes(b"\0" * 4096)
    (db / "frei.txt").write_text("x", encoding="utf-8")
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"f = open({str(held)!r}, 'r+b'); print('ok', flush=True); import time; time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ok"
        assert open_files_below([str(db)]) == [str(held)]
    finally:
        child.kill()
        child.wait()
    assert open_files_below([str(db)]) == []


def test_paths_are_shown_with_drive_letters() -> None:
    assert native_path("/D/pt/Brief.txt") == "D:\\pt\\Brief.txt"
