"""No traceback reaches a user (issue #11): every error a user can cause is one clear line
and a documented exit code; an unexpected one is one line naming the log with the trace and
exits 70 (not 1, which means "finished with warnings")."""

from __future__ import annotations

import os
import signal
import stat
from collections.abc import Sequence
from pathlib import Path

import pytest

from conftest import PASSWORD, run_cli
from praxisbackup.cli import main as cli_main
from praxisbackup.engine.lock import lock_repository
from praxisbackup.engine.repository import Repository
from praxisbackup.platform import stops
from praxisbackup.storage import LocalBackend
from praxisbackup.torture.crafted import Crafter


def assert_one_line(stderr: str) -> None:
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(
        ("praxisbackup: error: ", "praxisbackup: Fehler: ")
    ), stderr


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", "akte\x00.pdf"), ("gid", -1), ("uid", -5), ("mtime_ns", 10**25), ("size", -1)],
)
def test_crafted_tree_values_end_in_one_line(tmp_path: Path, field: str, value: object) -> None:
    repo_path = tmp_path / "repo"
    repo = Repository.init(LocalBackend(str(repo_path)), PASSWORD)
    c = Crafter(repo)
    doc = c.file("akte.pdf", b"Befund").to_doc() | {field: value}
    folder = c.dir("praxis", [])
    folder.subtree = c.raw_tree([doc])  # the crafted entry sits below a normal folder
    snap = c.snapshot([folder])
    for args in (
        ["restore", snap, "--target", str(tmp_path / "t")],
        ["ls", "-l", snap],
        ["find", "akte*"],
        ["stats", snap],
    ):
        out = run_cli(*args, repo=repo_path)
        assert out.returncode in (2, 5), (args, out.stdout, out.stderr)
        assert "Traceback" not in out.stderr, args
        assert "malformed" in out.stderr, args
    assert not list(tmp_path.rglob("akte*"))


def test_a_config_that_is_not_utf8_or_nests_deeply(tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes('[practice]\nname = "Praxis Dr. Müller"\n'.encode("latin-1"))
    out = run_cli("-c", str(latin1), "config", "check")
    assert out.returncode == 2
    assert_one_line(out.stderr)
    assert "is not UTF-8 text" in out.stderr
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    out = run_cli("-c", str(deep), "config", "check")
    assert out.returncode == 2 and "nested too deeply" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_binary_password_file(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    run_cli("init", repo=repo, check=True)
    binary = tmp_path / "pw.bin"
    binary.write_bytes(b"\xff\xfe\x00geheim\x80\n")
    out = run_cli("--password-file", str(binary), "snapshots", repo=repo, password=None)
    assert out.returncode == 2
    assert_one_line(out.stderr)
    assert "is not a text file (UTF-8)" in out.stderr


def test_ack_and_backup_as_a_user_without_rights(world_dir: Path) -> None:
    state = world_dir / "state"
    cfg = world_dir / "praxis.toml"
    cfg.write_text(
        f'state_dir = "{state}"\n[practice]\nname = "Praxis"\n'
        f'[[sources]]\nlabel = "M1"\npath = "{world_dir}"\n'
    )
    cfg.chmod(0o644)
    assert run_cli("-c", str(cfg), "ack", "--by", "Anna").returncode == 0  # as root
    state.chmod(0o755)
    for p in state.rglob("*"):
        p.chmod(0o644)  # readable, but only root may write
    out = run_cli("-c", str(cfg), "ack", "--by", "Anna", user="nobody")
    assert out.returncode == 2
    assert_one_line(out.stderr)
    # The practice's language (German): what to do instead, without a traceback.
    assert "Dafür fehlen Ihnen die Rechte" in out.stderr and "Statusseite" in out.stderr
    repo = world_dir / "repo"
    run_cli("init", repo=repo, check=True)  # root's, 0600 files: nobody cannot read them
    out = run_cli("snapshots", repo=repo, user="nobody")
    assert out.returncode == 2
    assert_one_line(out.stderr)


def test_an_unexpected_error_names_its_log_and_exits_70(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    out = run_cli(
        "init",
        repo=tmp_path / "repo",
        env={"PRAXISBACKUP_KDF_N": "3", "PRAXISBACKUP_LOG_DIR": str(logs)},
    )
    assert out.returncode == 70
    assert_one_line(out.stderr)
    assert "internal error (ValueError" in out.stderr
    (log,) = logs.iterdir()
    assert str(log) in out.stderr
    assert "Traceback (most recent call last)" in log.read_text()
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert os.path.exists(logs) and stat.S_IMODE(logs.stat().st_mode) == 0o700


def test_a_reader_that_stops_reading_ends_the_command_quietly(tmp_path: Path) -> None:
    """`praxisbackup ls latest | head -1`: the reader closes the pipe; the command ends with
    exit code 0 and no "broken pipe" error (the outsider saw a German error line and 2)."""
    import subprocess
    import sys

    src = tmp_path / "praxis"
    src.mkdir()
    for i in range(3000):
        (src / f"dokument-mit-einem-langen-namen-{i:05d}.txt").write_text("x")
    repo = tmp_path / "repo"
    run_cli("init", repo=repo, check=True)
    run_cli("backup", str(src), repo=repo, check=True)
    env = dict(
        os.environ,
        PRAXISBACKUP_KDF_N="1024",
        PRAXISBACKUP_PASSWORD=PASSWORD,
        PRAXISBACKUP_REPOSITORY=str(repo),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "praxisbackup.cli.main", "ls", "latest"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # like `head -1`
    errors = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, errors
    assert first.strip() and errors == ""


def test_a_stop_while_the_command_loads_is_an_interruption_not_a_warning(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stop request while a command's modules are still being imported reached click, which
    printed "Aborted!" and exited 1 - "finished with warnings", a success for a service
    manager (found by an outsider). It is now "abgebrochen" with exit 2."""

    def interrupted_load(_self: object, _names: list[str]) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_main.PraxisGroup, "_load", interrupted_load)
    with pytest.raises(SystemExit) as ended:
        cli_main.cli.main(["-r", "/nonexistent", "snapshots"], prog_name="praxisbackup")
    assert ended.value.code == 2
    err = capsys.readouterr().err
    assert "abgebrochen" in err and "Aborted" not in err, err


def test_a_stop_request_during_a_lock_step_waits_for_it_and_leaves_no_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop request landing while the lock is written (or removed) left a lock on the medium
    about once in forty backups (outsider). It now takes effect once the step is complete:
    the lock is held and then removed as the command ends."""
    path = tmp_path / "repo"
    Repository.init(LocalBackend(str(path)), PASSWORD)

    class StoppedWhileLocking(LocalBackend):
        def write(self, kind: str, name: str, data: bytes | Sequence[bytes]) -> None:
            if kind == "locks":
                os.kill(os.getpid(), signal.SIGTERM)  # arrives in the middle of the step
            super().write(kind, name, data)

    repo = Repository.open(StoppedWhileLocking(str(path)), PASSWORD)
    monkeypatch.setattr(cli_main, "_stopping", False)
    previous = signal.signal(signal.SIGTERM, cli_main._stop_requested)
    try:
        with pytest.raises(KeyboardInterrupt), lock_repository(repo, True, "test"):
            pytest.fail("the stop request must end the block before its first line")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert os.listdir(path / "locks") == []


def test_a_stop_request_outside_an_uninterrupted_step_acts_at_once() -> None:
    def stop() -> None:
        raise KeyboardInterrupt

    assert not stops.defer(stop)
    with pytest.raises(KeyboardInterrupt), stops.uninterrupted():
        assert stops.defer(stop)
        assert stops.defer(stop)  # (one is enough)
    with stops.uninterrupted():
        pass  # nothing pending any more
