"""`moneyd pay` and `moneyd receive` as real CLI processes, through our router, against the JS SPSP/STREAM peers:
our pay → a JS ilp-protocol-stream receiver, the JS `ilp-spsp send` → our receive, and pay → receive."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from moneyd.app import Router
from tests.support.http_server import serving, spsp_endpoint
from tests.support.jsnode import JS_DIR, NodeRunner, free_port
from tests.support.routerfixture import start_router


async def moneyd(*args: str, timeout: float = 120) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "moneyd", *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


class Receive:
    """`moneyd receive --json` running in the background; its JSON lines as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []

    async def next(self, name: str, timeout: float = 60) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                assert self.proc.stdout is not None
                line = await self.proc.stdout.readline()
                if not line:
                    assert self.proc.stderr is not None
                    raise AssertionError(f"moneyd receive ended: {(await self.proc.stderr.read()).decode()}")
                event = json.loads(line)
                self.events.append(event)
                if event["event"] == name:
                    return event

    async def amount(self, amount: int, timeout: float = 60) -> dict[str, Any]:
        """The first progress or payment event showing ``amount`` received on one connection."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self.next_any()
                if event["event"] in ("progress", "payment") and event["amount"] == amount:
                    return event

    async def next_any(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        if not line:
            raise AssertionError("moneyd receive ended")
        event: dict[str, Any] = json.loads(line)
        self.events.append(event)
        return event

    async def stop(self) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGINT)
        assert self.proc.stdout is not None
        rest = await asyncio.wait_for(self.proc.stdout.read(), 20)
        self.events += [json.loads(line) for line in rest.decode().splitlines() if line.strip()]
        return await asyncio.wait_for(self.proc.wait(), 20)


@pytest.fixture
async def local(tmp_path: Path) -> AsyncIterator[Router]:
    router = await start_router(tmp_path, max_packet_amount=1000)
    try:
        yield router
    finally:
        await router.stop()
        router.store.close()


async def start_receive(port: int) -> Receive:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "moneyd", "receive", "--via", f"btp+ws://localhost:{port}", "--port", "0", "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    return Receive(proc)


async def test_pay_a_js_receiver_10000_packets(local: Router, node: NodeRunner) -> None:
    port = local.server.port
    js = node.start("spsp-receiver.js", f"btp+ws://js:secret@127.0.0.1:{port}")
    ready = await js.event("ready", timeout=30)
    # The router's max packet amount is 1000: 10,000,000 takes 10,000 packets.
    code, out, err = await moneyd("pay", ready["url"], "10000000", "--via", f"btp+ws://localhost:{port}", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["ok"] and result["sent"] == result["delivered"] == 10_000_000
    assert result["packets"] >= 10_000
    assert result["destination_account"].startswith(local.address + ".local.js.")
    async with asyncio.timeout(30):
        while True:
            money = [e for e in map(_json, js.lines) if e and e.get("event") == "money"]
            if money and money[-1]["total"] == "10000000":
                break
            await asyncio.sleep(0.05)
    assert len(money) >= 10_000


def _json(line: str) -> dict[str, Any] | None:
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


async def test_js_ilp_spsp_send_to_moneyd_receive(local: Router, node: NodeRunner) -> None:
    port = local.server.port
    recv = await start_receive(port)
    try:
        ready = await recv.next("ready")
        assert ready["address"].startswith(local.address + ".local.")
        assert (ready["asset_code"], ready["asset_scale"]) == ("XRP", 9)
        # The JS moneyd users' CLI: ilp-spsp send, with ilp-plugin's default BTP client pointed at our router.
        sender = node.start(JS_DIR / "node_modules" / "ilp-spsp" / "index.js", "send", "-r", ready["url"], "-a", "123456",
                            env={"ILP_BTP_SERVER": f"btp+ws://localhost:{port}"})
        async with asyncio.timeout(60):
            while sender.proc.poll() is None:
                await asyncio.sleep(0.05)
        assert sender.proc.returncode == 0, "\n".join(sender.lines + sender.stderr)
        assert "sent!" in sender.lines
        # ilp-spsp exits without closing its connection: the amount shows in the live progress lines.
        assert (await recv.amount(123456))["payment"] == 1
    finally:
        assert await recv.stop() == 0
    assert recv.events[-1] == {"event": "stopped", "total": 123456}
    assert [e for e in recv.events if e["event"] == "payment"][-1]["amount"] == 123456  # reported at shutdown


async def test_pay_to_moneyd_receive_in_xrp_units(local: Router) -> None:
    port = local.server.port
    recv = await start_receive(port)
    try:
        ready = await recv.next("ready")
        code, out, err = await moneyd("pay", ready["url"], "0.000002XRP", "--via", f"btp+ws://localhost:{port}")
        assert code == 0, err
        assert "0.000002 XRP (= 2000 base units at scale 9)" in err
        assert "sent 2,000 of 2,000" in out
        payment = await recv.next("payment")
        assert payment["amount"] == 2000 and payment["packets"] >= 2  # max packet amount 1000
        # A second payer gets its own connection (a fresh SPSP answer each time).
        code, out, err = await moneyd("pay", ready["url"], "5", "--via", f"btp+ws://localhost:{port}", "--json")
        assert code == 0 and json.loads(out)["delivered"] == 5
        second = await recv.next("payment")
        assert (second["payment"], second["amount"], second["total"]) == (2, 5, 2005)
    finally:
        await recv.stop()


async def test_pay_errors_are_one_clear_line(local: Router, tmp_path: Path) -> None:
    port = local.server.port
    via = f"btp+ws://localhost:{port}"

    # A receiver address nobody serves: the router answers F02 to every probe.
    gone = spsp_endpoint("/gone", f"{local.address}.local.nobody.x")
    async with serving(gone) as base:
        cases = [
            (("pay", base + "/gone", "100", "--via", via, "--timeout", "10"), "cannot reach the receiver"),
            (("pay", base + "/missing", "100", "--via", via), "no such receiver (404)"),
            (("pay", base + "/gone", "1EUR", "--via", via), "the amount is in EUR, but this moneyd's asset is XRP"),
            (("pay", base + "/gone", "0.0000000001XRP", "--via", via), "more decimals than the asset's scale"),
            (("pay", base + "/gone", "100", "--via", f"btp+ws://localhost:{free_port()}"), "no moneyd answers at"),
            (("pay", "http://example.com/bob", "100", "--via", via), "only allowed for this machine"),
        ]
        for args, words in cases:
            code, out, err = await moneyd(*args)
            assert code == 1, (args, out, err)
            assert "moneyd: error: " in err and words in err, (args, err)
            assert "Traceback" not in err
        code, _, err = await moneyd("pay", base + "/gone", "lots")
        assert code == 2 and "is not an amount" in err


async def test_receive_reports_a_busy_port_and_a_missing_moneyd(local: Router) -> None:
    code, _, err = await moneyd("receive", "--via", f"btp+ws://localhost:{free_port()}")
    assert code == 1 and "no moneyd answers at" in err
    taken = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    try:
        busy = taken.sockets[0].getsockname()[1]
        code, _, err = await moneyd("receive", "--via", f"btp+ws://localhost:{local.server.port}", "--port", str(busy))
        assert code == 1 and f"cannot listen on 127.0.0.1:{busy}" in err
    finally:
        taken.close()
