"""A JS moneyd user's first `moneyd -c ~/.moneyd.json xrp:start`, as a real process under a real XRP parent (JS
ilp-connector with ilp-plugin-xrp-asym-server on the XRPL emulator): with no terminal it names the exact import
command; on a terminal it offers the import, moves the secret to the keyring, leaves the JS file as it was, and
starts."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from xrpl.wallet import Wallet

from moneyd.btp.parent import btp_token
from tests.support.jsnode import NodeRunner, free_port
from tests.support.xrp_setup import XRP, start_parent
from tests.support.xrpl_emulator import XrplEmulator


class Terminal:
    """What a process writes to the terminal (a pty) it was given as stdin and stderr, read as it comes."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        self.text = ""
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    data = os.read(self.master, 4096)
                except OSError:  # the last writer closed
                    return
                if not data:
                    return
                with self._lock:
                    self.text += data.decode(errors="replace")

    def wait_for(self, words: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while words not in self.text:
            if time.monotonic() > deadline:
                raise AssertionError(f"the terminal never showed {words!r}:\n{self.text}")
            time.sleep(0.05)

    def type(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\r")


def test_a_js_moneyd_users_first_start(node: NodeRunner, xrpl_emulator: XrplEmulator, tmp_path: Path) -> None:
    emu = xrpl_emulator
    parent = start_parent(node, emu)
    wallet = Wallet.create()
    assert wallet.seed is not None
    emu.fund(wallet.address, 100 * XRP)
    home = tmp_path / "home"
    home.mkdir()
    host = f"127.0.0.1:{parent.asym_port}"
    # What `moneyd xrp:configure` of the JS moneyd 4.x writes (moneyd-uplink-xrp), mode 600.
    js = home / ".moneyd.json"
    js.write_text(json.dumps({"version": 1, "uplinks": {"xrp": {
        "relation": "parent", "plugin": "/usr/lib/node_modules/moneyd-uplink-xrp/node_modules/ilp-plugin-xrp-asym-client/index.js",
        "assetCode": "XRP", "assetScale": 9,
        "balance": {"minimum": "-Infinity", "maximum": "20000000", "settleThreshold": "5000000", "settleTo": "10000000"},
        "sendRoutes": False, "receiveRoutes": False,
        "options": {"assetScale": 9, "server": f"btp+ws://alice:{btp_token(host, 'alice', wallet.seed)}@{host}",
                    "secret": wallet.seed, "address": wallet.address, "xrpServer": emu.url}}}}, indent=2))
    js.chmod(0o600)
    js_before = js.read_bytes()
    ours = tmp_path / "xdg" / "moneyd" / "moneyd.json"
    env = {k: v for k, v in os.environ.items() if k not in ("MONEYD_XRP_SECRET", "MONEYD_CONFIG")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(tmp_path / "xdg"), MONEYD_DATA_DIR=str(tmp_path / "data"),
               MONEYD_NO_KEYRING="1", MONEYD_PASSPHRASE="test passphrase")
    port = free_port()
    start = [sys.executable, "-m", "moneyd", "-c", str(js), "xrp:start", "--port", str(port)]

    # No terminal: one line with the exact command that imports it.
    plain = subprocess.run(start, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert plain.returncode == 1, plain.stderr
    assert f"`moneyd xrp:configure --import-js {js}`" in plain.stderr and "Traceback" not in plain.stderr
    assert not ours.exists()

    # On a terminal: the offer, accepted; then it runs on the imported settings.
    term = Terminal()
    proc = subprocess.Popen(start, env=env, stdin=term.slave, stderr=term.slave, stdout=subprocess.PIPE, text=True)
    os.close(term.slave)
    try:
        term.wait_for("Import it into")
        assert f"{js} is a JS moneyd config with an XRP uplink (parent btp+ws://{host}, account alice)" in term.text
        term.type("y")
        assert proc.stdout is not None
        lines = []
        while not (line := proc.stdout.readline()).startswith("moneyd ready"):
            assert line, f"moneyd ended: {lines}\n{term.text}"
            lines.append(line)
        assert "test.parent.child.alice" in line, line
        assert any(f"saved the xrp uplink to {ours}" in seen for seen in lines), lines
        term.wait_for("from now on run `moneyd xrp:start` (without -c)")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
    assert code == 0, term.text
    assert "Traceback" not in term.text

    # Imported: our own config holds the settings but not the secret; the JS file is untouched.
    section = json.loads(ours.read_text())["xrp"]
    assert (section["parent"], section["name"], section["address"], section["xrp_server"]) == (
        f"btp+ws://{host}", "alice", wallet.address, emu.url)
    assert wallet.seed not in ours.read_text()
    assert js.read_bytes() == js_before

    # Later, out of habit, -c ~/.moneyd.json again: it says where the settings went.
    again = subprocess.run(start, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert again.returncode == 1
    assert f"already imported into {ours}: run `moneyd xrp:start` (without -c)" in " ".join(again.stderr.split())
