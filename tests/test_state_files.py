"""The local state names patients' files: on POSIX its folder is 0700, the catalog and the
logs 0600, also when an older installation left them open (issue #11)."""

from __future__ import annotations

import stat
from pathlib import Path

from conftest import run_cli


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_state_folder_catalog_and_logs_are_private(tmp_path: Path) -> None:
    state = tmp_path / "state"
    cfg = tmp_path / "praxis.toml"
    (tmp_path / "daten").mkdir()
    cfg.write_text(
        f'state_dir = "{state}"\n[practice]\nname = "Praxis"\n'
        f'[[sources]]\nlabel = "Daten"\npath = "{tmp_path / "daten"}"\n'
        f'[media]\ncandidates = ["{tmp_path / "kein-medium-*"}"]\n'
    )
    out = run_cli("-c", str(cfg), "run", password="pw")
    assert out.returncode == 2  # no medium: red, but the protocol and the log are written
    assert mode(state) == 0o700
    assert mode(state / "catalog.sqlite") == 0o600
    (log,) = (state / "logs").iterdir()
    assert mode(state / "logs") == 0o700 and mode(log) == 0o600
    # An older installation left everything readable: the next run tightens it.
    for path in (state, state / "catalog.sqlite", state / "logs"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    run_cli("-c", str(cfg), "run", password="pw")
    assert mode(state) == 0o700 and mode(state / "catalog.sqlite") == 0o600
    assert mode(state / "logs") == 0o700
    assert all(mode(p) == 0o600 for p in (state / "logs").iterdir())
