"""The admin API's view of the ETH uplink (JS ilp-connector + ilp-plugin-ethereum parent on ganache): both
channels read from the live claim book (the parent's deposit from the uplink's last chain read), in base units
(gwei), moving with payments each way."""

from __future__ import annotations

from pathlib import Path

from moneyd.admin import snapshot
from moneyd.admin.snapshot import LinkWatch
from moneyd.store import Store
from tests.support.app_pair import pays
from tests.support.eth_setup import (
    CHANNEL,
    GWEI,
    PARENT_CHANNEL_GWEI,
    _linked,
    _received,
    start_parent,
    start_router,
    until,
    uplink_for,
)
from tests.support.ethfixture import Ganache
from tests.support.jsnode import NodeRunner
from uplinks.eth.claims import channel_id_hex


async def test_eth_channels_in_the_uplink_facts(node: NodeRunner, ganache: Ganache, tmp_path: Path) -> None:
    _parent, eport, aport = await start_parent(node, ganache)
    store = Store(tmp_path / "moneyd.sqlite")
    uplink = uplink_for(ganache, store, eport)
    router = await start_router(tmp_path, uplink, store)
    try:
        await until(lambda: _linked(uplink), what="the parent's channel to us")
        facts = snapshot.uplink_facts(router, LinkWatch())
        assert facts is not None and facts["type"] == "eth" and facts["connected"] is True
        assert facts["settlement"] == {"ledger": "eth", "server": ganache.url}
        ours = facts["channels"]["ours"]
        assert uplink.book.outgoing is not None
        assert ours["id"] == channel_id_hex(uplink.book.outgoing.channel_id)
        assert (int(ours["capacity"]), int(ours["claimed"])) == (CHANNEL // GWEI, 0)

        await pays(node, f"btp+ws://:xa@127.0.0.1:{router.server.port}", f"btp+ws://:xb@127.0.0.1:{aport}", 4321)
        await pays(node, f"btp+ws://:xb2@127.0.0.1:{aport}", f"btp+ws://:xa2@127.0.0.1:{router.server.port}", 777)
        await until(lambda: _received(uplink, 777), what="the parent's claim")

        facts = snapshot.uplink_facts(router, LinkWatch())
        assert facts is not None
        ours, theirs = facts["channels"]["ours"], facts["channels"]["theirs"]
        assert int(ours["claimed"]) == 4321 and int(ours["left"]) == CHANNEL // GWEI - 4321
        assert theirs["id"] == channel_id_hex(uplink.book.incoming_channel)  # type: ignore[arg-type]
        # The parent's deposit, as the uplink last read it from the chain to check the claim (no read per request).
        assert int(theirs["claimed"]) == 777 and int(theirs["capacity"]) == PARENT_CHANNEL_GWEI
        assert int(theirs["left"]) == PARENT_CHANNEL_GWEI - 777
        assert uplink.chain is not None and uplink.book.incoming_channel is not None
        on_chain = await uplink.chain.channel(uplink.book.incoming_channel)
        assert on_chain.value == PARENT_CHANNEL_GWEI * GWEI
    finally:
        await router.stop()
        store.close()
