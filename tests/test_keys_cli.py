"""Key slots and passphrases through the real CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

from conftest import PASSWORD, run_cli
from praxisbackup.engine.crypto import normalize_recovery_key


def test_init_wrong_passphrase_and_recovery_key(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    out = run_cli("--json", "init", "--recovery-key", repo=repo, check=True)
    recovery = json.loads(out.stdout)["recovery_key"]
    wrong = run_cli("snapshots", repo=repo, password="not the passphrase")
    assert wrong.returncode == 3
    assert "Das Passwort passt nicht zum Sicherungsmedium" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    # The recovery key alone opens the repository, also typed sloppily.
    assert run_cli("snapshots", repo=repo, password=recovery).returncode == 0
    sloppy = recovery.replace("-", " ").lower()
    assert run_cli("snapshots", repo=repo, password=sloppy).returncode == 0
    assert normalize_recovery_key(sloppy) == recovery


def test_add_remove_and_change_keys(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    run_cli("init", repo=repo, check=True)
    newpw = tmp_path / "new.txt"
    newpw.write_text("zweites Passwort\n")
    run_cli(
        "key", "add", "--new-password-file", str(newpw), "--label", "Praxis", repo=repo, check=True
    )
    keys = json.loads(run_cli("--json", "key", "list", repo=repo, check=True).stdout)
    assert len(keys) == 2
    assert run_cli("snapshots", repo=repo, password="zweites Passwort").returncode == 0
    # Removing the slot in use is refused; removing the other one works.
    current = next(k["id"] for k in keys if k["current"])
    other = next(k["id"] for k in keys if not k["current"])
    refused = run_cli("key", "remove", current[:12], repo=repo)
    assert refused.returncode == 2 and "opened the repository" in refused.stderr
    run_cli("key", "remove", other[:12], repo=repo, check=True)
    assert run_cli("snapshots", repo=repo, password="zweites Passwort").returncode == 3
    # passwd replaces the current slot.
    third = tmp_path / "third.txt"
    third.write_text("drittes\n")
    run_cli("key", "passwd", "--new-password-file", str(third), repo=repo, check=True)
    assert run_cli("snapshots", repo=repo, password=PASSWORD).returncode == 3
    assert run_cli("snapshots", repo=repo, password="drittes").returncode == 0
    assert (
        len(json.loads(run_cli("--json", "key", "list", repo=repo, password="drittes").stdout)) == 1
    )


def test_password_file_and_missing_passphrase(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    run_cli("init", repo=repo, check=True)
    pwfile = tmp_path / "pw"
    pwfile.write_text(PASSWORD + "\n")
    ok = run_cli("--password-file", str(pwfile), "snapshots", repo=repo, password=None)
    assert ok.returncode == 0, ok.stderr
    none = run_cli("snapshots", repo=repo, password=None)
    assert (
        none.returncode == 3
        and "Das Passwort der Datensicherung ist hier nicht hinterlegt" in none.stderr
    )
    missing = run_cli(
        "--password-file", str(tmp_path / "nope"), "snapshots", repo=repo, password=None
    )
    assert missing.returncode == 2 and "cannot read the passphrase file" in missing.stderr


def test_no_repository_and_existing_repository(tmp_path: Path) -> None:
    absent = run_cli("snapshots", repo=tmp_path / "absent")
    assert absent.returncode == 2 and "no praxisbackup repository" in absent.stderr
    run_cli("init", repo=tmp_path / "r", check=True)
    again = run_cli("init", repo=tmp_path / "r")
    assert again.returncode == 2 and "already holds a repository" in again.stderr
    no_repo = run_cli("snapshots", env={"PRAXISBACKUP_REPOSITORY": ""})
    assert no_repo.returncode == 2 and "no repository given" in no_repo.stderr


def test_key_files_hold_no_plain_key_material(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    run_cli("init", repo=repo, check=True)
    for f in (repo / "keys").iterdir():
        doc = json.loads(f.read_text())
        assert set(doc) == {"version", "kdf", "data"}
        assert doc["kdf"]["name"] == "scrypt" and len(doc["kdf"]["salt"]) >= 40
        assert oct(os.stat(f).st_mode & 0o777) == "0o600"


def test_global_options_after_the_subcommand(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    pwfile = tmp_path / "pw.txt"
    pwfile.write_text(PASSWORD + "\n", encoding="utf-8")
    run_cli(
        "init",
        "--repo",
        str(repo),
        check=True,
        password=None,
        env={"PRAXISBACKUP_PASSWORD_FILE": str(pwfile)},
    )
    # As restic users type it: options of the program after the command, in any form.
    out = run_cli(
        "snapshots",
        "--repo",
        str(repo),
        "--json",
        "--password-file",
        str(pwfile),
        password=None,
        check=True,
    )
    assert json.loads(out.stdout) == []
    out = run_cli("snapshots", f"--repo={repo}", "-q", password=PASSWORD, check=True)
    assert out.stdout == ""  # --quiet applied
    # Nested commands too.
    keys = run_cli("key", "list", "-r", str(repo), "--json", check=True)
    assert len(json.loads(keys.stdout)) == 1
