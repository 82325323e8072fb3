"""The BTP uplink against a real JS ilp-connector parent (account "child" = ilp-plugin-mini-accounts)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from moneyd.app import StartupError
from moneyd.server import account_for_token as account
from moneyd.wire import ilp
from tests.support.app_pair import pays, pays_sync, ping
from tests.support.jsnode import NodeRunner, free_port
from tests.support.routerfixture import start_router
from uplinks.btp import BtpUplink


async def start_parent(node: NodeRunner, port: int):  # type: ignore[no-untyped-def]
    parent = node.start("parent-connector.js", str(port), "test.parent")
    await parent.event("ready", timeout=30)
    return parent


async def test_local_app_pays_a_receiver_on_the_parent_and_back(node: NodeRunner, tmp_path: Path) -> None:
    pport = free_port()
    await start_parent(node, pport)
    router = await start_router(tmp_path, BtpUplink(f"btp+ws://:moneyd-uplink@127.0.0.1:{pport}"))
    try:
        assert router.address == f"test.parent.child.{account('moneyd-uplink')}"
        # A: a local app on our router; B: an app on the parent. Both JS, unchanged.
        apps = node.start("app-pair.js", f"btp+ws://:appA@127.0.0.1:{router.server.port}", f"btp+ws://:appB@127.0.0.1:{pport}")
        ready = await apps.event("ready", timeout=30)
        assert ready["a"]["clientAddress"] == f"{router.address}.local.{account('appA')}"
        assert ready["b"]["clientAddress"] == f"test.parent.child.{account('appB')}"
        assert (await ping(apps, 100))["ok"] is True
        apps.send({"cmd": "stream", "amount": 50_000, "maxPacket": 1000})
        result = await apps.event("stream", timeout=120)
        assert result.get("delivered") == result.get("received") == 50_000, result
        # The reverse: B (on the parent) pays A (behind our router).
        await pays(node, f"btp+ws://:appB2@127.0.0.1:{pport}", f"btp+ws://:appA2@127.0.0.1:{router.server.port}", 7)
    finally:
        await router.stop()


async def test_parent_drops_and_comes_back(node: NodeRunner, tmp_path: Path) -> None:
    pport = free_port()
    parent = await start_parent(node, pport)
    uplink = BtpUplink(f"btp+ws://:drop@127.0.0.1:{pport}", backoff_initial=0.2, backoff_max=0.5)
    router = await start_router(tmp_path, uplink)
    try:
        parent.stop()
        await asyncio.sleep(0.3)
        # While the parent is gone, a packet for it is refused at once (T01), it does not hang.
        f = os.urandom(32)
        p = ilp.Prepare(1, datetime.now(UTC) + timedelta(seconds=30), hashlib.sha256(f).digest(), "test.parent.child.x", f)
        reply = await asyncio.wait_for(router.handle_prepare(p, "someapp"), 2)
        assert isinstance(reply, ilp.Reject) and reply.code == "T01"
        parent = await start_parent(node, pport)
        await asyncio.wait_for(uplink.connected.wait(), 15)
        await pays(node, f"btp+ws://:ra@127.0.0.1:{router.server.port}", f"btp+ws://:rb@127.0.0.1:{pport}", 3)
    finally:
        await router.stop()


async def test_unreachable_parent_is_a_clear_startup_error(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match=r"cannot reach the parent at btp\+ws://:\*\*\*@127\.0\.0\.1"):
        await start_router(tmp_path, BtpUplink(f"btp+ws://:tok@127.0.0.1:{free_port()}", connect_timeout=2))


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MONEYD_DATA_DIR": str(tmp_path / "data")}
    return subprocess.run([sys.executable, "-m", "moneyd", "-c", str(tmp_path / "cfg.json"), *args], capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)


def test_btp_configure_flags_and_refusals(tmp_path: Path) -> None:
    out = cli(tmp_path, "btp:configure", "--parent", "https://nope")
    assert out.returncode == 2 and "btp+ws://" in out.stderr
    out = cli(tmp_path, "btp:configure")
    assert out.returncode == 2 and "--parent" in out.stderr
    out = cli(tmp_path, "btp:configure", "--parent", "btp+ws://me:tok@127.0.0.1:9")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "cfg.json").stat().st_mode & 0o777 == 0o600
    out = cli(tmp_path, "btp:configure", "--parent", "btp+ws://me:other@127.0.0.1:9")
    assert out.returncode == 1 and "--force" in out.stderr
    assert cli(tmp_path, "btp:configure", "--parent", "btp+ws://me:other@127.0.0.1:9", "--force").returncode == 0
    (tmp_path / "cfg.json").write_text("{ not json")
    out = cli(tmp_path, "btp:start")
    assert out.returncode == 1 and "cfg.json is not valid JSON (line 1, column 3" in out.stderr


def test_btp_start_cli_end_to_end(node: NodeRunner, tmp_path: Path) -> None:
    pport, port = free_port(), free_port()
    parent = node.start("parent-connector.js", str(pport), "test.parent")
    parent.event_sync("ready", timeout=30)
    assert cli(tmp_path, "btp:configure", "--parent", f"btp+ws://:cli-uplink@127.0.0.1:{pport}").returncode == 0
    env = {**os.environ, "MONEYD_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen([sys.executable, "-m", "moneyd", "-c", str(tmp_path / "cfg.json"), "btp:start", "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        expected = f"test.parent.child.{account('cli-uplink')}"
        assert line.startswith(f"moneyd ready: ILP address {expected} (XRP, scale 9)"), line
        pays_sync(node, f"btp+ws://:a@127.0.0.1:{port}", f"btp+ws://:b@127.0.0.1:{pport}", 9)
    finally:
        proc.send_signal(2)
        proc.wait(10)
    assert proc.returncode == 0
    # Without a running parent: it says it is trying again, and with --wait-for-parent gives up in one clear line.
    parent.stop()
    out = cli(tmp_path, "btp:start", "--port", str(port), "--wait-for-parent", "1")
    assert out.returncode == 1
    assert "trying again in 0.5s" in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("moneyd: error: the uplink did not start: cannot reach the parent at")


def test_btp_start_waits_for_a_parent_that_comes_up_later(node: NodeRunner, tmp_path: Path) -> None:
    pport, port = free_port(), free_port()
    assert cli(tmp_path, "btp:configure", "--parent", f"btp+ws://:late@127.0.0.1:{pport}").returncode == 0
    env = {**os.environ, "MONEYD_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen([sys.executable, "-m", "moneyd", "-c", str(tmp_path / "cfg.json"), "btp:start", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None and proc.stdout is not None
        assert "trying again" in proc.stderr.readline()  # it says so, and keeps trying
        parent = node.start("parent-connector.js", str(pport), "test.parent")
        parent.event_sync("ready", timeout=30)
        assert proc.stdout.readline().startswith(f"moneyd ready: ILP address test.parent.child.{account('late')}")
    finally:
        proc.send_signal(2)
        proc.wait(30)
    assert proc.returncode == 0


def test_btp_configure_refuses_plain_ws_off_loopback(tmp_path: Path) -> None:
    out = cli(tmp_path, "btp:configure", "--parent", "btp+ws://:tok@example.com")
    assert out.returncode == 2 and "unencrypted" in out.stderr and "--insecure" in out.stderr
    assert not (tmp_path / "cfg.json").exists()
    assert cli(tmp_path, "btp:configure", "--parent", "btp+ws://:tok@example.com", "--insecure").returncode == 0
    assert cli(tmp_path, "btp:configure", "--parent", "btp+wss://:tok@example.com", "--force").returncode == 0


def test_btp_start_and_configure_agree_on_a_damaged_section(tmp_path: Path) -> None:
    (tmp_path / "cfg.json").write_text('{"version": 1, "btp": {"parent": 7}}')
    start = cli(tmp_path, "btp:start")
    configure = cli(tmp_path, "btp:configure", "--parent", "btp+wss://:t@example.com")
    for out in (start, configure):
        assert out.returncode == 1
        assert "btp section" in out.stderr and "damaged" in out.stderr and "--force" in out.stderr, out.stderr


