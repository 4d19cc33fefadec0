"""Security checks and the bad-input catalogue, each with its expected outcome asserted."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

from praxisbackup.app.job import NightlyJob
from praxisbackup.engine.checker import Checker
from praxisbackup.engine.repository import Repository
from praxisbackup.media.selection import prepare_medium
from praxisbackup.model.config import ConfigError, parse_config
from praxisbackup.model.protocol import RunProtocol
from praxisbackup.practice.sample import generate
from praxisbackup.storage import LocalBackend

MARKER = "MARKERPATIENTXYZ"
SECRET_PW = "Geheimes-Tagespasswort-9876"
SECRET_SMTP = "Geheimes-SMTP-Passwort-5432"


def _config(base: Path, medium_glob: str, extra: str = "", service: bool = True) -> str:
    marker = base / "service-running"
    svc = (
        f"""
[[services]]
name = "datenbank"
kind = "command"
stop = "rm -f {marker}"
start = "touch {marker}"
is_running = "test -f {marker}"
"""
        if service
        else ""
    )
    return f"""
state_dir = "{base / "state"}"
[practice]
name = "Praxis {MARKER} Muster"
[[sources]]
label = "Daten"
path = "{base / "server"}"
{svc}
[media]
candidates = ["{medium_glob}"]
allow_same_disk = true
[notify.smtp]
host = "127.0.0.1"
port = 9
security = "none"
username = "praxis"
sender = "backup@praxis.test"
[notify.recipients]
responsible = ["anna@praxis.test"]
{extra}
"""


def security_checks(work: Path) -> dict[str, Any]:
    """Marker scan of every byte on the medium, tampering, secrets in logs, file modes."""
    base = work / "security"
    shutil.rmtree(base, ignore_errors=True)
    server = base / "server"
    (server / f"Akte-{MARKER}").mkdir(parents=True)
    (server / f"Akte-{MARKER}" / f"Befund-{MARKER}.txt").write_text(f"Diagnose {MARKER}\n" * 500)
    (base / "service-running").touch()
    os.environ["PRAXISBACKUP_PASSWORD"] = SECRET_PW
    os.environ["PRAXISBACKUP_SMTP_PASSWORD"] = SECRET_SMTP
    config = parse_config(_config(base, str(base / "medium-*")))
    medium = prepare_medium(config, str(base / "medium-1"), "Mo", SECRET_PW)
    protocol = NightlyJob(config).run()
    results: dict[str, bool] = {}
    blob = b"".join(p.read_bytes() for p in Path(medium.repository_path).rglob("*") if p.is_file())
    names = " ".join(p.name for p in Path(medium.root).rglob("*"))
    results["no plaintext content, names or practice name on the medium"] = (
        MARKER.encode() not in blob and MARKER not in names and b"Diagnose" not in blob
    )
    state_bytes = b"".join(p.read_bytes() for p in (base / "state").rglob("*") if p.is_file())
    results["no passphrase or SMTP password in logs, catalog, protocols"] = (
        SECRET_PW.encode() not in state_bytes and SECRET_SMTP.encode() not in state_bytes
    )
    helptext = subprocess.run(
        [sys.executable, "-m", "praxisbackup.cli.main", "--help"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    results["no passphrase option on the command line (ps)"] = (
        "--password " not in helptext and "--password=" not in helptext
    )
    modes = [
        p.stat().st_mode & 0o077 for p in Path(medium.repository_path).rglob("*") if p.is_file()
    ]
    results["repository files private (0600)"] = all(m == 0 for m in modes)
    repo_path = Path(medium.repository_path)
    snap_file = next((repo_path / "snapshots").iterdir())
    data = bytearray(snap_file.read_bytes())
    data[len(data) // 2] ^= 1
    snap_file.write_bytes(bytes(data))
    repo = Repository.open(LocalBackend(str(repo_path)), SECRET_PW)
    results["modified ciphertext detected"] = not Checker(repo).run().ok
    snap_file.write_bytes(
        bytes(data[: len(data) // 2])
        + bytes([data[len(data) // 2] ^ 1])
        + bytes(data[len(data) // 2 + 1 :])
    )
    index_files = sorted((repo_path / "index").iterdir())
    snap2 = repo_path / "snapshots" / index_files[0].name
    shutil.copy(index_files[0], snap2)
    results["object swapped to another name/kind detected"] = not Checker(repo).run().ok
    snap2.unlink()
    # Replay: the newest snapshot files deleted (as when an old copy of the medium is put back).
    for f in (repo_path / "snapshots").iterdir():
        f.unlink()
    replay = NightlyJob(config).run()
    results["replayed (deleted) snapshots detected"] = any(
        f.code == "snapshots_missing" for f in replay.findings
    )
    _ = protocol
    return {"checks": results, "passed": sum(results.values()), "total": len(results)}


def bad_input_catalogue(work: Path) -> dict[str, Any]:
    """Awkward inputs through the nightly job, each with its expected outcome; services must be
    running again afterwards and earlier snapshots intact."""
    base = work / "badinput"
    shutil.rmtree(base, ignore_errors=True)
    server = base / "server"
    generate(server, size_mb=1)
    (base / "service-running").touch()
    os.environ["PRAXISBACKUP_PASSWORD"] = "pw"
    os.environ.pop("PRAXISBACKUP_SMTP_PASSWORD", None)
    cfg_text = _config(base, str(base / "medium-*"))
    config = parse_config(cfg_text)
    prepare_medium(config, str(base / "medium-1"), "Mo", "pw")
    cases: list[
        tuple[str, Callable[[], None], Callable[[RunProtocol], bool], Callable[[], None]]
    ] = []

    def noop() -> None:
        return None

    def add_file(name: str, data: bytes = b"x") -> Callable[[], None]:
        def write() -> None:
            (server / name).write_bytes(data)

        return write

    def fifo() -> None:
        os.mkfifo(server / "leitung.fifo")

    def symlink_loop() -> None:
        os.symlink("schleife-b", server / "schleife-a")
        os.symlink("schleife-a", server / "schleife-b")

    def long_path() -> None:
        # Built step by step relative to directory descriptors: the full path exceeds PATH_MAX.
        fd = os.open(server, os.O_RDONLY)
        try:
            for i in range(40):
                name = f"{i:02d}-{'x' * 120}"
                os.mkdir(name, dir_fd=fd)
                new_fd = os.open(name, os.O_RDONLY, dir_fd=fd)
                os.close(fd)
                fd = new_fd
            leaf = os.open("tief.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
            os.write(leaf, b"tief")
            os.close(leaf)
        finally:
            os.close(fd)

    def invalid_utf8() -> None:
        with open(os.path.join(os.fsencode(server), b"ung\xfcltig-\xff.txt"), "wb") as fh:
            fh.write(b"latin-1 name")

    def nfc_nfd() -> None:
        (server / unicodedata.normalize("NFC", "Müller.txt")).write_text("nfc")
        (server / unicodedata.normalize("NFD", "Müller.txt")).write_text("nfd")

    def reserved_names() -> None:
        for name in ("CON", "aux.txt", "trailing."):
            (server / name).write_text(name)

    def green_or_info(p: RunProtocol) -> bool:
        return p.status in ("green", "yellow") and bool(p.snapshot_id)

    cases += [
        ("FIFO in the data", fifo, green_or_info, noop),
        ("symlink loop", symlink_loop, green_or_info, noop),
        ("path over 4096 bytes", long_path, green_or_info, noop),
        ("invalid UTF-8 file name", invalid_utf8, green_or_info, noop),
        ("NFC and NFD spellings side by side", nfc_nfd, green_or_info, noop),
        (
            "Windows reserved names (CON, aux.txt, trailing dot)",
            reserved_names,
            green_or_info,
            noop,
        ),
        (
            "SMTP server down (mail kept in the outbox)",
            add_file("brief.txt"),
            lambda p: any(f.code == "alert_problem" for f in p.findings) or p.status == "green",
            noop,
        ),
    ]
    outcomes: dict[str, bool] = {}
    for name, prepare, expect, cleanup in cases:
        prepare()
        p = NightlyJob(parse_config(cfg_text)).run()
        outcomes[name] = expect(p) and (base / "service-running").exists()
        cleanup()
    # Source-side failures that must be red or clean errors.
    wrong = dict(os.environ)
    os.environ["PRAXISBACKUP_PASSWORD"] = "falsch"
    p = NightlyJob(parse_config(cfg_text)).run()
    outcomes["wrong passphrase"] = p.status == "red" and (base / "service-running").exists()
    os.environ.clear()
    os.environ.update(wrong)
    unknown = parse_config(_config(base, str(base / "fremd-*")))
    from praxisbackup.media.label import init_medium  # noqa: PLC0415

    init_medium(str(base / "fremd-1"), "Mo", "pw")
    p = NightlyJob(unknown).run()
    outcomes["unknown (unregistered) medium"] = p.status == "red" and any(
        f.code == "medium_unregistered" for f in p.findings
    )
    no_medium = parse_config(_config(base, str(base / "nirgends-*")))
    p = NightlyJob(no_medium).run()
    outcomes["no medium attached"] = p.status == "red" and any(
        f.code == "no_medium" for f in p.findings
    )
    for label, text in (
        ("config: wrong type", cfg_text.replace("allow_same_disk = true", "allow_same_disk = 5")),
        ("config: unknown key", cfg_text + "\n[verify]\nlevle = 'full'\n"),
        ("config: TOML syntax", cfg_text + "\n[broken\n"),
    ):
        try:
            parse_config(text)
            outcomes[label] = False
        except ConfigError as exc:
            outcomes[label] = "line" in str(exc) or "TOML" in str(exc)
    import datetime as dt  # noqa: PLC0415

    past = dt.datetime(2020, 1, 6, 22, 30, tzinfo=dt.UTC)
    p = NightlyJob(parse_config(cfg_text), clock=lambda: past).run()
    outcomes["clock jumped backwards"] = bool(p.snapshot_id) and p.status != "red"
    repo = Repository.open(LocalBackend(str(base / "medium-1" / "praxisbackup")), "pw")
    outcomes["earlier snapshots intact afterwards"] = Checker(repo).run(read_data=True).ok
    return {"cases": len(outcomes), "handled": sum(outcomes.values()), "outcomes": outcomes}
