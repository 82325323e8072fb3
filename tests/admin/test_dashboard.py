"""The dashboard in a real headless Chromium (Debian's ``chromium``), driven over the Chrome DevTools protocol:
load it from a running moneyd, see the address, start receiving, pay the receiver from the send form, see the
payment arrive. The screenshot goes to tests/output/dashboard.png (not committed)."""

from __future__ import annotations

import base64
import json
import subprocess
import urllib.request
from pathlib import Path

from websockets.asyncio.client import connect

from tests.support.chromium import OUTPUT, Page, start_chromium
from tests.support.moneyd_process import Moneyd


async def test_dashboard_shows_moneyd_and_pays(tmp_path: Path) -> None:
    moneyd = Moneyd(tmp_path, "local")
    browser, devtools = start_chromium(tmp_path)
    try:
        token = (tmp_path / "data" / "admin-token").read_text().strip()
        with urllib.request.urlopen(f"http://127.0.0.1:{devtools}/json/list", timeout=10) as r:
            target = next(t for t in json.loads(r.read()) if t["type"] == "page")
        async with connect(target["webSocketDebuggerUrl"], max_size=64 << 20) as ws:
            page = Page(ws)
            await page.call("Page.enable")
            await page.call("Page.navigate", url=f"http://127.0.0.1:{moneyd.admin_port}/#token={token}")
            assert await page.wait_for("document.getElementById('address').textContent") == "private.moneyd"
            assert await page.js("document.getElementById('health').textContent") == "running (local)"
            # The token moved from the URL to the page's storage; the form needs no more.
            assert await page.js("location.hash") == ""
            assert await page.js("localStorage.getItem('moneyd-admin-token')") == token
            # Receive: the same SPSP + STREAM receiver `moneyd receive` runs.
            await page.js("document.getElementById('recvbtn').click()")
            url = await page.wait_for("(t => t.startsWith('http://localhost:') && t)(document.getElementById('spsp').textContent)")
            # Send: pay that receiver 5000 base units through moneyd, as `moneyd pay` would.
            await page.js(f"document.getElementById('receiver').value = {json.dumps(url)};"
                          "document.getElementById('amount').value = '5000';"
                          "document.getElementById('sendbtn').click()")
            result = await page.wait_for("(t => t.startsWith('paid') && t)(document.getElementById('sendresult').textContent)")
            assert "sent 5,000, delivered 5,000" in result, result
            # It shows up live: in recent payments (from the event stream) and in the receive panel.
            row = await page.wait_for("[...document.querySelectorAll('#payments tr.payment')].map(r => r.innerText).join('\\n')")
            assert "5,000" in row, row
            incoming = await page.wait_for("(t => t.includes('5,000') && !t.includes('in progress') && t)"
                                           "(document.getElementById('incoming').innerText)")
            assert incoming.startswith("#1: 5,000"), incoming
            assert int(await page.wait_for("document.getElementById('appcount').textContent.replace(/\\D/g, '') >= 1")) >= 1
            shot = await page.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
            OUTPUT.mkdir(exist_ok=True)
            png = base64.b64decode(shot["data"])
            assert png.startswith(b"\x89PNG")
            (OUTPUT / "dashboard.png").write_bytes(png)
    finally:
        browser.terminate()
        try:
            browser.wait(10)
        except subprocess.TimeoutExpired:
            browser.kill()
        _, err = moneyd.stop()
    assert "Traceback" not in err, err
