"""A real explorer in a real browser, for the end-to-end tests: ``otdata explore`` started as a
user starts it (a subprocess, on a free port of 127.0.0.1), and Debian's headless ``chromium``
driven by Selenium through Debian's ``chromedriver`` (`.ci/run` installs both)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m otdata.cli explore <overrides>`` with its output collected; :attr:`url` once it
    printed its address."""

    def __init__(self, overrides: list[str], log: Path, timeout: float = 180):
        env = {**os.environ, "MPLBACKEND": "Agg", "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
        self.port = free_port()
        self.log = log
        self.lines: list[str] = []
        self.proc = subprocess.Popen([sys.executable, "-m", "otdata.cli", "explore", f"task.port={self.port}",
                                      *overrides], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=env)
        threading.Thread(target=self._collect, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not any("otdata explorer: http" in line for line in self.lines):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the explorer did not start:\n" + "".join(self.lines))
            time.sleep(0.2)
        line = next(line for line in self.lines if "otdata explorer: http" in line)
        self.url = line.split("otdata explorer: ")[1].split()[0]

    def _collect(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.write_text("".join(self.lines))


def chromium_paths() -> tuple[str, str]:
    """Chromium and its driver from the system, or a skip naming the packages: a clone without them
    still runs the rest of the suite. `.ci/run` installs both, so CI runs these tests; where the
    `CI` variable is set, their absence is a failure instead."""
    browser = next((shutil.which(name) for name in CHROMIUM if shutil.which(name)), None)
    driver = shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    message = ("the end-to-end tests need Debian's `chromium` and `chromium-driver` "
               "(apt-get install chromium chromium-driver)")
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def start_chromium(width: int = 1400, height: int = 1000):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--disable-extensions", "--no-first-run"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=options)


class Page:
    """The explorer's page, by the element ids the app gives its parts."""

    def __init__(self, driver, url: str, shots: Path):
        from selenium.webdriver.support.ui import WebDriverWait

        self.d, self.shots = driver, shots
        shots.mkdir(parents=True, exist_ok=True)
        self.d.get(url)
        WebDriverWait(self.d, 60).until(lambda d: d.find_elements("id", "compute"))

    def find(self, css: str):
        return self.d.find_element("css selector", css)

    def wait(self, condition, timeout: float = 120, what: str = ""):
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.d, timeout, poll_frequency=0.05).until(
            lambda d: condition(), message=f"waiting for {what}")

    def choose(self, group: str, label: str) -> None:
        """Click the radio button ``label`` of the group with element id ``group``."""
        xpath = f"//*[@id='{group}']//label[.//span[normalize-space()='{label}']]"
        self.d.find_element("xpath", xpath).click()

    def type_into(self, css: str, text: str) -> None:
        from selenium.webdriver.common.keys import Keys

        box = self.find(css)
        box.click()
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(Keys.DELETE)
        box.send_keys(str(text))
        box.send_keys(Keys.TAB)

    def text(self, css: str) -> str:
        found = self.d.find_elements("css selector", css)
        return found[0].text if found else ""

    def compute(self) -> tuple[str, float]:
        """Click Compute; ``("value" | "error", seconds)`` once the page shows a new OTDD or a new
        error (what was shown before is marked old first)."""
        self.d.execute_script("document.querySelectorAll('#otdd *').forEach(e => e.setAttribute('data-old', '1'))")
        start = time.perf_counter()
        self.find("#compute").click()

        def shown():
            if self.d.find_elements("css selector", "#otdd #otdd-value:not([data-old])"):
                return "value"
            if self.d.find_elements("css selector", "#otdd #page-error:not([data-old])"):
                return "error"
            return None
        kind = self.wait(shown, what="the OTDD or an error")
        return kind, time.perf_counter() - start

    def screenshot(self, name: str) -> Path:
        """The whole page (the window grown to its height), as ``<shots>/<name>.png``."""
        height = self.d.execute_script("return document.documentElement.scrollHeight")
        width = self.d.get_window_size()["width"]
        self.d.set_window_size(width, min(int(height) + 120, 6000))
        path = self.shots / f"{name}.png"
        self.d.save_screenshot(str(path))
        return path
