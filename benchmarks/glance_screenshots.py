"""Screenshots of the built glance page at 1400 px, for a reviewer to look at (not run by ``make test``).

Serves ``_build/html`` (``ropebook build`` first) on 127.0.0.1, opens the glance page in Debian's
headless chromium (``make chromium``) at 1400 px wide, unfolds nothing, and saves:
  _build/screens/glance-1400-full.png     the whole page, one image
  _build/screens/glance-1400-<n>.png      the page one window (1400 x 1000) at a time, as a reader scrolls
It prints what the browser test's glance check finds (``tests/publish/test_browser.py::glance_problems``).

    python benchmarks/glance_screenshots.py [--html _build/html] [--out _build/screens] [--width 1400]

Not here: the assertions (``tests/publish/test_browser.py``), building the book.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import importlib.util
import threading
from pathlib import Path

from ropelib.paths import ROOT
from ropelib.publish import plan

WINDOW_HEIGHT = 1000  # px: one screen
MAX_HEIGHT = 12000  # px: chromium's full-page screenshot limit we keep under


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _browser_checks():
    """The browser test's module (its ``glance_problems`` and chromium options), loaded from its file."""
    spec = importlib.util.spec_from_file_location("test_browser", ROOT / "tests" / "publish" / "test_browser.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _driver(width: int, checks):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(checks.CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 f"--window-size={width},{WINDOW_HEIGHT}"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(executable_path=str(checks.CHROMEDRIVER)))


def _open(driver, url: str, width: int) -> None:
    """Load ``url`` at ``width`` px and wait until every image has loaded."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.set_window_size(width, WINDOW_HEIGHT)
    driver.get(url)
    WebDriverWait(driver, 30).until(lambda d: d.execute_script(
        "return document.readyState === 'complete' && Array.from(document.images).every(i => i.complete)"))


def screenshots(html: Path, out: Path, width: int) -> list[Path]:
    """Save the glance page's screenshots (see the module docstring); the paths written."""
    checks = _browser_checks()
    page = next(Path(run.output).stem for run in plan.load() if run.chapter == "glance")
    handler = functools.partial(_QuietHandler, directory=str(html))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    out.mkdir(parents=True, exist_ok=True)
    driver = _driver(width, checks)
    written = []
    try:
        _open(driver, f"http://127.0.0.1:{httpd.server_address[1]}/book/{page}.html", width)
        problems = checks.glance_problems(driver)
        print("glance check:", "; ".join(problems) or "nothing to report")
        height = driver.execute_script("return document.documentElement.scrollHeight")
        for n, top in enumerate(range(0, height, WINDOW_HEIGHT), 1):
            driver.execute_script(f"window.scrollTo(0, {top})")
            written.append(out / f"glance-{width}-{n}.png")
            driver.save_screenshot(str(written[-1]))
        driver.set_window_size(width, min(height, MAX_HEIGHT))
        written.append(out / f"glance-{width}-full.png")
        driver.save_screenshot(str(written[-1]))
    finally:
        driver.quit()
        httpd.shutdown()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--html", type=Path, default=ROOT / "_build" / "html")
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "screens")
    parser.add_argument("--width", type=int, default=1400)
    args = parser.parse_args()
    for path in screenshots(args.html, args.out, args.width):
        print(path)


if __name__ == "__main__":
    main()
