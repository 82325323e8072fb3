"""uplinks.xrp.ledger against the XRPL emulator: reads, channel create/fund/claim/close, clear failures."""

from __future__ import annotations

import pytest
from xrpl.core.keypairs import sign
from xrpl.wallet import Wallet

from tests.support.jsnode import free_port
from tests.support.xrpl_emulator import XrplEmulator
from uplinks.xrp.claims import channel_id
from uplinks.xrp.ledger import LedgerError, XrpLedger

XRP = 1_000_000


def claim_signature(wallet: Wallet, channel: str, drops: int) -> str:
    from xrpl.core.binarycodec import encode_for_signing_claim

    return sign(bytes.fromhex(encode_for_signing_claim({"channel": channel, "amount": str(drops)})), wallet.private_key)


async def test_reads_and_channel_lifecycle(xrpl_emulator: XrplEmulator) -> None:
    emu = xrpl_emulator
    alice, bob = Wallet.create(), Wallet.create()
    emu.fund(alice.address, 100 * XRP)
    emu.fund(bob.address, 20 * XRP)
    async with await XrpLedger.connect(emu.url) as ledger:
        assert await ledger.account(Wallet.create().address) is None
        a = await ledger.account(alice.address)
        assert a is not None and (a.balance, a.owner_count) == (100 * XRP, 0)
        assert await ledger.reserves() == (10 * XRP, 2 * XRP)
        assert await ledger.fee() >= 10
        assert await ledger.paychan("AB" * 32) is None

        seq = a.sequence
        cid = await ledger.create_channel(alice, bob.address, 10 * XRP, 3600, alice.public_key)
        assert cid == channel_id(alice.address, bob.address, seq)
        chan = await ledger.paychan(cid)
        assert chan is not None and (chan.account, chan.destination, chan.amount, chan.balance, chan.settle_delay) == (
            alice.address, bob.address, 10 * XRP, 0, 3600)
        assert [c.channel_id for c in await ledger.channels(alice.address, bob.address)] == [cid]
        assert await ledger.channels(alice.address, alice.address) == []

        await ledger.fund_channel(alice, cid, 5 * XRP)
        assert (await ledger.paychan(cid)).amount == 15 * XRP  # type: ignore[union-attr]

        await ledger.claim_channel(bob, cid, balance=4 * XRP, amount=4 * XRP,
                                   signature=claim_signature(alice, cid, 4 * XRP), public_key=alice.public_key)
        assert (await ledger.paychan(cid)).balance == 4 * XRP  # type: ignore[union-attr]

        with pytest.raises(LedgerError, match="temBAD_SIGNATURE"):
            await ledger.claim_channel(bob, cid, balance=5 * XRP, amount=5 * XRP,
                                       signature=claim_signature(bob, cid, 5 * XRP), public_key=alice.public_key)
        with pytest.raises(LedgerError, match="tecUNFUNDED"):
            await ledger.fund_channel(alice, cid, 1000 * XRP)

        await ledger.claim_channel(alice, cid, close=True)
        closing = await ledger.paychan(cid)
        assert closing is not None and closing.expiration is not None
        emu.advance_time(3600)
        await ledger.claim_channel(alice, cid)
        assert await ledger.paychan(cid) is None


async def test_unreachable_server_and_bad_url() -> None:
    with pytest.raises(LedgerError, match="cannot connect to the XRPL server"):
        await XrpLedger.connect(f"ws://127.0.0.1:{free_port()}", timeout=5)
    with pytest.raises(LedgerError, match="must be a ws:// or wss:// URL"):
        await XrpLedger.connect("http://example.com")
