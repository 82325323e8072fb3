"""The ETH uplink against a real JS parent: ilp-connector 23 whose child account runs ilp-plugin-ethereum
3.0.0-beta.20 in role server (tests/js/eth-parent-connector.js), on ganache with the Unidirectional contract.

Payments both ways through our router, balances on chain checked to the wei after both channels are claimed;
a kill -9 in the middle of a payment; and a hostile parent (a Python BTP server) sending bad claims.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from moneyd.app import StartupError
from moneyd.btp.connection import BtpConnection, BtpPeerError, RequestRefused
from moneyd.localapp import LocalApp
from moneyd.store import Store
from moneyd.wire import btp, ildcp, ilp
from moneyd.wire.btp import ProtocolData
from tests.support.app_pair import pays, ping
from tests.support.eth_setup import (
    CHANNEL,
    ETH,
    GWEI,
    PARENT,
    PARENT_CHANNEL_GWEI,
    STRANGER,
    US,
    _linked,
    _received,
    fees_paid,
    parent_state,
    start_parent,
    start_router,
    until,
    uplink_for,
)
from tests.support.ethfixture import Ganache
from tests.support.jsnode import NodeProcess, NodeRunner, free_port
from uplinks.eth import messages
from uplinks.eth.book import ClaimBook
from uplinks.eth.chain import EthChain
from uplinks.eth.claims import ChannelState, Claim, channel_id_hex, sign_claim
from uplinks.eth.uplink import NAMESPACE, EthSettings, EthUplink, UplinkState, state_key

# -- end to end ---------------------------------------------------------------------------------------------


async def test_pays_and_is_paid_through_the_js_parent_balances_to_the_wei(
    node: NodeRunner, ganache: Ganache, tmp_path: Path
) -> None:
    us_addr, parent_addr = ganache.addresses[US], ganache.addresses[PARENT]
    block0 = ganache.block_number()
    us0, parent0 = ganache.balance(us_addr), ganache.balance(parent_addr)
    parent, eport, aport = await start_parent(node, ganache)
    store = Store(tmp_path / "moneyd.sqlite")
    uplink = uplink_for(ganache, store, eport)
    router = await start_router(tmp_path, uplink, store)
    try:
        assert router.address == "test.parent.eth.alice"
        assert (router.asset_code, router.asset_scale) == ("ETH", 9)
        out = uplink.book.outgoing
        assert out is not None and out.receiver == parent_addr and out.value == CHANNEL
        # The parent linked our channel and opened one back, whose value-0 claim we accepted.
        await until(lambda: _linked(uplink), what="the parent's channel to us")
        st = await parent_state(parent)
        assert st["ethereumAddress"] == us_addr
        assert st["incoming"]["channelId"] == channel_id_hex(out.channel_id)
        assert st["outgoing"]["receiver"] == us_addr and st["outgoing"]["value"] == str(PARENT_CHANNEL_GWEI * GWEI)

        # A (a JS app behind our router) pays B (a JS app on the parent): each Prepare is prepaid by a claim.
        apps = node.start("app-pair.js", f"btp+ws://:appA@127.0.0.1:{router.server.port}", f"btp+ws://:appB@127.0.0.1:{aport}")
        await apps.event("ready", timeout=30)
        sent = 0
        for amount in (1000, 1, 2_500_000):
            assert (await ping(apps, amount))["ok"] is True
            sent += amount
        assert uplink.book.paid == uplink.book.charged == sent
        assert uplink.book.last_sent is not None and uplink.book.last_sent.value == sent * GWEI
        st = await parent_state(parent)
        assert st["receivableBalance"] == "0" and st["incoming"]["spent"] == str(sent * GWEI)
        # An amount above what our channel holds is refused here with F08 and the most it can pay: nothing is
        # signed, and no deposit is made for it (a local app cannot drain the wallet into the channel).
        too_big = await ping(apps, CHANNEL // GWEI)
        assert too_big["ok"] is False and too_big["code"] == "F08", too_big
        assert "can pay at most" in too_big["message"]
        f08 = ilp.decode_amount_too_large(bytes.fromhex(too_big["data"]))
        assert (f08.received_amount, f08.maximum_amount) == (CHANNEL // GWEI, CHANNEL // GWEI - sent)
        assert uplink.book.paid == sent

        # B pays A, one payment at a time: the parent's claims arrive after each Fulfill and are stored.
        back = node.start("app-pair.js", f"btp+ws://:appB2@127.0.0.1:{aport}", f"btp+ws://:appA2@127.0.0.1:{router.server.port}")
        await back.event("ready", timeout=30)
        received = 0
        for amount in (7, 123_456, 999_999):
            assert (await ping(back, amount))["ok"] is True
            received += amount
            await until(lambda r=received: _received(uplink, r), what=f"the parent's claim for {received}")  # type: ignore[misc]
        stored = store.get(NAMESPACE, uplink.key)
        assert stored["book"]["bestIncoming"]["value"] == str(received * GWEI)

        # A STREAM payment of many packets in flight: every one prepaid, the parent never short.
        apps.send({"cmd": "stream", "amount": 200_000, "maxPacket": 10_000})
        result = await apps.event("stream", timeout=120)
        assert result.get("delivered") == 200_000, result
        st = await parent_state(parent)
        assert int(st["receivableBalance"]) == -uplink.book.credit()
        assert int(st["incoming"]["spent"]) == uplink.book.paid * GWEI
        paid = uplink.book.paid
        assert uplink.book.outgoing is not None and uplink.book.outgoing.value == CHANNEL  # no top-up was needed
        # The router reads the uplink's balance from its book, the one place that keeps it, next to its own counts.
        # The sender reports "delivered" when its last Fulfill arrives; the receiver's closing STREAM packet may still
        # be on its way to us through the parent then. Nothing may stay in flight for good.
        async def nothing_in_flight() -> bool:
            (v,) = [v for v in router.accounts() if v.kind == "uplink"]
            return v.sending_packets == v.receiving_packets == 0

        await until(nothing_in_flight, what="the uplink's packets in flight to drain")
        (view,) = [v for v in router.accounts() if v.kind == "uplink"]
        assert view.uplink is not None and view.balance == view.uplink.balance == uplink.book.credit()
        assert (view.uplink.minimum, view.uplink.details["paid"], view.uplink.details["received"]) == (0, paid, received)
        assert (view.received, view.sent) == (sent + 200_000, received)  # fulfilled to and from the parent

        # Close out: the parent claims our channel on our requestClose, we claim theirs on its requestClose.
        assert await uplink.request_close()
        parent.send({"cmd": "requestClose", "account": "alice"})
        assert (await parent.event("requestClose", timeout=30))["ok"] is True
        assert uplink.book.outgoing is None and uplink.book.claimable() is None
        st = await parent_state(parent)
        assert st["incoming"] is None and st["outgoing"] is None  # both sides saw both channels close
    finally:
        await router.stop()
        store.close()
    fees_us, fees_parent = fees_paid(ganache, us_addr, block0), fees_paid(ganache, parent_addr, block0)
    assert ganache.balance(us_addr) == us0 - fees_us - paid * GWEI + received * GWEI
    assert ganache.balance(parent_addr) == parent0 - fees_parent + paid * GWEI - received * GWEI


async def test_tops_up_when_the_channel_runs_low(node: NodeRunner, ganache: Ganache, tmp_path: Path) -> None:
    small = 10**6 * GWEI  # 0.001 ETH; top-up below half of it
    parent, eport, aport = await start_parent(node, ganache)
    store = Store(tmp_path / "moneyd.sqlite")
    uplink = uplink_for(ganache, store, eport, channel_amount=small)
    router = await start_router(tmp_path, uplink, store)
    try:
        apps = await pays(node, f"btp+ws://:ta@127.0.0.1:{router.server.port}", f"btp+ws://:tb@127.0.0.1:{aport}", 600_000)
        # 400,000 gwei left, below half the channel: a deposit of the channel amount follows, and channelDeposit.
        await until(lambda: _channel_value(uplink, 2 * small), what="the top-up")
        await until(lambda: _some_async(parent, lambda st: st["incoming"]["value"] == str(2 * small)), what="the parent re-reading our channel")
        apps.send({"cmd": "ping", "amount": 900_000})  # more than the first deposit could have paid
        assert (await apps.event("ping"))["ok"] is True
        st = await parent_state(parent)
        assert st["incoming"]["spent"] == str(1_500_000 * GWEI) and st["receivableBalance"] == "0"

        # The parent claims our channel (on request): the next payment finds no channel, and a new one is opened.
        first = uplink.book.outgoing
        assert first is not None and await uplink.request_close()
        refused = await ping(apps, 1000)
        assert refused["ok"] is False and refused["code"] == "T04" and "no outgoing channel" in refused["message"]
        await until(lambda: _some(lambda: uplink.book.outgoing is not None), what="a new channel")
        assert uplink.book.outgoing is not None and uplink.book.outgoing.channel_id != first.channel_id
        assert (await ping(apps, 1000))["ok"] is True
        st = await parent_state(parent)
        assert st["incoming"]["channelId"] == channel_id_hex(uplink.book.outgoing.channel_id)
        assert st["incoming"]["spent"] == str(1000 * GWEI)
    finally:
        await router.stop()
        store.close()


async def _channel_value(uplink: EthUplink, wei: int) -> bool:
    return uplink.book.outgoing is not None and uplink.book.outgoing.value == wei


async def _some_async(parent: NodeProcess, check: Callable[[dict[str, Any]], bool]) -> bool:
    return check(await parent_state(parent))


# -- crash ------------------------------------------------------------------------------------------------------


def start_moneyd(tmp_path: Path, ganache: Ganache, port: int) -> subprocess.Popen[str]:
    env = {**os.environ, "MONEYD_DATA_DIR": str(tmp_path / "data"), "MONEYD_ETH_PRIVATE_KEY": ganache.keys[US],
           "MONEYD_NO_KEYRING": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "moneyd", "-c", str(tmp_path / "moneyd.json"), "eth:start", "--port",
                             str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("moneyd ready: ILP address test.parent.eth.dave"):
        proc.kill()
        raise AssertionError(f"moneyd did not start: {line!r}\n{proc.stderr.read() if proc.stderr else ''}")
    return proc


def stored_state(tmp_path: Path) -> dict[str, Any]:
    store = Store(tmp_path / "data" / "moneyd.sqlite")
    try:
        (state,) = store.items(NAMESPACE).values()
    finally:
        store.close()
    assert isinstance(state, dict)
    return state


def acked_claims(parent: NodeProcess) -> list[int]:
    return [int(e["value"]) for e in parent.all_events("claim-acked", account="dave")]


async def test_kill_9_mid_payment_then_restart_loses_nothing_acknowledged(
    node: NodeRunner, ganache: Ganache, tmp_path: Path
) -> None:
    parent, eport, aport = await start_parent(node, ganache)
    (tmp_path / "moneyd.json").write_text(json.dumps({"version": 1, "eth": {
        "parent": f"btp+ws://127.0.0.1:{eport}", "provider": ganache.url, "contract": ganache.contract_address,
        "chain_id": 1337, "name": "dave", "address": ganache.addresses[US], "channel_amount": CHANNEL}}))
    port = free_port()
    proc = start_moneyd(tmp_path, ganache, port)
    try:
        channel = stored_state(tmp_path)["book"]["outgoing"]["channelId"]
        await until(lambda: _parent_has_channel_to(parent, "dave"), what="the parent's channel to us")
        # Payments both ways at once, many packets in flight, and moneyd killed in the middle of them.
        out = node.start("app-pair.js", f"btp+ws://:a@127.0.0.1:{port}", f"btp+ws://:b@127.0.0.1:{aport}")
        back = node.start("app-pair.js", f"btp+ws://:b2@127.0.0.1:{aport}", f"btp+ws://:a2@127.0.0.1:{port}")
        await out.event("ready", timeout=30)
        await back.event("ready", timeout=30)
        out.send({"cmd": "stream", "amount": 10_000_000, "maxPacket": 1000})
        back.send({"cmd": "stream", "amount": 10_000_000, "maxPacket": 1000})
        await until(lambda: _some(lambda: len(acked_claims(parent)) > 20), what="claims from the parent")
        await asyncio.sleep(0.5)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    await asyncio.sleep(1)  # let the parent finish whatever it had in hand
    out.stop()
    back.stop()

    # Every claim we acknowledged is in the store; every claim the parent holds from us is at or below ours.
    state = stored_state(tmp_path)
    acked = acked_claims(parent)
    best = int(state["book"]["bestIncoming"]["value"])
    assert acked and best >= max(acked)
    st = await parent_state(parent, "dave")
    assert int(st["incoming"]["spent"]) <= int(state["book"]["outgoing"]["spent"])
    assert int(state["book"]["paid"]) >= int(state["book"]["charged"])

    # Restart on the same data: same channel, payments both ways work again at once.
    proc = start_moneyd(tmp_path, ganache, port)
    try:
        assert stored_state(tmp_path)["book"]["outgoing"]["channelId"] == channel
        apps = node.start("app-pair.js", f"btp+ws://:a3@127.0.0.1:{port}", f"btp+ws://:b3@127.0.0.1:{aport}")
        await apps.event("ready", timeout=30)
        for _ in range(2):  # the first may meet a T04 while the parent catches up with our last claim
            if (await ping(apps, 5000))["ok"]:
                break
        else:
            raise AssertionError("no payment to the parent after the restart")
        await pays(node, f"btp+ws://:b4@127.0.0.1:{aport}", f"btp+ws://:a4@127.0.0.1:{port}", 7000)
        # The parent's next claim covers everything it owes, the ones we never saw included.
        st = await parent_state(parent, "dave")
        await until(lambda: _some(lambda: stored_state(tmp_path)["book"]["bestIncoming"]["value"] == st["outgoing"]["spent"]),
                    what="the parent's latest claim stored")
        st = await parent_state(parent, "dave")
        state = stored_state(tmp_path)
        assert st["incoming"]["spent"] == state["book"]["outgoing"]["spent"]
        assert st["outgoing"]["spent"] == state["book"]["bestIncoming"]["value"]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    assert proc.returncode == 0


async def _parent_has_channel_to(parent: NodeProcess, name: str) -> bool:
    return (await parent_state(parent, name)).get("outgoing") is not None


async def _some(check: Callable[[], bool]) -> bool:
    return check()


# -- a hostile parent ---------------------------------------------------------------------------------------------


class HostileParent:
    """A Python BTP server that plays the parent: answers auth, ILDCP and info, takes our claims, and sends us
    whatever a test wants, returning our Response or Error."""

    def __init__(self, eth_address: str, *, info: Sequence[ProtocolData] | None = None, scale: int = 9) -> None:
        self.eth_address = eth_address
        self.info = (messages.info(eth_address),) if info is None else tuple(info)
        self.scale = scale
        self.conns: list[BtpConnection] = []
        self.claims: list[Claim] = []
        self.frames: list[str] = []  # "claim" or "ilp", in the order they came
        self.on_claim: Callable[[Claim], None] | None = None  # a check run before a claim is answered
        self.port = 0

    async def __aenter__(self) -> HostileParent:
        self.server = await serve(self._accept, "127.0.0.1", 0, compression=None)
        self.port = next(iter(self.server.sockets)).getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for c in self.conns:
            await c.close()
        self.server.close()

    async def _accept(self, ws: ServerConnection) -> None:
        conn = BtpConnection(ws, self._handle, "hostile")
        self.conns.append(conn)
        await conn.run()

    async def _handle(self, frame: btp.Message | btp.Transfer) -> Sequence[ProtocolData]:
        names = [p.protocol_name for p in frame.protocol_data]
        if "auth" in names:
            return ()
        if "info" in names:
            return self.info
        if "machinomy" in names:
            claim = messages.parse_machinomy(frame.protocol_data)
            assert claim is not None
            if self.on_claim is not None:
                self.on_claim(claim)
            self.claims.append(claim)
            self.frames.append("claim")
            return ()
        entry = btp.find(frame.protocol_data, "ilp")
        if entry is not None:
            self.frames.append("ilp")
            prepare = ilp.decode_prepare(entry.data)
            if ildcp.is_request(prepare):
                reply: ilp.Reply = ildcp.response(ildcp.IldcpResponse("test.hostile.alice", self.scale, "ETH"))
            else:
                reply = ilp.Reject("F02", "test.hostile", "nothing here")
            return (ProtocolData("ilp", 0, ilp.encode_packet(reply)),)
        raise RequestRefused("F00", "NotAcceptedError", f"hostile parent: unexpected {names}")

    async def send(self, *pd: ProtocolData, transfer: bool = False) -> tuple[str, str]:
        """('ok', '') or ('error', 'CODE name: message') for what our uplink answered."""
        conn = self.conns[-1]
        try:
            if transfer:
                await conn.transfer(1, pd, timeout=20)
            else:
                await conn.request(pd, timeout=20)
        except BtpPeerError as e:
            return "error", f"{e.frame.code} {e.frame.name}: {e.frame.data.decode()}"
        return "ok", ""


def raw_claim(data: str | bytes) -> ProtocolData:
    return ProtocolData.json("machinomy", data if isinstance(data, str) else data.decode())


async def test_hostile_parent_claims_are_refused_and_nothing_moves(
    ganache: Ganache, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="moneyd.uplink.eth")
    us_addr, stranger_addr = ganache.addresses[US], ganache.addresses[STRANGER]
    contract = ganache.contract_address
    stranger = await EthChain.connect(ganache.url, ganache.keys[STRANGER], contract)
    store = Store(tmp_path / "moneyd.sqlite")
    async with HostileParent(stranger_addr) as hp:
        uplink = uplink_for(ganache, store, hp.port, channel_amount=ETH // 100, claim_attempts=2,
                            claim_retry_delay=0.05, watch_interval=0.2)
        router = await start_router(tmp_path, uplink, store)
        try:
            assert router.address == "test.hostile.alice"
            out = uplink.book.outgoing
            assert out is not None and out.receiver == stranger_addr
            (link,) = hp.claims  # our value-0 claim linked our channel at the "parent"
            assert link.value == 0 and link.channel_id == out.channel_id and link.signer == us_addr

            good, _ = await stranger.open_channel(us_addr, ETH // 100)
            not_ours, _ = await stranger.open_channel(ganache.addresses[7], ETH // 100)
            short, _ = await stranger.open_channel(us_addr, ETH // 100, dispute_period=100)
            second, _ = await stranger.open_channel(us_addr, ETH // 100)

            def claim(cid: bytes, gwei: int, key: str = ganache.keys[STRANGER], on: str = contract) -> ProtocolData:
                return messages.machinomy(sign_claim(key, on, cid, gwei * GWEI))

            async def refused(pd: ProtocolData, reason: str) -> None:
                kind, text = await hp.send(pd)
                assert kind == "error" and f"({reason})" in text, (reason, text)

            # Before any channel is linked: a channel paying someone else, a short dispute period, none at all.
            await refused(claim(not_ours, 0), "not_ours")
            await refused(claim(short, 0), "dispute_period")
            await refused(claim(os.urandom(32), 0), "no_channel")
            assert uplink.book.incoming_channel is None
            # The real one links, then pays 0.001 ETH.
            assert await hp.send(claim(good, 0)) == ("ok", "")
            assert await hp.send(claim(good, 1_000_000)) == ("ok", "")
            assert uplink.book.received == 1_000_000
            before = uplink.book.to_json()

            await refused(claim(good, 2_000_000, key=ganache.keys[6]), "signature")  # forged: not the sender's key
            await refused(claim(good, 20_000_000), "above_value")  # more than the channel holds
            await refused(claim(good, 500_000), "not_increasing")
            await refused(claim(good, 1_000_000), "not_increasing")  # a replay
            await refused(claim(second, 2_000_000), "channel")  # another channel while this one is linked
            await refused(claim(good, 2_000_000, on=ganache.addresses[8]), "contract")
            bad_sig = json.loads(sign_claim(ganache.keys[STRANGER], contract, good, 3 * 10**15).to_json())
            bad_sig["signature"] = "0x" + "00" * 65
            await refused(raw_claim(json.dumps(bad_sig)), "signature")
            for junk, reason in [
                ("not json", "schema"),
                ("[]", "schema"),
                ('{"value": "5"}', "schema"),
                ("[" * 100_000 + "]" * 100_000, "schema"),
                (json.dumps({**bad_sig, "value": "-1"}), "schema"),
                (json.dumps({**bad_sig, "value": str(2**256)}), "schema"),
                (json.dumps({**bad_sig, "value": 5}), "schema"),
                (json.dumps({**bad_sig, "tokenContract": ganache.addresses[8]}), "token"),
            ]:
                await refused(raw_claim(junk), reason)
            kind, text = await hp.send(claim(good, 3_000_000), transfer=True)
            assert kind == "error" and "not BTP transfers" in text
            kind, text = await hp.send(ProtocolData.text("nonsense", "x"))
            assert kind == "error" and "unexpected message from the parent (carries nonsense)" in text
            kind, text = await hp.send(ProtocolData.json("info", '{"ethereumAddress": "0x12"}'))
            assert kind == "error" and text.startswith("F01") and "ethereumAddress" in text
            kind, text = await hp.send(ProtocolData.octets("ilp", b"\x0c\xff\xff"))
            assert kind == "error" and text.startswith("F01")
            assert await hp.send(messages.channel_deposit()) == ("ok", "")

            # Nothing moved: the book and its durable copy are as they were, and the router still serves apps.
            assert uplink.book.to_json() == before
            assert store.get(NAMESPACE, uplink.key)["book"] == before
            app = await LocalApp.connect(f"btp+ws://:someapp@127.0.0.1:{router.server.port}")
            assert app.address.startswith("test.hostile.alice.local.")
            await app.close()
            refusals = [r.getMessage() for r in caplog.records if "refused a claim" in r.getMessage()]
            assert len(refusals) == 18 and any("(signature)" in m for m in refusals)

            # The "parent" starts settling its channel: the watcher claims the best claim before it can settle.
            us0 = ganache.balance(us_addr)
            block0 = ganache.block_number()
            await stranger.start_settling(good)
            await until(lambda: _not_linked(uplink), timeout=20, what="the watcher's claim")
            assert not (await stranger.channel(good)).exists
            assert ganache.balance(us_addr) == us0 + 1_000_000 * GWEI - fees_paid(ganache, us_addr, block0)
            # And a new channel of the parent's links afterwards.
            assert await hp.send(claim(second, 0)) == ("ok", "")
            assert await hp.send(messages.request_close()) == ("ok", "")  # nothing worth claiming yet: no-op
        finally:
            await router.stop()
            await stranger.close()
            store.close()


async def test_a_run_of_claims_reads_the_parents_channel_once(ganache: Ganache, tmp_path: Path) -> None:
    """Claims within the value last read are checked without a chain call each (claims.ChannelFacts); a claim
    above it, a channelDeposit message, or a read older than the max age goes back to the chain."""
    us_addr, stranger_addr = ganache.addresses[US], ganache.addresses[STRANGER]
    stranger = await EthChain.connect(ganache.url, ganache.keys[STRANGER], ganache.contract_address)
    store = Store(tmp_path / "moneyd.sqlite")
    async with HostileParent(stranger_addr) as hp:
        uplink = uplink_for(ganache, store, hp.port, channel_amount=ETH // 100, claim_attempts=2,
                            claim_retry_delay=0.05, channel_facts_max_age=1.0)
        router = await start_router(tmp_path, uplink, store)
        try:
            good, _ = await stranger.open_channel(us_addr, ETH // 100)
            assert uplink.chain is not None
            reads: list[bytes] = []
            read_channel = uplink.chain.channel

            async def counted(cid: bytes) -> ChannelState:
                reads.append(cid)
                return await read_channel(cid)

            uplink.chain.channel = counted  # type: ignore[method-assign]  # the real read, counted

            def claim(gwei: int) -> ProtocolData:
                return messages.machinomy(sign_claim(ganache.keys[STRANGER], ganache.contract_address, good, gwei * GWEI))

            for gwei in range(0, 10_000_000, 1_000_000):
                assert await hp.send(claim(gwei)) == ("ok", "")
            assert reads == [good] and uplink.book.received == 9_000_000
            kind, text = await hp.send(claim(10_000_001))  # above the 0.01 ETH read: read again (each attempt)
            assert kind == "error" and "(above_value)" in text and reads == [good] * 3
            await stranger.deposit(good, ETH // 100)
            assert await hp.send(claim(10_000_001)) == ("ok", "")
            assert len(reads) == 4
            assert await hp.send(messages.channel_deposit()) == ("ok", "")
            assert await hp.send(claim(10_000_002)) == ("ok", "")
            assert len(reads) == 5
            # The parent starts settling: once the last read is older than the max age, claims see it.
            await stranger.start_settling(good)
            await asyncio.sleep(1.2)
            kind, text = await hp.send(claim(10_000_003))
            assert kind == "error" and "(settling)" in text and len(reads) == 6
            kind, text = await hp.send(claim(10_000_004))  # a read that showed settling is never reused
            assert kind == "error" and "(settling)" in text and len(reads) == 7
            assert uplink.book.received == 10_000_002
        finally:
            await router.stop()
            await stranger.close()
            store.close()


async def _not_linked(uplink: EthUplink) -> bool:
    return uplink.book.incoming_channel is None


@pytest.mark.parametrize(
    ("info", "scale", "says"),
    [
        ((), 9, "did not answer with its Ethereum address"),
        ((ProtocolData.json("info", '{"ethereumAddress": "0xnope"}'),), 9, "answer to our info is invalid"),
        ((ProtocolData.json("info", "[" * 50_000),), 9, "answer to our info is invalid"),
        (None, 18, "scale 18"),
    ],
)
async def test_hostile_parent_handshake_is_a_clear_startup_error(
    ganache: Ganache, tmp_path: Path, info: Sequence[ProtocolData] | None, scale: int, says: str
) -> None:
    store = Store(tmp_path / "moneyd.sqlite")
    try:
        async with HostileParent(ganache.addresses[STRANGER], info=info, scale=scale) as hp:
            uplink = uplink_for(ganache, store, hp.port)
            with pytest.raises(StartupError, match=says):
                await start_router(tmp_path, uplink, store)
            assert uplink.state is not None and uplink.book.outgoing is None  # no channel was opened
    finally:
        store.close()


async def test_reconnects_to_a_dropped_parent_and_resends_its_latest_claim(ganache: Ganache, tmp_path: Path) -> None:
    store = Store(tmp_path / "moneyd.sqlite")
    async with HostileParent(ganache.addresses[STRANGER]) as hp:
        uplink = uplink_for(ganache, store, hp.port, backoff_initial=1.0, backoff_max=1.0)
        router = await start_router(tmp_path, uplink, store)
        try:
            channel = uplink.book.outgoing
            assert channel is not None and len(hp.claims) == 1
            await hp.conns[-1].close()
            await until(lambda: _some(lambda: uplink.conn is None), what="the drop to be noticed")  # 1 s to retry
            # While the parent is gone, a packet for it is refused at once (T01), it does not hang.
            f = os.urandom(32)
            p = ilp.Prepare(1, datetime.now(UTC) + timedelta(seconds=30), hashlib.sha256(f).digest(), "test.hostile.x", f)
            reply = await asyncio.wait_for(uplink.send_prepare(p), 2)
            assert isinstance(reply, ilp.Reject) and reply.code == "T01" and "reconnecting" in reply.message
            await until(lambda: _some(lambda: uplink.ready.is_set() and len(hp.conns) == 2), what="the reconnection")
            assert uplink.book.outgoing == channel  # the same channel, not a new one
            assert len(hp.claims) == 2 and hp.claims[-1] == uplink.book.last_sent  # our latest claim, again
        finally:
            await router.stop()
            store.close()


async def test_prepares_sent_together_share_one_durable_claim(ganache: Ganache, tmp_path: Path) -> None:
    """Prepares that reach the uplink in the same turn of the event loop are paid by one claim for their sum,
    committed to the store before it leaves and acknowledged by the parent before any of them is sent."""
    store = Store(tmp_path / "moneyd.sqlite")
    async with HostileParent(ganache.addresses[STRANGER]) as hp:
        uplink = uplink_for(ganache, store, hp.port)
        router = await start_router(tmp_path, uplink, store)
        try:
            assert len(hp.claims) == 1  # the value-0 claim linking our channel
            hp.frames.clear()

            def prepare(amount: int) -> ilp.Prepare:
                f = os.urandom(32)
                return ilp.Prepare(amount, datetime.now(UTC) + timedelta(seconds=30), hashlib.sha256(f).digest(), "test.hostile.x", f)

            def durable(claim: Claim) -> None:
                stored = store.get(NAMESPACE, uplink.key)["book"]
                assert int(stored["lastSent"]["value"]) >= claim.value, "a claim left before it was stored"

            hp.on_claim = durable
            amounts = [1000 + i for i in range(50)]
            replies = await asyncio.gather(*(uplink.send_prepare(prepare(a)) for a in amounts))
            assert all(isinstance(r, ilp.Reject) and r.code == "F02" for r in replies)  # the parent's own answer
            assert len(hp.claims) == 2 and hp.claims[-1].value == sum(amounts) * GWEI  # one claim for all 50
            assert hp.frames == ["claim"] + ["ilp"] * 50  # every Prepare left after the claim
            assert uplink.book.paid == sum(amounts) and uplink.book.charged == 0  # rejected: credited back
            # The credit the rejects gave back pays the next ones: no claim at all.
            replies = await asyncio.gather(*(uplink.send_prepare(prepare(a)) for a in amounts))
            assert len(hp.claims) == 2 and hp.frames == ["claim"] + ["ilp"] * 100
        finally:
            await router.stop()
            store.close()


async def test_a_channel_opened_just_before_a_crash_is_adopted_not_lost(ganache: Ganache, tmp_path: Path) -> None:
    """The channel id is stored before the open transaction goes out: a restart finds the channel on chain."""
    stranger_addr, contract = ganache.addresses[STRANGER], ganache.contract_address
    store = Store(tmp_path / "moneyd.sqlite")
    us = await EthChain.connect(ganache.url, ganache.keys[US], contract)
    try:
        cid = os.urandom(32)
        state = UplinkState(ClaimBook(ganache.keys[US], contract), stranger_addr,
                            {"channelId": channel_id_hex(cid), "receiver": stranger_addr, "value": str(CHANNEL)})
        state.save(store, state_key(1337, contract, ganache.addresses[US]))
        await us.open_channel(stranger_addr, CHANNEL, channel_id=cid)  # ... and the process died here
        async with HostileParent(stranger_addr) as hp:
            uplink = uplink_for(ganache, store, hp.port)
            router = await start_router(tmp_path, uplink, store)
            try:
                out = uplink.book.outgoing
                assert out is not None and (out.channel_id, out.value, out.spent) == (cid, CHANNEL, 0)
                assert [(c.channel_id, c.value) for c in hp.claims] == [(cid, 0)]  # linked, no second channel
                assert uplink.state is not None and uplink.state.pending_open is None
            finally:
                await router.stop()
    finally:
        await us.close()
        store.close()


async def test_no_funds_for_the_channel_is_a_clear_startup_error(ganache: Ganache, tmp_path: Path) -> None:
    store = Store(tmp_path / "moneyd.sqlite")
    poor = "0x" + os.urandom(32).hex()
    try:
        async with HostileParent(ganache.addresses[STRANGER]) as hp:
            uplink = EthUplink(EthSettings(f"btp+ws://poor:x@127.0.0.1:{hp.port}", ganache.url, poor,
                                           contract=ganache.contract_address, channel_amount=CHANNEL), store)
            says = r"cannot open our payment channel to the parent: the account 0x\w+ holds 0 ETH, a channel of 0.1 ETH"
            with pytest.raises(StartupError, match=says):
                await start_router(tmp_path, uplink, store)
            assert uplink.state is not None and uplink.state.pending_open is None and uplink.state.retired == []
    finally:
        store.close()
