"""Debian's Chromium, driven by Selenium through Debian's chromedriver, for the status-page
tests; and the folder where tests leave screenshots and rendered documents for people to look
at (``test-output/``, or ``PRAXISBACKUP_TEST_OUTPUT``).

Chromium runs headless with the switches this machine needs (no sandbox as root, no GPU, no
background connections - there is no network) and a fresh profile per browser.
"""

from __future__ import annotations

import base64
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WIDTH = 1280


def output_dir(*parts: str) -> Path:
    """``test-output/<parts>`` in the work tree (kept after the run, ignored by git)."""
    base = os.environ.get("PRAXISBACKUP_TEST_OUTPUT") or str(
        Path(__file__).resolve().parent.parent / "test-output"
    )
    folder = Path(base).joinpath(*parts)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def start_browser(profile: Path, lang: str = "de-DE") -> WebDriver:
    os.environ.setdefault("SE_AVOID_STATS", "true")  # Selenium must not phone home
    options = Options()
    options.binary_location = CHROMIUM
    for switch in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-default-apps",
        "--disable-dev-shm-usage",
        "--password-store=basic",
        f"--user-data-dir={profile}",
        f"--window-size={WIDTH},900",
        f"--lang={lang}",
    ):
        options.add_argument(switch)
    service = Service(CHROMEDRIVER, log_output=str(profile.parent / f"{profile.name}-driver.log"))
    return webdriver.Chrome(options=options, service=service)


def screenshot(driver: WebDriver, name: str) -> Path:
    """The whole page, also below the window's lower edge, as test-output/web/<name>."""
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics["cssContentSize"]
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
        },
    )
    path = output_dir("web") / name
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


class Serve:
    """``praxisbackup serve`` as the Windows service runs it, in its own process; the status
    page's address is read from the line the service logs."""

    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "praxisbackup.cli.main", "-c", str(config), "serve"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            encoding="utf-8",
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        for stream in (self.proc.stdout, self.proc.stderr):
            threading.Thread(target=self._read, args=(stream,), daemon=True).start()
        self.url = ""
        while not self.url:
            try:
                line = self.lines.get(timeout=60)
            except queue.Empty:
                self.stop()
                raise AssertionError(f"serve did not start the page: {self.log}") from None
            if line.startswith("status page: "):
                self.url = line.split()[2].rstrip("/")

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.log.append(line)
            self.lines.put(line)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def stop(self) -> int:
        """SIGTERM, as the service manager stops it; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
