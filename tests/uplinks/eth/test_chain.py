"""The ETH uplink's chain layer and claims on a real EVM: ganache 7.9.2 with the Unidirectional contract deployed
from ilp-plugin-ethereum 3.0.0-beta.20's bytecode. Balances are checked to the wei, gas from the receipts."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.ethfixture import Ganache
from uplinks.eth.book import ClaimBook
from uplinks.eth.chain import DEFAULT_DISPUTE_PERIOD, EthChain
from uplinks.eth.claims import (
    MIN_DISPUTE_PERIOD,
    Claim,
    payment_digest,
    sign_claim,
    units_to_wei,
    verify_claim,
)
from uplinks.eth.errors import ChainError, ClaimRejected, ConfigError

ETH = 10**18
SENDER, RECEIVER, STRANGER = 0, 1, 2
SHORT_PERIOD = 20  # blocks: for the dispute tests that don't need the production floor


@pytest.fixture
async def chains(ganache: Ganache) -> AsyncIterator[tuple[EthChain, EthChain, EthChain]]:
    made = [await EthChain.connect(ganache.url, ganache.keys[i], ganache.contract_address) for i in range(3)]
    try:
        yield made[0], made[1], made[2]
    finally:
        for c in made:
            await c.close()


async def test_connect_resolves_contract_and_refuses_bad_ones(ganache: Ganache) -> None:
    chain = await EthChain.connect(ganache.url, ganache.keys[0], ganache.contract_address.lower())
    assert chain.chain_id == 1337
    assert chain.contract_address == ganache.contract_address
    await chain.close()
    with pytest.raises(ConfigError, match="knows no Unidirectional contract on chain 1337"):
        await EthChain.connect(ganache.url, ganache.keys[0])
    with pytest.raises(ConfigError, match="no contract is deployed"):
        await EthChain.connect(ganache.url, ganache.keys[0], ganache.addresses[5])
    with pytest.raises(ChainError, match="cannot reach"):
        await EthChain.connect("http://127.0.0.1:9", ganache.keys[0], ganache.contract_address)


async def test_payment_digest_matches_the_contract(chains: tuple[EthChain, EthChain, EthChain]) -> None:
    sender, _, _ = chains
    for cid, value in [(b"\x00" * 32, 0), (bytes(range(32)), 1), (b"\xff" * 32, 2**256 - 1), (b"\x07" * 32, 10**18)]:
        assert await sender.payment_digest(cid, value) == payment_digest(sender.contract_address, cid, value)


async def test_open_deposit_claim_balances_to_the_wei(
    ganache: Ganache, chains: tuple[EthChain, EthChain, EthChain]
) -> None:
    sender, receiver, _ = chains
    s0, r0 = ganache.balance(sender.address), ganache.balance(receiver.address)

    cid, opened = await sender.open_channel(receiver.address, ETH)
    ch = await sender.channel(cid)
    assert (ch.sender, ch.receiver, ch.value) == (sender.address, receiver.address, ETH)
    assert ch.settling_period == DEFAULT_DISPUTE_PERIOD >= MIN_DISPUTE_PERIOD
    assert ch.settling_until == 0 and not ch.is_settling
    deposited = await sender.deposit(cid, ETH // 2)
    assert (await sender.channel(cid)).value == ETH * 3 // 2
    assert ganache.balance(sender.address) == s0 - ETH * 3 // 2 - opened.fee - deposited.fee
    assert opened.fee > 0 and deposited.fee > 0

    # The sender's book pays in gwei; the receiver's book verifies every claim against the chain.
    out = ClaimBook(ganache.keys[SENDER], sender.contract_address)
    inc = ClaimBook(ganache.keys[RECEIVER], receiver.contract_address)
    link = out.open_outgoing(cid, receiver.address, ETH)
    out.deposited(ETH * 3 // 2)
    assert inc.receive(link, await receiver.channel(cid)) == 0
    credited = 0
    for units in (1, 999, 12_345_678, 10**9):
        claim = out.pay(units)
        credited += inc.receive(claim, await receiver.channel(cid))
    assert credited == 1 + 999 + 12_345_678 + 10**9
    best = inc.claimable()
    assert best is not None and best.value == units_to_wei(credited)
    assert await receiver.can_claim(best)
    assert not await sender.can_claim(best)  # only the receiver may claim

    fee_estimate = await receiver.claim_fee(best)
    assert inc.should_claim(fee_estimate, await receiver.channel(cid), force=True)
    claimed = await receiver.claim(best)
    inc.incoming_claimed()
    assert ganache.balance(receiver.address) == r0 + best.value - claimed.fee
    # claim() closes the channel: the rest goes back to the sender.
    assert ganache.balance(sender.address) == s0 - best.value - opened.fee - deposited.fee
    assert not (await receiver.channel(cid)).exists
    with pytest.raises(ChainError, match="refuses"):
        await receiver.claim(best)  # the channel is gone


async def test_forged_claim_refused_by_us_and_by_the_contract(
    ganache: Ganache, chains: tuple[EthChain, EthChain, EthChain]
) -> None:
    sender, receiver, _ = chains
    cid, _ = await sender.open_channel(receiver.address, ETH)
    ch = await receiver.channel(cid)
    forged = sign_claim(ganache.keys[STRANGER], sender.contract_address, cid, ETH // 10)
    with pytest.raises(ClaimRejected) as e:
        verify_claim(forged, ch, receiver=receiver.address, contract=receiver.contract_address, best=None)
    assert e.value.reason == "signature"
    # A genuine signature moved to another value, and one with its v flipped, are just as forged.
    good = sign_claim(ganache.keys[SENDER], sender.contract_address, cid, ETH // 10)
    moved = Claim(cid, ETH // 5, good.signature, good.contract)
    flipped = Claim(cid, good.value, good.signature[:64] + bytes([55 - good.signature[64]]), good.contract)
    garbage = Claim(cid, good.value, b"\x00" * 64 + b"\x1b", good.contract)
    for bad in (moved, flipped, garbage):
        with pytest.raises(ClaimRejected) as e:
            verify_claim(bad, ch, receiver=receiver.address, contract=receiver.contract_address, best=None)
        assert e.value.reason == "signature"
    for bad in (forged, moved, flipped):
        assert not await receiver.can_claim(bad)
        with pytest.raises(ChainError, match="refuses"):
            await receiver.claim(bad)
    assert (await receiver.channel(cid)).value == ETH  # nothing moved
    assert await receiver.can_claim(good)


async def test_claim_above_value_refused_by_us_the_contract_would_cap_it(
    ganache: Ganache, chains: tuple[EthChain, EthChain, EthChain]
) -> None:
    sender, receiver, _ = chains
    cid, _ = await sender.open_channel(receiver.address, ETH)
    above = sign_claim(ganache.keys[SENDER], sender.contract_address, cid, ETH + 1)
    with pytest.raises(ClaimRejected) as e:
        verify_claim(
            above, await receiver.channel(cid), receiver=receiver.address, contract=receiver.contract_address, best=None
        )
    assert e.value.reason == "above_value"
    # The contract does not refuse it, it pays the channel value: crediting the promise would lose 1 wei.
    r0 = ganache.balance(receiver.address)
    claimed = await receiver.claim(above)
    assert ganache.balance(receiver.address) == r0 + ETH - claimed.fee


async def test_decreasing_claim_refused_by_us(ganache: Ganache, chains: tuple[EthChain, EthChain, EthChain]) -> None:
    sender, receiver, _ = chains
    cid, _ = await sender.open_channel(receiver.address, ETH)
    inc = ClaimBook(ganache.keys[RECEIVER], receiver.contract_address)
    higher = sign_claim(ganache.keys[SENDER], sender.contract_address, cid, 5 * 10**9)
    lower = sign_claim(ganache.keys[SENDER], sender.contract_address, cid, 4 * 10**9)
    assert inc.receive(higher, await receiver.channel(cid)) == 5
    for stale in (lower, higher):
        with pytest.raises(ClaimRejected) as e:
            inc.receive(stale, await receiver.channel(cid))
        assert e.value.reason == "not_increasing"
    assert inc.best_incoming == higher and inc.received == 5
    # The contract takes any signed value (it cannot know the order): claiming the stale one pays less.
    r0 = ganache.balance(receiver.address)
    claimed = await receiver.claim(lower)
    assert ganache.balance(receiver.address) == r0 + lower.value - claimed.fee


async def test_channel_that_is_not_ours(ganache: Ganache, chains: tuple[EthChain, EthChain, EthChain]) -> None:
    sender, receiver, stranger = chains
    cid, _ = await sender.open_channel(stranger.address, ETH)  # pays the stranger, not the receiver
    claim = sign_claim(ganache.keys[SENDER], sender.contract_address, cid, ETH // 2)
    inc = ClaimBook(ganache.keys[RECEIVER], receiver.contract_address)
    with pytest.raises(ClaimRejected) as e:
        inc.receive(claim, await receiver.channel(cid))
    assert e.value.reason == "not_ours"
    assert not await receiver.can_claim(claim)
    with pytest.raises(ChainError):
        await receiver.claim(claim)
    # A channel below the 3-day dispute floor could be taken back before we claim: refused too.
    short, _ = await sender.open_channel(receiver.address, ETH, dispute_period=MIN_DISPUTE_PERIOD - 1)
    with pytest.raises(ClaimRejected) as e:
        inc.receive(sign_claim(ganache.keys[SENDER], sender.contract_address, short, 0), await receiver.channel(short))
    assert e.value.reason == "dispute_period"
    assert inc.best_incoming is None


async def test_dispute_settles_after_the_period(ganache: Ganache, chains: tuple[EthChain, EthChain, EthChain]) -> None:
    sender, receiver, _ = chains
    s0 = ganache.balance(sender.address)
    cid, opened = await sender.open_channel(receiver.address, ETH, dispute_period=SHORT_PERIOD)
    with pytest.raises(ChainError, match="refuses"):
        await receiver.start_settling(cid)  # only the sender may start settling
    started = await sender.start_settling(cid)
    ch = await sender.channel(cid)
    assert ch.is_settling and ch.settling_until == started.block_number + SHORT_PERIOD
    with pytest.raises(ChainError, match="refuses"):
        await sender.deposit(cid, 1)  # no deposits while settling
    with pytest.raises(ChainError, match="refuses"):
        await sender.settle(cid)  # too early
    ganache.mine(SHORT_PERIOD - 2)  # the next transaction's block would be settling_until - 1
    with pytest.raises(ChainError, match="refuses"):
        await sender.settle(cid)
    ganache.mine(1)
    settled = await sender.settle(cid)  # mined in block settling_until
    assert settled.block_number == ch.settling_until
    assert not (await sender.channel(cid)).exists
    assert ganache.balance(sender.address) == s0 - opened.fee - started.fee - settled.fee


async def test_receiver_claims_during_a_dispute(ganache: Ganache, chains: tuple[EthChain, EthChain, EthChain]) -> None:
    sender, receiver, _ = chains
    cid, _ = await sender.open_channel(receiver.address, ETH, dispute_period=MIN_DISPUTE_PERIOD)
    out = ClaimBook(ganache.keys[SENDER], sender.contract_address)
    inc = ClaimBook(ganache.keys[RECEIVER], receiver.contract_address)
    inc.receive(out.open_outgoing(cid, receiver.address, ETH), await receiver.channel(cid))
    inc.receive(out.pay(3 * 10**8), await receiver.channel(cid))  # 0.3 ETH
    assert not inc.should_claim(0, await receiver.channel(cid))  # nothing to fear yet

    await sender.start_settling(cid)
    ch = await receiver.channel(cid)
    with pytest.raises(ClaimRejected) as e:
        inc.receive(out.pay(1), ch)  # money promised on a settling channel could be lost
    assert e.value.reason == "settling"
    ganache.mine(MIN_DISPUTE_PERIOD - 10)  # most of the 3-day period passes (17270 blocks)
    best = inc.claimable()
    assert best is not None and best.value == 3 * 10**17
    assert inc.should_claim(await receiver.claim_fee(best), ch)
    r0 = ganache.balance(receiver.address)
    claimed = await receiver.claim(best)
    assert ganache.balance(receiver.address) == r0 + 3 * 10**17 - claimed.fee
    with pytest.raises(ChainError):
        await sender.settle(cid)  # already closed by the claim


async def test_unconfirmed_transaction_times_out_and_is_not_lost(ganache: Ganache) -> None:
    chain = await EthChain.connect(ganache.url, ganache.keys[SENDER], ganache.contract_address, receipt_timeout=1.0)
    try:
        ganache.rpc("miner_stop")
        try:
            cid = b"\x42" * 32
            with pytest.raises(ChainError, match=r"not confirmed within 1\.0s"):
                await chain.open_channel(ganache.addresses[RECEIVER], ETH, channel_id=cid)
            assert not (await chain.channel(cid)).exists
        finally:
            ganache.rpc("miner_start")
        # The transaction was only late: once mined, the channel is there, and the next nonce follows it.
        ganache.mine(1)
        assert (await chain.channel(cid)).value == ETH
        await chain.deposit(cid, 1)
        assert (await chain.channel(cid)).value == ETH + 1
    finally:
        await chain.close()


async def test_unfunded_account_is_refused_before_sending(ganache: Ganache) -> None:
    funded = await EthChain.connect(ganache.url, ganache.keys[SENDER], ganache.contract_address)
    empty = await EthChain.connect(ganache.url, "0x" + "11" * 32, ganache.contract_address)
    try:
        fee = await funded.open_fee(ganache.addresses[RECEIVER], ETH)
        _, opened = await funded.open_channel(ganache.addresses[RECEIVER], ETH)
        assert fee >= opened.fee > 0  # the estimate covers what it really cost
        assert await empty.balance() < ETH + await empty.open_fee(ganache.addresses[RECEIVER], ETH)
        with pytest.raises(ChainError, match="cannot open channel"):
            await empty.open_channel(ganache.addresses[RECEIVER], ETH)  # the node refuses to send it
        assert await empty.balance() == 0
    finally:
        await funded.close()
        await empty.close()
