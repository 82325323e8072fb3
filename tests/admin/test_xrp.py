"""The admin API and `moneyd status` on `moneyd xrp:start`: the uplink's facts read from the live claim book match
the ledger (both channels' capacity, what was claimed, what is left), and they move when money does."""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.request
from typing import Any

from tests.support.jsnode import NodeRunner, free_port
from tests.support.xrp_setup import Setup, js_receiver, received_total, setup  # noqa: F401 - setup is the fixture
from uplinks.xrp.claims import channel_id

SCALE_PER_DROP = 1000  # scale 9 base units per drop


def get(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.loads(r.read())


async def follow_events(port: int, sink: list[tuple[str, dict[str, Any]]]) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/events") as r:
        kind = ""
        async for raw in r.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                sink.append((kind, json.loads(line[6:])))


async def look_at_the_dashboard(admin: int, tmp: Any) -> None:
    """Both channels drawn with a bar of what is left; the screenshot goes to tests/output/dashboard-xrp.png."""
    import base64
    import subprocess

    from websockets.asyncio.client import connect

    from tests.support.chromium import OUTPUT, Page, start_chromium

    browser, devtools = await asyncio.to_thread(start_chromium, tmp)
    try:
        targets = await asyncio.to_thread(get, devtools, "/json/list")
        target = next(t for t in targets if t["type"] == "page")
        async with connect(target["webSocketDebuggerUrl"], max_size=64 << 20) as ws:
            page = Page(ws)
            await page.call("Page.navigate", url=f"http://127.0.0.1:{admin}/")
            await page.wait_for("document.getElementById('health').textContent == 'connected'")
            widths = await page.wait_for("(w => w.length == 2 && w.every(x => x > 0) && w)"
                                         "([...document.querySelectorAll('#channels .bar > div')]"
                                         ".map(d => parseFloat(d.style.width)))")
            assert widths[0] < 100  # we paid: our channel has less left than its capacity
            assert widths[1] == 100  # the parent has paid us nothing: all of its channel is left
            assert "xrp ledger" in await page.js("document.getElementById('channels').innerText")
            shot = await page.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
            OUTPUT.mkdir(exist_ok=True)
            (OUTPUT / "dashboard-xrp.png").write_bytes(base64.b64decode(shot["data"]))
    finally:
        browser.terminate()
        try:
            await asyncio.to_thread(browser.wait, 10)
        except subprocess.TimeoutExpired:
            browser.kill()


async def test_uplink_facts_and_status_follow_the_channels(setup: Setup, node: NodeRunner) -> None:  # noqa: F811
    s, emu = setup, setup.emu
    seq = emu.ledger.account(s.client.address).sequence  # type: ignore[union-attr]
    port, admin = free_port(), free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "moneyd", "-c", str(s.tmp / "moneyd.json"), "xrp:start", "--port", str(port),
        "--admin-api-port", str(admin), env=s.env(), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 90)).decode()
        assert line.startswith("moneyd ready"), line
        ours_id = channel_id(s.client.address, s.parent.server.address, seq)
        theirs_chan = next(c for c in emu.ledger.channels_of(s.parent.server.address) if c.destination == s.client.address)

        up = await asyncio.to_thread(get, admin, "/uplink")
        assert up["type"] == "xrp" and up["connected"] is True and up["since"] > 0
        assert up["settlement"] == {"ledger": "xrp", "server": emu.url}
        ours, theirs = up["channels"]["ours"], up["channels"]["theirs"]
        assert ours["id"] == ours_id and int(ours["capacity"]) == emu.ledger.channel(ours_id).amount * SCALE_PER_DROP  # type: ignore[union-attr]
        assert theirs["id"] == theirs_chan.channel_id and int(theirs["capacity"]) == theirs_chan.amount * SCALE_PER_DROP
        assert int(ours["left"]) == int(ours["capacity"]) - int(ours["claimed"])

        events: list[tuple[str, dict[str, Any]]] = []
        watcher = asyncio.create_task(follow_events(admin, events))
        js, url = await js_receiver(node, s.parent)
        code, out, err = await s.cli("pay", url, "50000000", "--via", f"btp+ws://localhost:{port}",
                                     "--max-packet-amount", "1000000", "--json")
        assert code == 0, err
        await received_total(js, 50_000_000)
        after = (await asyncio.to_thread(get, admin, "/uplink"))["channels"]["ours"]
        # Our claims cover what we paid plus the prepaid float the uplink keeps ahead (5,000,000 to 10,000,000).
        assert 50_000_000 + 5_000_000 <= int(after["claimed"]) <= 50_000_000 + 10_000_000
        assert int(after["claimed"]) > int(ours["claimed"])
        assert int(after["left"]) == int(after["capacity"]) - int(after["claimed"])
        # The event stream told of the claims as they went out (sampled from the book, not pushed per packet).
        def seen() -> bool:
            claimed = any(k == "claim" and d["direction"] == "sent" for k, d in events)
            return claimed and any(k == "payment" and int(d["amount"]) == 50_000_000 for k, d in events)

        async with asyncio.timeout(10):
            while not seen():
                await asyncio.sleep(0.1)
        claim = next(d for k, d in events if k == "claim")
        assert claim["channel"] == ours_id and int(claim["amount"]) > 0
        watcher.cancel()
        status = await asyncio.to_thread(get, admin, "/balance")
        assert "uplink" in status["accounts"]

        await look_at_the_dashboard(admin, s.tmp)

        code, out, err = await s.cli("status", "--admin-api-port", str(admin))
        assert code == 0, out + err
        assert "uplink: xrp, connected since" in out
        line = next(x for x in out.splitlines() if x.startswith("our channel: "))
        assert f" of {int(after['capacity']):,} left (claimed " in line, out
        assert any(x.startswith("parent's channel: ") for x in out.splitlines()), out
    finally:
        if proc.returncode is None:
            proc.send_signal(2)
        await asyncio.wait_for(proc.wait(), 60)
