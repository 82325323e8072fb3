"""JS apps written for the JS moneyd, unchanged, on our router."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from moneyd.app import Router
from moneyd.server import account_for_token as account
from tests.support.app_pair import pays_sync, ping
from tests.support.jsnode import NodeRunner, free_port


async def test_two_js_apps_get_js_moneyd_addresses_and_pay_each_other(node: NodeRunner, router: Router) -> None:
    port = router.server.port
    apps = node.start("app-pair.js", f"btp+ws://:secretA@127.0.0.1:{port}", f"btp+ws://:secretB@127.0.0.1:{port}")
    ready = await apps.event("ready")
    # Exactly what the JS moneyd gives them (see ../shared/jsref/bench/README.md).
    assert ready["a"] == {"clientAddress": "private.moneyd.local.QREgkfY7QwvslZdxtZh_PDPKjvUtwucYfqKUawu-qIY", "assetScale": 9, "assetCode": "XRP"}
    assert ready["b"]["clientAddress"] == f"private.moneyd.local.{account('secretB')}"

    reply = await ping(apps, 10)
    assert reply["ok"] is True and reply["type"] == "ilp_fulfill"

    apps.send({"cmd": "stream", "amount": 100_000, "maxPacket": 1000})
    result = await apps.event("stream", timeout=120)
    assert "error" not in result, result
    assert result["sent"] == result["delivered"] == result["received"] == 100_000


async def test_username_accounts_and_rejects_from_the_router(node: NodeRunner, router: Router) -> None:
    port = router.server.port
    apps = node.start("app-pair.js", f"btp+ws://alice:pw1@127.0.0.1:{port}", f"btp+ws://bob:pw2@127.0.0.1:{port}")
    ready = await apps.event("ready")
    assert ready["a"]["clientAddress"] == "private.moneyd.local.alice"
    assert ready["b"]["clientAddress"] == "private.moneyd.local.bob"
    # Nobody there: F02 from the router, triggered by its address.
    apps.send({"cmd": "ping", "amount": 1, "destination": "private.moneyd.local.carol"})
    ping = await apps.event("ping")
    assert (ping["code"], ping["triggeredBy"]) == ("F02", "private.moneyd")
    # No uplink: anything outside the router goes nowhere.
    apps.send({"cmd": "ping", "amount": 1, "destination": "g.somewhere.else"})
    assert (await apps.event("ping"))["code"] == "F02"
    # Too little time left for the next hop: R02.
    apps.send({"cmd": "ping", "amount": 1, "expiresInMs": 1500})
    assert (await apps.event("ping"))["code"] == "R02"


def test_moneyd_local_cli_serves_js_apps(node: NodeRunner, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "MONEYD_DATA_DIR": str(tmp_path), "MONEYD_ILP_ADDRESS": "private.home"}
    proc = subprocess.Popen([sys.executable, "-m", "moneyd", "local", "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("moneyd ready: ILP address private.home (XRP, scale 9)"), line + proc.stderr.read() if proc.poll() is not None else line
        ready = pays_sync(node, f"btp+ws://:x@127.0.0.1:{port}", f"btp+ws://:y@127.0.0.1:{port}", 5)
        assert ready["a"]["clientAddress"] == f"private.home.local.{account('x')}"
    finally:
        proc.send_signal(2)
        proc.wait(10)
    assert proc.returncode == 0
    assert (tmp_path / "moneyd.sqlite").exists()


def test_port_busy_is_one_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "moneyd", "local", "--port", str(port)], env={**os.environ, "MONEYD_DATA_DIR": str(tmp_path)}, capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1].startswith(f"moneyd: error: cannot listen on 127.0.0.1:{port}")

