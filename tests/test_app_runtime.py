"""The application layer's runtime guarantees: one run at a time (an OS lock that dies with its
process), stop requests deferred while services start without replacing an error in flight,
and `serve` answering a stop request at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from praxisbackup.app.interrupt import Interrupted, StopRequests
from praxisbackup.app.runlock import RunLock, RunLockedError


def test_run_lock_excludes_a_second_run_and_dies_with_its_process(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with (
        RunLock(str(state)),
        pytest.raises(RunLockedError, match=f"pid {os.getpid()}"),
        RunLock(str(state)),
    ):
        pass
    with RunLock(str(state)):  # released on exit; the file stays and is reused
        pass
    assert (state / "run.lock").exists()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from praxisbackup.app.runlock import RunLock\n"
            f"lock = RunLock({str(state)!r}).__enter__(); print('held', flush=True); "
            "time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLockedError, match=f"pid {holder.pid}"), RunLock(str(state)):
            pass
    finally:
        holder.kill()  # kill -9: no cleanup code runs in the holder
        holder.wait()
    with RunLock(str(state)):  # the kernel released it with the process
        pass


def test_stop_request_is_deferred_while_services_start_then_raised() -> None:
    order: list[str] = []
    with StopRequests() as stops, pytest.raises(Interrupted, match="Ctrl-C"):
        with stops.deferred():
            os.kill(os.getpid(), signal.SIGINT)
            order.append("services started")  # still reached: the request only waited
        order.append("not reached")
    assert order == ["services started"]


def test_stop_request_never_replaces_an_error_in_flight() -> None:
    with StopRequests() as stops, pytest.raises(ValueError, match="disk error"):
        try:
            raise ValueError("disk error")
        finally:
            with stops.deferred():
                os.kill(os.getpid(), signal.SIGTERM)
    assert stops.received == "SIGTERM"


def test_stop_request_interrupts_work_at_once() -> None:
    with StopRequests(), pytest.raises(Interrupted, match="SIGTERM"):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("the stop request did not interrupt")


def test_serve_answers_a_stop_request_promptly(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    cfg = tmp_path / "praxis.toml"
    # 03:00 is never "due now" in a test run that starts right after a run: next_run waits.
    cfg.write_text(
        f'state_dir = "{tmp_path / "state"}"\n[practice]\nname = "P"\n[[sources]]\n'
        f'label = "d"\npath = "{tmp_path / "data"}"\n[schedule]\nat = "03:00"\n',
        encoding="utf-8",
    )
    env = dict(os.environ, PRAXISBACKUP_PASSWORD="pw")
    proc = subprocess.Popen(
        [sys.executable, "-m", "praxisbackup.cli.main", "-c", str(cfg), "serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        if first.startswith("run "):  # within 8 h after 03:00 it catches up first
            first = proc.stdout.readline()
        assert first.startswith("next run at"), first
        proc.send_signal(signal.SIGTERM)
        # The loop used to sleep 30 s between checks; now the stop event wakes it.
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
