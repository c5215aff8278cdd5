"""Makes docs/images/client.png: the real client.html in use, in headless Chromium.

Run: .venv/bin/python scripts/screenshot.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser import launch  # noqa: E402
from transport_demo import start_server  # noqa: E402
from transport_demo.server.transports import TRANSPORTS, Carrier  # noqa: E402

# The sections started for the picture: those over TCP. tests/browser.py's launch has no QUIC
# (test_webtransport_browser.py starts WebTransport's section in a launch of its own).
OVER_TCP = [t.value for t, row in TRANSPORTS.items() if row.carrier is Carrier.TCP]


def main() -> None:
    server = start_server(port=0, heartbeat_interval=1.0, poll_timeout=2.0)
    try:
        with sync_playwright() as playwright:
            browser = launch(playwright)
            page = browser.new_page(viewport={"width": 1400, "height": 820})
            page.goto(server.url)
            for transport in OVER_TCP:
                part = page.locator(f'[data-transport="{transport}"]')
                part.locator('[data-action="start"]').click()
                expect(part.locator('[data-role="connection-id"]')).not_to_be_empty()
            time.sleep(2.5)
            for transport in OVER_TCP:
                part = page.locator(f'[data-transport="{transport}"]')
                for text in ("hello", "<b>shown as text</b>"):
                    part.locator('[data-role="input"]').fill(text)
                    part.locator('[data-role="input"]').press("Enter")
                cid = part.locator('[data-role="connection-id"]').inner_text()
                server.hub.publish(cid, "pushed from the notebook")
            time.sleep(1.5)
            out = ROOT / "docs" / "images" / "client.png"
            page.screenshot(path=str(out))
            browser.close()
            print(out)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
