"""The router forwards a Prepare without a task: the handler that waits for the next hop's answer is resumed by hand
(moneyd.btp.connection). Here, through a real router and real sockets: no task per packet in flight, and each way the
wait can end (the answer, the next hop leaving, the sender leaving) ends the handler cleanly."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from moneyd.btp import connect
from moneyd.btp.connection import BtpConnection, ConnectionClosed
from moneyd.wire import btp, ildcp, ilp
from tests.support.routerfixture import start_router


async def address_of(conn: BtpConnection) -> str:
    reply = await conn.send_prepare(ildcp.request())
    assert isinstance(reply, ilp.Fulfill)
    return ildcp.parse_fulfill(reply).client_address


def prepare_to(destination: str, fulfillment: bytes, amount: int = 10) -> ilp.Prepare:
    """A Prepare whose data is its fulfillment: the test receivers fulfill with it."""
    return ilp.Prepare(amount, datetime.now(UTC) + timedelta(seconds=20), hashlib.sha256(fulfillment).digest(),
                       destination, fulfillment)


async def test_forwarding_creates_no_task_per_packet_and_answers_all(tmp_path: Path) -> None:
    router = await start_router(tmp_path)
    release = asyncio.Event()
    held = 0

    async def receiver(frame: btp.Message | btp.Transfer) -> Sequence[btp.ProtocolData]:
        nonlocal held
        entry = btp.find(frame.protocol_data, "ilp")
        assert entry is not None
        p = ilp.decode_prepare(entry.data)
        held += 1
        await release.wait()
        return [btp.ProtocolData.octets("ilp", ilp.encode_fulfill(ilp.Fulfill(p.data, b"ok")))]

    url = f"btp+ws://:%s@127.0.0.1:{router.settings.port}"
    b, b_reader = await connect(url % "tok-b", receiver)
    a, a_reader = await connect(url % "tok-a")
    try:
        dest = await address_of(b)
        # The first paid packet to B binds its account durably (moneyd.accounts): a store write, which does get a task.
        first = os.urandom(32)
        release.set()
        assert isinstance(await a.send_prepare(prepare_to(dest, first)), ilp.Fulfill)
        release.clear()
        held = 0
        secrets = [os.urandom(32) for _ in range(50)]
        tasks_before = len(asyncio.all_tasks())
        sends = [asyncio.ensure_future(a.send_prepare(prepare_to(dest, s))) for s in secrets]
        while held < len(secrets):
            await asyncio.sleep(0.01)
        # In flight: our 50 sends and B's 50 handlers are tasks (they wait on an Event); the router holds 50 forwarded
        # Prepares and runs no task for any of them.
        assert len(asyncio.all_tasks()) - tasks_before == 2 * len(secrets)
        assert router.traffic.of("uplink").sending_packets == 0
        sending = [st.sending_packets for name in router.traffic.names() if (st := router.traffic.get(name))]
        assert sum(sending) == len(secrets)
        release.set()
        replies = await asyncio.gather(*sends)
        assert all(isinstance(r, ilp.Fulfill) for r in replies)
        assert sorted(r.fulfillment for r in replies if isinstance(r, ilp.Fulfill)) == sorted(secrets)
        stats = [router.traffic.of(name) for name in router.traffic.names()]
        assert all(st.sending_packets == 0 and st.receiving_packets == 0 for st in stats)
    finally:
        for conn, reader in ((a, a_reader), (b, b_reader)):
            await conn.close()
            await asyncio.wait_for(reader, 5)
        await router.stop()
        router.store.close()


async def test_next_hop_leaving_rejects_t01_and_sender_leaving_ends_the_handlers(tmp_path: Path) -> None:
    router = await start_router(tmp_path)
    held: list[ilp.Prepare] = []
    forever = asyncio.Event()

    async def receiver(frame: btp.Message | btp.Transfer) -> Sequence[btp.ProtocolData]:
        entry = btp.find(frame.protocol_data, "ilp")
        assert entry is not None
        held.append(ilp.decode_prepare(entry.data))
        await forever.wait()
        return []

    url = f"btp+ws://:%s@127.0.0.1:{router.settings.port}"
    b, b_reader = await connect(url % "tok-b", receiver)
    a, a_reader = await connect(url % "tok-a")
    c, c_reader = await connect(url % "tok-c")
    try:
        dest = await address_of(b)
        # A's Prepares wait at B; B leaves: each gets a clean T01 from the router.
        sends = [asyncio.ensure_future(a.send_prepare(prepare_to(dest, os.urandom(32)))) for _ in range(10)]
        while len(held) < 10:
            await asyncio.sleep(0.01)
        await b.close()
        await asyncio.wait_for(b_reader, 5)
        replies = await asyncio.gather(*sends)
        assert all(isinstance(r, ilp.Reject) and r.code == "T01" for r in replies), replies

        # C's Prepares wait at a new B; C leaves: the router's handlers for them end (their counts go back to 0)
        # and B's late answers are dropped without harm.
        held.clear()
        b, b_reader = await connect(url % "tok-b", receiver)
        sends = [asyncio.ensure_future(c.send_prepare(prepare_to(dest, os.urandom(32)))) for _ in range(10)]
        while len(held) < 10:
            await asyncio.sleep(0.01)
        b_account = next(n for n in router.traffic.names() if (st := router.traffic.get(n)) and st.receiving_packets)
        assert router.traffic.of(b_account).receiving_packets == 10
        await c.close()
        await asyncio.wait_for(c_reader, 5)
        outcomes = await asyncio.gather(*sends, return_exceptions=True)
        assert all(isinstance(o, ConnectionClosed) for o in outcomes), outcomes
        for _ in range(200):
            if router.traffic.of(b_account).receiving_packets == 0:
                break
            await asyncio.sleep(0.01)
        assert router.traffic.of(b_account).receiving_packets == 0
        assert router.rate_limit is not None and router.rate_limit.in_flight(b_account) == (0, 0)
        # The router still forwards: A to B.
        forever.set()
        fulfillment = os.urandom(32)
        reply = await a.send_prepare(prepare_to(dest, fulfillment))
        assert isinstance(reply, ilp.Reject) and reply.code == "T00"  # B's handler answers no ilp packet
    finally:
        forever.set()
        for conn, reader in ((a, a_reader), (b, b_reader), (c, c_reader)):
            await conn.close()
            await asyncio.wait_for(reader, 5)
        await router.stop()
        router.store.close()
