"""Accounts of the status page (Argon2 hashes, throttled login), the [web] configuration, the
command line that manages accounts, the page's privacy (no file names without login), what
`today` gives the page as reasons and advice, and `serve` going on when the page cannot start."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
from datetime import datetime, timedelta
from io import BytesIO
from pathlib import Path
from urllib.parse import urlencode

import pytest
from pypdf import PdfReader

from browser import Serve
from praxisbackup.app.accounts import MAX_FAILURES, WINDOW, Accounts
from praxisbackup.app.today import today
from praxisbackup.catalog.runs import Catalog
from praxisbackup.errors import UsageError
from praxisbackup.model.config import ConfigError, is_local_address, parse_config, split_listen
from praxisbackup.model.locations import catalog_path
from praxisbackup.model.protocol import RunProtocol
from praxisbackup.report.localize import redact_paths
from praxisbackup.report.render import protocol_view, render_html, render_pdf

BASE = '[practice]\nname = "P"\n[[sources]]\nlabel = "a"\npath = "/srv/praxis"\n'
PASSWORD = "Sonnenblume-Rezeption-7"


def test_passwords_are_kept_as_argon2_hashes_and_checked(tmp_path: Path) -> None:
    accounts = Accounts(str(tmp_path / "catalog.sqlite"))
    accounts.add("anna", PASSWORD, "Anna Schmidt")
    raw = (tmp_path / "catalog.sqlite").read_bytes()
    assert PASSWORD.encode() not in raw and b"$argon2id$" in raw
    assert accounts.verify("anna", PASSWORD) is not None
    assert accounts.verify("anna", PASSWORD).shown == "Anna Schmidt"  # type: ignore[union-attr]
    assert accounts.verify("anna", PASSWORD + "x") is None
    assert accounts.verify("niemand", PASSWORD) is None
    with pytest.raises(UsageError, match="at least 10 characters"):
        accounts.add("bernd", "kurz")
    with pytest.raises(UsageError, match="no spaces"):
        accounts.add("Anna Schmidt", PASSWORD)
    with pytest.raises(Exception, match="exists already"):
        accounts.add("anna", PASSWORD)
    accounts.set_password("anna", "Ein-ganz-neues-Passwort")
    assert accounts.verify("anna", PASSWORD) is None
    assert accounts.verify("anna", "Ein-ganz-neues-Passwort") is not None
    accounts.remove("anna")
    assert accounts.all() == [] and accounts.verify("anna", "Ein-ganz-neues-Passwort") is None


def test_login_is_throttled_per_name_and_address_and_survives_a_restart(tmp_path: Path) -> None:
    db = str(tmp_path / "catalog.sqlite")
    now = datetime(2026, 12, 7, 8, 0).astimezone()
    accounts = Accounts(db)
    for i in range(MAX_FAILURES - 1):
        accounts.login_failed("anna", "192.168.1.20", now + timedelta(seconds=i))
    assert not accounts.login_blocked("anna", "192.168.1.20", now + timedelta(minutes=1))
    accounts.login_failed("anna", "192.168.1.20", now + timedelta(seconds=30))
    again = Accounts(db)  # the service restarted
    assert again.login_blocked("anna", "192.168.1.99", now + timedelta(minutes=1))  # the name
    assert again.login_blocked("bernd", "192.168.1.20", now + timedelta(minutes=1))  # the address
    assert not again.login_blocked("bernd", "192.168.1.99", now + timedelta(minutes=1))
    assert not again.login_blocked("anna", "192.168.1.20", now + WINDOW + timedelta(minutes=1))


def test_web_section_needs_login_on_a_network_address() -> None:
    config = parse_config(BASE)
    assert (config.web.listen, config.web.login, config.web.enabled) == (
        "127.0.0.1:8765",
        False,
        True,
    )
    with pytest.raises(ConfigError, match="set login = true"):
        parse_config(BASE + '[web]\nlisten = "0.0.0.0:8765"\n')
    with pytest.raises(ConfigError, match="set login = true"):
        parse_config(BASE + '[web]\nlisten = "192.168.1.10:8765"\n')
    assert parse_config(BASE + '[web]\nlisten = "0.0.0.0:8765"\nlogin = true\n').web.login
    assert parse_config(BASE + '[web]\nlisten = "[::1]:8765"\n').web.listen == "[::1]:8765"
    with pytest.raises(ConfigError, match="expected ADDRESS:PORT"):
        parse_config(BASE + '[web]\nlisten = "8765"\n')
    assert split_listen("[::1]:80") == ("::1", 80)
    assert is_local_address("localhost") and is_local_address("127.0.0.1")
    assert not is_local_address("0.0.0.0") and not is_local_address("praxis-server")


def cli(config: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "praxisbackup.cli.main", "-c", str(config), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        env=dict(os.environ, PRAXISBACKUP_PASSWORD="pw"),
    )


def write_config(tmp_path: Path, web: str = "") -> Path:
    (tmp_path / "data").mkdir(exist_ok=True)
    path = tmp_path / "praxisbackup.toml"
    path.write_text(
        f'state_dir = "{tmp_path / "state"}"\n[practice]\nname = "Praxis Dr. Muster"\n'
        f'[[sources]]\nlabel = "d"\npath = "{tmp_path / "data"}"\n'
        f'[schedule]\nat = "{(datetime.now() + timedelta(hours=12)):%H:%M}"\n{web}',
        encoding="utf-8",
    )
    return path


def test_service_partner_manages_accounts_on_the_command_line(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    added = cli(
        config,
        "web",
        "user",
        "add",
        "anna",
        "--full-name",
        "Anna Schmidt",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert added.returncode == 0 and "account 'anna' created" in added.stdout
    listed = json.loads(cli(config, "--json", "web", "user", "list").stdout)
    assert [(a["name"], a["full_name"]) for a in listed] == [("anna", "Anna Schmidt")]
    assert (
        cli(
            config,
            "web",
            "user",
            "passwd",
            "anna",
            "--password-stdin",
            stdin="Neues-Passwort-2027\n",
        ).returncode
        == 0
    )
    db = str(tmp_path / "state" / "catalog.sqlite")
    assert Accounts(db).verify("anna", "Neues-Passwort-2027") is not None
    no_console = cli(config, "web", "user", "add", "bernd")
    assert no_console.returncode == 2 and "use --password-stdin" in no_console.stderr
    short = cli(config, "web", "user", "add", "bernd", "--password-stdin", stdin="kurz\n")
    assert short.returncode == 2 and "at least 10 characters" in short.stderr
    assert cli(config, "web", "user", "remove", "anna").returncode == 0
    gone = cli(config, "web", "user", "remove", "anna")
    assert gone.returncode != 0 and "no account 'anna'" in gone.stderr
    for out in (no_console, short, gone):
        assert "Traceback" not in out.stderr


def test_serve_goes_on_when_the_page_cannot_listen(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path, f'[web]\nlisten = "127.0.0.1:{port}"\n')
        proc = subprocess.Popen(
            [sys.executable, "-m", "praxisbackup.cli.main", "-c", str(config), "serve"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ, PRAXISBACKUP_PASSWORD="pw"),
        )
        try:
            assert proc.stdout is not None and proc.stderr is not None
            problem = proc.stderr.readline()
            assert problem.startswith(f"web: not started: cannot listen on 127.0.0.1:{port}")
            assert proc.stdout.readline().startswith("next run at")  # the backups go on
            proc.terminate()
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def login(port: int, name: str, password: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/anmelden")
    page = conn.getresponse()
    cookie = (page.getheader("set-cookie") or "").split(";")[0]
    token = re.search(r'name="csrf" value="([^"]+)"', page.read().decode())
    assert token is not None
    conn.request(
        "POST",
        "/anmelden",
        body=urlencode({"name": name, "password": password, "csrf": token[1]}),
        headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie},
    )
    answer = conn.getresponse()
    answer.read()
    return answer.status


def test_the_page_refuses_logins_after_too_many_failures(tmp_path: Path) -> None:
    config = write_config(tmp_path, '[web]\nlisten = "0.0.0.0:0"\nlogin = true\n')
    assert (
        cli(
            config, "web", "user", "add", "anna", "--password-stdin", stdin=PASSWORD + "\n"
        ).returncode
        == 0
    )
    serve = Serve(config, dict(os.environ, PRAXISBACKUP_PASSWORD="pw"))
    try:
        assert login(serve.port, "anna", PASSWORD) == 303  # logged in, sent on
        failures = [login(serve.port, "anna", f"falsch-{i}") for i in range(MAX_FAILURES)]
        assert failures == [401] * MAX_FAILURES
        assert login(serve.port, "anna", PASSWORD) == 429  # even the right password now
    finally:
        assert serve.stop() == 0


def test_redacting_file_names() -> None:
    cases = {
        "not intact: /srv/praxis/Befunde/Müller Hans.pdf; not intact: /srv/x/y": (
            "not intact: /srv/…"
        ),
        r"cannot open: C:\Praxisdaten\Müller.pdf: Permission denied": (
            "cannot open: C:\\Praxisdaten\\…"
        ),
        r"\\nas\share\Befund.pdf fehlt": "\\\\nas\\share\\…",
        "kein Medium in E:\\": "kein Medium in E:\\",
        "Input/output error": "Input/output error",
        "https://hc-ping.com/uuid: timed out": "https://hc-ping.com/uuid: timed out",
    }
    for value, expected in cases.items():
        assert redact_paths(value) == expected


def protocol_with_patient_files() -> RunProtocol:
    p = RunProtocol(
        run_id="20261207-223000-a1b2c3",
        practice="Praxis Dr. Muster",
        host="SRV",
        started="2026-12-07T22:30:00+01:00",
        finished="2026-12-07T22:41:00+01:00",
        program_version="0.1.0",
        medium_label="Mo",
    )
    p.skipped = [
        {
            "path": "/srv/praxis/Befunde/Befund Müller.pdf",
            "reason": "cannot open: Permission denied [errno 13]",
        }
    ]
    p.add("yellow", "files_skipped", count=1)
    p.add("red", "verify_failed", error="not intact: /srv/praxis/Befunde/Befund Müller.pdf")
    p.hooks = [
        {
            "name": "Export",
            "when": "before",
            "stage": "night",
            "exit": 0,
            "seconds": 1.0,
            "output": "exportiert: Befund Müller.pdf",
        }
    ]
    return p


def test_protocols_without_login_name_no_files() -> None:
    p = protocol_with_patient_files()
    private = protocol_view(p, "de", with_files=False)
    assert private.problems == [] and private.problems_hidden == 1
    assert all("Müller" not in body for _level, body in private.findings)
    assert all(out == "" for *_rest, out in private.hooks)
    assert "Müller" not in render_html(p, "de", with_files=False)
    pdf = PdfReader(BytesIO(render_pdf(p, "de", with_files=False)))
    text = " ".join(page.extract_text() for page in pdf.pages)
    assert "Müller" not in text and "erst nach der Anmeldung" in " ".join(text.split())
    full = protocol_view(p, "de")  # the logged-in view and the filed paper keep them
    assert full.problems[0][0].endswith("Befund Müller.pdf") and full.problems_hidden == 0


def test_today_gives_reasons_and_advice_for_a_red_night(tmp_path: Path) -> None:
    config = parse_config(f'state_dir = "{tmp_path}"\n' + BASE)
    night = datetime(2026, 12, 7, 22, 30).astimezone()
    p = RunProtocol("20261207-223000-000001", "P", "SRV", night.isoformat(), "0.1.0")
    p.finished = (night + timedelta(minutes=1)).isoformat()
    p.add("red", "no_medium", candidates="E:\\", expected="Di")
    Catalog(catalog_path(config)).record_run(p)
    view = today(config, night + timedelta(hours=10))
    assert view.status == "red"
    assert [(r.level, r.code) for r in view.reasons()][:2] == [
        ("red", "today.reason.missed"),
        ("red", "no_medium"),
    ]
    assert [(a.code, a.params["label"]) for a in view.advice] == [("today.advice.no_medium", "Di")]
    assert not view.checked


def test_every_text_of_the_page_is_in_both_languages() -> None:
    import praxisbackup
    from praxisbackup.report.i18n import catalogue

    web = Path(praxisbackup.__file__).parent / "web"
    sources = [p.read_text(encoding="utf-8") for p in (web / "templates").glob("*.html")]
    sources.append((web / "app.py").read_text(encoding="utf-8"))
    used = {
        code
        for source in sources
        for code in re.findall(r"""\bt\(\s*["']([a-z_.0-9-]+)["']""", source)
    }
    assert len(used) > 80
    for lang in ("de", "en"):
        known = catalogue(lang)
        missing = sorted(
            c
            for c in used
            if c not in known and not (c.endswith(".") and any(k.startswith(c) for k in known))
        )
        assert missing == [], lang
