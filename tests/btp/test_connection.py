"""BtpConnection in memory, against a scripted peer: no socket, no WebSocket handshake, no JS. The peer reads and
writes raw BTP frames, so each test says exactly what crosses the wire: answers matched to requests by request id
whatever their order (and stray or late answers dropped), deadlines, Error frames both ways, malformed frames, and
frames held until a server has authenticated its peer. (test_transport.py runs the same layer over real sockets.)"""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime

import pytest

from moneyd.btp.connection import BtpConnection, BtpLimits, BtpPeerError, ConnectionClosed, RequestRefused
from moneyd.wire import btp
from moneyd.wire.errors import CodecError


class Wire:
    """One end of an in-memory WebSocket with the part of websockets' asyncio API that BtpConnection uses (it wraps
    such a connection in its AsyncioLink): iterate to read, ``send``, ``close``."""

    remote_address = ("memory", 0)
    transport = None

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[bytes | str | None] = asyncio.Queue()
        self.other: Wire | None = None
        self.closed = False
        self.close_code: int | None = None
        self.delivered = 0  # messages the other end sent to this one

    def __aiter__(self) -> Wire:
        return self

    async def __anext__(self) -> bytes | str:
        item = await self.inbox.get()
        if item is None:
            raise StopAsyncIteration
        return item

    async def send(self, data: bytes | str) -> None:
        if self.closed:
            raise ConnectionError("closed")
        assert self.other is not None
        self.other.delivered += 1
        self.other.inbox.put_nowait(data)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        for end in (self, self.other):
            if end is not None and not end.closed:
                end.closed, end.close_code = True, code
                end.inbox.put_nowait(None)


class Peer:
    """The far end, scripted frame by frame."""

    def __init__(self) -> None:
        self.wire, self.ours = Wire(), Wire()
        self.wire.other, self.ours.other = self.ours, self.wire
        self.taken = 0

    async def read(self) -> btp.Frame:
        raw = await asyncio.wait_for(anext(self.wire), 2)
        assert isinstance(raw, bytes)
        self.taken += 1
        return btp.decode_frame(raw)

    def write(self, frame: btp.Frame | bytes) -> None:
        self.ours.inbox.put_nowait(frame if isinstance(frame, bytes) else btp.encode_frame(frame))

    def nothing_sent(self) -> bool:
        """Our connection sent nothing the peer has not read yet."""
        return self.wire.delivered == self.taken


def pd(name: str, data: bytes = b"") -> tuple[btp.ProtocolData, ...]:
    return (btp.ProtocolData.octets(name, data),)


def error(request_id: int, code: str, name: str, text: str) -> btp.Error:
    return btp.Error(request_id, code, name, datetime.now(UTC), text.encode())


async def settle() -> None:
    """Let the in-memory reader and writer tasks move what is queued."""
    for _ in range(10):
        await asyncio.sleep(0)


async def test_answers_are_matched_by_request_id_whatever_their_order() -> None:
    peer = Peer()
    conn = BtpConnection(peer.ours)
    asks = [asyncio.create_task(conn.request(pd("q", bytes((i,))), timeout=5)) for i in range(3)]
    frames = [await peer.read() for _ in range(3)]
    assert all(isinstance(f, btp.Message) for f in frames)
    ids = [f.request_id for f in frames]
    assert [(b - a) & 0xFFFFFFFF for a, b in itertools.pairwise(ids)] == [1, 1]  # fresh ids, in order
    peer.write(btp.Response(max(ids) + 1000, pd("stray")))  # an answer to nothing we asked: dropped
    for f in reversed(frames):  # the first request is answered last
        peer.write(btp.Response(f.request_id, pd("echo", f.protocol_data[0].data)))
    peer.write(btp.Response(frames[0].request_id, pd("again")))  # a second answer to the same request: dropped
    answers = await asyncio.gather(*asks)
    assert [a[0].data for a in answers] == [b"\x00", b"\x01", b"\x02"]
    assert not conn._pending
    # The connection goes on as before.
    ask = asyncio.create_task(conn.request(pd("q", b"next"), timeout=5))
    f = await peer.read()
    peer.write(btp.Response(f.request_id, pd("echo", b"next")))
    assert (await ask)[0].data == b"next"


async def test_a_request_fails_at_its_deadline_and_its_late_answer_is_dropped() -> None:
    peer = Peer()
    conn = BtpConnection(peer.ours)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        await conn.request(pd("q"), timeout=0.2)
    assert loop.time() - started >= 0.2
    late = await peer.read()
    assert not conn._pending  # nothing is kept for it
    peer.write(btp.Response(late.request_id, pd("late")))
    ask = asyncio.create_task(conn.request(pd("q", b"2"), timeout=5))
    f = await peer.read()
    peer.write(btp.Response(f.request_id, pd("echo", b"2")))
    assert (await ask)[0].data == b"2"  # the late answer was not taken for this one


async def test_the_peers_error_frames_and_wrong_answers_are_raised() -> None:
    peer = Peer()
    conn = BtpConnection(peer.ours)
    ask = asyncio.create_task(conn.request(pd("q"), timeout=5))
    f = await peer.read()
    peer.write(error(f.request_id, "F99", "ApplicationError", "no thanks"))
    with pytest.raises(BtpPeerError, match="BTP error F99 ApplicationError: no thanks") as raised:
        await ask
    assert raised.value.frame.code == "F99"
    # A Response with no ilp entry to an ILP request is a codec error, not a reply.
    ask_ilp = asyncio.create_task(conn.request_ilp(b"\x0c\x01\x00", timeout=5))
    f = await peer.read()
    assert isinstance(f, btp.Message) and btp.find(f.protocol_data, "ilp") is not None
    peer.write(btp.Response(f.request_id, pd("other")))
    with pytest.raises(CodecError, match="no ilp packet"):
        await ask_ilp


async def test_requests_from_the_peer_get_their_answer_under_their_own_id() -> None:
    seen: list[btp.Message | btp.Transfer] = []

    raises = {"refuse": RequestRefused("F99", "ApplicationError", "no thanks"), "invalid": ValueError("bad field"),
              "bug": KeyError("oops")}

    async def handler(frame: btp.Message | btp.Transfer) -> list[btp.ProtocolData]:
        seen.append(frame)
        what = frame.protocol_data[0].protocol_name if frame.protocol_data else ""
        if what in raises:
            raise raises[what]
        if what == "wait":
            await asyncio.sleep(0.01)
        return list(pd("echo", what.encode()))

    peer = Peer()
    BtpConnection(peer.ours, handler)
    peer.write(btp.Message(7, pd("hello")))
    assert await peer.read() == btp.Response(7, pd("echo", b"hello"))
    peer.write(btp.Message(8, pd("wait")))  # a handler that waits is answered when it is done
    assert await peer.read() == btp.Response(8, pd("echo", b"wait"))
    peer.write(btp.Transfer(9, 1234, pd("money")))
    assert await peer.read() == btp.Response(9, pd("echo", b"money"))
    assert isinstance(seen[-1], btp.Transfer) and seen[-1].amount == 1234
    for rid, what, code, name, text in [
        (10, "refuse", "F99", "ApplicationError", "no thanks"),
        (11, "invalid", "F01", "InvalidFieldsError", "bad field"),
        (12, "bug", "T00", "UnreachableError", "internal error: KeyError"),
    ]:
        peer.write(btp.Message(rid, pd(what)))
        answer = await peer.read()
        assert isinstance(answer, btp.Error), answer
        assert (answer.request_id, answer.code, answer.name, answer.data.decode()) == (rid, code, name, text)


async def test_with_no_handler_every_request_is_refused() -> None:
    peer = Peer()
    BtpConnection(peer.ours)
    peer.write(btp.Message(5, pd("hello")))
    answer = await peer.read()
    assert isinstance(answer, btp.Error)
    assert (answer.request_id, answer.code, answer.name) == (5, "F00", "NotAcceptedError")


async def test_malformed_frames_get_f01_until_the_budget_is_spent_then_the_connection_closes() -> None:
    peer = Peer()
    conn = BtpConnection(peer.ours, limits=BtpLimits(malformed_burst=2, malformed_per_second=0.0))
    for rid in (21, 22):
        peer.write(b"\x06" + rid.to_bytes(4, "big") + b"\x05junk")  # a body shorter than its length
        answer = await peer.read()
        assert isinstance(answer, btp.Error)
        assert (answer.request_id, answer.code, answer.name) == (rid, "F01", "InvalidFieldsError")
    peer.write(b"\x06" + (23).to_bytes(4, "big") + b"\x05junk")
    await asyncio.wait_for(conn.closed.wait(), 2)
    assert peer.wire.close_code == 1008
    assert peer.nothing_sent()  # no third F01: the connection is gone


async def test_closing_fails_what_still_waits_at_once() -> None:
    peer = Peer()
    conn = BtpConnection(peer.ours)
    ask = asyncio.create_task(conn.request(pd("q"), timeout=30))
    await peer.read()
    await peer.wire.close()  # the peer hangs up
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ask, 2)
    with pytest.raises(ConnectionClosed):
        await conn.request(pd("q"), timeout=5)


async def test_a_server_holds_frames_until_it_has_authenticated_its_peer() -> None:
    async def handler(frame: btp.Message | btp.Transfer) -> list[btp.ProtocolData]:
        return list(pd("served"))

    peer = Peer()
    conn = BtpConnection(peer.ours, handler, hold=True)
    auth = btp.Message(1, pd("auth") + pd("auth_token", b"secret"))
    peer.write(auth)
    peer.write(btp.Message(2, pd("early")))  # sent before the auth was answered
    assert await conn.recv() == btp.encode_frame(auth)
    await settle()
    assert peer.nothing_sent()  # the early request waits: its sender is not authenticated yet
    conn.send_raw(btp.encode_frame(btp.Response(1, ())))
    conn.serve()
    assert await peer.read() == btp.Response(1, ())
    assert await peer.read() == btp.Response(2, pd("served"))
