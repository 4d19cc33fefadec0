"""The repository key is derived while a command loads (cli/keyahead.py): once, on its own
thread, and taken by the opening; anything wrong is reported by the command as before."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
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
        (["-qr", "/m/r", "check"], "/m/r"),
        (["-qr/m/r", "check"], "/m/r"),
        (["ls", "-lr", "/m/r"], None),
    ],
)
def test_the_repository_is_found_on_the_command_line(args: list[str], expected: str) -> None:
    assert keyahead.option_value(args, ("-r", "--repo")) == expected


@pytest.mark.parametrize(
    ("given", "at_opening", "derived_on"),
    [
        # once, on the thread started before the opening
        (PASSWORD, PASSWORD, ["key-ahead"]),
        # a wrong passphrase given ahead is still wrong, and derived once
        ("not the passphrase", "not the passphrase", ["key-ahead"]),
        # another passphrase at opening (a prompt, a key change) derives its own key
        ("not the passphrase", PASSWORD, ["key-ahead", "MainThread"]),
    ],
)
def test_opening_takes_the_key_derived_ahead_for_its_own_passphrase_only(
    repo_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    given: str,
    at_opening: str,
    derived_on: list[str],
) -> None:
    Repository.init(LocalBackend(str(repo_path)), PASSWORD).close()
    calls = _count_derivations(monkeypatch)
    monkeypatch.setenv("PRAXISBACKUP_PASSWORD", given)
    monkeypatch.delenv("PRAXISBACKUP_REPOSITORY", raising=False)
    keyahead.start(["-q", "--repo", str(repo_path), "check"])
    if at_opening == PASSWORD:
        Repository.open(LocalBackend(str(repo_path)), at_opening).close()
    else:
        with pytest.raises(WrongPasswordError):
            Repository.open(LocalBackend(str(repo_path)), at_opening)
    assert calls == derived_on
    if given == at_opening:
        assert not crypto._ahead  # taken


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


def test_nothing_is_derived_for_a_command_that_opens_no_repository(
    repo_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Repository.init(LocalBackend(str(repo_path)), PASSWORD).close()
    calls = _count_derivations(monkeypatch)
    monkeypatch.setenv("PRAXISBACKUP_PASSWORD", PASSWORD)
    keyahead.start(["-qr", str(repo_path), "init"])
    crypto._ahead_settled.wait()
    assert calls == []


def _snapshots_with_password_file(
    repo_path: Path, password_file: str, pass_fds: tuple[int, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """``snapshots`` with the passphrase only in ``password_file`` (nothing in the
    environment)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRAXISBACKUP_PASSWORD")}
    command = [sys.executable, "-m", "praxisbackup.cli.main", "-r", str(repo_path)]
    return subprocess.run(
        [*command, "--password-file", password_file, "snapshots"],
        capture_output=True,
        text=True,
        env=env | {"PRAXISBACKUP_KDF_N": "1024"},
        pass_fds=pass_fds,
        timeout=120,
    )


def test_a_passphrase_in_a_pipe_is_left_to_the_command(repo_path: Path) -> None:
    """``--password-file <(echo ...)``: a pipe can be read once - by the command itself."""
    Repository.init(LocalBackend(str(repo_path)), PASSWORD).close()
    read_end, write_end = os.pipe()
    os.write(write_end, PASSWORD.encode() + b"\n")
    os.close(write_end)
    try:
        proc = _snapshots_with_password_file(repo_path, f"/dev/fd/{read_end}", (read_end,))
    finally:
        os.close(read_end)
    assert proc.returncode == 0, proc.stderr
    assert "0 snapshots" in proc.stdout


def test_a_stop_while_the_command_loads_is_held_until_it_can_end_it() -> None:
    before = {name: signal.getsignal(getattr(signal, name)) for name in ("SIGTERM", "SIGHUP")}
    try:
        keyahead.hold_stops()
        os.kill(os.getpid(), signal.SIGTERM)  # no exception, no death: held
        os.kill(os.getpid(), signal.SIGHUP)
        assert keyahead.held_stop() == signal.SIGTERM  # the first one counts
    finally:
        keyahead._held = None
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for name, handler in before.items():
            signal.signal(getattr(signal, name), handler)


def test_stops_in_the_first_half_second_end_the_command_cleanly(repo_path: Path) -> None:
    """SIGTERM at moments spread over the loading: every run ends - "abgebrochen" with exit
    2 once the command's handling is in place, the plain signal death before it - and none
    prints a traceback or hangs (an interruption inside an import shared with the key
    derivation's thread once left the process hanging)."""
    Repository.init(LocalBackend(str(repo_path)), PASSWORD).close()
    env = os.environ | {"PRAXISBACKUP_PASSWORD": PASSWORD, "PRAXISBACKUP_KDF_N": "1024"}
    outcomes = []
    for step in range(12):
        proc = subprocess.Popen(
            [sys.executable, "-m", "praxisbackup.cli.main", "-r", str(repo_path), "check"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        time.sleep(0.03 * step)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=120)
        assert "Traceback" not in err, err
        if proc.returncode == 2:
            assert err.strip() == "praxisbackup: Fehler: abgebrochen", err
        else:
            assert proc.returncode in (-signal.SIGTERM, 0), (proc.returncode, err)
        outcomes.append(proc.returncode)
    assert 2 in outcomes


def test_a_passphrase_from_a_named_pipe_with_a_writer_reaches_the_command(
    repo_path: Path, tmp_path: Path
) -> None:
    """A FIFO is not opened ahead of the command: opening it would take the waiting writer's
    line, and the command's own open would then wait for a writer forever."""
    Repository.init(LocalBackend(str(repo_path)), PASSWORD).close()
    fifo = tmp_path / "passphrase.fifo"
    os.mkfifo(fifo)

    def write_once() -> None:
        with open(fifo, "w", encoding="utf-8") as fh:  # blocks until a reader opens it
            fh.write(PASSWORD + "\n")

    threading.Thread(target=write_once, daemon=True).start()
    proc = _snapshots_with_password_file(repo_path, str(fifo))
    assert proc.returncode == 0, proc.stderr
    assert "0 snapshots" in proc.stdout


def test_a_combined_short_option_s_value_is_not_taken_for_the_command() -> None:
    """``-qr PATH snapshots``: PATH is the repository, ``snapshots`` the command (before, the
    path was taken for an unknown command and every command module was loaded)."""
    args = ["-qr", "/m/r", "snapshots"]
    assert keyahead.is_value(args, 1) and not keyahead.is_value(args, 2)
    assert keyahead.command_name(args) == "snapshots"


def test_a_stop_inside_an_import_is_asked_again_once_it_is_done(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stop request that arrives while Python's import machinery runs is not raised there
    (an import lock's clean-up callback printed the exception with a traceback and dropped
    it: the command ran on); it is asked again a moment later and ends the command then."""
    from praxisbackup.cli import main as cli_main

    monkeypatch.setattr(cli_main, "_stopping", False)
    namespace: dict[str, object] = {}
    exec(
        compile("import sys\nframe = sys._getframe()", "<frozen importlib._bootstrap>", "exec"),
        namespace,
    )
    previous = signal.signal(signal.SIGINT, cli_main._stop_requested)
    try:
        cli_main._stop_requested(signal.SIGTERM, namespace["frame"])  # type: ignore[arg-type]
        assert cli_main._stopping is False  # not yet: nothing raised inside the import
        with pytest.raises(KeyboardInterrupt):
            for _ in range(200):
                time.sleep(0.01)
        assert cli_main._stopping is True
    finally:
        signal.signal(signal.SIGINT, previous)
