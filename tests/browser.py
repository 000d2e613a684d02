"""A headless Chromium for the HTML report tests (playwright's Python API driving the system's browser).

In CI (``CI=true``) a browser that cannot start is a failure; elsewhere the tests skip with one line saying how
to enable them. playwright never downloads a browser here: it drives Debian's ``chromium`` by its path.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-default-apps", "--disable-extensions", "--disable-dev-shm-usage"]
HOW = "browser tests skipped: `apt-get install chromium` and `pip install playwright` to run them"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def find_chromium() -> str | None:
    """The browser's executable: $YOLOTAL_CHROMIUM, else the first Chromium/Chrome on PATH."""
    env = os.environ.get("YOLOTAL_CHROMIUM")
    if env:
        return env if Path(env).exists() else None
    for name in CANDIDATES:
        p = shutil.which(name)
        if p:
            return p
    return None


def _unavailable(why: str):
    if in_ci():
        pytest.fail(f"CI=true but the browser tests cannot run: {why}", pytrace=False)
    pytest.skip(HOW)


@contextmanager
def launch():
    """A running headless browser (playwright Browser); fails in CI, skips elsewhere when unavailable."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install playwright)")
    exe = find_chromium()
    if exe is None:
        env = os.environ.get("YOLOTAL_CHROMIUM")
        _unavailable(f"YOLOTAL_CHROMIUM={env} does not exist" if env else
                     "no chromium executable on PATH (apt-get install chromium)")
    with sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=exe, args=ARGS, timeout=60_000)
        except Exception as e:  # playwright raises its own Error types
            if in_ci():
                raise RuntimeError(f"CI=true: chromium at {exe} did not start: {e}") from e
            pytest.skip(f"{HOW} ({exe} did not start: {str(e).splitlines()[0]})")
        try:
            yield browser
        finally:
            browser.close()


class Page:
    """One page opened from a file:// URL with every other request aborted and recorded, console errors kept."""

    def __init__(self, browser, path: Path, viewport=(1280, 900)):
        self.outside: list[str] = []
        self.console_errors: list[str] = []
        self.ctx = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}, offline=True)
        self.ctx.route("**/*", self._route)
        self.page = self.ctx.new_page()
        self.page.on("console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.console_errors.append(f"pageerror: {e}"))
        self.page.on("requestfailed", lambda r: None)
        self.url = Path(path).resolve().as_uri()

    def _route(self, route):
        url = route.request.url
        if url.startswith(("file:", "data:")):
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()

    def open(self, timeout_ms: int = 60_000):
        self.page.goto(self.url, wait_until="load", timeout=timeout_ms)
        self.page.wait_for_selector("body[data-ready='1']", timeout=timeout_ms)
        return self.page

    def close(self) -> None:
        self.ctx.close()
