"""The BTP connection layer on its own, both roles over real loopback sockets (no JS, no router): request
correlation, timeouts, error frames, handlers without tasks, and the limits that keep one peer from costing us
unbounded memory or time."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed as WsClosed

from moneyd.btp.connection import (
    DEFAULT_BTP_LIMITS,
    BtpConnection,
    BtpLimits,
    BtpPeerError,
    ConnectionClosed,
    RequestHandler,
    RequestRefused,
    ilp_entry,
    ilp_frame,
    open_link,
)
from moneyd.btp.transport import DEFAULT_LIMITS, LinkLimits, WsLink, server_protocol
from moneyd.wire import btp


@dataclass
class Server:
    port: int
    conns: list[BtpConnection] = field(default_factory=list)
    opened: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


@pytest.fixture
async def start_server() -> AsyncIterator[Callable[..., object]]:
    servers: list[asyncio.Server] = []

    async def start(handler: RequestHandler | None, limits: LinkLimits = DEFAULT_LIMITS, btp_limits: BtpLimits = DEFAULT_BTP_LIMITS) -> Server:
        holder: list[Server] = []

        def on_open(link: WsLink) -> None:
            holder[0].conns.append(BtpConnection(link, handler, "test-server", limits=btp_limits))
            holder[0].opened.set()

        def make() -> WsLink:
            return WsLink(server_protocol(limits.max_message), label="test-server", limits=limits, on_open=on_open)

        srv = await asyncio.get_running_loop().create_server(make, "127.0.0.1", 0)
        servers.append(srv)
        holder.append(Server(srv.sockets[0].getsockname()[1]))
        return holder[0]

    yield start
    for srv in servers:
        srv.close()


async def client(server: Server, handler: RequestHandler | None = None) -> BtpConnection:
    link = await open_link(server.url, timeout=5)
    await asyncio.wait_for(server.opened.wait(), 5)
    return BtpConnection(link, handler, "test-client")


async def stuck_client(start_server: Callable[..., Any], limits: LinkLimits) -> tuple[BtpConnection, BtpConnection]:
    """A client that reads nothing, of a server with these limits, and the server's side of it. Keep the client
    referenced for as long as the test runs."""
    server = await start_server(None, limits)
    conn = await client(server)
    assert conn.link.transport is not None
    conn.link.transport.pause_reading()
    return conn, server.conns[0]


def pd(name: str, data: bytes) -> list[btp.ProtocolData]:
    return [btp.ProtocolData.octets(name, data)]


async def test_requests_are_matched_to_their_answers_whatever_the_order(start_server) -> None:  # type: ignore[no-untyped-def]
    async def slow_echo(frame: btp.Message | btp.Transfer) -> list[btp.ProtocolData]:
        delay = frame.protocol_data[0].data[0] / 100
        await asyncio.sleep(delay)
        return pd("echo", frame.protocol_data[0].data)

    server = await start_server(slow_echo)
    conn = await client(server)
    # The first request is answered last.
    answers = await asyncio.gather(*(conn.request(pd("q", bytes((d,))), timeout=5) for d in (30, 20, 10, 0)))
    assert [a[0].data for a in answers] == [bytes((d,)) for d in (30, 20, 10, 0)]
    assert not conn._pending
    await conn.close()


async def test_a_handler_that_does_not_wait_gets_no_task(start_server) -> None:  # type: ignore[no-untyped-def]
    seen: list[object] = []

    async def quick(frame: btp.Message | btp.Transfer) -> list[btp.ProtocolData]:
        seen.append(asyncio.current_task())
        return pd("ilp", b"fast")

    async def waits(frame: btp.Message | btp.Transfer) -> list[btp.ProtocolData]:
        await asyncio.sleep(0)
        seen.append(asyncio.current_task())
        return pd("ilp", b"slow")

    server = await start_server(quick)
    conn = await client(server)
    assert await conn.request(pd("x", b"")) == tuple(pd("ilp", b"fast"))
    assert seen == [None]  # ran in the callback that read the frame
    server.conns[0].handler = waits
    assert await conn.request(pd("x", b"")) == tuple(pd("ilp", b"slow"))
    assert isinstance(seen[1], asyncio.Task)  # once it waited, it went on in a task
    assert server.conns[0].serving == 0
    await conn.close()


async def test_timeouts_and_error_frames(start_server) -> None:  # type: ignore[no-untyped-def]
    async def handler(frame: btp.Message | btp.Transfer) -> list[btp.ProtocolData]:
        what = frame.protocol_data[0].protocol_name
        if what == "never":
            await asyncio.sleep(3600)
        if what == "refuse":
            raise RequestRefused("F99", "ApplicationError", "no thanks")
        if what == "invalid":
            raise ValueError("bad field")
        if what == "bug":
            raise KeyError("oops")
        if what == "junk":
            return None  # type: ignore[return-value]
        return []

    server = await start_server(handler)
    conn = await client(server)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await conn.request(pd("never", b""), timeout=0.3)
    assert 0.25 < time.monotonic() - started < 2
    with pytest.raises(BtpPeerError, match="F99 ApplicationError: no thanks"):
        await conn.request(pd("refuse", b""))
    with pytest.raises(BtpPeerError, match="F01 InvalidFieldsError: bad field"):
        await conn.request(pd("invalid", b""))
    with pytest.raises(BtpPeerError, match="T00 UnreachableError: internal error: KeyError"):
        await conn.request(pd("bug", b""))
    with pytest.raises(BtpPeerError, match="T00 UnreachableError: internal error: TypeError"):
        await conn.request(pd("junk", b""))
    assert not conn._pending
    # Closing fails what is still waiting, at once.
    pending = asyncio.create_task(conn.request(pd("never", b""), timeout=30))
    await asyncio.sleep(0.05)
    await server.conns[0].close()
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(pending, 5)
    with pytest.raises(ConnectionClosed):
        await conn.request(pd("x", b""))


def test_the_ilp_fast_path_reads_and_writes_what_the_codec_does() -> None:
    packet = os.urandom(300)
    frame = ilp_frame(btp.TYPE_MESSAGE, 0xDEADBEEF, packet)
    assert frame == btp.encode_frame(btp.Message(0xDEADBEEF, tuple(pd("ilp", packet))))
    assert ilp_entry(frame) == packet
    assert ilp_entry(btp.encode_frame(btp.Response(1, tuple(pd("ilp", b"x"))))) == b"x"
    # Any other shape is left to the full decoder.
    two = btp.encode_frame(btp.Response(1, (*pd("ilp", b"x"), *pd("other", b"y"))))
    assert ilp_entry(two) is None
    assert ilp_entry(frame[:-1]) is None
    assert ilp_entry(b"\x01\x00\x00\x00\x01\x85") is None


async def test_malformed_frames_get_f01_until_the_budget_is_spent_then_disconnect(start_server) -> None:  # type: ignore[no-untyped-def]
    server = await start_server(None, btp_limits=BtpLimits(malformed_burst=5, malformed_per_second=0.0))
    async with ws_connect(server.url) as ws:
        answers = []
        for i in range(10):
            await ws.send(b"\x06" + i.to_bytes(4, "big") + b"\x05garbage")
        with pytest.raises(WsClosed) as closed:
            while True:
                answers.append(btp.decode_frame(await asyncio.wait_for(ws.recv(), 5)))  # type: ignore[arg-type]
    assert [(a.request_id, a.code) for a in answers if isinstance(a, btp.Error)] == [(i, "F01") for i in range(5)]
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_a_peer_that_stops_reading_is_dropped_when_its_buffer_passes_the_cap(start_server) -> None:  # type: ignore[no-untyped-def]
    limits = LinkLimits(high_water=64 << 10, max_buffered=1 << 20, stall_timeout=60)
    _conn, srv = await stuck_client(start_server, limits)  # the client stops reading
    # A request to the stuck peer still fails at its deadline: its timer started before the write.
    started = time.monotonic()
    asking = asyncio.create_task(srv.request(pd("x", b""), timeout=0.5))
    chunk = bytes(60 << 10)
    sent = 0
    while not srv.closed.is_set() and sent < 400:  # at most 24 MB, whatever the kernel buffers hold
        srv.send_raw(chunk)
        sent += 1
        await asyncio.sleep(0)
    await asyncio.wait_for(srv.closed.wait(), 5)
    with pytest.raises((TimeoutError, ConnectionClosed)):
        await asyncio.wait_for(asking, 5)
    assert time.monotonic() - started < 3
    assert srv.link.buffered == 0


async def test_a_peer_that_reads_nothing_past_the_stall_deadline_is_dropped(start_server) -> None:  # type: ignore[no-untyped-def]
    limits = LinkLimits(high_water=16 << 10, max_buffered=1 << 30, stall_timeout=0.5, ping_interval=60)
    _conn, srv = await stuck_client(start_server, limits)
    for _ in range(200):  # 12 MB: more than loopback buffers take
        srv.send_raw(bytes(60 << 10))
        await asyncio.sleep(0)
    started = time.monotonic()
    await asyncio.wait_for(srv.closed.wait(), 5)
    assert time.monotonic() - started < 2


async def test_keepalive_finds_a_peer_that_stopped_reading(start_server) -> None:  # type: ignore[no-untyped-def]
    server = await start_server(None, LinkLimits(ping_interval=0.3))
    conn = await client(server)
    srv = server.conns[0]
    await asyncio.sleep(0.8)
    assert not srv.closed.is_set()  # pongs come back while the client reads
    assert conn.link.transport is not None
    conn.link.transport.pause_reading()
    started = time.monotonic()
    await asyncio.wait_for(srv.closed.wait(), 3)
    assert time.monotonic() - started < 1.5


async def test_requests_served_at_once_are_capped_by_pausing_reading(start_server) -> None:  # type: ignore[no-untyped-def]
    go = asyncio.Event()
    running = 0
    most = 0

    async def gated(frame: btp.Message | btp.Transfer) -> list[btp.ProtocolData]:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await go.wait()
        running -= 1
        return pd("ok", frame.protocol_data[0].data)

    server = await start_server(gated, btp_limits=BtpLimits(max_serving=3, max_backlog=6))
    conn = await client(server)
    asks = [asyncio.create_task(conn.request(pd("n", bytes((i,))), timeout=10)) for i in range(20)]
    await asyncio.sleep(0.3)
    srv = server.conns[0]
    assert (running, srv.serving) == (3, 3)
    assert srv.link.reading_paused
    go.set()
    answers = await asyncio.wait_for(asyncio.gather(*asks), 5)
    assert [a[0].data for a in answers] == [bytes((i,)) for i in range(20)]
    assert most == 3 and not srv.link.reading_paused


async def test_bad_input_leaves_no_traceback(start_server, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    server = await start_server(None, btp_limits=BtpLimits(malformed_burst=3, malformed_per_second=0.0))
    for junk in (b"GET / HTTP/1.1\r\n\r\n", b"\xff\xfe garbage\r\n\r\n", b"GET / HTTP/1.1\r\nOrigin: a\r\nOrigin: b\r\n\r\n"):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(junk)
        assert await asyncio.wait_for(reader.read(), 5) is not None  # the server answers or closes; never hangs
        writer.close()
    async with ws_connect(server.url) as ws:
        for _ in range(10):
            await ws.send(b"\x07\x00")
        await ws.send("text")
        with pytest.raises(WsClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 5)
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records if r.exc_info]


async def test_a_connection_that_never_finishes_its_handshake_is_dropped(start_server) -> None:  # type: ignore[no-untyped-def]
    server = await start_server(None, LinkLimits(handshake_timeout=0.3))
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: slow")  # and nothing more
    started = time.monotonic()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    assert time.monotonic() - started < 2
    writer.close()


async def test_the_raw_ilp_handler_gets_the_bytes_and_other_requests_the_frame(start_server) -> None:  # type: ignore[no-untyped-def]
    async def frames(frame: btp.Message | btp.Transfer) -> list[btp.ProtocolData]:
        return pd("other", b"frame handler")

    async def raw(packet: bytes) -> bytes:
        await asyncio.sleep(0)
        return packet[::-1]

    server = await start_server(frames)
    conn = await client(server)
    server.conns[0].ilp_handler = raw
    assert await conn.request_ilp(b"abc", timeout=5) == b"cba"
    # Only a Message whose one entry is ilp takes the raw path.
    assert await conn.request((*pd("ilp", b"abc"), *pd("x", b""))) == tuple(pd("other", b"frame handler"))
    assert await conn.transfer(5) == tuple(pd("other", b"frame handler"))
    await conn.close()


async def test_keepalive_does_not_wait_behind_a_blocked_send(start_server) -> None:  # type: ignore[no-untyped-def]
    # Unsent bytes far above the high-water mark, no stall deadline or cap in reach: the ping still goes out on
    # time, and the missing pong ends the connection.
    limits = LinkLimits(high_water=16 << 10, max_buffered=1 << 30, stall_timeout=60, ping_interval=0.4)
    _conn, srv = await stuck_client(start_server, limits)
    for _ in range(150):
        srv.send_raw(bytes(60 << 10))
    await asyncio.sleep(0)
    assert srv.link.buffered > 1 << 20
    started = time.monotonic()
    await asyncio.wait_for(srv.closed.wait(), 5)
    assert time.monotonic() - started < 2


class _FakeTransport(asyncio.Transport):
    """Enough of a transport to drive a WsLink in memory."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closed = False

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 1) if name == "peername" else default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def writelines(self, data: Iterable[bytes | bytearray | memoryview]) -> None:
        self.written.extend(bytes(d) for d in data)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


UPGRADE = (b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def _frame(opcode: int, fin: bool, payload: bytes) -> bytes:
    """A masked client frame, serialized by hand so that invalid ones (fragmented control frames...) can be made."""
    mask = b"\x0f\x1e\x2d\x3c"
    assert len(payload) < 126
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes(((0x80 if fin else 0) | opcode, 0x80 | len(payload))) + mask + masked


_btp_ish = st.one_of(
    st.binary(max_size=40),
    st.builds(lambda kind, rest: bytes((kind,)) + rest, st.sampled_from([1, 2, 6, 7, 9]), st.binary(max_size=40)),
    st.just(btp.encode_frame(btp.Message(7, (btp.ProtocolData.octets("ilp", b"\x0c\x01\x00"),)))),
)
_frames = st.lists(
    st.builds(_frame, st.sampled_from([0, 1, 2, 8, 9, 10]), st.booleans(), _btp_ish), max_size=10
).map(b"".join)


@settings(max_examples=300)
@given(st.one_of(st.lists(st.binary(max_size=64), max_size=12), _frames.flatmap(
    lambda data: st.lists(st.integers(0, max(len(data), 1)), max_size=4).map(
        lambda cuts: [data[a:b] for a, b in zip([0, *sorted(cuts)], [*sorted(cuts), len(data)], strict=True)])
)), st.booleans())
def test_any_bytes_after_the_handshake_never_raise_or_log_a_traceback(chunks: list[bytes], masked_frame_first: bool) -> None:
    async def run() -> list[logging.LogRecord]:
        records: list[logging.LogRecord] = []
        handler = logging.Handler()
        handler.emit = records.append  # type: ignore[method-assign]
        logging.getLogger("moneyd").addHandler(handler)
        try:
            served: list[bytes] = []

            async def echo(frame: btp.Message | btp.Transfer) -> list[btp.ProtocolData]:
                return []

            def on_open(link: WsLink) -> None:
                conn = BtpConnection(link, echo, "fuzz", limits=BtpLimits(malformed_burst=3, malformed_per_second=0.0))
                served.append(b"")
                assert conn is not None

            link = WsLink(server_protocol(1 << 16), on_open=on_open)
            transport = _FakeTransport()
            link.connection_made(transport)
            link.data_received(UPGRADE)
            await asyncio.sleep(0)  # writes leave once per loop iteration
            assert served and transport.written[0].startswith(b"HTTP/1.1 101")
            if masked_frame_first:  # one valid masked binary frame holding a BTP Message
                payload = btp.encode_frame(btp.Message(1, ()))
                link.data_received(bytes((0x82, 0x80 | len(payload))) + bytes(4) + payload)
            for chunk in chunks:
                if transport.closed:
                    break
                link.data_received(chunk)
                await asyncio.sleep(0)
            await asyncio.sleep(0)
            link.connection_lost(None)
            await asyncio.sleep(0)
            return records
        finally:
            logging.getLogger("moneyd").removeHandler(handler)

    records = asyncio.run(run())
    assert not [r for r in records if r.exc_info or r.levelno >= logging.ERROR], [r.getMessage() for r in records]
