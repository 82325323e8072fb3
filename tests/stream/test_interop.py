"""Our STREAM against the real JS ilp-protocol-stream 2.7.1, through a JS router (ilp-plugin-mini-accounts 4.2.0)
and through our own router (moneyd local).

tests/js/stream-peer.js runs the router, a JS STREAM server and a JS STREAM client; our side is a BTP client of
the same router (moneyd.btp), with its address from ILDCP. Money, data and close, both directions, both roles.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from moneyd.btp.connection import BtpConnection, connect
from moneyd.stream.aio import StreamClient, StreamServer
from moneyd.stream.connection import ConnectionConfig
from moneyd.wire import btp, ildcp, ilp
from moneyd.wire.btp import ProtocolData
from moneyd.wire.ilp import Fulfill, Prepare, Reject, Reply
from moneyd.wire.oer import UINT64_MAX
from tests.support.jsnode import NodeProcess, NodeRunner, free_port
from tests.support.routerfixture import start_router


async def js_event(p: NodeProcess, name: str, where: Callable[[dict[str, Any]], bool] = lambda e: True,
                   timeout: float = 20.0) -> dict[str, Any]:
    """The first JS event with this name (in any order relative to others) that satisfies ``where``."""
    deadline = time.monotonic() + timeout
    while True:
        for e in p.all_events():
            if e.get("event") == "fatal":
                raise AssertionError(f"JS peer failed: {e}")
            if e.get("event") == "cmd_error":
                raise AssertionError(f"JS command failed: {e}")
            if e.get("event") == name and where(e):
                return e
        if time.monotonic() > deadline:
            raise AssertionError(f"no JS event {name!r}; got {[e.get('event') for e in p.all_events()]}\n"
                                 + "\n".join(p.stderr[-30:]))
        await asyncio.sleep(0.02)


@dataclass
class PyNode:
    """Our side: a BTP client of the JS router, handing incoming Prepares to whoever is registered."""

    btp: BtpConnection
    address: str
    asset_code: str
    asset_scale: int
    handler: Callable[[Prepare], Reply] | None = None

    async def send_prepare(self, prepare: Prepare) -> Reply:
        return await self.btp.send_prepare(prepare)


async def py_node(port: int, name: str) -> PyNode:
    holder: dict[str, PyNode] = {}

    async def on_request(frame: btp.Message | btp.Transfer) -> list[ProtocolData]:
        entry = btp.find(frame.protocol_data, "ilp")
        if entry is None:
            return []
        prepare = ilp.decode_prepare(entry.data)
        node = holder.get("node")
        reply: Reply = Reject("F02", "", "no handler")
        if node is not None and node.handler is not None:
            reply = node.handler(prepare)
        return [ProtocolData.octets("ilp", ilp.encode_packet(reply))]

    conn, _reader = await connect(f"btp+ws://{name}:{name}-secret@127.0.0.1:{port}", on_request)
    reply = await conn.send_prepare(ildcp.request())
    assert isinstance(reply, Fulfill)
    info = ildcp.parse_fulfill(reply)
    node = PyNode(conn, info.client_address, info.asset_code, info.asset_scale)
    holder["node"] = node
    return node


def client_of(me: PyNode, info: dict[str, Any], config: ConnectionConfig | None = None) -> StreamClient:
    """Our STREAM client, on ``me``, to the JS server ``info`` describes; ``me`` hands it what it is sent."""
    client = StreamClient(me.send_prepare, info["destination"], bytes.fromhex(info["secret"]),
                          source_account=me.address, asset_code=me.asset_code, asset_scale=me.asset_scale, config=config)
    me.handler = client.handle_prepare
    return client


def server_on(me: PyNode) -> tuple[StreamServer, str, bytes]:
    """Our STREAM server, on ``me``, taking any amount; and one destination and secret for a JS client."""
    server = StreamServer(me.address, me.send_prepare, asset_code=me.asset_code, asset_scale=me.asset_scale,
                          config=ConnectionConfig(default_receive_max=UINT64_MAX))
    me.handler = server.handle_prepare
    destination, secret = server.generate_address_and_secret()
    return server, destination, secret


@pytest.fixture(params=["js-router", "moneyd-router"])
async def peer(request: pytest.FixtureRequest, node: NodeRunner, tmp_path: Path) -> AsyncIterator[tuple[NodeProcess, int]]:
    """The JS STREAM peers, on a JS mini-accounts router or on our own router (moneyd local)."""
    if request.param == "js-router":
        port = free_port()
        p = node.start("stream-peer.js", str(port))
        await p.event("ready")
        yield p, port
        return
    router = await start_router(tmp_path)
    try:
        port = router.server.port
        p = node.start("stream-peer.js", str(port), "XRP", "9", "external", env={"DEBUG": os.environ.get("STREAM_DEBUG", "")})
        await p.event("ready")
        yield p, port
    finally:
        await router.stop()
        router.store.close()


async def test_our_client_to_js_server(peer: tuple[NodeProcess, int]) -> None:
    p, port = peer
    p.send({"cmd": "server"})
    info = await p.event("server")
    me = await py_node(port, "pyclient")
    assert me.address.endswith(".pyclient")
    client = client_of(me, info, ConnectionConfig(default_receive_max=UINT64_MAX))

    # money, us -> JS
    result = await client.send_money(100_000, timeout=30)
    assert result.ok and result.sent == 100_000 and result.delivered == 100_000, result
    await js_event(p, "server_money", lambda e: e["total"] == "100000")

    # data both ways: JS echoes what it reads
    stream = client.open_stream()
    await stream.write(b"hello from python")
    got = await js_event(p, "server_data", lambda e: e["stream"] == stream.id)
    assert bytes.fromhex(got["data"]) == b"hello from python"
    echo = b""
    while len(echo) < len(b"echo:hello from python"):
        echo += await asyncio.wait_for(stream.read(), 10)
    assert echo == b"echo:hello from python"

    # money, JS -> us, on a stream the JS server opens
    p.send({"cmd": "server_send", "amount": "4321"})
    await js_event(p, "server_sent")
    assert client.connection.total_received == 4321

    # closing one stream: the JS side sees it end, the connection stays up
    stream.close()
    await js_event(p, "server_stream_end", lambda e: e["stream"] == stream.id)
    await asyncio.wait_for(stream.wait_closed(), 10)
    assert not client.closed

    # close from our side
    await client.close(timeout=10)
    assert client.close_event is not None and client.close_event.ok and not client.close_event.by_remote
    await js_event(p, "server_close")
    await me.btp.close()


async def test_js_server_closes_our_client(peer: tuple[NodeProcess, int]) -> None:
    p, port = peer
    p.send({"cmd": "server"})
    info = await p.event("server")
    me = await py_node(port, "pyclient2")
    client = client_of(me, info)
    assert (await client.send_money(10, timeout=20)).ok
    await js_event(p, "server_connection")
    p.send({"cmd": "server_end"})
    await asyncio.wait_for(client.wait_closed(), 20)
    assert client.close_event is not None and client.close_event.by_remote and client.close_event.ok

    # A JS connection destroyed with an error: our client learns the error.
    p.send({"cmd": "server"})
    info = await js_event(p, "server", lambda e: e["destination"] != info["destination"])
    client = client_of(me, info)
    assert (await client.send_money(10, timeout=20)).ok
    p.send({"cmd": "server_destroy", "message": "shop closed"})
    await asyncio.wait_for(client.wait_closed(), 20)
    assert client.close_event is not None and client.close_event.by_remote
    assert not client.close_event.ok and "shop closed" in client.close_event.message
    await me.btp.close()


async def test_js_client_to_our_server(peer: tuple[NodeProcess, int]) -> None:
    p, port = peer
    me = await py_node(port, "pyserver")
    server, destination, secret = server_on(me)
    p.send({"cmd": "client", "destination": destination, "secret": secret.hex(), "amount": "250000",
            "data": b"hi from js".hex()})
    sent = await p.event("client_sent", timeout=30)
    assert sent["totalSent"] == "250000" and sent["totalDelivered"] == "250000"
    conn = await asyncio.wait_for(server.accept(), 5)
    assert conn.connection.total_received == 250_000
    assert (conn.connection.destination_account or "").endswith(".jsclient")

    # data JS -> us, and us -> JS on the same stream (the JS client reports and echoes it)
    stream = await asyncio.wait_for(conn.accept_stream(), 5)
    assert stream.id == 1 and stream.received == 250_000
    assert await asyncio.wait_for(stream.read(), 10) == b"hi from js"
    await stream.write(b"no-echo")
    got = await js_event(p, "client_data")
    assert bytes.fromhex(got["data"]) == b"no-echo"

    # money us -> JS on a stream our server opens (our server probes the JS client first)
    back = conn.open_stream()
    assert back.id == 2
    await asyncio.wait_for(back.send(777), 30)
    await js_event(p, "client_money", lambda e: e["total"] == "777")

    # the JS client ends the connection
    p.send({"cmd": "client_end"})
    await asyncio.wait_for(conn.wait_closed(), 20)
    assert conn.close_event is not None and conn.close_event.by_remote and conn.close_event.ok
    await server.close()
    await me.btp.close()


async def test_our_server_closes_a_js_client(peer: tuple[NodeProcess, int]) -> None:
    p, port = peer
    me = await py_node(port, "pyserver2")
    server, destination, secret = server_on(me)
    p.send({"cmd": "client", "destination": destination, "secret": secret.hex(), "amount": "1000"})
    await p.event("client_sent", timeout=30)
    conn = await asyncio.wait_for(server.accept(), 5)
    await conn.close(timeout=10)
    assert conn.close_event is not None and conn.close_event.ok
    await js_event(p, "client_close")
    await me.btp.close()


async def test_ten_thousand_packet_payment_to_js_server(peer: tuple[NodeProcess, int]) -> None:
    p, port = peer
    p.send({"cmd": "server"})
    info = await p.event("server")
    me = await py_node(port, "pybulk")
    client = client_of(me, info, ConnectionConfig(max_packet_amount=1000))
    result = await client.send_money(10_000_000, timeout=300)
    assert result.ok and result.delivered == 10_000_000 and result.packets == 10_000, result
    await js_event(p, "server_money", lambda e: e["total"] == "10000000", timeout=30)
    print(f"\n10,000-packet STREAM payment, our sender -> JS server: "
          f"{result.packets / result.seconds:.0f} packets/s ({result.seconds:.2f} s)")
    await client.close(timeout=10)
    await me.btp.close()


async def test_cross_currency_through_a_js_connector(node: NodeRunner) -> None:
    """A real ilp-connector (XRP scale 6 -> USD scale 4, spread 0.5%, max packet 100000): probing finds the rate
    and the maximum packet amount, money arrives converted, and a minimum rate above the path's is refused."""
    xrp_port, usd_port = free_port(), free_port()
    connector = node.start("stream-connector.js", str(xrp_port), str(usd_port), "0.005", "100000")
    await connector.event("ready", timeout=60)
    p = node.start("stream-peer.js", str(usd_port), "USD", "4", "external")
    await p.event("ready")
    p.send({"cmd": "server"})
    info = await p.event("server", timeout=30)
    me = await py_node(xrp_port, "payer")
    assert (me.asset_code, me.asset_scale) == ("XRP", 6)
    client = client_of(me, info)
    rate = await client.connect(timeout=30)
    assert abs(float(rate) - 0.00995) < 0.00001, rate
    result = await client.send_money(2_000_000, timeout=60)  # 2 XRP
    assert result.ok and result.sent == 2_000_000, result
    print(f"\ncross-currency: rate {float(rate):.6g}, {result.packets} packets, delivered {result.delivered}")
    assert result.packets >= 20  # at most 100000 per packet: learned from the connector's F08
    assert 19_890 <= result.delivered <= 19_900  # 2 XRP x 0.01 x 0.995 = 1.99 USD, less rounding per packet
    got = await js_event(p, "server_money", lambda e: int(e["total"]) == result.delivered, timeout=30)
    assert int(got["total"]) == result.delivered
    assert client.connection.remote_asset_code == "USD" and client.connection.remote_asset_scale == 4
    await client.close(timeout=10)

    # The sender refuses a path whose rate is below its minimum, before any money moves.
    p.send({"cmd": "server"})
    info2 = await js_event(p, "server", lambda e: e["destination"] != info["destination"])
    strict = client_of(me, info2, ConnectionConfig(min_exchange_rate=Fraction(1, 100)))
    refused = await strict.send_money(1_000_000, timeout=30)
    assert not refused.ok and refused.sent == 0
    assert "below the minimum acceptable" in (refused.error or "")
    await strict.aclose()
    await me.btp.close()
