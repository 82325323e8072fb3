"""`moneyd xrp:start` against a hostile parent: a Python stand-in for the asym server that sends forged,
too-large, decreasing and malformed claims, or hands us a channel that isn't ours. moneyd refuses each with a
clear error to the parent and a log line, keeps running, and cashes only the valid best claim."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from xrpl.wallet import Wallet

from moneyd.btp.connection import BtpConnection, BtpPeerError, RequestRefused
from moneyd.wire import btp, ildcp, ilp
from moneyd.wire.btp import ProtocolData
from tests.support.jsnode import free_port
from tests.support.xrp_setup import XRP, Moneyd, Setup
from tests.support.xrpl_emulator import XrplEmulator
from uplinks.xrp.claims import sign_claim
from uplinks.xrp.keys import ChannelKey
from uplinks.xrp.ledger import XrpLedger

ACCOUNT = "test.fake.alice"
FULFILLMENT = b"\x42" * 32
CONDITION = hashlib.sha256(FULFILLMENT).digest()


class FakeParent:
    """Speaks the asym server's side of the protocol; ``fund_to`` chooses whom its channel 'to us' pays."""

    def __init__(self, emu: XrplEmulator, fund_to: str | None = None) -> None:
        self.emu = emu
        self.wallet = Wallet.create()
        emu.fund(self.wallet.address, 1000 * XRP)
        self.key = ChannelKey.from_seed(bytes(range(32)))
        self.fund_to = fund_to
        self.channel: str | None = None  # moneyd's channel to us
        self.client_channel: str | None = None
        self.conn: BtpConnection | None = None
        self.connected = asyncio.Event()
        self.claims_in: list[dict[str, Any]] = []
        self.channel_messages = 0
        self.port = 0
        self.server: Any = None
        # The asym server's books, when ``books``: our Prepares are refused (T04) beyond what our claims cover.
        self.books = False
        self.prepared = 0
        self.last_claim: dict[str, str] = {"amount": "0"}
        self.refuse_claims = False

    async def start(self) -> FakeParent:
        self.server = await serve(self._serve, "127.0.0.1", 0, compression=None)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, ws: ServerConnection) -> None:
        conn = BtpConnection(ws, self._handle, "fake-parent")
        self.conn = conn
        await conn.run()

    async def _handle(self, frame: btp.Message | btp.Transfer) -> Sequence[ProtocolData]:
        pd = frame.protocol_data
        if isinstance(frame, btp.Transfer):
            claim = json.loads(pd[0].data)
            if self.refuse_claims:
                raise RequestRefused("F00", "NotAcceptedError", "Invalid claim: claim amount exceeds channel balance")
            self.claims_in.append(claim)
            if int(claim["amount"]) > int(self.last_claim["amount"]):
                self.last_claim = claim
            return ()
        names = {p.protocol_name for p in pd}
        if "auth" in names:
            return ()
        if "info" in names:
            info = {"address": self.wallet.address, "account": ACCOUNT, "currencyScale": 9}
            if self.channel:
                info["channel"] = self.channel
            if self.client_channel and self.books:
                info["clientChannel"] = self.client_channel
            return (ProtocolData.json("info", json.dumps(info)),)
        if "channel" in names:
            self.channel = next(p for p in pd if p.protocol_name == "channel").data.hex().upper()
            self.channel_messages += 1
            return ()
        if "last_claim" in names:
            return (ProtocolData.json("last_claim", json.dumps(self.last_claim if self.books else {"amount": "0"})),)
        if "fund_channel" in names:
            async with await XrpLedger.connect(self.emu.url) as ledger:
                dest = self.fund_to or next(p for p in pd if p.protocol_name == "fund_channel").data.decode()
                self.client_channel = await ledger.create_channel(self.wallet, dest, 1 * XRP, 3600,
                                                                  self.key.ledger_public_key)
            self.connected.set()
            return (ProtocolData.octets("fund_channel", bytes.fromhex(self.client_channel)),)
        entry = btp.find(pd, "ilp")
        if entry is not None:
            prepare = ilp.decode_prepare(entry.data)
            reply: ilp.Reply
            used = self.prepared + prepare.amount - int(self.last_claim["amount"])
            if prepare.destination == "peer.config":
                reply = ildcp.response(ildcp.IldcpResponse(ACCOUNT, 9, "XRP"))
            elif self.books and used > 0:
                reply = ilp.Reject("T04", "test.fake.", f"Insufficient bandwidth, used: {used} max: 0")
            elif prepare.execution_condition == CONDITION:
                self.prepared += prepare.amount if self.books else 0
                reply = ilp.Fulfill(FULFILLMENT, b"")
            else:
                reply = ilp.Reject(ilp.ErrorCode.F02_UNREACHABLE, "test.fake", "no route")
            return (ProtocolData("ilp", 0, ilp.encode_packet(reply)),)
        raise RequestRefused("F00", "NotAcceptedError", "unknown message")

    async def send_claim(self, amount: int, drops: int | None = None, key: ChannelKey | None = None,
                         raw: bytes | None = None) -> None:
        """Send moneyd a Transfer with a claim for ``amount`` base units, signed over ``drops`` with ``key``."""
        assert self.conn is not None and self.client_channel is not None
        if raw is None:
            sig = sign_claim(key or self.key, self.client_channel, drops if drops is not None else -(-amount // 1000))
            raw = json.dumps({"amount": str(amount), "signature": sig.hex()}).encode()
        await self.conn.transfer(amount, [ProtocolData("claim", 2, raw)])

    async def close(self) -> None:
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def hostile(xrpl_emulator: XrplEmulator, tmp_path: Path) -> AsyncIterator[tuple[Setup, FakeParent]]:
    fake = await FakeParent(xrpl_emulator).start()
    client = Wallet.create()
    xrpl_emulator.fund(client.address, 100 * XRP)
    s = Setup(xrpl_emulator, None, client, tmp_path)  # type: ignore[arg-type]
    code, _, err = await s.cli("xrp:configure", "--parent", f"btp+ws://127.0.0.1:{fake.port}",
                               "--xrp-server", xrpl_emulator.url, "--name", "alice")
    assert code == 0, err
    try:
        yield s, fake
    finally:
        await fake.close()


async def refused(fake: FakeParent, why: str, **claim: Any) -> None:
    with pytest.raises(BtpPeerError) as e:
        await fake.send_claim(**claim)
    assert why in str(e.value), str(e.value)


async def test_bad_claims_are_refused_and_the_good_one_is_cashed(hostile: tuple[Setup, FakeParent]) -> None:
    s, fake = hostile
    m = await Moneyd.start(s)
    try:
        assert fake.channel is not None and fake.claims_in  # it registered its channel and prepaid
        ours = s.emu.ledger.channel(fake.channel)
        assert ours is not None and ours.account == s.client.address

        await refused(fake, "invalid signature", amount=5_000_000, key=ChannelKey.from_seed(b"\x07" * 32))
        await refused(fake, "invalid signature", amount=5_000_000, drops=4_000)  # signed for fewer drops
        await refused(fake, "exceeds the channel", amount=2_000_000_000)  # 2 XRP on a 1 XRP channel
        await refused(fake, "is not valid JSON", amount=1, raw=b"{not json")
        await refused(fake, "128 hex digits", amount=1, raw=b'{"amount":"5","signature":"zz"}')
        await refused(fake, "non-negative integer", amount=1, raw=b'{"amount":"-5","signature":"' + b"0" * 128 + b'"}')
        await fake.send_claim(7_000_000)  # a good one (moneyd is owed nothing, but a gift is a valid claim)
        await refused(fake, "lower than our best claim", amount=3_000_000)
        await fake.send_claim(7_000_000)  # a repeat is harmless
        assert m.proc.returncode is None  # still running
    finally:
        assert await m.stop() == 0, "\n".join(m.err)
    log = "\n".join(m.err)
    assert log.count("refused a claim from the parent") == 7, log
    # on the way out, moneyd cashed the one valid best claim, to the drop
    assert fake.client_channel is not None
    theirs = s.emu.ledger.channel(fake.client_channel)
    assert theirs is not None and theirs.balance == 7_000
    assert int(s.saved()["best_amount"]) == 7_000_000


async def test_a_channel_that_isnt_ours_stops_startup(xrpl_emulator: XrplEmulator, tmp_path: Path) -> None:
    stranger = Wallet.create()
    xrpl_emulator.fund(stranger.address, 100 * XRP)
    fake = await FakeParent(xrpl_emulator, fund_to=stranger.address).start()
    client = Wallet.create()
    xrpl_emulator.fund(client.address, 100 * XRP)
    s = Setup(xrpl_emulator, None, client, tmp_path)  # type: ignore[arg-type]
    try:
        code, _, err = await s.cli("xrp:configure", "--parent", f"btp+ws://127.0.0.1:{fake.port}",
                                   "--xrp-server", xrpl_emulator.url, "--name", "alice")
        assert code == 0, err
        code, _, err = await s.cli("xrp:start", "--port", str(free_port()), timeout=90)
    finally:
        await fake.close()
    assert code == 1
    assert f"pays {stranger.address}, not us ({client.address})" in err, err
    assert "Traceback" not in err


async def test_parent_closing_its_channel_makes_moneyd_cash_out_and_stop(hostile: tuple[Setup, FakeParent]) -> None:
    s, fake = hostile
    s.configure_xrp(watch_interval=0.5)
    m = await Moneyd.start(s)
    try:
        await fake.send_claim(9_000_000)
        assert fake.client_channel is not None
        async with await XrpLedger.connect(s.emu.url) as ledger:
            await ledger.claim_channel(fake.wallet, fake.client_channel, close=True)  # starts the settle delay
        code = await asyncio.wait_for(m.proc.wait(), 60)
    finally:
        await m.stop()
    log = "\n".join(m.err)
    assert code == 1, log
    assert "is already closing" in log and "stopping the XRP uplink" in log
    theirs = s.emu.ledger.channel(fake.client_channel)
    assert theirs is not None and theirs.balance == 9_000  # cashed before the parent could take it back


async def test_our_channel_is_topped_up_before_it_runs_dry(hostile: tuple[Setup, FakeParent]) -> None:
    s, fake = hostile
    m = await Moneyd.start(s)
    try:
        from datetime import UTC, datetime, timedelta

        from moneyd.localapp import LocalApp

        app = await LocalApp.connect(m.via)
        try:
            waited = 0
            for _ in range(12):  # 12 XRP through a 10 XRP channel; claims past 10 XRP wait for the top-up
                async with asyncio.timeout(30):
                    while True:
                        prepare = ilp.Prepare(1_000_000_000, datetime.now(UTC) + timedelta(seconds=30), CONDITION,
                                              "test.fake.bob")
                        reply = await app.send_prepare(prepare)
                        if isinstance(reply, ilp.Fulfill):
                            break
                        # until the top-up is validated, a packet our channel cannot pay for is a T04
                        assert reply.code == "T04" and "waiting for a channel top-up" in reply.message, reply
                        waited += 1
                        await asyncio.sleep(0.1)
        finally:
            await app.close()
        async with asyncio.timeout(30):
            while int(fake.claims_in[-1]["amount"]) < 12_000_000_000:
                await asyncio.sleep(0.1)
    finally:
        assert await m.stop() == 0, "\n".join(m.err)
    assert fake.channel is not None
    ours = s.emu.ledger.channel(fake.channel)
    assert ours is not None and ours.amount == 20 * XRP  # one top-up of the configured 10 XRP
    assert fake.channel_messages == 2  # registered, then refreshed after the top-up
    # the last claim goes beyond the first 10 XRP and is valid against the bigger channel
    from uplinks.xrp.claims import verify_claim

    last = fake.claims_in[-1]
    drops = -(-int(last["amount"]) // 1000)
    assert drops > 10 * XRP
    assert verify_claim(bytes.fromhex(ours.public_key[2:]), fake.channel, drops, bytes.fromhex(last["signature"]))


async def test_claims_are_cashed_while_running_and_a_bigger_parent_channel_is_reloaded(
        hostile: tuple[Setup, FakeParent]) -> None:
    s, fake = hostile
    s.configure_xrp(claim_interval=0.5)
    m = await Moneyd.start(s)
    try:
        assert fake.client_channel is not None
        chan = fake.client_channel
        await fake.send_claim(50_000_000)  # 50,000 drops: the 12-drop fee is well under 1%
        async with asyncio.timeout(30):
            while s.emu.ledger.channel(chan).balance != 50_000:  # type: ignore[union-attr]
                await asyncio.sleep(0.1)
        await fake.send_claim(50_100_000)  # +100 drops: a 12% fee, not worth a transaction yet
        # the parent adds 1 XRP to its channel and, without telling us, claims beyond the old 1 XRP
        async with await XrpLedger.connect(s.emu.url) as ledger:
            await ledger.fund_channel(fake.wallet, chan, 1 * XRP)
        await fake.send_claim(1_500_000_000)
        await asyncio.sleep(1.5)  # three claim rounds
        assert s.emu.ledger.channel(chan).balance == 1_500_000  # type: ignore[union-attr]
    finally:
        assert await m.stop() == 0, "\n".join(m.err)
    assert int(s.saved()["best_amount"]) == int(s.saved()["claimed"]) == 1_500_000_000
    assert "could not claim" not in "\n".join(m.err)  # no second, failing claim on the way out


async def test_a_topup_from_outside_is_announced_to_the_parent(hostile: tuple[Setup, FakeParent]) -> None:
    s, fake = hostile
    s.configure_xrp(watch_interval=0.3)
    m = await Moneyd.start(s)
    try:
        assert fake.channel_messages == 1
        code, _out, err = await s.cli("xrp:topup", "--amount", "3XRP", "--yes")
        assert code == 0, err
        async with asyncio.timeout(20):
            while fake.channel_messages < 2:
                await asyncio.sleep(0.1)
    finally:
        assert await m.stop() == 0, "\n".join(m.err)
    assert fake.channel is not None
    assert s.emu.ledger.channel(fake.channel).amount == 13 * XRP  # type: ignore[union-attr]
    assert "our payment channel grew to 13000000 drops" in "\n".join(m.err)


async def test_a_refused_claim_is_not_counted_as_paid(hostile: tuple[Setup, FakeParent]) -> None:
    """The parent refuses one of our claims: moneyd drops the link, and on reconnecting takes its last claim and
    the credit it holds from the parent; the books agree to the unit and payments go on."""
    from datetime import UTC, datetime, timedelta

    from moneyd.localapp import LocalApp

    s, fake = hostile
    fake.books = True
    m = await Moneyd.start(s)
    try:
        app = await LocalApp.connect(m.via)

        async def pay(amount: int) -> ilp.Reply:
            return await app.send_prepare(ilp.Prepare(amount, datetime.now(UTC) + timedelta(seconds=30), CONDITION,
                                                      "test.fake.bob"))

        try:
            assert isinstance(await pay(3_000_000), ilp.Fulfill)
            fake.refuse_claims = True
            refused = await pay(3_000_000)  # brings the credit below 5,000,000: a new claim first, refused
            assert isinstance(refused, ilp.Reject) and refused.code == "T01", refused
            refused_at = int(fake.last_claim["amount"])
            fake.refuse_claims = False
            last: ilp.Reply | None = None
            for _ in range(100):  # T01 until it has reconnected
                last = await pay(3_000_000)
                if isinstance(last, ilp.Fulfill):
                    break
                await asyncio.sleep(0.2)
            assert isinstance(last, ilp.Fulfill), f"{last}\n" + "\n".join(m.err[-15:])
        finally:
            await app.close()
    finally:
        assert await m.stop() == 0, "\n".join(m.err)
    log = "\n".join(m.err)
    assert "the parent did not take our claim" in log and "reconnected to the parent" in log
    saved = s.saved()
    assert int(fake.last_claim["amount"]) > refused_at  # paid again, after the refusal
    assert int(saved["sent_amount"]) == int(fake.last_claim["amount"])
    assert int(saved["credit"]) == int(fake.last_claim["amount"]) - fake.prepared
