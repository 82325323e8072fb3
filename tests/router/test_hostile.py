"""Bad input never takes the router down: each gets its error, and other apps keep being served."""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from moneyd.app import Router
from moneyd.btp import BtpPeerError, connect
from moneyd.wire import btp, ilp
from tests.support.apps import app, fulfiller, prepare_for, url


async def assert_still_serving(router: Router) -> None:
    a, _ra, _ = await app(router, "", "still-a")
    b, _rb, addr_b = await app(router, "", "still-b", fulfiller)
    p, f = prepare_for(addr_b)
    assert await a.send_prepare(p) == ilp.Fulfill(f)
    for c in (a, b):
        await c.close()


async def test_malformed_frames_get_btp_errors(router: Router) -> None:
    async with ws_connect(f"ws://127.0.0.1:{router.server.port}") as ws:
        await ws.send(b"\x06\x00\x00\x00\x01\x05garbage")  # body shorter than its length
        # The auth step refuses it with F00 and closes.
        reply = btp.decode_frame(await ws.recv())  # type: ignore[arg-type]
        assert isinstance(reply, btp.Error) and reply.code == "F00" and b"malformed" in reply.data
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    conn, _reader, _ = await app(router, "", "tok")
    # After auth: a broken frame gets F01 on its request id; an ilp entry that is not a Prepare too.
    conn.send_raw(b"\x06\x00\x00\x00\x07\x03\x01\x01")
    conn.send_raw(b"")  # an empty frame: malformed (no answer: no request id), and the connection stays up
    bad_pd = [btp.ProtocolData.octets("ilp", b"\x0c\x01\x00")]
    with pytest.raises(BtpPeerError, match="F01"):
        await conn.request(bad_pd)
    with pytest.raises(BtpPeerError, match=r"F00.*no ilp"):
        await conn.request([btp.ProtocolData.text("hello", "there")])
    await conn.close()
    await assert_still_serving(router)


async def test_second_token_for_a_bound_account_is_refused(router: Router) -> None:
    conn, _, addr = await app(router, "alice", "first")
    assert addr == "private.moneyd.local.alice"
    bob, _rb, addr_b = await app(router, "", "bob-token", fulfiller)
    p, f = prepare_for(addr_b)
    assert await conn.send_prepare(p) == ilp.Fulfill(f)  # the first paid packet binds alice for good
    for c in (conn, bob):
        await c.close()
    with pytest.raises(BtpPeerError, match=r"F00.*incorrect token for account alice"):
        await connect(url(router, "alice", "second"))
    # The binding is durable: the store says so, not just memory.
    assert router.store.bound_token("alice") == hashlib.sha256(b"first").hexdigest()
    conn, _reader, _ = await app(router, "alice", "first")
    await conn.close()


async def test_bad_account_names_and_missing_token(router: Router) -> None:
    with pytest.raises(BtpPeerError, match="may only hold"):
        await connect(url(router, "bad%20name", "x"))
    async with ws_connect(f"ws://127.0.0.1:{router.server.port}") as ws:
        await ws.send(btp.encode_frame(btp.Message(1, (btp.ProtocolData("auth", 0, b""),))))
        reply = btp.decode_frame(await ws.recv())  # type: ignore[arg-type]
        assert isinstance(reply, btp.Error) and b"auth_token" in reply.data


async def test_oversize_message_closes_only_that_socket(router: Router) -> None:
    conn, reader, _ = await app(router, "", "big")
    conn.send_raw(b"\x06" + bytes(2 << 20))
    await asyncio.wait_for(reader, 5)  # the router closed it (1009 message too big)
    await assert_still_serving(router)


async def test_browser_origins_are_refused_unless_allowed(router: Router) -> None:
    with pytest.raises(InvalidStatus) as err:
        await ws_connect(f"ws://127.0.0.1:{router.server.port}", origin="https://evil.example")  # type: ignore[arg-type]
    assert err.value.response.status_code == 403


async def test_app_vanishing_mid_packet_is_a_clean_reject(router: Router) -> None:
    async def slow(frame: btp.Message | btp.Transfer) -> list[btp.ProtocolData]:
        await asyncio.sleep(0.3)
        return await fulfiller(frame)

    a, _ra, _ = await app(router, "", "vanish-a")
    b, _rb, addr_b = await app(router, "", "vanish-b", slow)
    p, _ = prepare_for(addr_b)
    pending = asyncio.create_task(a.send_prepare(p))
    await asyncio.sleep(0.05)
    await a.close()  # the sender vanishes while its Prepare is in flight (the JS moneyd crashes here)
    with pytest.raises(Exception):  # noqa: B017 - the sender's own send fails; the router must not
        await pending
    await asyncio.sleep(0.4)
    p2, _ = prepare_for(addr_b)
    c, _rc, _ = await app(router, "", "vanish-c")
    # And the receiver vanishing mid-packet gives the sender T01, not a hang.
    task = asyncio.create_task(c.send_prepare(p2))
    await asyncio.sleep(0.05)
    await b.close()
    reply = await asyncio.wait_for(task, 5)
    assert isinstance(reply, ilp.Reject) and reply.code == "T01"
    await c.close()
    await assert_still_serving(router)


async def test_receiver_that_never_answers_gets_r00_at_expiry(router: Router) -> None:
    async def never(frame: btp.Message | btp.Transfer) -> list[btp.ProtocolData]:
        await asyncio.sleep(3600)
        return []

    a, _ra, _ = await app(router, "", "wait-a")
    b, _rb, addr_b = await app(router, "", "wait-b", never)
    p, _ = prepare_for(addr_b, seconds=2.5)
    reply = await asyncio.wait_for(a.send_prepare(p, timeout=10), 10)
    assert isinstance(reply, ilp.Reject) and reply.code == "R00" and reply.triggered_by == "private.moneyd"
    for c in (a, b):
        await c.close()


async def test_wrong_fulfillment_is_never_forwarded(router: Router) -> None:
    async def liar(frame: btp.Message | btp.Transfer) -> list[btp.ProtocolData]:
        return [btp.ProtocolData.octets("ilp", ilp.encode_fulfill(ilp.Fulfill(bytes(32))))]

    a, _ra, _ = await app(router, "", "liar-a")
    b, _rb, addr_b = await app(router, "", "liar-b", liar)
    p, _ = prepare_for(addr_b)
    reply = await a.send_prepare(p)
    assert isinstance(reply, ilp.Reject) and reply.code == "F05"
    for c in (a, b):
        await c.close()
