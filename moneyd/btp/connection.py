"""One BTP connection over a WebSocket, in either role.

It correlates requests with their Response/Error by requestId and turns a handler failure into a BTP Error frame.
ILP packets ride in the ``ilp`` protocolData entry, as every JS plugin does.

Cheap on the packet path: a request's handler is stepped at once, in the callback that read its frame, and only a
handler that really waits gets a task; sending is a plain call into the WebSocket link (``transport.WsLink``), which
writes everything queued in one loop iteration together. Each request's timer starts before its frame is queued, so
an answer that never comes fails at its deadline whatever the socket does.

Bounded per connection: requests served at once (beyond ``max_serving`` they queue, and when ``max_backlog`` are
queued reading pauses until some finish), frames held before the server has authenticated the peer, and malformed
frames (a small budget that refills slowly; a peer that spends it is disconnected). The link bounds unsent bytes and time (see ``transport.LinkLimits``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import CoroutineType
from typing import Any
from urllib.parse import unquote, urlsplit

from ..loglimit import RateLimitedLog
from ..wire import btp, ilp
from ..wire.btp import ContentType, ProtocolData
from ..wire.errors import CodecError
from .transport import CLIENT_LIMITS, AsyncioLink, Link, LinkLimits, WsLink, client_protocol

log = logging.getLogger(__name__)
limited = RateLimitedLog(log)

RequestHandler = Callable[[btp.Message | btp.Transfer], Awaitable[Sequence[ProtocolData]]]
# The raw fast path: the bytes of an incoming request's only ``ilp`` entry → the bytes of the ILP reply.
IlpHandler = Callable[[bytes], Awaitable[bytes]]


@dataclass(frozen=True, slots=True)
class BtpLimits:
    max_serving: int = 512  # requests being served at once; beyond it they wait in a backlog...
    max_backlog: int = 256  # ...and when that is full, reading pauses (answers to our own requests wait too)
    max_held: int = 16  # frames a server holds from a peer before it has authenticated
    malformed_burst: float = 20.0  # malformed frames answered with F01 before the peer is disconnected...
    malformed_per_second: float = 1.0  # ...a budget that refills at this rate


DEFAULT_BTP_LIMITS = BtpLimits()


class ConnectionClosed(Exception):
    """The connection closed before the answer came."""


class BtpPeerError(Exception):
    """The peer answered a request with a BTP Error frame."""

    def __init__(self, frame: btp.Error) -> None:
        self.frame = frame
        text = frame.data.decode("utf-8", "replace")
        super().__init__(f"BTP error {frame.code} {frame.name}: {text}")


class RequestRefused(Exception):
    """Raised by a request handler to answer with a BTP Error of this code and name."""

    def __init__(self, code: str, name: str, message: str) -> None:
        self.code, self.name, self.message = code, name, message
        super().__init__(f"{code} {name}: {message}")


def _expire(fut: asyncio.Future[bytes]) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError())
        _wake(fut)


# -- handlers resumed by hand, with no task ------------------------------------------------------------------------
#
# A handler that forwards a Prepare (the router) waits on exactly one thing: the answer to a request of ours on
# another BtpConnection. Giving it a task would cost a task, its first step and its wake-up, each a turn of the event
# loop. Instead the future of each request we await is registered here; a handler that suspends on one is resumed
# by whoever completes it (the answer's arrival, its deadline, the connection's end), at once. A handler that waits
# on anything else gets a task, as before.

_resumable: dict[asyncio.Future[bytes], _Driven | None] = {}


class _Driven:
    """A request handler suspended on one of our requests' futures, to be stepped by hand."""

    __slots__ = ("conn", "coro", "raw_ilp", "request_id")

    def __init__(self, conn: BtpConnection, coro: Coroutine[Any, Any, Any], request_id: int, raw_ilp: bool) -> None:
        self.conn, self.coro, self.request_id, self.raw_ilp = conn, coro, request_id, raw_ilp


def _wake(fut: asyncio.Future[bytes]) -> None:
    """``fut`` is done: step the handler suspended on it, if one is driven by hand."""
    driven = _resumable.get(fut)
    if driven is not None:
        _resumable[fut] = None
        driven.conn._advance(driven)


def error_frame(request_id: int, code: str, name: str, message: str) -> btp.Error:
    return btp.Error(request_id, code, name, datetime.now(UTC), message.encode("utf-8"))


# -- the one frame shape on the hot path, encoded and read without building objects ---------------------------------

_ILP_ENTRY = b"\x01\x01\x03ilp\x00"  # protocolData: count 1, name "ilp", content type 0 (octet stream)


def _length(n: int) -> bytes:
    """OER length determinant (RFC 30)."""
    if n < 0x80:
        return bytes((n,))
    size = (n.bit_length() + 7) // 8
    return bytes((0x80 | size,)) + n.to_bytes(size, "big")


def ilp_frame(kind: int, request_id: int, packet: bytes) -> bytes:
    """A BTP Message (6) or Response (1) whose only protocolData entry is ``ilp``: what ilp-plugin-btp sends."""
    body_len = len(_ILP_ENTRY) + len(packet) + len(_length(len(packet)))
    return b"".join((bytes((kind,)), request_id.to_bytes(4, "big"), _length(body_len), _ILP_ENTRY, _length(len(packet)), packet))


def _read_length(raw: bytes, pos: int) -> tuple[int, int]:
    b = raw[pos]
    if b < 0x80:
        return b, pos + 1
    size = b & 0x7F
    end = pos + 1 + size
    if size == 0 or size > 4 or end > len(raw):
        raise ValueError
    return int.from_bytes(raw[pos + 1 : end], "big"), end


def ilp_entry(raw: bytes) -> bytes | None:
    """The ``ilp`` bytes of a Message/Response frame that holds exactly that one entry; None for any other shape
    (the caller then decodes the frame in full)."""
    try:
        body_len, pos = _read_length(raw, 5)
        if pos + body_len != len(raw) or raw[pos : pos + 7] != _ILP_ENTRY:
            return None
        data_len, start = _read_length(raw, pos + 7)
    except (IndexError, ValueError):
        return None
    if start + data_len != len(raw):
        return None
    return raw[start:]


# -- running a handler without a task unless it waits ------------------------------------------------------------------


class _Resume:
    """Awaiting this continues a coroutine that was already stepped by hand and is suspended on ``yielded``: what
    ``yield from`` would do, so the task it runs in waits for the same future."""

    __slots__ = ("coro", "yielded")

    def __init__(self, coro: Coroutine[Any, Any, Any], yielded: Any) -> None:
        self.coro, self.yielded = coro, yielded

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, yielded = self.coro, self.yielded
        while True:
            try:
                sent = yield yielded
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as e:  # cancellation (or anything thrown in) goes to the handler
                try:
                    yielded = coro.throw(e)
                except StopIteration as stop:
                    return stop.value
                continue
            try:
                yielded = coro.send(sent)
            except StopIteration as stop:
                return stop.value


async def _awaiting(aw: Awaitable[Any]) -> Any:
    """A handler that returned an awaitable other than a coroutine."""
    return await aw


class _Bucket:
    __slots__ = ("at", "capacity", "level", "rate")

    def __init__(self, capacity: float, rate: float) -> None:
        self.capacity, self.rate, self.level, self.at = capacity, rate, capacity, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.at) * self.rate)
        self.at = now
        if self.level < 1.0:
            return False
        self.level -= 1.0
        return True


class BtpConnection:
    def __init__(
        self,
        link: Link | Any,
        handler: RequestHandler | None = None,
        label: str = "btp",
        *,
        limits: BtpLimits = DEFAULT_BTP_LIMITS,
        hold: bool = False,
    ) -> None:
        """``link``: a ``WsLink`` (the lean transport), or a connection from websockets' asyncio API, which gets
        wrapped. ``hold``: keep incoming frames for ``recv()`` (a server authenticating its peer) until ``serve()``."""
        self.link: Link = link if isinstance(link, WsLink | AsyncioLink) else AsyncioLink(link)
        self.handler = handler
        self.ilp_handler: IlpHandler | None = None
        self.label = label
        self.limits = limits
        self._loop = asyncio.get_running_loop()
        self._pending: dict[int, asyncio.Future[bytes]] = {}
        self._next_id = secrets.randbits(31)
        self._tasks: set[asyncio.Task[None]] = set()
        self._driven: set[_Driven] = set()  # handlers suspended on a request of ours, stepped by hand
        self.closed = asyncio.Event()
        self._holding = hold
        self._backlog: deque[bytes | None] = deque()  # None: a text message (BTP is binary)
        self._waiter: asyncio.Future[None] | None = None
        self._serving = 0
        self._malformed = _Bucket(limits.malformed_burst, limits.malformed_per_second)
        self.link.on_message = self._on_message
        self.link.on_text = self._on_text
        self.link.on_lost = self._shutdown
        if self.link.lost.done():
            self._shutdown()

    # -- sending ---------------------------------------------------------------------------------------------

    def _new_id(self) -> int:
        self._next_id = (self._next_id + 1) & 0xFFFFFFFF
        return self._next_id

    def send_raw(self, data: bytes) -> None:
        """Queue one WebSocket message as is (no BTP framing checked); dropped if the connection is closed."""
        self.link.send(data)

    async def _request_raw(self, make: Callable[[int], bytes], timeout: float) -> bytes:
        if self.closed.is_set():
            raise ConnectionClosed(f"{self.label}: connection is closed")
        request_id = self._new_id()
        fut: asyncio.Future[bytes] = self._loop.create_future()
        self._pending[request_id] = fut
        _resumable[fut] = None
        # The deadline runs from before the write: a peer that does not read cannot hold the answer back.
        timer = self._loop.call_later(timeout, _expire, fut)
        try:
            self.link.send(make(request_id))
            return await fut
        finally:
            timer.cancel()
            del self._pending[request_id]
            del _resumable[fut]

    async def request(self, protocol_data: Sequence[ProtocolData], timeout: float = 30.0) -> tuple[ProtocolData, ...]:
        """Send a Message and return the Response's protocolData; BtpPeerError if the peer answers with an Error."""
        pd = tuple(protocol_data)
        return _response_data(await self._request_raw(lambda rid: btp.encode_frame(btp.Message(rid, pd)), timeout))

    async def transfer(self, amount: int, protocol_data: Sequence[ProtocolData] = (), timeout: float = 30.0) -> tuple[ProtocolData, ...]:
        pd = tuple(protocol_data)
        return _response_data(await self._request_raw(lambda rid: btp.encode_frame(btp.Transfer(rid, amount, pd)), timeout))

    async def request_ilp(self, packet: bytes, timeout: float) -> bytes:
        """Send ILP packet bytes in a Message's ``ilp`` entry; return the ``ilp`` bytes of the Response.
        BtpPeerError if the peer answers with an Error, CodecError if the Response holds no ilp entry."""
        raw = await self._request_raw(lambda rid: ilp_frame(btp.TYPE_MESSAGE, rid, packet), timeout)
        data = ilp_entry(raw) if raw[0] == btp.TYPE_RESPONSE else None
        if data is not None:
            return data
        entry = btp.find(_response_data(raw), "ilp")
        if entry is None:
            raise CodecError("BTP Response to a Prepare carries no ilp packet")
        return entry.data

    async def send_prepare(self, prepare: ilp.Prepare, timeout: float | None = None) -> ilp.Reply:
        """Send an ILP Prepare and return its Fulfill or Reject."""
        if timeout is None:
            # Until the Prepare expires: after that no Fulfill can count, so TimeoutError means R00 to the caller.
            timeout = max(0.0, prepare.expires_at.timestamp() - time.time())
        return ilp.decode_reply(await self.request_ilp(ilp.encode_prepare(prepare), timeout))

    # -- receiving -------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Wait until the connection closes (frames are read by the link's callbacks, not by this coroutine).
        Cancelling it drops the connection."""
        try:
            await self.closed.wait()
        except asyncio.CancelledError:
            self.link.abort("reader cancelled")
            self._shutdown()
            raise

    async def recv(self) -> bytes | None:
        """The next frame held back (``hold=True``), as bytes; None for a text message. ConnectionClosed if the
        connection closes first."""
        while not self._backlog:
            if self.closed.is_set():
                raise ConnectionClosed(f"{self.label}: connection closed")
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._backlog.popleft()

    def serve(self) -> None:
        """Stop holding frames: serve what came in so far, then everything as it comes."""
        self._holding = False
        self._drain()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _on_text(self) -> None:
        if self._holding:
            self._hold(None)
        else:
            limited.warning("text", "%s: ignoring a text WebSocket message (BTP is binary)", self.label)

    def _hold(self, raw: bytes | None) -> None:
        if len(self._backlog) >= self.limits.max_held:
            limited.warning("held", "%s: too many frames before authentication; disconnected", self.label)
            self.link.abort("too many frames before authentication")
            return
        self._backlog.append(raw)
        self._wake()

    def _on_message(self, raw: bytes) -> None:
        kind = raw[0] if raw else 0
        if self._holding:
            self._hold(raw)
        elif kind == btp.TYPE_RESPONSE or kind == btp.TYPE_ERROR:
            fut = self._pending.get(int.from_bytes(raw[1:5], "big")) if len(raw) >= 5 else None
            if fut is not None and not fut.done():
                fut.set_result(raw)
                _wake(fut)
            else:
                limited.log(logging.DEBUG, "unknown-answer", "%s: answer to an unknown request", self.label)
        elif self._serving >= self.limits.max_serving or self._backlog:
            # At the cap: the request waits its turn; past the backlog's cap, stop reading from this peer.
            self._backlog.append(raw)
            if len(self._backlog) >= self.limits.max_backlog:
                self.link.pause_reading()
        else:
            self._dispatch(raw)

    def _drain(self) -> None:
        backlog = self._backlog
        while backlog and self._serving < self.limits.max_serving and not self._holding:
            raw = backlog.popleft()
            if raw is None:
                self._on_text()
            else:
                self._on_message(raw) if raw[:1] in (b"\x01", b"\x02") else self._dispatch(raw)
        if len(backlog) <= self.limits.max_backlog // 2:
            self.link.resume_reading()

    def _dispatch(self, raw: bytes) -> None:
        ilp_handler = self.ilp_handler
        if ilp_handler is not None and raw[:1] == b"\x06":  # a Message (an empty frame is malformed, below)
            packet = ilp_entry(raw)
            if packet is not None:
                self._run(ilp_handler(packet), int.from_bytes(raw[1:5], "big"), True)
                return
        try:
            frame = btp.decode_frame(raw)
        except CodecError as e:
            self._on_malformed(raw, e)
            return
        if not isinstance(frame, btp.Message | btp.Transfer):  # an answer: _on_message routed those already
            return
        if self.handler is None:
            self.link.send(btp.encode_frame(error_frame(frame.request_id, "F00", "NotAcceptedError", "no handler")))
            return
        self._run(self.handler(frame), frame.request_id, False)

    def _on_malformed(self, raw: bytes, e: CodecError) -> None:
        if not self._malformed.take():
            limited.warning("malformed-limit", "%s: too many malformed BTP frames; disconnected", self.label)
            self.link.close(1008, "too many malformed BTP frames")
            return
        limited.warning("malformed", "%s: malformed BTP frame (%s)", self.label, e)
        if len(raw) >= 5:
            rid = int.from_bytes(raw[1:5], "big")
            self.link.send(btp.encode_frame(error_frame(rid, "F01", "InvalidFieldsError", str(e)[:200])))

    def _run(self, aw: Awaitable[Any], request_id: int, raw_ilp: bool) -> None:
        """Step the handler now; only if it suspends does it get a task (which then continues the same coroutine)."""
        coro = aw if type(aw) is CoroutineType else _awaiting(aw)
        try:
            yielded = coro.send(None)
        except StopIteration as stop:
            self._answer(request_id, stop.value, raw_ilp)
            return
        except Exception as e:
            self._answer_error(request_id, e)
            return
        self._serving += 1
        self._suspended(coro, yielded, request_id, raw_ilp)

    def _suspended(self, coro: Coroutine[Any, Any, Any], yielded: Any, request_id: int, raw_ilp: bool) -> None:
        """A handler (counted in ``_serving``) waits on ``yielded``: resumed by hand if that is one of our requests'
        futures, else in a task."""
        if type(yielded) is asyncio.Future and yielded in _resumable and not yielded.done():
            yielded._asyncio_future_blocking = False  # what a task would reset before waiting on it
            driven = _Driven(self, coro, request_id, raw_ilp)
            _resumable[yielded] = driven
            self._driven.add(driven)
            return
        task = self._loop.create_task(self._finish(coro, yielded, request_id, raw_ilp))
        self._tasks.add(task)
        task.add_done_callback(self._served)

    def _advance(self, driven: _Driven) -> None:
        """Step a handler driven by hand, whose future is done."""
        self._driven.discard(driven)
        try:
            yielded = driven.coro.send(None)
        except StopIteration as stop:
            self._answer(driven.request_id, stop.value, driven.raw_ilp)
        except asyncio.CancelledError:
            pass  # only a future cancelled under it: the peer gets no answer, as for a cancelled task
        except Exception as e:
            self._answer_error(driven.request_id, e)
        else:
            self._suspended(driven.coro, yielded, driven.request_id, driven.raw_ilp)
            return
        self._release()

    async def _finish(self, coro: Coroutine[Any, Any, Any], yielded: Any, request_id: int, raw_ilp: bool) -> None:
        try:
            result = await _Resume(coro, yielded)
        except Exception as e:
            self._answer_error(request_id, e)
        else:
            self._answer(request_id, result, raw_ilp)

    def _served(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._release()

    def _release(self) -> None:
        self._serving -= 1
        if self._backlog and not self._holding:
            self._drain()

    def _answer(self, request_id: int, result: Any, raw_ilp: bool) -> None:
        try:
            if raw_ilp:
                data = ilp_frame(btp.TYPE_RESPONSE, request_id, result)
            else:
                pd = tuple(result)
                if len(pd) == 1 and pd[0].protocol_name == "ilp" and pd[0].content_type == 0:
                    data = ilp_frame(btp.TYPE_RESPONSE, request_id, pd[0].data)
                else:
                    data = btp.encode_frame(btp.Response(request_id, pd))
        except Exception as e:  # a handler returned something that is not protocolData: still answer the peer
            self._answer_error(request_id, e)
            return
        self.link.send(data)

    def _answer_error(self, request_id: int, e: Exception) -> None:
        if isinstance(e, RequestRefused):
            reply = error_frame(request_id, e.code, e.name, e.message)
        elif isinstance(e, CodecError | ValueError):
            reply = error_frame(request_id, "F01", "InvalidFieldsError", str(e))
        elif isinstance(e, ConnectionClosed):
            reply = error_frame(request_id, "T00", "UnreachableError", str(e))
        else:  # a handler bug must answer the peer, not kill the connection
            limited.error(f"handler-{type(e).__name__}", "%s: request handler failed", self.label, exc_info=True)
            reply = error_frame(request_id, "T00", "UnreachableError", f"internal error: {type(e).__name__}")
        try:
            data = btp.encode_frame(reply)
        except CodecError:  # a RequestRefused with a code that is not 3 ASCII characters: still answer
            data = btp.encode_frame(error_frame(request_id, "T00", "UnreachableError", "internal error"))
        self.link.send(data)

    def _shutdown(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionClosed(f"{self.label}: connection closed"))
                # Woken at the next turn, as a task would be: after those waiting for ``closed`` (the server drops
                # this connection from its app's sockets first).
                self._loop.call_soon(_wake, fut)
        self._backlog.clear()
        self._wake()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close (with a closing handshake, bounded by the link's close timeout) and cancel handlers still running."""
        self.link.close(code, reason)
        if self.link.transport is not None and not self.link.lost.done():
            await asyncio.shield(self.link.lost)
        self._shutdown()
        for task in list(self._tasks):
            task.cancel()
        for driven in list(self._driven):  # as a task is cancelled: CancelledError where the handler waits
            self._driven.discard(driven)
            try:
                driven.coro.throw(asyncio.CancelledError())
            except BaseException:  # its end: CancelledError, or whatever it raised instead
                pass
            else:  # it went on waiting: stop it for good
                driven.coro.close()
            self._release()

    @property
    def serving(self) -> int:
        """Requests from the peer whose handlers are still running."""
        return self._serving


def _response_data(raw: bytes) -> tuple[ProtocolData, ...]:
    reply = btp.decode_frame(raw)
    if isinstance(reply, btp.Error):
        raise BtpPeerError(reply)
    if not isinstance(reply, btp.Response):
        raise CodecError(f"expected a BTP Response, got {type(reply).__name__}")
    return reply.protocol_data


# -- client side -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BtpUrl:
    ws_url: str
    username: str
    token: str


def parse_btp_url(url: str) -> BtpUrl:
    """``btp+ws[s]://[user]:token@host[:port][/path]`` → the ws URL and the credentials (as ilp-plugin-btp)."""
    parts = urlsplit(url)
    if parts.scheme not in ("btp+ws", "btp+wss"):
        raise ValueError(f"BTP URL {url!r} must start with btp+ws:// or btp+wss://")
    if not parts.hostname:
        raise ValueError(f"BTP URL {url!r} has no host")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    ws_url = f"{parts.scheme[4:]}://{netloc}{parts.path}"
    return BtpUrl(ws_url, unquote(parts.username or ""), unquote(parts.password or ""))


def auth_protocol_data(username: str, token: str) -> list[ProtocolData]:
    return [
        ProtocolData("auth", ContentType.OCTET_STREAM, b""),
        ProtocolData.text("auth_username", username),
        ProtocolData.text("auth_token", token),
    ]


async def open_link(ws_url: str, *, timeout: float = 10.0, max_size: int | None = 2**20, label: str = "btp",
                    limits: LinkLimits = CLIENT_LIMITS) -> WsLink:
    """Open a WebSocket client connection (TCP, TLS for wss://, the opening handshake) within ``timeout``."""
    proto = client_protocol(ws_url, max_size)
    wsuri = proto.uri
    loop = asyncio.get_running_loop()
    link = WsLink(proto, label=label, limits=limits)
    ctx = ssl.create_default_context() if wsuri.secure else None

    async def establish() -> None:
        await loop.create_connection(lambda: link, wsuri.host, wsuri.port, ssl=ctx, server_hostname=wsuri.host if ctx else None)
        await link.opened

    try:
        await asyncio.wait_for(establish(), timeout)
    except BaseException:
        link.abort("connect failed")
        raise
    return link


async def connect(
    url: str,
    handler: RequestHandler | None = None,
    *,
    timeout: float = 10.0,
    max_size: int | None = 2**20,
    label: str = "btp",
) -> tuple[BtpConnection, asyncio.Task[None]]:
    """Open a BTP client connection, authenticate, and start its reader task (which ends when the socket closes;
    cancelling it drops the connection). Returns the connection and the reader task."""
    target = parse_btp_url(url)
    link = await open_link(target.ws_url, timeout=timeout, max_size=max_size, label=label)
    conn = BtpConnection(link, handler, label)
    reader = asyncio.create_task(conn.run())
    try:
        await conn.request(auth_protocol_data(target.username, target.token), timeout)
    except BaseException:
        await conn.close()
        reader.cancel()
        raise
    return conn, reader
