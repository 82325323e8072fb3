"""A real EVM for the ETH tests: ganache 7.9.2 (tests/js/node_modules) on 127.0.0.1, with the Machinomy
Unidirectional contract deployed from the creation bytecode shipped in ilp-plugin-ethereum 3.0.0-beta.20.

One ganache runs per test session (it takes seconds to start); every test gets the chain as it was right after
the deployment, through evm_snapshot / evm_revert. Mining is instant (one block per transaction); dispute
periods are passed with ``mine(n)`` (evm_mine of n blocks).

chainId and networkId are equal on purpose: ethers v4 signs with the network id and fails ("Invalid signature
v value") when they differ.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from eth_utils.address import to_checksum_address

from tests.support.jsnode import JS_DIR, NodeProcess, NodeRunner, free_port
from uplinks.eth.claims import as_account

GANACHE_CLI = JS_DIR / "node_modules" / "ganache" / "dist" / "node" / "cli.js"
GANACHE_WRAPPER = JS_DIR / "eth-ganache.js"  # runs GANACHE_CLI, exits when pytest goes away
PLUGIN_DIR = JS_DIR / "node_modules" / "ilp-plugin-ethereum"
UNIDIRECTIONAL_JSON = PLUGIN_DIR / "build" / "abi" / "Unidirectional-testnet.json"
CHAIN_ID = 1337
START_TIMEOUT = 60.0

# ganache --wallet.deterministic: the keys of mnemonic "myth like bonus scare ... female collect", m/44'/60'/0'/0/i.
DETERMINISTIC_KEYS = (
    "0x4f3edf983ac636a65a842ce7c78d9aa706d3b113bce9c46f30d7d21715b23b1d",
    "0x6cbed15c793ce57650b9877cf6fa156fbef513c4e6134f022a85b1ffdd59b2a1",
    "0x6370fd033278c143179d81c5526140625662b8daa446c22ee2d73db3707e620c",
    "0x646f1ce2fdad0e6deeeb5c7e8e5543bdde65e86029e2fd9fc169899c440a7913",
    "0xadd53f9a7e588d003326d1cbf9e4a43c061aadd9bc938c843a79e7b4fd2ad743",
    "0x395df67f0c2d2d9fe1ad08d1bc8b6627011959b79c53d7dd6a3536a33ab8a4fd",
    "0xe485d098507f54e7733a205420dfddbe58db035fa577fc294ebd14db90767a52",
    "0xa453611d9419d0e56f499079478fd72c37b251a94bfde4d19872c44cf65386e3",
    "0x829e924fdf021ba3dbbc4225edfece9aca04b929d6e75613329ca6f1d31c0bb4",
    "0xb0057716d5917badaf911b193b12b910811c1497b5bada8d7711f758981c3773",
)
DEPLOYER = 9  # the contract is deployed from the last account, so tests have 0..8 untouched (1000 ETH each)


class RpcError(Exception):
    pass


@dataclass
class Ganache:
    """A running ganache with the Unidirectional contract. ``keys[i]`` funds ``addresses[i]`` (1000 ETH)."""

    url: str
    chain_id: int
    contract_address: str
    keys: tuple[str, ...]
    addresses: tuple[str, ...]
    process: NodeProcess

    def rpc(self, method: str, *params: Any) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).encode()
        req = urllib.request.Request(self.url, body, {"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            reply = json.loads(resp.read())
        if "error" in reply:
            raise RpcError(f"{method}: {reply['error']}")
        return reply["result"]

    def mine(self, n: int = 1) -> int:
        """Mine ``n`` empty blocks; return the new block number."""
        self.rpc("evm_mine", {"blocks": n})
        return self.block_number()

    def block_number(self) -> int:
        return int(self.rpc("eth_blockNumber"), 16)

    def balance(self, address: str) -> int:
        return int(self.rpc("eth_getBalance", address, "latest"), 16)

    def snapshot(self) -> str:
        snap: str = self.rpc("evm_snapshot")
        return snap

    def revert(self, snapshot_id: str) -> None:
        if not self.rpc("evm_revert", snapshot_id):
            raise RpcError(f"evm_revert {snapshot_id} failed")


def stop(runner: NodeRunner) -> None:
    """Stop ganache: its wrapper exits at once when its stdin closes; on SIGTERM ganache shuts down gracefully,
    which waits out idle HTTP connections (5 s, then SIGKILL, per stop)."""
    for p in runner.procs:
        if p.proc.stdin is not None:
            with contextlib.suppress(OSError):
                p.proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.proc.wait(5)
    runner.stop_all()


def _start() -> tuple[NodeRunner, Ganache]:
    if not GANACHE_CLI.is_file() or not UNIDIRECTIONAL_JSON.is_file():
        pytest.fail(f"ganache or ilp-plugin-ethereum is not installed: run `npm ci --ignore-scripts` in {JS_DIR}")
    port = free_port()
    runner = NodeRunner()
    proc = runner.start(
        GANACHE_WRAPPER,
        "--server.host", "127.0.0.1",
        "--server.port", str(port),
        "--chain.chainId", str(CHAIN_ID),
        "--chain.networkId", str(CHAIN_ID),
        "--wallet.deterministic",
        "--wallet.totalAccounts", str(len(DETERMINISTIC_KEYS)),
        "--logging.quiet",
        stream_fix=False,
    )  # fmt: skip
    addresses = tuple(as_account(k).address for k in DETERMINISTIC_KEYS)
    g = Ganache(f"http://127.0.0.1:{port}", CHAIN_ID, "", DETERMINISTIC_KEYS, addresses, proc)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                accounts = g.rpc("eth_accounts")
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if proc.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(proc._describe("JSON-RPC answer", START_TIMEOUT)) from None
                time.sleep(0.1)
        if [a.lower() for a in accounts] != [a.lower() for a in addresses]:
            raise AssertionError(f"ganache accounts are not the deterministic ones: {accounts}")
        if int(g.rpc("eth_chainId"), 16) != CHAIN_ID:
            raise AssertionError("ganache ignored --chain.chainId")
        bytecode = json.loads(UNIDIRECTIONAL_JSON.read_text())["bytecode"]
        tx = g.rpc("eth_sendTransaction", {"from": addresses[DEPLOYER], "data": bytecode, "gas": hex(3_000_000)})
        receipt = g.rpc("eth_getTransactionReceipt", tx)
        if receipt is None or receipt["status"] != "0x1" or not receipt["contractAddress"]:
            raise AssertionError(f"deploying Unidirectional failed: {receipt}")
        g.contract_address = to_checksum_address(receipt["contractAddress"])
    except BaseException:
        runner.stop_all()
        raise
    return runner, g


@pytest.fixture(scope="session")
def ganache_chain() -> Iterator[Ganache]:
    """The session's ganache (started once). Tests use ``ganache``, which resets the chain around each test."""
    runner, g = _start()
    try:
        yield g
    finally:
        stop(runner)


@pytest.fixture
def ganache(ganache_chain: Ganache) -> Iterator[Ganache]:
    """ganache with the Unidirectional contract, reset to its freshly deployed state after the test."""
    snap = ganache_chain.snapshot()
    try:
        yield ganache_chain
    finally:
        ganache_chain.revert(snap)
