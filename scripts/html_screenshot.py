"""Screenshot of the HTML report of the shapes sample scan (docs/html_report.png), taken in headless Chromium.

    python scripts/html_screenshot.py [OUT.png]

Needs Debian's chromium and playwright (the test extra); the browser is driven by its path, never downloaded.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def main(out: Path) -> None:
    import os

    from browser import Page, launch
    from yolotal.render.html import write_geometry_scan_html
    from yolotal.scanning import scan

    os.chdir(ROOT)  # the report names the files as the command line would: samples/shapes/...
    res = scan("samples/shapes/shapes.yaml", (640, 640), (8, 16, 32), 16)
    with tempfile.TemporaryDirectory() as tmp, launch() as browser:
        html = write_geometry_scan_html(res, Path(tmp) / "shapes.html")
        page = Page(browser, html, (1280, 900))
        pg = page.open()
        pg.screenshot(path=str(out), full_page=True)
        assert not page.outside and not page.console_errors, (page.outside, page.console_errors)
        page.close()
    print(f"{out}: {out.stat().st_size} bytes")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "html_report.png")
