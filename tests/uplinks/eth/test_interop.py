"""Our claims against ilp-plugin-ethereum 3.0.0-beta.20's own code (tests/js/eth-plugin.js), on ganache.

Both directions: the JS server account validates the channel we open and the claims we sign exactly as a
parent would (handleData with the ``machinomy`` protocolData, channel read through ethers v4), and claims it
on chain; the JS client account opens a channel to us and signs claims that our ClaimBook verifies and we claim.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from moneyd.wire.btp import ContentType, ProtocolData
from tests.support.ethfixture import Ganache
from tests.support.jsnode import NodeProcess, NodeRunner
from uplinks.eth import messages
from uplinks.eth.book import ClaimBook
from uplinks.eth.chain import DEFAULT_DISPUTE_PERIOD, EthChain
from uplinks.eth.claims import Claim, channel_id_hex, parse_claim, recover_signer, sign_claim
from uplinks.eth.errors import ClaimRejected

ETH = 10**18
US, JS = 3, 4  # ganache accounts: our uplink, the JS plugin


def start_plugin(node: NodeRunner, ganache: Ganache, role: str) -> NodeProcess:
    return node.start(
        "eth-plugin.js",
        env={
            "ETH_URL": ganache.url,
            "ETH_CONTRACT": ganache.contract_address,
            "ETH_KEY": ganache.keys[JS],
            "ETH_ROLE": role,
        },
        stream_fix=False,
    )


async def ask(p: NodeProcess, answer: str, /, **cmd: Any) -> dict[str, Any]:
    p.send(cmd)
    got = await p.event(answer, timeout=30)
    return got


def to_js(*items: ProtocolData) -> list[dict[str, Any]]:
    return [{"protocolName": p.protocol_name, "contentType": int(p.content_type), "data": p.data.decode()} for p in items]


def from_js(items: list[dict[str, Any]]) -> tuple[ProtocolData, ...]:
    return tuple(ProtocolData(p["protocolName"], ContentType(p["contentType"]), p["data"].encode()) for p in items)


def machinomy(claim: Claim) -> list[dict[str, Any]]:
    return to_js(messages.machinomy(claim))


def fee_of_latest_tx(ganache: Ganache) -> tuple[str, int]:
    block = ganache.rpc("eth_getBlockByNumber", "latest", False)
    (tx,) = block["transactions"]
    receipt = ganache.rpc("eth_getTransactionReceipt", tx)
    assert receipt["status"] == "0x1"
    return receipt["from"], int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)


@pytest.fixture
async def us(ganache: Ganache) -> AsyncIterator[EthChain]:
    chain = await EthChain.connect(ganache.url, ganache.keys[US], ganache.contract_address)
    try:
        yield chain
    finally:
        await chain.close()


async def test_signatures_both_ways(node: NodeRunner, ganache: Ganache) -> None:
    p = start_plugin(node, ganache, "server")
    await p.event("ready", timeout=30)
    contract = ganache.contract_address
    for i, value in enumerate([0, 1, 10**9, 123_456_789 * 10**9, 2**256 - 1]):
        cid = bytes([i + 1]) * 32
        ours = sign_claim(ganache.keys[US], contract, cid, value)
        claim = json.loads(ours.to_json())
        assert list(claim) == ["channelId", "signature", "value", "contractAddress"]
        for sender in (ganache.addresses[US], ganache.addresses[US].lower()):
            assert (await ask(p, "verified", cmd="verify", claim=claim, sender=sender))["ok"] is True
        assert (await ask(p, "verified", cmd="verify", claim=claim, sender=ganache.addresses[JS]))["ok"] is False
        tampered = {**claim, "value": str(value ^ 1)}
        assert (await ask(p, "verified", cmd="verify", claim=tampered, sender=ganache.addresses[US]))["ok"] is False

        # The JS signs the same claim: same bytes on the wire (signatures are deterministic, RFC 6979).
        theirs = await ask(
            p, "signed", cmd="sign", key=ganache.keys[US], contractAddress=contract, channelId=channel_id_hex(cid),
            value=str(value),
        )  # fmt: skip
        assert theirs["data"].encode() == ours.to_json()
        parsed = parse_claim(theirs["data"])
        assert parsed == ours and recover_signer(parsed) == ganache.addresses[US]


async def test_js_server_accepts_our_channel_and_claims_it(
    node: NodeRunner, ganache: Ganache, us: EthChain
) -> None:
    p = start_plugin(node, ganache, "server")
    js_address = (await p.event("ready", timeout=30))["address"]
    assert js_address == ganache.addresses[JS]
    await ask(p, "loaded", cmd="load", account="moneyd")

    # info both ways: ours links our address at the server, its answer is its own info.
    got = await ask(p, "handled", cmd="message", account="moneyd", protocolData=to_js(messages.info(us.address)))
    assert got["ethereumAddress"] == us.address
    reply = from_js(got["reply"])
    assert reply == (messages.info(js_address),) and messages.parse_info(reply) == js_address

    cid, _ = await us.open_channel(js_address, ETH)  # default dispute period: above the server's floor
    book = ClaimBook(ganache.keys[US], us.contract_address)
    link = book.open_outgoing(cid, js_address, ETH)
    got = await ask(p, "handled", cmd="message", account="moneyd", protocolData=machinomy(link))
    assert got["money"] == [] and got["reply"] == []
    inc = got["incoming"]
    assert inc["channelId"] == channel_id_hex(cid) and inc["spent"] == "0" and inc["value"] == str(ETH)
    assert inc["sender"] == us.address and inc["disputePeriod"] == str(DEFAULT_DISPUTE_PERIOD)

    # Prefunding as the server requires: the claim goes before each Prepare it pays for.
    total = 0
    for amount in (1000, 1, 77_777_777):
        claim = book.prepare(amount)
        assert claim is not None
        got = await ask(p, "handled", cmd="message", account="moneyd", protocolData=machinomy(claim))
        assert got["money"] == [str(amount)]
        total += amount
        assert got["incoming"]["spent"] == str(total * 10**9)
    book.rejected(1000)  # a rejected Prepare leaves credit with the server: the next one needs no claim
    assert book.prepare(600) is None and book.credit() == 400

    # Hostile claims from us are refused by the JS too (nothing credited, best claim kept).
    forged = sign_claim(ganache.keys[JS], us.contract_address, cid, (total + 1) * 10**9)
    older = sign_claim(ganache.keys[US], us.contract_address, cid, 10**9)
    for bad in (forged, older):
        got = await ask(p, "handled", cmd="message", account="moneyd", protocolData=machinomy(bad))
        assert got["money"] == [] and got["incoming"]["spent"] == str(total * 10**9)

    # A deposit, then channelDeposit: the server re-reads our channel and takes claims up to the new value.
    await us.deposit(cid, ETH)
    book.deposited(2 * ETH)
    got = await ask(p, "handled", cmd="message", account="moneyd", protocolData=to_js(messages.channel_deposit()))
    assert got["incoming"]["value"] == str(2 * ETH)
    big = book.pay(ETH // 10**9)  # one more ether: beyond the first deposit
    got = await ask(p, "handled", cmd="message", account="moneyd", protocolData=machinomy(big))
    assert got["money"] == [str(ETH // 10**9)]
    total += ETH // 10**9

    # requestClose: the JS claims our channel on chain; balances move by exactly the claim.
    js0, us0 = ganache.balance(js_address), ganache.balance(us.address)
    await ask(p, "handled", cmd="message", account="moneyd", protocolData=to_js(messages.request_close()))
    sender, fee = fee_of_latest_tx(ganache)
    assert sender.lower() == js_address.lower()
    assert not (await us.channel(cid)).exists
    assert ganache.balance(js_address) == js0 + total * 10**9 - fee
    assert ganache.balance(us.address) == us0 + 2 * ETH - total * 10**9


async def test_js_client_channel_verified_and_claimed_by_us(
    node: NodeRunner, ganache: Ganache, us: EthChain
) -> None:
    p = start_plugin(node, ganache, "client")
    js_address = (await p.event("ready", timeout=30))["address"]
    await ask(p, "loaded", cmd="load", account="peer")
    lowercase_info = ProtocolData.json("info", json.dumps({"ethereumAddress": us.address.lower()}))
    got = await ask(p, "info", cmd="info", account="peer", reply=to_js(lowercase_info))
    assert from_js(got["sent"]) == (messages.info(js_address),)  # its info is byte for byte ours
    assert got["ethereumAddress"] == us.address.lower()  # and it takes a lowercase answer
    book = ClaimBook(ganache.keys[US], us.contract_address)

    opened = await ask(p, "funded", cmd="fund", account="peer", value=str(ETH // 10))
    (sent,) = from_js(opened["sent"])
    assert messages.kind([sent]) == messages.MACHINOMY
    link = messages.parse_machinomy([sent])
    assert link is not None and link.value == 0 and link.contract == us.contract_address
    assert messages.machinomy(link) == sent  # same bytes as we would send
    assert "tokenContract" not in json.loads(sent.data)
    channel = await us.channel(link.channel_id)
    assert (channel.sender, channel.receiver, channel.value) == (js_address, us.address, ETH // 10)
    assert channel.settling_period == DEFAULT_DISPUTE_PERIOD
    assert book.receive(link, channel) == 0

    credited = 0
    for amount in (5000, 1, 10**6):
        paid = await ask(p, "paid", cmd="pay", account="peer", amount=str(amount))
        (sent,) = from_js(paid["sent"])
        claim = messages.parse_machinomy([sent])
        assert claim is not None and messages.machinomy(claim) == sent
        credited += book.receive(claim, await us.channel(link.channel_id))
    assert credited == 5000 + 1 + 10**6 == book.received

    # It tops up: channelDeposit, then the chain shows the new value.
    topped = await ask(p, "funded", cmd="fund", account="peer", value=str(ETH // 10))
    assert from_js(topped["sent"]) == (messages.channel_deposit(),)
    assert (await us.channel(link.channel_id)).value == 2 * ETH // 10

    # A claim the JS signed, replayed, is refused.
    best = book.claimable()
    assert best is not None
    with pytest.raises(ClaimRejected) as e:
        book.receive(best, await us.channel(link.channel_id))
    assert e.value.reason == "not_increasing"

    # requestClose: it asks, we claim on chain, it sees its channel closed.
    us0, js0 = ganache.balance(us.address), ganache.balance(js_address)
    p.send({"cmd": "close", "account": "peer"})
    claimed = await us.claim(best)
    closed = await p.event("closed", timeout=30)
    assert from_js(closed["sent"]) == (messages.request_close(),) and closed["channel"] is None
    assert ganache.balance(us.address) == us0 + credited * 10**9 - claimed.fee
    assert ganache.balance(js_address) == js0 + 2 * ETH // 10 - credited * 10**9
