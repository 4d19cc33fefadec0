"""The status page in a real browser (Debian's headless Chromium), served by the real
``praxisbackup serve`` process over real HTTP, reading the real catalog that real nightly runs
wrote to media on a real (loop-mounted) disk.

A practice's morning: yellow until someone confirms, green after the button, red after a
night whose medium was not connected - with the reason in plain words; every page looked at
(screenshots in test-output/web/); forms without their CSRF token refused; on a network
address nothing without a login, and everything with one.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from functools import cache
from io import BytesIO
from pathlib import Path
from urllib.parse import urlencode

import pytest
from pypdf import PdfReader
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.wait import WebDriverWait

from browser import Serve, screenshot, start_browser
from conftest import run_cli
from fsimages import ext4_image
from praxisbackup.app.daily import DailyCheck
from praxisbackup.app.drill import run_drill
from praxisbackup.app.job import NightlyJob
from praxisbackup.app.medium import open_medium
from praxisbackup.catalog.runs import Catalog
from praxisbackup.media.register import Register
from praxisbackup.media.selection import backup_day, plan_from_config, prepare_medium
from praxisbackup.model.config import Config, parse_config
from praxisbackup.model.locations import catalog_path
from praxisbackup.model.protocol import RunProtocol

PASS = "Praxis-Passwort 2026"
DAILY = ["Mo", "Di", "Mi", "Do", "Fr"]
PATIENT_FILE = "Befund Müller, Hans 1957-03-02.pdf"
ACCOUNT, ACCOUNT_PASSWORD = "anna", "Rezeption-7-Sonnenblume"


@dataclass
class Practice:
    base: Path
    disk: Path
    config: Config
    config_path: Path
    env: dict[str, str]
    local: Serve
    lan: Serve
    browser: WebDriver

    def cli(self, *args: str) -> str:
        out = run_cli("-c", str(self.config_path), *args, password=PASS, env=self.env)
        assert out.returncode in (0, 1, 2), out.stderr
        return out.stdout


def config_text(base: Path, disk: Path, web: str) -> str:
    # A minute ago: the runs below (at the real time) are tonight's, whatever the time of day,
    # so the page shows what follows a night's run; the next slot is a day away (never due
    # while testing).
    at = (datetime.now() - timedelta(minutes=1)).strftime("%H:%M")
    return f"""
state_dir = "{base / "state"}"
[practice]
name = "Praxis Dr. Muster"
state = "NW"
[[sources]]
label = "Praxisdaten"
path = "{base / "Praxisdaten"}"
[media]
candidates = ["{disk}/slot-*"]
[rotation]
daily = {json.dumps(DAILY)}
quarter_end = {json.dumps([f"Quartal {n}" for n in range(1, 10)])}
[schedule]
at = "{at}"
[contacts.responsible]
name = "Anna Schmidt"
phone = "0211 123456-10"
[contacts.deputy]
name = "Bernd Meier"
{web}
"""


@cache
def old_protocol_with_a_patient_file() -> RunProtocol:
    """A run of last month whose protocol lists a file it could not read (as a run under a
    service account that lacks rights records it), kept in the catalog like every run."""
    started = datetime.now().astimezone() - timedelta(days=30)
    p = RunProtocol(
        run_id=started.strftime("%Y%m%d-%H%M%S-") + "0f1e2d",
        practice="Praxis Dr. Muster",
        host="PRAXIS-SRV",
        started=started.isoformat(timespec="seconds"),
        finished=(started + timedelta(minutes=4)).isoformat(timespec="seconds"),
        program_version="0.1.0",
        medium_label="Mo",
    )
    p.skipped = [
        {
            "path": f"/srv/Praxisdaten/Befunde/{PATIENT_FILE}",
            "reason": "cannot open: Permission denied [errno 13]",
        }
    ]
    p.add("yellow", "files_skipped", count=1)
    return p


@pytest.fixture(scope="module")
def practice(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Practice]:
    base = tmp_path_factory.mktemp("praxis")
    data = base / "Praxisdaten"
    (data / "Briefe").mkdir(parents=True)
    for i in range(20):
        (data / "Briefe" / f"brief-{i}.txt").write_text(f"Sehr geehrte Kollegin, {i}\n" * 40)
    env = dict(os.environ, PRAXISBACKUP_PASSWORD=PASS, PRAXISBACKUP_KDF_N="1024")
    with pytest.MonkeyPatch.context() as mp, ext4_image(base, 200) as disk:
        mp.setenv("PRAXISBACKUP_PASSWORD", PASS)
        mp.setenv("PRAXISBACKUP_KDF_N", "1024")
        config_path = base / "praxisbackup.toml"
        config_path.write_text(config_text(base, disk, '[web]\nlisten = "127.0.0.1:0"'))
        lan_path = base / "praxisbackup-lan.toml"
        lan_path.write_text(config_text(base, disk, '[web]\nlisten = "0.0.0.0:0"\nlogin = true'))
        config = parse_config(config_path.read_text(), str(config_path))
        for label in DAILY:
            prepare_medium(config, str(disk / f"shelf-{label}"), label, PASS)
        Catalog(catalog_path(config)).record_run(old_protocol_with_a_patient_file())
        # A night on "Fr", then a restore test of "Fr" (recorded on the medium and here).
        (disk / "shelf-Fr").rename(disk / "slot-Fr")
        friday = NightlyJob(config).run()
        assert friday.snapshot_id, friday.findings
        (disk / "slot-Fr").rename(disk / "shelf-Fr")
        medium, repo = open_medium(str(disk / "shelf-Fr"), PASS)
        run_drill(repo, medium, register=Register(catalog_path(config)))
        repo.close()
        add_account(lan_path, env)
        # Every server started is stopped, also when the next one or the browser cannot start
        # (a missing chromedriver left two `serve` processes running, their scheduler armed).
        with contextlib.ExitStack() as started:
            local = Serve(config_path, env)
            started.callback(local.stop)
            lan = Serve(lan_path, env)
            started.callback(lan.stop)
            browser = start_browser(base / "chromium")
            started.callback(browser.quit)
            yield Practice(base, disk, config, config_path, env, local, lan, browser)
        codes = (local.proc.returncode, lan.proc.returncode)
        assert codes == (0, 0), local.log + lan.log


def add_account(config: Path, env: dict[str, str]) -> None:
    """``praxisbackup web user add`` as a service partner scripts it (password on stdin)."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "praxisbackup.cli.main",
            "-c",
            str(config),
            "web",
            "user",
            "add",
            ACCOUNT,
            "--full-name",
            "Anna Schmidt",
            "--password-stdin",
        ],
        input=ACCOUNT_PASSWORD + "\n",
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert out.returncode == 0 and "account 'anna' created" in out.stdout, out.stderr


def click(browser: WebDriver, by: str, selector: str) -> None:
    """Click a button that sends a form and wait until the next page has replaced this one."""
    old = browser.find_element(By.TAG_NAME, "html")
    browser.find_element(by, selector).click()
    WebDriverWait(browser, 60).until(lambda _: replaced(old))


def replaced(old: WebElement) -> bool:
    """Whether ``old`` belongs to a document the browser has left.

    While the next page replaces the old one, chromedriver may answer the question with an
    inspector error ("does not belong to the document") instead of a stale reference; both
    mean the same (a CI run failed on the second). Any other error is the test's failure.
    """
    try:
        old.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as error:
        if "does not belong to the document" in (error.msg or ""):
            return True
        raise
    return False


def light(browser: WebDriver) -> str:
    classes = browser.find_element(By.CSS_SELECTOR, "section.light").get_attribute("class") or ""
    return next(c for c in classes.split() if c in ("green", "yellow", "red"))


def body(browser: WebDriver) -> str:
    return browser.find_element(By.TAG_NAME, "body").text


def next_working_night(practice: Practice) -> datetime:
    plan = plan_from_config(practice.config)
    assert plan is not None
    day = backup_day(datetime.now().astimezone()) + timedelta(days=1)
    while plan.slot(day) is None:
        day += timedelta(days=1)
    return datetime.combine(day, time(22, 30)).astimezone()


def test_a_yellow_night_a_confirmed_green_morning_and_a_red_night_with_its_reason(
    practice: Practice,
) -> None:
    slot = plan_from_config(practice.config).slot(backup_day(datetime.now().astimezone()))
    tonight = slot.label if slot is not None else "Mo"
    spare = "Di" if tonight != "Di" else "Mi"
    disk, b = practice.disk, practice.browser
    # A night with yesterday's disk still plugged in beside tonight's: usable, but yellow.
    for label in (tonight, spare):
        (disk / f"shelf-{label}").rename(disk / f"slot-{label}")
    yellow = NightlyJob(practice.config).run()
    assert yellow.status == "yellow", yellow.findings
    b.get(practice.local.url + "/")
    assert light(b) == "yellow"
    text = body(b)
    assert "Bitte ansehen" in text
    assert "Mehrere Sicherungsmedien angeschlossen" in text
    screenshot(b, "heute-gelb.png")

    # The next night only tonight's medium is connected: green.
    (disk / f"slot-{spare}").rename(disk / f"shelf-{spare}")
    green = NightlyJob(practice.config).run()
    assert green.status == "green", green.findings
    b.get(practice.local.url + "/")
    assert light(b) == today_status(practice)  # what `today` says, for a person
    assert f"„{green.medium_label}“ abziehen und außer Haus bringen" in body(b), body(b)
    # Still plugged in: the page says to unplug it first (in German).
    click(b, By.CSS_SELECTOR, "ul.tasks form button")
    assert f"Das Medium „{green.medium_label}“ ist noch angeschlossen" in body(b)
    # Unplugged, it goes off-site with the name of the person who takes it.
    (disk / f"slot-{tonight}").rename(disk / f"shelf-{tonight}")
    b.get(practice.local.url + "/")
    click(b, By.CSS_SELECTOR, "ul.tasks form button")
    assert "Eingetragen." in body(b)
    record = Register(catalog_path(practice.config)).find(green.medium_label)
    assert (record.location, record.location_by) == ("offsite", "Anna Schmidt")

    # The confirm button does what `ack` does; `today` shows it afterwards.
    b.find_element(By.NAME, "note").send_keys("Protokoll gelesen, Medium gewechselt")
    click(b, By.ID, "confirm")
    assert light(b) == "green"
    text = body(b)
    assert "Danke – die Kontrolle ist bestätigt." in text
    assert "Heute erledigt: bestätigt von Anna Schmidt" in text
    assert "Alles in Ordnung" in text
    screenshot(b, "heute-gruen.png")
    shown = json.loads(practice.cli("--json", "today"))
    assert shown["last_ack"]["by"] == "Anna Schmidt" and shown["acknowledged"] is True
    assert shown["status"] == "green"
    assert DailyCheck(practice.config).acks()[-1]["note"] == "Protokoll gelesen, Medium gewechselt"

    # The next working night nobody connects a medium (it was taken off-site above): the run
    # fails, the page says why in plain words. (On a weekend night without a planned backup
    # a missing medium is no failure, hence a working day's clock.)
    working = next_working_night(practice)
    red = NightlyJob(practice.config, clock=lambda: working).run()
    assert red.status == "red"
    b.get(practice.local.url + "/")
    assert light(b) == "red"
    text = body(b)
    assert "Achtung: Die Daten sind nicht gesichert" in text
    assert "Kein Sicherungsmedium angeschlossen" in text
    screenshot(b, "heute-rot.png")
    assert json.loads(practice.cli("--json", "today"))["status"] == "red"


def today_status(practice: Practice) -> str:
    status: str = json.loads(practice.cli("--json", "today"))["status"]
    return status


def test_every_page_in_german_and_english_without_file_names(practice: Practice) -> None:
    b, url = practice.browser, practice.local.url
    b.get(url + "/protokolle")
    text = body(b)
    assert "Sicherungsläufe" in text and "Rücksicherungstests" in text
    assert "erfolgreich" in text  # the drill of "Fr"
    assert "Nachweis als PDF" in text
    screenshot(b, "protokolle.png")
    old = old_protocol_with_a_patient_file()
    b.get(f"{url}/protokolle/{old.run_id}")
    text = body(b)
    assert PATIENT_FILE not in b.page_source and "Müller" not in b.page_source
    assert "Die Liste wird erst nach der Anmeldung gezeigt" in text
    screenshot(b, "protokoll.png")

    b.get(url + "/medien")
    text = body(b)
    for label in DAILY:
        assert label in text
    assert "Wochen-Checkliste zum Ausdrucken (PDF)" in text
    screenshot(b, "medien.png")
    select = b.find_element(By.NAME, "location")
    select.find_element(By.CSS_SELECTOR, "option[value='archive']").click()
    b.find_element(By.CSS_SELECTOR, "form.row select[name='medium'] option").click()
    name = b.find_element(By.CSS_SELECTOR, "form.row input[name='name']")
    name.clear()
    name.send_keys("Dr. Eva Muster")
    click(b, By.CSS_SELECTOR, "form.row button.primary")
    assert "Eingetragen." in body(b)
    moved = [m for m in Register(catalog_path(practice.config)).all() if m.location == "archive"]
    assert [m.location_by for m in moved] == ["Dr. Eva Muster"]

    b.get(url + "/abwesenheit")
    for field, typed in (("first", "21.12.2026"), ("last", "08.01.2027")):
        b.find_element(By.NAME, field).clear()
        b.find_element(By.NAME, field).send_keys(typed)  # typed the German way
    b.find_element(By.NAME, "note").send_keys("Urlaub")
    click(b, By.CSS_SELECTOR, "form.row button.primary")
    text = body(b)
    assert "Die Abwesenheit ist eingetragen." in text and "Urlaub" in text
    assert "bekommt Bernd Meier alle Meldungen direkt" in text
    screenshot(b, "abwesenheit.png")
    assert DailyCheck(practice.config).responsible_absent(datetime(2027, 1, 4).date())

    # The papers behind the links and the evidence button are real PDFs.
    for link, expected in (
        ("/medien/plan.pdf?weeks=2", "Sicherungsplan – Praxis Dr. Muster"),
        (f"/protokolle/{old.run_id}/pdf", "Sicherungsprotokoll – Praxis Dr. Muster"),
        ("/nachweis.pdf?" + urlencode({"period": "2026-Q4", "doc_lang": "de"}), "Nachweis der"),
        (
            "/nachweis.pdf?" + urlencode({"from": "01.11.2026", "to": "30.11.2026"}),
            "bis 30.11.2026",
        ),
    ):
        answer = get(practice.local, link)
        assert answer.status == 200 and answer.getheader("content-type") == "application/pdf"
        pdf = PdfReader(BytesIO(answer.read()))
        words = " ".join(" ".join(page.extract_text() for page in pdf.pages).split())
        assert expected in words and PATIENT_FILE not in words, link
    b.get(url + "/protokolle")
    drill_link = b.find_element(By.CSS_SELECTOR, "a[href^='/tests/']").get_attribute("href")
    assert drill_link is not None
    answer = get(practice.local, drill_link.removeprefix(url))
    assert answer.status == 200 and b"%PDF" in answer.read()[:8]

    b.get(url + "/?lang=en")
    text = body(b)
    assert "Today" in text and "Confirm the check" in text and "Heute" not in text
    screenshot(b, "today-english.png")
    b.get(url + "/protokolle")  # the language stays chosen
    assert "Backup runs" in body(b)
    b.get(url + "/?lang=de")


def post(
    serve: Serve, path: str, fields: dict[str, str], headers: dict[str, str]
) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", serve.port, timeout=30)
    conn.request(
        "POST",
        path,
        body=urlencode(fields),
        headers={"Content-Type": "application/x-www-form-urlencoded", **headers},
    )
    return conn.getresponse()


def get(serve: Serve, path: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", serve.port, timeout=30)
    conn.request("GET", path, headers=headers or {})
    return conn.getresponse()


def test_a_form_without_its_csrf_token_is_refused(practice: Practice) -> None:
    b = practice.browser
    acks_before = len(DailyCheck(practice.config).acks())
    b.get(practice.local.url + "/abwesenheit")
    absences_before = len(DailyCheck(practice.config).absences())
    # The browser sends the form without its token (removed from the page).
    b.execute_script("document.querySelectorAll(\"input[name='csrf']\").forEach(e => e.remove())")
    click(b, By.CSS_SELECTOR, "form.row button.primary")
    text = body(b)
    assert "Das Formular ist abgelaufen oder stammt nicht von dieser Seite." in text
    screenshot(b, "formular-abgelehnt.png")
    # Without the session cookie, with a wrong token, or from another site: refused too.
    page = get(practice.local, "/")
    cookie = page.getheader("set-cookie", "").split(";")[0]
    token = re.search(r'name="csrf" value="([^"]+)"', page.read().decode())
    assert token is not None
    refused = [
        post(practice.local, "/kontrolle", {"name": "X", "csrf": token[1]}, {}).status,
        post(
            practice.local, "/kontrolle", {"name": "X", "csrf": "falsch"}, {"Cookie": cookie}
        ).status,
        post(
            practice.local,
            "/kontrolle",
            {"name": "X", "csrf": token[1]},
            {"Cookie": cookie, "Origin": "http://boese.example"},
        ).status,
    ]
    assert refused == [403, 403, 403]
    assert len(DailyCheck(practice.config).acks()) == acks_before
    assert len(DailyCheck(practice.config).absences()) == absences_before
    # The right token from the right page is accepted (the refusals were for the token).
    accepted = post(
        practice.local, "/kontrolle", {"name": "Bernd Meier", "csrf": token[1]}, {"Cookie": cookie}
    )
    assert accepted.status == 303 and DailyCheck(practice.config).acks()[-1]["by"] == "Bernd Meier"
    # A name that is not this computer's (DNS rebinding) gets nothing.
    assert get(practice.local, "/", {"Host": f"praxis.example:{practice.local.port}"}).status == 400


def test_lan_mode_refuses_without_login_and_accepts_with_it(practice: Practice) -> None:
    lan = practice.lan
    old = old_protocol_with_a_patient_file()
    for path in ("/", "/protokolle", f"/protokolle/{old.run_id}/pdf", "/nachweis.pdf", "/medien"):
        answer = get(lan, path)
        assert answer.status == 303 and answer.getheader("location", "").startswith("/anmelden"), (
            path
        )
    assert get(lan, "/static/style.css").status == 200
    b = start_browser(practice.base / "chromium-lan")
    try:
        b.get(f"{lan.url}/protokolle/{old.run_id}")
        assert "/anmelden" in b.current_url and "Anmelden" in body(b)
        screenshot(b, "anmelden.png")
        b.find_element(By.NAME, "name").send_keys(ACCOUNT)
        b.find_element(By.NAME, "password").send_keys("falsches Passwort")
        click(b, By.ID, "login")
        assert "Name oder Passwort stimmt nicht." in body(b)
        b.find_element(By.NAME, "name").send_keys(ACCOUNT)
        b.find_element(By.NAME, "password").send_keys(ACCOUNT_PASSWORD)
        click(b, By.ID, "login")
        # Logged in: back where the person wanted to go, file names shown.
        assert b.current_url.endswith(f"/protokolle/{old.run_id}")
        assert PATIENT_FILE in body(b)
        cookie = b.get_cookie("pb_session")
        assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        b.get(lan.url + "/")
        assert "Anna Schmidt" in body(b) and "Abmelden" in body(b)
        screenshot(b, "heute-angemeldet.png")
        b.get(lan.url + "/abwesenheit")
        b.find_element(By.NAME, "note").send_keys("Fortbildung")
        click(b, By.CSS_SELECTOR, "form.row button.primary")
        assert "Die Abwesenheit ist eingetragen." in body(b)
        click(b, By.CSS_SELECTOR, "header form button")
        assert "/anmelden" in b.current_url
    finally:
        b.quit()
    changes = [(c["account"], c["action"]) for c in practice_changes(practice)]
    assert ("anna", "login") in changes and ("anna", "absence") in changes


def practice_changes(practice: Practice) -> list[dict[str, str]]:
    from praxisbackup.app.accounts import Accounts

    return Accounts(catalog_path(practice.config)).changes()


def test_the_page_stops_with_the_service(practice: Practice, tmp_path: Path) -> None:
    config = tmp_path / "praxisbackup.toml"
    shutil.copy(practice.config_path, config)
    serve = Serve(config, practice.env)
    assert get(serve, "/").status == 200
    assert serve.stop() == 0
    with pytest.raises(ConnectionRefusedError):
        get(serve, "/")
