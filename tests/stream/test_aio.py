"""The asyncio adapters: StreamServer and StreamClients in one event loop, wired through an in-memory path."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from fractions import Fraction

from moneyd.stream import crypto
from moneyd.stream.aio import StreamClient, StreamConnection, StreamServer
from moneyd.stream.connection import ConnectionConfig
from moneyd.wire.ilp import AmountTooLargeData, Fulfill, Prepare, Reject, Reply, encode_amount_too_large

BASE = "test.moneyd.receiver"
CLIENT = "test.moneyd.alice"


class Router:
    """A connector in memory: applies a rate and a maximum packet amount, and routes by address prefix."""

    def __init__(self, rate: Fraction = Fraction(1), max_packet: int | None = None) -> None:
        self.rate, self.max_packet = rate, max_packet
        self.server: StreamServer | None = None
        self.client: StreamConnection | None = None
        self.packets = 0

    async def send(self, prepare: Prepare) -> Reply:
        await asyncio.sleep(0)  # a real hop yields to the loop
        self.packets += 1
        if self.max_packet is not None and prepare.amount > self.max_packet:
            return Reject("F08", "test.moneyd", "", encode_amount_too_large(AmountTooLargeData(prepare.amount,
                                                                                           self.max_packet)))
        out = replace(prepare, amount=prepare.amount * self.rate.numerator // self.rate.denominator)
        if out.destination.startswith(BASE + ".") and self.server is not None:
            reply = self.server.handle_prepare(out)
        elif out.destination.startswith(CLIENT) and self.client is not None:
            reply = self.client.handle_prepare(out)
        else:
            return Reject("F02", "test.moneyd", "no route")
        if isinstance(reply, Fulfill) and crypto.condition(reply.fulfillment) != prepare.execution_condition:
            return Reject("F05", "test.moneyd", "wrong fulfillment")
        return reply


def receiver_on(router: Router) -> tuple[StreamServer, str, bytes]:
    """A STREAM server behind ``router`` that takes any amount, and one address and secret for it."""
    server = StreamServer(BASE, router.send, config=ConnectionConfig(default_receive_max=2**64 - 1))
    router.server = server
    address, secret = server.generate_address_and_secret()
    return server, address, secret


async def test_client_pays_server_and_data_flows_both_ways() -> None:
    router = Router(rate=Fraction(3, 2), max_packet=1000)
    server = StreamServer(BASE, router.send, asset_code="USD", asset_scale=2,
                          config=ConnectionConfig(default_receive_max=2**64 - 1))
    router.server = server
    address, secret = server.generate_address_and_secret()
    client = StreamClient(router.send, address, secret, source_account=CLIENT, asset_code="XRP", asset_scale=9)
    router.client = client
    rate = await client.connect(timeout=10)
    assert rate == Fraction(3, 2)
    result = await client.send_money(100_000, timeout=20)
    assert result.ok and result.sent == 100_000 and result.delivered == 150_000
    assert result.packets >= 100
    conn = await asyncio.wait_for(server.accept(), 5)
    assert conn.connection.total_received == 150_000

    stream = client.open_stream()
    # More than the write buffer: write() waits until the reader makes room (back-pressure), so run it alongside.
    writer = asyncio.ensure_future(stream.write(b"hello " * 50_000))
    incoming = await asyncio.wait_for(conn.accept_stream(), 5)
    while incoming.id != stream.id:
        incoming = await asyncio.wait_for(conn.accept_stream(), 5)
    got = b""
    while len(got) < 300_000:
        got += await asyncio.wait_for(incoming.read(), 5)
    assert got == b"hello " * 50_000
    await asyncio.wait_for(writer, 5)
    await asyncio.wait_for(stream.drain(), 5)
    await incoming.write(b"world")
    assert await asyncio.wait_for(stream.read(), 5) == b"world"
    stream.close()
    await asyncio.wait_for(incoming.wait_closed(), 5)
    await client.close(timeout=5)
    await asyncio.wait_for(conn.wait_closed(), 5)
    assert conn.close_event is not None and conn.close_event.by_remote and conn.close_event.ok
    await server.close()


async def test_many_clients_at_once() -> None:
    router = Router(max_packet=50)
    server = StreamServer(BASE, router.send, config=ConnectionConfig(default_receive_max=10_000))
    router.server = server
    clients = []
    for _ in range(20):
        address, secret = server.generate_address_and_secret()
        clients.append(StreamClient(router.send, address, secret))
    results = await asyncio.wait_for(asyncio.gather(*(c.send_money(1000) for c in clients)), 30)
    assert all(r.ok and r.delivered == 1000 for r in results)
    assert len(server.connections) == 20
    assert sum(d.connection.total_received for d in server.connections.values()) == 20_000
    await asyncio.gather(*(c.close(timeout=5) for c in clients))
    await server.close()


async def test_receiver_limit_ends_the_payment_with_what_was_delivered() -> None:
    router = Router(max_packet=100)
    server = StreamServer(BASE, router.send, config=ConnectionConfig(default_receive_max=250, max_receiver_rejects=5,
                                                           retry_delay_start=0.01))
    router.server = server
    address, secret = server.generate_address_and_secret()
    client = StreamClient(router.send, address, secret, config=ConnectionConfig(max_receiver_rejects=5,
                                                                      retry_delay_start=0.01))
    result = await asyncio.wait_for(client.send_money(1000), 30)
    assert not result.ok and result.error
    assert 250 <= result.sent <= 252 and result.delivered == result.sent  # 1% extra is allowed, like the JS
    await client.aclose()
    await server.close()


async def test_unknown_tokens_and_foreign_addresses_are_refused() -> None:
    router = Router()
    server = StreamServer(BASE, router.send)
    prepare = Prepare(1, datetime(2030, 1, 1, tzinfo=UTC),
                      b"\0" * 32, f"{BASE}.bm90LWEtdG9rZW4", b"\x01" * 40)
    reply = server.handle_prepare(prepare)
    assert isinstance(reply, Reject) and reply.code == "F02"
    assert isinstance(r := server.handle_prepare(replace(prepare, destination="test.other.x")), Reject)
    assert r.code == "F02"
    other = StreamServer(BASE, router.send)
    address, secret = other.generate_address_and_secret()
    client = StreamClient(router.send, address, secret)
    router.server = server  # the token was made with another server secret
    result = await asyncio.wait_for(client.send_money(10), 10)
    assert not result.ok and "F02" in (result.error or "")
    await client.aclose()


async def test_failed_link_is_retried_then_succeeds() -> None:
    router = Router()
    server, address, secret = receiver_on(router)
    failures = 3

    async def flaky(prepare: Prepare) -> Reply:
        nonlocal failures
        if failures:
            failures -= 1
            raise ConnectionResetError("link down")
        return await router.send(prepare)

    client = StreamClient(flaky, address, secret, config=ConnectionConfig(retry_delay_start=0.01))
    result = await asyncio.wait_for(client.send_money(500), 10)
    assert result.ok and result.delivered == 500
    await client.close(timeout=5)
    await server.close()


async def test_a_timed_out_payment_stops_sending() -> None:
    router = Router(max_packet=10)
    server, address, secret = receiver_on(router)

    async def slow(prepare: Prepare) -> Reply:
        await asyncio.sleep(0.02)
        return await router.send(prepare)

    client = StreamClient(slow, address, secret, config=ConnectionConfig(max_window=2))
    result = await client.send_money(1_000_000, timeout=0.5)
    assert not result.ok and "timed out" in (result.error or "")
    assert 0 < result.sent < 1_000_000 and result.delivered == result.sent
    await asyncio.sleep(0.3)
    assert client.connection.total_sent == result.sent  # nothing more left after the payment gave up
    await client.close(timeout=5)
    await server.close()


async def test_closed_connections_answer_then_are_pruned() -> None:
    router = Router()
    server, address, secret = receiver_on(router)
    client = StreamClient(router.send, address, secret)
    assert (await client.send_money(5)).ok
    await client.close(timeout=5)
    assert len(server.connections) == 1
    (driver,) = server.connections.values()
    await asyncio.wait_for(driver.wait_closed(), 5)
    server.prune()  # closed just now: kept, so a late packet still hears ConnectionClose
    assert len(server.connections) == 1
    server.prune(older_than=0)
    assert server.connections == {}
    await server.close()
