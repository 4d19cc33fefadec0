"""The repository key is derived while a command loads (cli/keyahead.py): once, on its own
thread, and taken by the opening; anything wrong is reported by the command as before."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import PASSWORD, run_cli
from praxisbackup.cli import keyahead
from praxisbackup.engine import crypto
from praxisbackup.engine.repository import Repository
from praxisbackup.errors import WrongPasswordError
from praxisbackup.storage import LocalBackend


def _count_derivations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the threads that ran scrypt, in order."""
    calls: list[str] = []
    real: Callable[[str, bytes, crypto.KdfParams], bytes] = crypto._derive_now

    def counted(passphrase: str, salt: bytes, params: crypto.KdfParams) -> bytes:
        calls.append(threading.current_thread().name)
        return real(passphrase, salt, params)

    monkeypatch.setattr(crypto, "_derive_now", counted)
    return calls


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-r", "/m/r", "check"], "/m/r"),
        (["--repo", "/m/r", "check"], "/m/r"),
        (["--repo=/m/r", "check"], "/m/r"),
        (["-r/m/r", "check"], "/m/r"),
        (["check", "-r", "/a", "--repo", "/b"], "/b"),
        (["check", "--", "-r", "/a"], None),
        (["check", "-r"], None),
        (["-q", "check", "--read-data"], None),
    ],
)
def test_the_repository_is_found_on_the_command_line(args: list[str], expected: str) -> None:
    assert keyahead.option_value(args, ("-r", "--repo")) == expected


def test_the_key_derived_ahead_is_the_one_opening_uses(
    repo_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Repository.init(LocalBackend(str(repo_path)), PASSWORD).close()
    calls = _count_derivations(monkeypatch)
    monkeypatch.setenv("PRAXISBACKUP_PASSWORD", PASSWORD)
    monkeypatch.delenv("PRAXISBACKUP_REPOSITORY", raising=False)
    keyahead.start(["-q", "--repo", str(repo_path), "check"])
    Repository.open(LocalBackend(str(repo_path)), PASSWORD).close()
    assert calls == ["derive-key"]  # once, on the thread started before the opening
    assert not crypto._ahead


def test_a_wrong_passphrase_given_ahead_is_still_wrong(
    repo_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Repository.init(LocalBackend(str(repo_path)), PASSWORD).close()
    calls = _count_derivations(monkeypatch)
    monkeypatch.setenv("PRAXISBACKUP_PASSWORD", "not the passphrase")
    keyahead.start(["-r", str(repo_path), "snapshots"])
    with pytest.raises(WrongPasswordError):
        Repository.open(LocalBackend(str(repo_path)), "not the passphrase")
    assert calls == ["derive-key"]


def test_another_passphrase_at_opening_derives_its_own_key(
    repo_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Repository.init(LocalBackend(str(repo_path)), PASSWORD).close()
    calls = _count_derivations(monkeypatch)
    monkeypatch.setenv("PRAXISBACKUP_PASSWORD", "not the passphrase")
    keyahead.start(["-r", str(repo_path), "snapshots"])
    Repository.open(LocalBackend(str(repo_path)), PASSWORD).close()
    assert calls == ["derive-key", "MainThread"]


def test_nothing_is_started_without_a_given_passphrase(
    repo_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Repository.init(LocalBackend(str(repo_path)), PASSWORD).close()
    calls = _count_derivations(monkeypatch)
    for name in ("PRAXISBACKUP_PASSWORD", "PRAXISBACKUP_PASSWORD_FILE"):
        monkeypatch.delenv(name, raising=False)
    keyahead.start(["-r", str(repo_path), "snapshots"])
    Repository.open(LocalBackend(str(repo_path)), PASSWORD).close()
    assert calls == ["MainThread"]


@pytest.mark.parametrize("case", ["no repository", "damaged slot", "missing password file"])
def test_problems_ahead_are_reported_by_the_command_itself(repo_path: Path, case: str) -> None:
    """Whatever stops the derivation ahead, the command reports it in one line, as always."""
    args = ["snapshots"]
    password: str | None = PASSWORD
    if case == "no repository":
        repo_path.mkdir(parents=True)
        expected = "there is no praxisbackup repository"
    else:
        Repository.init(LocalBackend(str(repo_path)), PASSWORD).close()
        if case == "damaged slot":
            slot = next((repo_path / "keys").iterdir())
            slot.write_bytes(slot.read_bytes() + b" ")
            expected = "Das Passwort passt nicht"
        else:
            password = None
            args = ["--password-file", str(repo_path.parent / "missing.txt"), "snapshots"]
            expected = "missing.txt"
    proc = run_cli(*args, repo=repo_path, password=password)
    assert proc.returncode != 0
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
