"""One BTP connection over a WebSocket, in either role.

It correlates requests with their Response/Error by requestId, runs each incoming request as its own task (so a
slow handler never blocks the socket), and turns a handler failure into a BTP Error frame. ILP packets ride in the
``ilp`` protocolData entry, as every JS plugin does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed as WsClosed

from ..wire import btp, ilp
from ..wire.btp import ContentType, ProtocolData
from ..wire.errors import CodecError

log = logging.getLogger(__name__)

# websockets' protocol objects for either side share this much.
WebSocket = Any

RequestHandler = Callable[[btp.Message | btp.Transfer], Awaitable[Sequence[ProtocolData]]]


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


def _expire(fut: asyncio.Future[btp.Frame]) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError())


def error_frame(request_id: int, code: str, name: str, message: str) -> btp.Error:
    return btp.Error(request_id, code, name, datetime.now(UTC), message.encode("utf-8"))


class BtpConnection:
    def __init__(self, ws: WebSocket, handler: RequestHandler | None = None, label: str = "btp") -> None:
        self.ws = ws
        self.handler = handler
        self.label = label
        self._pending: dict[int, asyncio.Future[btp.Frame]] = {}
        self._next_id = secrets.randbits(31)
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = asyncio.Event()

    # -- sending ---------------------------------------------------------------------------------------------

    def _new_id(self) -> int:
        self._next_id = (self._next_id + 1) & 0xFFFFFFFF
        return self._next_id

    async def _request(self, make: Callable[[int], btp.Frame], timeout: float) -> tuple[ProtocolData, ...]:
        if self.closed.is_set():
            raise ConnectionClosed(f"{self.label}: connection is closed")
        request_id = self._new_id()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[btp.Frame] = loop.create_future()
        self._pending[request_id] = fut
        # A timer on the future itself: asyncio.wait_for would wrap every request in one more task.
        timer = loop.call_later(timeout, _expire, fut)
        try:
            await self.ws.send(btp.encode_frame(make(request_id)))
            reply = await fut
        except WsClosed:
            raise ConnectionClosed(f"{self.label}: connection closed while sending") from None
        finally:
            timer.cancel()
            self._pending.pop(request_id, None)
        if isinstance(reply, btp.Error):
            raise BtpPeerError(reply)
        assert isinstance(reply, btp.Response)
        return reply.protocol_data

    async def request(self, protocol_data: Sequence[ProtocolData], timeout: float = 30.0) -> tuple[ProtocolData, ...]:
        """Send a Message and return the Response's protocolData; BtpPeerError if the peer answers with an Error."""
        pd = tuple(protocol_data)
        return await self._request(lambda rid: btp.Message(rid, pd), timeout)

    async def transfer(self, amount: int, protocol_data: Sequence[ProtocolData] = (), timeout: float = 30.0) -> tuple[ProtocolData, ...]:
        pd = tuple(protocol_data)
        return await self._request(lambda rid: btp.Transfer(rid, amount, pd), timeout)

    async def send_prepare(self, prepare: ilp.Prepare, timeout: float | None = None) -> ilp.Reply:
        """Send an ILP Prepare and return its Fulfill or Reject."""
        if timeout is None:
            # Until the Prepare expires: after that no Fulfill can count, so TimeoutError means R00 to the caller.
            timeout = max(0.0, (prepare.expires_at - datetime.now(UTC)).total_seconds())
        reply_pd = await self.request([ProtocolData.octets("ilp", ilp.encode_prepare(prepare))], timeout)
        entry = btp.find(reply_pd, "ilp")
        if entry is None:
            raise CodecError("BTP Response to a Prepare carries no ilp packet")
        return ilp.decode_reply(entry.data)

    # -- receiving -------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Read frames until the socket closes; then fail whatever is still waiting."""
        try:
            async for raw in self.ws:
                if isinstance(raw, str):
                    log.warning("%s: ignoring a text WebSocket message (BTP is binary)", self.label)
                    continue
                self.handle_bytes(raw)
        except WsClosed:
            pass
        finally:
            self._shutdown()

    def handle_bytes(self, raw: bytes) -> None:
        try:
            frame = btp.decode_frame(raw)
        except CodecError as e:
            log.warning("%s: malformed BTP frame (%s)", self.label, e)
            if len(raw) >= 5:
                rid = int.from_bytes(raw[1:5], "big")
                self._spawn(self._send_quietly(btp.encode_frame(error_frame(rid, "F01", "InvalidFieldsError", str(e)))))
            return
        if isinstance(frame, btp.Response | btp.Error):
            fut = self._pending.get(frame.request_id)
            if fut is not None and not fut.done():
                fut.set_result(frame)
            else:
                log.debug("%s: answer to unknown request %d", self.label, frame.request_id)
            return
        self._spawn(self._serve(frame))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, frame: btp.Message | btp.Transfer) -> None:
        if self.handler is None:
            reply: btp.Frame = error_frame(frame.request_id, "F00", "NotAcceptedError", "no handler")
        else:
            try:
                pd = await self.handler(frame)
                reply = btp.Response(frame.request_id, tuple(pd))
            except RequestRefused as e:
                reply = error_frame(frame.request_id, e.code, e.name, e.message)
            except (CodecError, ValueError) as e:
                reply = error_frame(frame.request_id, "F01", "InvalidFieldsError", str(e))
            except ConnectionClosed as e:
                reply = error_frame(frame.request_id, "T00", "UnreachableError", str(e))
            except Exception as e:  # a handler bug must answer the peer, not kill the connection
                log.exception("%s: request handler failed", self.label)
                reply = error_frame(frame.request_id, "T00", "UnreachableError", f"internal error: {type(e).__name__}")
        await self._send_quietly(btp.encode_frame(reply))

    async def _send_quietly(self, data: bytes) -> None:
        with contextlib.suppress(WsClosed):
            await self.ws.send(data)

    def _shutdown(self) -> None:
        self.closed.set()
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionClosed(f"{self.label}: connection closed"))
        self._pending.clear()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        self._shutdown()
        for task in list(self._tasks):
            task.cancel()


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


async def connect(
    url: str,
    handler: RequestHandler | None = None,
    *,
    timeout: float = 10.0,
    max_size: int | None = 2**20,
    label: str = "btp",
) -> tuple[BtpConnection, asyncio.Task[None]]:
    """Open a BTP client connection, authenticate, and start its read loop. Returns the connection and the
    reader task (which ends when the socket closes)."""
    target = parse_btp_url(url)
    ws: ClientConnection = await asyncio.wait_for(ws_connect(target.ws_url, max_size=max_size, compression=None), timeout)
    conn = BtpConnection(ws, handler, label)
    reader = asyncio.create_task(conn.run())
    try:
        await conn.request(auth_protocol_data(target.username, target.token), timeout)
    except BaseException:
        await conn.close()
        reader.cancel()
        raise
    return conn, reader
