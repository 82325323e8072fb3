"""An ETH uplink under a real parent, shared by the ETH uplink's tests and the admin API's: ilp-connector with
ilp-plugin-ethereum in role server (tests/js/eth-parent-connector.js) on ganache, our `EthUplink` in a router, and
what they are checked with (the parent's account state, gas fees paid)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from moneyd.app import Router, RouterSettings
from moneyd.btp.parent import btp_token
from moneyd.store import Store
from tests.support.ethfixture import Ganache
from tests.support.jsnode import NodeProcess, NodeRunner, free_port
from uplinks.eth.uplink import EthSettings, EthUplink

ETH = 10**18
GWEI = 10**9
US, PARENT, STRANGER = 3, 4, 5  # ganache accounts
CHANNEL = ETH // 10  # our channel to the parent
PARENT_CHANNEL_GWEI = 5 * 10**7  # the parent's channel to us: 0.05 ETH


# -- helpers --------------------------------------------------------------------------------------------------


async def start_parent(node: NodeRunner, ganache: Ganache, **env: str) -> tuple[NodeProcess, int, int]:
    eport, aport = free_port(), free_port()
    parent = node.start(
        "eth-parent-connector.js",
        str(eport),
        str(aport),
        "test.parent",
        env={
            "ETH_URL": ganache.url,
            "ETH_CONTRACT": ganache.contract_address,
            "ETH_KEY": ganache.keys[PARENT],
            "ETH_OUT_GWEI": str(PARENT_CHANNEL_GWEI),
            **env,
        },
        stream_fix=False,
    )
    ready = await parent.event("ready", timeout=60)
    assert ready["ethereumAddress"] == ganache.addresses[PARENT]
    return parent, eport, aport


def uplink_for(ganache: Ganache, store: Store, eport: int, name: str = "alice", **kw: Any) -> EthUplink:
    host = f"127.0.0.1:{eport}"
    url = f"btp+ws://{name}:{btp_token(host, name, ganache.keys[US])}@{host}"
    kw.setdefault("channel_amount", CHANNEL)
    return EthUplink(EthSettings(url, ganache.url, ganache.keys[US], contract=ganache.contract_address, **kw), store)


async def start_router(tmp_path: Path, uplink: EthUplink, store: Store) -> Router:
    router = Router(RouterSettings(port=free_port()), store, uplink)
    await router.start()
    return router


async def parent_state(parent: NodeProcess, name: str = "alice") -> dict[str, Any]:
    parent.send({"cmd": "state"})
    state = await parent.event("state")
    account: dict[str, Any] = state["accounts"].get(name, {})
    return account


async def until(cond: Callable[[], Awaitable[bool]], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def fees_paid(ganache: Ganache, address: str, from_block: int) -> int:
    """Wei spent on gas by ``address`` in blocks after ``from_block`` (ganache mines one block per transaction)."""
    total = 0
    for n in range(from_block + 1, ganache.block_number() + 1):
        block = ganache.rpc("eth_getBlockByNumber", hex(n), True)
        for tx in block["transactions"]:
            if tx["from"].lower() == address.lower():
                receipt = ganache.rpc("eth_getTransactionReceipt", tx["hash"])
                total += int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)
    return total


async def _linked(uplink: EthUplink) -> bool:
    return uplink.book.incoming_channel is not None


async def _received(uplink: EthUplink, units: int) -> bool:
    return uplink.book.received >= units
