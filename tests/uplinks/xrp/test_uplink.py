"""The XRP uplink end to end: `moneyd xrp:start` against a JS ilp-connector whose child account is the real
ilp-plugin-xrp-asym-server 1.8.1, both on the XRPL emulator. Payments go both ways through the parent, claims
flow both ways, and the ledger pays out exactly what the claims say."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import Any

from tests.support.jsnode import JS_DIR, NodeProcess, NodeRunner
from tests.support.xrp_setup import XRP, Moneyd, Setup, js_receiver, received_total, setup  # noqa: F401 - setup is the fixture
from tests.support.xrpl_emulator import XrplEmulator
from uplinks.xrp.claims import channel_id


async def ledger_wait(emu: XrplEmulator, check: Any, timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while not emu.call(check):
            await asyncio.sleep(0.1)


async def test_pay_and_get_paid_through_the_asym_server(setup: Setup, node: NodeRunner) -> None:  # noqa: F811
    s, emu = setup, setup.emu
    seq = emu.ledger.account(s.client.address).sequence  # type: ignore[union-attr]
    m = await Moneyd.start(s)
    try:
        # our channel: created from our account with the configured 10 XRP, registered at the parent
        ours = channel_id(s.client.address, s.parent.server.address, seq)
        chan = emu.ledger.channel(ours)
        assert chan is not None and chan.amount == 10 * XRP and chan.settle_delay == 3600
        theirs = [c for c in emu.ledger.channels_of(s.parent.server.address) if c.destination == s.client.address]
        assert len(theirs) == 1
        incoming = theirs[0].channel_id

        # a local app pays a JS receiver on the parent: 50,000,000 units (0.05 XRP) in 1,000,000-unit packets
        js, url = await js_receiver(node, s.parent)
        code, out, err = await s.cli("pay", url, "50000000", "--via", m.via, "--max-packet-amount", "1000000", "--json")
        assert code == 0, err + "\n".join(m.err)
        result = json.loads(out)
        assert result["delivered"] == 50_000_000
        await received_total(js, 50_000_000)

        # and is paid by a JS sender on the parent: ilp-spsp send into `moneyd receive`
        recv = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "moneyd", "receive", "--via", m.via, "--port", "0", "--json",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=s.env())
        assert recv.stdout is not None
        ready = json.loads(await asyncio.wait_for(recv.stdout.readline(), 30))
        assert ready["address"].startswith("test.parent.child.alice.local.")
        sender = node.start(JS_DIR / "node_modules" / "ilp-spsp" / "index.js", "send", "-r", ready["url"],
                            "-a", "30000000", env={"ILP_BTP_SERVER": s.parent.app_url("carol")})
        async with asyncio.timeout(60):
            while sender.proc.poll() is None:
                await asyncio.sleep(0.05)
        assert sender.proc.returncode == 0, "\n".join(sender.lines + sender.stderr + m.err)
        recv.send_signal(signal.SIGINT)
        events = [json.loads(line) for line in (await asyncio.wait_for(recv.stdout.read(), 30)).decode().splitlines()]
        assert events[-1] == {"event": "stopped", "total": 30_000_000}
        await recv.wait()
    finally:
        assert await m.stop() == 0, "\n".join(m.err)

    # on the way out moneyd cashed the parent's claim: exactly what we were paid, to the drop
    assert emu.ledger.channel(incoming).balance == 30_000_000 // 1000  # type: ignore[union-attr]
    saved = s.saved()
    assert int(saved["best_amount"]) == 30_000_000 == int(saved["claimed"])
    # our claims paid the 0.05 XRP plus the prepaid float (settle_to 10,000,000 at most, 5,000,000 at least)
    sent = int(saved["sent_amount"])
    assert 50_000_000 + 5_000_000 <= sent <= 50_000_000 + 10_000_000
    # and the parent's auto-claim cashed our claim on the ledger for exactly its drops
    await ledger_wait(emu, lambda: emu.ledger.channel(ours).balance == -(-sent // 1000))  # type: ignore[union-attr]


class ClaimTap:
    """A WebSocket relay between moneyd and the parent that reads the BTP frames going by: the claims the parent
    sends, and which of them moneyd answered (acknowledged). ``on_ack`` runs on every acknowledged claim."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = f"ws://127.0.0.1:{upstream_port}"
        self.claims: dict[int, int] = {}  # request id -> claim amount
        self.acked: list[int] = []
        self.on_ack: Any = None
        self.server: Any = None
        self.port = 0

    async def start(self) -> ClaimTap:
        from websockets.asyncio.server import serve

        self.server = await serve(self._relay, "127.0.0.1", 0, compression=None, max_size=None)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _relay(self, down: Any) -> None:
        from websockets.asyncio.client import connect

        from moneyd.wire import btp

        async with connect(self.upstream, compression=None, max_size=None) as up:
            async def pipe(src: Any, dst: Any, from_parent: bool) -> None:
                async for raw in src:
                    frame = btp.decode_frame(raw)
                    if from_parent and isinstance(frame, btp.Transfer):
                        pd = btp.find(frame.protocol_data, "claim")
                        if pd is not None:
                            self.claims[frame.request_id] = int(json.loads(pd.data)["amount"])
                    await dst.send(raw)
                    if not from_parent and isinstance(frame, btp.Response) and frame.request_id in self.claims:
                        self.acked.append(self.claims[frame.request_id])
                        if self.on_ack is not None:
                            self.on_ack(self.acked)

            tasks = [asyncio.create_task(pipe(down, up, False)), asyncio.create_task(pipe(up, down, True))]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in tasks:
                t.cancel()

    async def close(self) -> None:
        self.server.close()
        await self.server.wait_closed()


async def receive_from_parent(s: Setup, node: NodeRunner, m: Moneyd, amount: int) -> tuple[asyncio.subprocess.Process, NodeProcess]:
    recv = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "moneyd", "receive", "--via", m.via, "--port", "0", "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=s.env())
    assert recv.stdout is not None
    ready = json.loads(await asyncio.wait_for(recv.stdout.readline(), 30))
    sender = node.start(JS_DIR / "node_modules" / "ilp-spsp" / "index.js", "send", "-r", ready["url"],
                        "-a", str(amount), env={"ILP_BTP_SERVER": s.parent.app_url("carol")})
    return recv, sender


async def test_kill_9_mid_payment_loses_no_acknowledged_claim(setup: Setup, node: NodeRunner) -> None:  # noqa: F811
    s, emu = setup, setup.emu
    tap = await ClaimTap(s.parent.asym_port).start()
    s.configure_xrp(parent=f"btp+ws://127.0.0.1:{tap.port}")
    try:
        m = await Moneyd.start(s)
        killed = asyncio.Event()

        def kill_after_five(acked: list[int]) -> None:
            if len(acked) >= 5 and not killed.is_set():
                os.kill(m.proc.pid, signal.SIGKILL)  # right after moneyd answered the fifth claim
                killed.set()

        tap.on_ack = kill_after_five
        recv, sender = await receive_from_parent(s, node, m, 2_000_000_000)  # packets of at most 20,000,000
        await asyncio.wait_for(killed.wait(), 60)
        assert await m.stop() == -signal.SIGKILL
        recv.kill()
        await recv.wait()
        sender.stop()
        acked_best = max(tap.acked)
        assert len(tap.acked) >= 5 and acked_best > 0
        # every claim moneyd acknowledged is in its store: the best of them (claims are cumulative)
        assert int(s.saved()["best_amount"]) >= acked_best

        # it starts again on the same channels and keeps working both ways
        channels = {c.channel_id for c in emu.ledger.channels_of(s.client.address)}
        m = await Moneyd.start(s)
        try:
            recv, sender = await receive_from_parent(s, node, m, 30_000_000)
            async with asyncio.timeout(60):
                while sender.proc.poll() is None:
                    await asyncio.sleep(0.05)
            assert sender.proc.returncode == 0, "\n".join(sender.lines + sender.stderr + m.err)
            recv.send_signal(signal.SIGINT)
            await recv.wait()
            js, url = await js_receiver(node, s.parent)
            code, _, err = await s.cli("pay", url, "2000000", "--via", m.via, "--json")
            assert code == 0, err + "\n".join(m.err)
            await received_total(js, 2_000_000)
        finally:
            assert await m.stop() == 0, "\n".join(m.err)
        assert {c.channel_id for c in emu.ledger.channels_of(s.client.address)} == channels  # no second channel
    finally:
        await tap.close()
    # the ledger paid out the parent's last claim, to the drop
    best = max(tap.claims.values())
    assert int(s.saved()["best_amount"]) == best
    incoming = [c for c in emu.ledger.channels_of(s.parent.server.address) if c.destination == s.client.address]
    assert incoming[0].balance == -(-best // 1000)  # drops round up, as the parent signed them
