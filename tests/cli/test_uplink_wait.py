"""`btp:start`, `xrp:start` and `eth:start` when what they connect to at start does not answer: the parent, the XRPL
server, the Ethereum node. As real processes: each says once, in one line, what is unreachable and that it tries
again with backoff (naming the next delay), keeps trying (later tries only at debug level), opens no local server
until the parent has told it its address (as the JS moneyd), gives up with one error line when --wait-for-parent
runs out, and exits 130 with no traceback on Ctrl-C.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from xrpl.wallet import Wallet

from tests.support.ethfixture import Ganache
from tests.support.jsnode import free_port
from tests.support.xrpl_emulator import XrplEmulator

XRP_SEED = "sn3nxiW7v8KXzPzAqzyHXbSSKNuN9"  # the XRPL documentation's example seed (holds nothing)
ETH_KEY = "0x" + "11" * 32
SAYS_ONCE = "trying again in 0.5s, then with backoff up to 30s (Ctrl-C stops)"


def env_for(tmp: Path) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("MONEYD_")}
    return {**inherited, "MONEYD_DATA_DIR": str(tmp / "data"), "MONEYD_NO_KEYRING": "1",
            "MONEYD_PASSPHRASE": "test passphrase", "MONEYD_ADMIN_API_PORT": "0",
            "MONEYD_XRP_SECRET": XRP_SEED, "MONEYD_ETH_PRIVATE_KEY": ETH_KEY}


def config(tmp: Path, section: str, **values: object) -> None:
    (tmp / "m.json").write_text(json.dumps({"version": 1, section: values}))


def xrp_config(tmp: Path, parent_port: int, xrp_server: str) -> None:
    config(tmp, "xrp", parent=f"btp+ws://127.0.0.1:{parent_port}", xrp_server=xrp_server, name="me",
           address=Wallet.from_seed(XRP_SEED).address)


def eth_config(tmp: Path, parent_port: int, provider: str, contract: str, chain_id: int) -> None:
    from eth_account import Account

    config(tmp, "eth", parent=f"btp+ws://127.0.0.1:{parent_port}", provider=provider, contract=contract,
           chain_id=chain_id, name="me", address=Account.from_key(ETH_KEY).address, channel_amount=10**16)


def start(tmp: Path, command: str, *args: str) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moneyd", "-c", str(tmp / "m.json"), command, "--port", str(port), *args],
                            env=env_for(tmp), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    return proc, port


def run(tmp: Path, command: str, *args: str) -> subprocess.CompletedProcess[str]:
    proc, _ = start(tmp, command, *args)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def wait_then_interrupt(proc: subprocess.Popen[str], port: int, unreachable: str) -> None:
    """Read the log until the process has said it waits and tried twice more (debug lines); check no local server is
    up meanwhile; then Ctrl-C: exit 130, nothing said after, no traceback, never "moneyd ready"."""
    assert proc.stderr is not None and proc.stdout is not None
    lines: list[str] = []
    try:
        while sum("; next try in" in line for line in lines) < 2:
            line = proc.stderr.readline()
            assert line, f"exited while waiting: {''.join(lines)}"
            lines.append(line)
        with socket.socket() as s:  # the local server opens only once the parent has given us our address
            assert s.connect_ex(("127.0.0.1", port)) != 0
    finally:
        proc.send_signal(signal.SIGINT)
        out, rest = proc.communicate(timeout=30)
    said = [line for line in lines if SAYS_ONCE in line]
    assert len(said) == 1 and unreachable in said[0], lines
    assert lines.index(said[0]) < min(i for i, line in enumerate(lines) if "; next try in" in line)
    assert proc.returncode == 130, (proc.returncode, rest)
    assert "Traceback" not in "".join(lines) + rest and "moneyd ready" not in out


def gives_up(result: subprocess.CompletedProcess[str], unreachable: str) -> None:
    """--wait-for-parent ran out: the wait said once, then one error line naming what did not answer."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, result.stderr
    assert sum(SAYS_ONCE in line for line in lines) == 1 and unreachable in lines[0], lines
    assert lines[-1].startswith(f"moneyd: error: the uplink did not start: {unreachable}"), lines
    assert "Traceback" not in result.stderr and "moneyd ready" not in result.stdout


def test_xrp_start_waits_for_its_xrpl_server(tmp_path: Path) -> None:
    server = f"ws://127.0.0.1:{free_port()}"
    xrp_config(tmp_path, free_port(), server)
    proc, port = start(tmp_path, "xrp:start", "--log-level", "debug")
    wait_then_interrupt(proc, port, f"cannot connect to the XRPL server {server}")
    gives_up(run(tmp_path, "xrp:start", "--wait-for-parent", "3"), f"cannot connect to the XRPL server {server}")


def test_xrp_start_waits_for_its_parent(xrpl_emulator: XrplEmulator, tmp_path: Path) -> None:
    parent = free_port()
    xrp_config(tmp_path, parent, xrpl_emulator.url)
    proc, port = start(tmp_path, "xrp:start", "--log-level", "debug")
    wait_then_interrupt(proc, port, f"cannot reach the parent at btp+ws://me:***@127.0.0.1:{parent}")


def test_eth_start_waits_for_its_node(tmp_path: Path) -> None:
    node = f"http://127.0.0.1:{free_port()}"
    eth_config(tmp_path, free_port(), node, "0x" + "22" * 20, 1337)
    proc, port = start(tmp_path, "eth:start", "--log-level", "debug")
    wait_then_interrupt(proc, port, f"cannot reach the Ethereum node at {node}")
    gives_up(run(tmp_path, "eth:start", "--wait-for-parent", "3"), f"cannot reach the Ethereum node at {node}")


def test_eth_start_waits_for_its_parent(ganache: Ganache, tmp_path: Path) -> None:
    parent = free_port()
    eth_config(tmp_path, parent, ganache.url, ganache.contract_address, ganache.chain_id)
    proc, port = start(tmp_path, "eth:start", "--log-level", "debug")
    wait_then_interrupt(proc, port, f"cannot reach the parent at btp+ws://me:***@127.0.0.1:{parent}")


def test_btp_start_waits_for_its_parent_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    parent = free_port()
    config(tmp_path, "btp", parent=f"btp+ws://:tok@127.0.0.1:{parent}")
    proc, port = start(tmp_path, "btp:start", "--log-level", "debug")
    wait_then_interrupt(proc, port, f"cannot reach the parent at btp+ws://:***@127.0.0.1:{parent}")
