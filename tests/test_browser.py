"""A real browser opens the built book: every image loads, the console stays clean.

Headless Debian chromium (installed by `make test` when missing) is driven by selenium
through /usr/bin/chromedriver, never a downloaded driver. Pages are served from
``_build/html`` by a local http.server on 127.0.0.1, as a reader would get them.
Screenshots of every page go to ``_build/screens/`` for a person to look at.
"""

import functools
import http.server
import os
import threading
from pathlib import Path

import pytest

from ropelib import plan
from ropelib.paths import ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENS = ROOT / "_build" / "screens"


def _pages():
    return ["index", "book/intro", "book/reproduce", "book/references"] + [
        f"book/{run.output.removesuffix('.ipynb')}" for run in plan.load()
    ]


@pytest.fixture(scope="module")
def server(built_book):
    result, html = built_book
    assert result.returncode == 0, "the book did not build; see test_book_build"
    handler = functools.partial(_QuietHandler, directory=str(html))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        message = "chromium/chromedriver missing: `make test` installs them (apt-get install chromium chromium-driver)"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,1000",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.mark.parametrize("page", _pages())
def test_page_renders_with_all_images_and_no_console_errors(server, browser, page):
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{server}/{page}.html")
    WebDriverWait(browser, 30).until(lambda d: d.execute_script(
        "return document.readyState === 'complete' && Array.from(document.images).every(i => i.complete)"))
    broken = browser.execute_script(
        "return Array.from(document.images).filter(i => !(i.naturalWidth > 0)).map(i => i.src)")
    severe = [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]

    SCREENS.mkdir(parents=True, exist_ok=True)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, min(max(height, 800), 12000))
    browser.save_screenshot(str(SCREENS / f"{page.replace('/', '_')}.png"))
    browser.set_window_size(1280, 1000)

    assert browser.title, f"{page}: no title"
    assert not broken, f"{page}: images that did not load: {broken}"
    assert not severe, f"{page}: console errors: {severe}"
