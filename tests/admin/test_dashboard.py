"""The dashboard in a real headless Chromium (Debian's ``chromium``), driven over the Chrome DevTools protocol:
load it from a running moneyd, see the address, start receiving, pay the receiver from the send form, see the
payment arrive. The screenshot goes to tests/output/dashboard.png (not committed)."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.admin.test_process import Moneyd

OUTPUT = Path(__file__).parent.parent / "output"


class Page:
    """One Chromium tab over CDP: just the calls this test needs."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        mid = next(self.ids)
        await self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = json.loads(await asyncio.wait_for(self.ws.recv(), 30))
            if msg.get("id") == mid:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                result: dict[str, Any] = msg["result"]
                return result

    async def js(self, expression: str) -> Any:
        r = await self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise AssertionError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 30.0) -> Any:
        """Poll a page expression until it is truthy (the page updates itself from the event stream)."""
        deadline = time.monotonic() + timeout
        while True:
            # Until the page has loaded, its elements are missing: that is "not yet", not an error.
            value = await self.js(f"(() => {{ try {{ return ({expression}); }} catch (e) {{ return null; }} }})()")
            if value:
                return value
            if time.monotonic() > deadline:
                text = await self.js("document.body.innerText")
                raise AssertionError(f"page never satisfied {expression!r}; the page says:\n{text}")
            await asyncio.sleep(0.1)


def start_chromium(tmp_path: Path) -> tuple[subprocess.Popen[str], int]:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.fail("chromium is not installed: tests/run.sh installs Debian's chromium package")
    proc = subprocess.Popen(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", "--remote-debugging-address=127.0.0.1",
         "--remote-debugging-port=0", "--window-size=1280,1100", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    for line in proc.stderr:
        m = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
        if m:
            return proc, int(m.group(1))
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise AssertionError("chromium did not start its DevTools endpoint")


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
