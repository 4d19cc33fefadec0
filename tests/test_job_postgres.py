"""End to end with a real PostgreSQL server as the practice database: the nightly job stops it,
backs up its data directory cold together with an M1 PRO-like tree, starts it again; the
restored copy passes PostgreSQL's own checks and holds the same rows."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import run_cli
from fsimages import ext4_image
from pgserver import PgCluster, as_postgres, world_dir
from praxisbackup.practice.sample import generate


@pytest.fixture
def practice() -> Iterator[tuple[Path, PgCluster]]:
    base = world_dir(tempfile.mkdtemp(prefix="pxb-pg-"))
    server = base / "server"
    generate(server, size_mb=6)
    pg = PgCluster(server / "PraxisDB", base / "sock", 54329)
    pg.init()
    pg.start()
    pg.sql("CREATE TABLE patienten (id int primary key, name text, befund text)")
    pg.sql(
        "INSERT INTO patienten SELECT i, 'Patient ' || i, repeat('Befund ', i % 50) "
        "FROM generate_series(1, 5000) i"
    )
    try:
        yield base, pg
    finally:
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)


def write_config(base: Path, pg: PgCluster, candidates: list[str]) -> Path:
    (base / "pw.txt").write_text("Praxis-Passwort\n")
    (base / "pw.txt").chmod(0o600)  # a passphrase file others can read is refused
    cfg = base / "praxisbackup.toml"
    cfg.write_text(
        f"""
state_dir = "{base / "state"}"
[practice]
name = "Praxis Dr. Muster"
[repository]
password_file = "{base / "pw.txt"}"
[[sources]]
label = "CGM M1 PRO"
profile = "cgm-m1-pro"
path = "{base / "server" / "CompuMED"}"
[[sources]]
label = "ifap"
path = "{base / "server" / "ifapDB"}"
[[sources]]
label = "Praxis-Datenbank"
path = "{pg.data}"
[[services]]
name = "postgresql"
kind = "command"
stop = {json.dumps(pg.shell("stop"))}
start = {json.dumps(pg.shell("start"))}
is_running = {json.dumps(pg.shell("status"))}
timeout_seconds = 60
check_closed = ["{pg.data}"]
[media]
candidates = {json.dumps(candidates)}
"""
    )
    return cfg


def test_nightly_job_with_postgresql_and_restore(
    practice: tuple[Path, PgCluster], tmp_path: Path
) -> None:
    base, pg = practice
    with ext4_image(tmp_path, 160) as usb:
        cfg = write_config(base, pg, [str(usb)])
        run_cli("-c", str(cfg), "medium", "init", "Mo", str(usb), password=None, check=True)
        out = run_cli("-c", str(cfg), "--json", "run", password=None)
        assert out.returncode == 0, out.stdout + out.stderr
        protocol = json.loads(out.stdout)
        assert protocol["status"] == "green"
        actions = [(e["service"], e["action"]) for e in protocol["services"]]
        assert actions == [
            ("postgresql", "found running"),
            ("postgresql", "stopped"),
            ("postgresql", "started"),
        ]
        assert protocol["downtime_seconds"] is not None and protocol["downtime_seconds"] > 0
        assert protocol["verification"]["ok"] and protocol["verification"]["packs_read"] > 0
        assert {s["label"] for s in protocol["sources"]} == {
            "CGM M1 PRO",
            "ifap",
            "Praxis-Datenbank",
        }
        assert pg.running(), "the database must run again after the backup"
        assert pg.sql("SELECT count(*) FROM patienten") == "5000"
        # The protocol is in the catalog (report) and on the medium (encrypted).
        text = run_cli("-c", str(cfg), "report", check=True).stdout
        assert "GRÜN" in text and "postgresql" in text
        assert list((usb / "praxisbackup" / "meta").iterdir())

        # Restore the database directory and start the copy on another port.
        repo = usb / "praxisbackup"
        target = world_dir(str(base / "restore"))
        out = run_cli(
            "restore",
            "latest",
            "--target",
            str(target),
            "--include",
            str(pg.data),
            "--verify",
            repo=repo,
            password="Praxis-Passwort",
        )
        assert out.returncode == 0, out.stderr
        restored = target / str(pg.data).lstrip("/")
        assert not (target / str(base).lstrip("/") / "server" / "CompuMED").exists()
        copy = PgCluster(restored, base / "sock", 54330)
        check = as_postgres(
            str(copy.bin / "pg_checksums"), "--check", "-D", str(restored), check=False
        )
        assert check.returncode == 0, check.stdout + check.stderr
        copy.start()
        try:
            assert copy.sql("SELECT count(*), sum(length(befund)) FROM patienten") == pg.sql(
                "SELECT count(*), sum(length(befund)) FROM patienten"
            )
            amcheck = as_postgres(
                str(copy.bin / "pg_amcheck"),
                "-h",
                str(copy.sockdir),
                "-p",
                "54330",
                "-U",
                "postgres",
                "--install-missing",
                "-d",
                "postgres",
                check=False,
            )
            assert amcheck.returncode == 0, amcheck.stdout + amcheck.stderr
        finally:
            copy.stop()


def test_restore_practice_puts_the_database_back_on_a_new_server(tmp_path: Path) -> None:
    """The database lives inside the M1 Database folder; restore-practice brings it back onto
    a freshly installed server next to the renamed _Original folders, and it starts and checks."""
    base = world_dir(tempfile.mkdtemp(prefix="pxb-pgr-"))
    try:
        server = base / "server"
        generate(server, size_mb=2)
        db_dir = server / "CompuMED" / "M1" / "Orant" / "DB_M1" / "Database" / "pg"
        pg = PgCluster(db_dir, base / "sock", 54331)
        pg.init()
        pg.start()
        pg.sql("CREATE TABLE termine (id int primary key, text text)")
        pg.sql("INSERT INTO termine SELECT i, 'Termin ' || i FROM generate_series(1, 2000) i")
        with ext4_image(tmp_path, 160) as usb:
            cfg = write_config(base, pg, [str(usb)])
            text = cfg.read_text().replace(
                f'path = "{pg.data}"', f'path = "{server / "Praxisarchiv"}"'
            )
            text = text.replace(f'check_closed = ["{pg.data}"]', f'check_closed = ["{db_dir}"]')
            cfg.write_text(text)
            run_cli("-c", str(cfg), "medium", "init", "Mo", str(usb), password=None, check=True)
            assert run_cli("-c", str(cfg), "run", password=None).returncode == 0
            expected = pg.sql("SELECT count(*), max(text) FROM termine")
            pg.stop()
            new = world_dir(str(base / "neu"))
            generate(new, size_mb=1, seed=5)  # the fresh installation
            out = run_cli(
                "-c",
                str(cfg),
                "restore-practice",
                "--target-root",
                str(new),
                "--yes",
                password=None,
            )
            assert out.returncode == 0, out.stdout + out.stderr
            database = new / "CompuMED" / "M1" / "Orant" / "DB_M1" / "Database"
            assert (database.parent / "Database_Original").is_dir()
            copy = PgCluster(database / "pg", base / "sock", 54332)
            subprocess.run(["chown", "-R", "postgres:postgres", str(database)], check=True)
            check = as_postgres(
                str(copy.bin / "pg_checksums"), "--check", "-D", str(copy.data), check=False
            )
            assert check.returncode == 0, check.stdout + check.stderr
            copy.start()
            try:
                assert copy.sql("SELECT count(*), max(text) FROM termine") == expected
            finally:
                copy.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)
