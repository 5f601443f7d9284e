"""A real browser for the report's page: Debian's Chromium, headless, driven by Selenium through
Debian's chromedriver (nothing downloaded; Selenium Manager is never asked).

:func:`chromium` says why it cannot run (no browser, no driver, no selenium) so tests skip with a
reason; :func:`inspect_page` loads a file and measures what a reader would see.
"""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

BROWSERS = ("chromium", "chromium-browser")
DRIVER = "chromedriver"

#: Run in the page: every image decoded (or its error), every table's right edge, the page width.
_MEASURE = """
const done = arguments[arguments.length - 1];
const images = Array.from(document.images);
Promise.all(images.map(img => img.decode().then(() => null, e => String(e)))).then(errors => done({
  images: images.map((img, i) => ({src: img.getAttribute('src').slice(0, 40), width: img.naturalWidth,
                                   height: img.naturalHeight, error: errors[i]})),
  tables: Array.from(document.querySelectorAll('table')).map(t => ({
    right: t.getBoundingClientRect().right, width: t.getBoundingClientRect().width,
    scroll: ['auto', 'scroll'].includes(getComputedStyle(t.parentElement).overflowX),
    head: t.rows.length ? t.rows[0].innerText.slice(0, 60) : ''})),
  viewport: document.documentElement.clientWidth,
  page: document.documentElement.scrollWidth,
  resources: performance.getEntriesByType('resource').map(r => r.name),
  links: Array.from(document.querySelectorAll('[href],[src]')).map(e => e.getAttribute('href') || e.getAttribute('src')),
}));
"""


def missing() -> str | None:
    """Why the browser test cannot run here, or None."""
    if not any(shutil.which(b) for b in BROWSERS):
        return "Chromium is not installed (apt-get install chromium chromium-driver; .ci/run installs it)"
    if not shutil.which(DRIVER):
        return "chromedriver is not installed (apt-get install chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium; it is in the 'test' extra)"
    return None


@contextmanager
def chromium(width: int = 1024, height: int = 900) -> Iterator[Any]:
    """A headless Chromium WebDriver with a ``width`` px wide viewport, console logging on."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = next(shutil.which(b) for b in BROWSERS if shutil.which(b))
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--hide-scrollbars", f"--window-size={width},{height}", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which(DRIVER)), options=options)
    try:
        driver.set_script_timeout(60)
        yield driver
    finally:
        driver.quit()


@dataclass
class PageCheck:
    """What a real browser saw of one page."""

    console: list[dict[str, Any]] = field(default_factory=list)  # SEVERE/WARNING console entries
    images: list[dict[str, Any]] = field(default_factory=list)
    tables: list[dict[str, Any]] = field(default_factory=list)
    viewport: int = 0
    page: int = 0
    resources: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [e for e in self.console if e.get("level") == "SEVERE"]

    @property
    def wide_tables(self) -> list[dict[str, Any]]:
        """Tables that run past the viewport's right edge."""
        return [t for t in self.tables if t["right"] > self.viewport + 0.5]


def inspect_page(driver: Any, page: Path, screenshot: Path | None = None) -> PageCheck:
    """Load ``page`` (a file), wait for every image to decode, and measure; optionally save a
    full-page PNG screenshot (Chrome DevTools ``Page.captureScreenshot``)."""
    import base64

    driver.get(page.resolve().as_uri())
    seen = driver.execute_async_script(_MEASURE)
    check = PageCheck(console=list(driver.get_log("browser")), **seen)
    if screenshot is not None:
        metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
        size = metrics["cssContentSize"]
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": check.viewport, "height": size["height"], "scale": 1}})
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
    return check
