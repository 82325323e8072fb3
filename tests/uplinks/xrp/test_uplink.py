"""The XRP uplink end to end: `moneyd xrp:start` against a JS ilp-connector whose child account is the real
ilp-plugin-xrp-asym-server 1.8.1, both on the XRPL emulator. Payments go both ways through the parent, claims
flow both ways, and the ledger pays out exactly what the claims say."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from xrpl.wallet import Wallet

from tests.support.jsnode import JS_DIR, NodeProcess, NodeRunner, free_port
from tests.support.xrpl_emulator import XrplEmulator
from uplinks.xrp.claims import channel_id

XRP = 1_000_000


@dataclass
class Parent:
    proc: NodeProcess
    asym_port: int
    apps_port: int
    server: Wallet

    def app_url(self, name: str) -> str:
        return f"btp+ws://{name}:secret-{name}@127.0.0.1:{self.apps_port}"


@dataclass
class Setup:
    emu: XrplEmulator
    parent: Parent
    client: Wallet
    tmp: Path

    def env(self) -> dict[str, str]:
        assert self.client.seed is not None
        return {**os.environ, "MONEYD_DATA_DIR": str(self.tmp / "data"), "MONEYD_NO_KEYRING": "1",
                "MONEYD_PASSPHRASE": "test passphrase", "MONEYD_XRP_SECRET": self.client.seed}

    async def cli(self, *args: str, timeout: float = 120) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "moneyd", "-c", str(self.tmp / "moneyd.json"), *args, env=self.env(),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    def configure_xrp(self, **settings: Any) -> None:
        """Change settings of the xrp section of the config file."""
        path = self.tmp / "moneyd.json"
        cfg = json.loads(path.read_text())
        cfg["xrp"].update(settings)
        path.write_text(json.dumps(cfg))

    def saved(self) -> dict[str, Any]:
        db = sqlite3.connect(self.tmp / "data" / "moneyd.sqlite")
        try:
            rows = db.execute("SELECT value FROM kv WHERE namespace='xrp'").fetchall()
        finally:
            db.close()
        assert len(rows) == 1
        value: dict[str, Any] = json.loads(rows[0][0])
        return value


class Moneyd:
    """`moneyd xrp:start` in the background."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc = proc
        self.port = port
        self.err: list[str] = []

    @classmethod
    async def start(cls, s: Setup) -> Moneyd:
        port = free_port()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "moneyd", "-c", str(s.tmp / "moneyd.json"), "xrp:start", "--port", str(port),
            env=s.env(), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        m = cls(proc, port)
        m._drain = asyncio.create_task(m._read_err())  # type: ignore[attr-defined]
        assert proc.stdout is not None
        async with asyncio.timeout(90):
            line = (await proc.stdout.readline()).decode()
        assert line.startswith("moneyd ready"), f"{line!r}\n" + "\n".join(m.err)
        return m

    async def _read_err(self) -> None:
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.err.append(line.decode().rstrip())

    @property
    def via(self) -> str:
        return f"btp+ws://localhost:{self.port}"

    async def stop(self, sig: int = signal.SIGINT) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        code = await asyncio.wait_for(self.proc.wait(), 60)
        await asyncio.wait_for(self._drain, 10)  # type: ignore[attr-defined]
        return code


def start_parent(node: NodeRunner, emu: XrplEmulator) -> Parent:
    server = Wallet.create()
    assert server.seed is not None
    emu.fund(server.address, 1000 * XRP)
    asym, apps = free_port(), free_port()
    proc = node.start("xrp-parent-connector.js", str(asym), str(apps), emu.url, server.seed, server.address, "1000")
    proc.event_sync("ready", timeout=60)
    return Parent(proc, asym, apps, server)


@pytest.fixture
async def setup(node: NodeRunner, xrpl_emulator: XrplEmulator, tmp_path: Path) -> AsyncIterator[Setup]:
    parent = await asyncio.to_thread(start_parent, node, xrpl_emulator)
    client = Wallet.create()
    xrpl_emulator.fund(client.address, 100 * XRP)
    s = Setup(xrpl_emulator, parent, client, tmp_path)
    code, _, err = await s.cli("xrp:configure", "--parent", f"btp+ws://127.0.0.1:{parent.asym_port}",
                               "--xrp-server", xrpl_emulator.url, "--name", "alice")
    assert code == 0, err
    yield s


async def js_receiver(node: NodeRunner, parent: Parent) -> tuple[NodeProcess, str]:
    js = node.start("spsp-receiver.js", parent.app_url("bob"))
    ready = await js.event("ready", timeout=30)
    return js, str(ready["url"])


async def received_total(js: NodeProcess, total: int, timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while not any(f'"total":"{total}"' in line for line in js.lines):
            await asyncio.sleep(0.05)


async def ledger_wait(emu: XrplEmulator, check: Any, timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while not emu.call(check):
            await asyncio.sleep(0.1)


async def test_pay_and_get_paid_through_the_asym_server(setup: Setup, node: NodeRunner) -> None:
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


async def test_kill_9_mid_payment_loses_no_acknowledged_claim(setup: Setup, node: NodeRunner) -> None:
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
