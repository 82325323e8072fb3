"""An XRP uplink under a real parent, shared by the XRP uplink's tests and the admin API's: a JS ilp-connector whose
child account is ilp-plugin-xrp-asym-server (tests/js/xrp-parent-connector.js) on the XRPL emulator, a configured
`moneyd xrp:start` in the background, and a JS SPSP receiver on the parent."""

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

from tests.support.jsnode import NodeProcess, NodeRunner, free_port
from tests.support.xrpl_emulator import XrplEmulator

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
