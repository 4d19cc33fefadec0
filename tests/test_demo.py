"""The README's demo, as a user runs it: a small sample practice must end RESULT OK too."""

from __future__ import annotations

from pathlib import Path

from conftest import run_cli


def test_demo_with_a_small_practice_ends_ok(tmp_path: Path) -> None:
    out = run_cli("demo", "--dir", str(tmp_path / "demo"), "--size-mb", "4", password=None)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "RESULT: OK" in out.stdout
    assert "0 differences in content or modification time" in out.stdout
    # The stand-in database held its file open while running and was stopped for the copy.
    assert "M1-Datenbank (Demo): beendet" in out.stdout and "noch geöffnet" not in out.stdout
    assert not (tmp_path / "demo" / "m1-datenbank.pid").exists()  # stopped at the end
