"""Take docs/page-sentiment.png and docs/page-pos.png: the web page in Debian's Chromium against a real server.

Run from the repository root: .venv/bin/python scripts/page_screenshots.py
(the Chinese text needs a CJK font: apt-get install fonts-noto-cjk).
"""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from playwright.sync_api import expect, sync_playwright  # noqa: E402

from bench.harness import running_server  # noqa: E402
from tests.browser import launch  # noqa: E402

SHOTS = {
    "page-sentiment.png": ({"task": "sentiment", "text": "The first hour is slow and the dialogue is clumsy. But the "
                            "last act is stunning, and the lead gives a performance I will not forget. Worth the "
                            "wait!"}, ".sentences li"),
    "page-pos.png": ({"task": "pos-tag", "text": "北京大学的学生在图书馆里认真地学习新的知识。"}, ".chip"),
}


def main() -> None:
    with running_server() as base, sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": 1200, "height": 800}, base_url=base)
        for name, (query, shown) in SHOTS.items():
            page.goto(f"/?{urlencode(query)}")
            expect(page.locator(shown).first).to_be_visible(timeout=60_000)
            if shown == ".chip":
                page.locator(".chip").nth(5).focus()  # one tag's description, as on hover
            page.screenshot(path=REPO / "docs" / name, full_page=True)
            print("wrote", REPO / "docs" / name)
        browser.close()


if __name__ == "__main__":
    main()
