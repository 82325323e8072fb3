"""Thin asyncio adapters over the sans-I/O STREAM Connection.

``StreamClient`` sends (and receives) over one connection; ``StreamServer`` issues addresses and shared secrets
exactly like the JS server and runs any number of connections. Both only need a way to send an ILP Prepare and
get its reply (``send_prepare``), and must be handed the Prepares addressed to them (``handle_prepare``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from fractions import Fraction

from ..handlers import OutgoingHandler
from ..wire.ilp import Prepare, Reject, Reply
from . import crypto
from .connection import (
    Connected,
    Connection,
    ConnectionConfig,
    ConnectionTerminated,
    DataReceived,
    DataSent,
    MoneyReceived,
    MoneySent,
    OutgoingPrepare,
    StreamClosed,
    StreamError,
    StreamOpened,
)
from .packet import ErrorCode

log = logging.getLogger(__name__)

WRITE_HIGH_WATER = 256 * 1024
BLOCKED_CHECK = 0.25
CLOSED_KEEP = 60.0


class PaymentError(Exception):
    """A payment ended before the whole amount was sent; ``result`` says what was sent and delivered."""

    def __init__(self, result: PaymentResult) -> None:
        self.result = result
        super().__init__(result.error or "payment incomplete")


@dataclass(frozen=True, slots=True)
class PaymentResult:
    amount: int  # what was asked, in source units
    sent: int  # source units that left (fulfilled)
    delivered: int  # destination units the receiver acknowledged
    packets: int
    exchange_rate: Fraction | None
    seconds: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.sent >= self.amount


class Stream:
    """One STREAM stream: money (``send``/``receive_max``) and ordered bytes (``read``/``write``)."""

    def __init__(self, owner: StreamConnection, stream_id: int) -> None:
        self._owner = owner
        self.id = stream_id
        self._changed = asyncio.Event()
        self.closed = False
        self.close_code: int | None = None
        self.close_message = ""
        self.received = 0
        self.sent = 0
        self._target = 0

    def _notify(self) -> None:
        self._changed.set()

    async def _wait(self) -> None:
        self._changed.clear()
        await self._changed.wait()

    @property
    def _conn(self) -> Connection:
        return self._owner.connection

    def set_receive_max(self, amount: int) -> None:
        self._conn.set_receive_max(self.id, amount)
        self._owner.wake()

    async def send(self, amount: int, timeout: float | None = None, blocked_grace: float = 2.0) -> None:
        """Send ``amount`` more source units on this stream. StreamError if the stream or connection ends first,
        or if the receiver's limit blocks it for ``blocked_grace`` seconds."""
        if amount <= 0:
            return
        self._target = max(self._target, self.sent) + amount
        target = self._target
        self._conn.set_send_max(self.id, target)
        self._owner.wake()
        blocked_since: float | None = None
        async with asyncio.timeout(timeout):
            while self.sent < target and not self.closed:
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), BLOCKED_CHECK)
                if self._conn.stream_blocked(self.id) is None:
                    blocked_since = None
                    continue
                now = time.monotonic()
                blocked_since = blocked_since or now
                if now - blocked_since >= blocked_grace:
                    got = self._conn.stream_blocked(self.id)
                    raise StreamError(f"the receiver accepts no more on stream {self.id}: it has {got}, sent "
                                      f"{self.sent} of {target}")
        if self.sent < target:
            why = self._owner.error or self.close_message or "closed by the peer"
            raise StreamError(f"stream {self.id} ended after {self.sent} of {target} was sent: {why}")

    async def write(self, data: bytes) -> None:
        """Queue bytes; waits while too much is still unacknowledged."""
        self._conn.write(self.id, data)
        self._owner.wake()
        while not self.closed and self._conn.unsent_bytes(self.id) > WRITE_HIGH_WATER:
            await self._wait()

    async def drain(self) -> None:
        """Wait until every written byte was acknowledged by the peer."""
        while not self.closed and self._conn.unsent_bytes(self.id) > 0:
            await self._wait()

    async def read(self, max_bytes: int = -1) -> bytes:
        """Bytes in order; b"" once the stream is closed and drained."""
        while True:
            data = self._conn.read(self.id, max_bytes)
            if data:
                self._owner.wake()  # the window moved: tell the peer
                return data
            if self.closed:
                return b""
            await self._wait()

    async def read_all(self) -> bytes:
        chunks = []
        while chunk := await self.read():
            chunks.append(chunk)
        return b"".join(chunks)

    def close(self, error_code: int = ErrorCode.NO_ERROR, message: str = "") -> None:
        self._conn.close_stream(self.id, error_code, message)
        self._owner.wake()

    async def wait_closed(self) -> None:
        while not self.closed:
            await self._wait()


class StreamConnection:
    """Drives one Connection: a sender loop, one task per Prepare in flight, streams with asyncio waiting."""

    def __init__(self, connection: Connection, send_prepare: OutgoingHandler,
                 clock: Callable[[], float] = time.time) -> None:
        self.connection = connection
        self._send_prepare = send_prepare
        self._clock = clock
        self._wake = asyncio.Event()
        self._streams: dict[int, Stream] = {}
        self._incoming: asyncio.Queue[Stream] = asyncio.Queue()
        self._connected = asyncio.Event()
        self._done = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self.error: str | None = None
        self.close_event: ConnectionTerminated | None = None
        self.closed_at: float | None = None
        self.on_money: Callable[[int, int], None] | None = None
        self._runner = asyncio.get_running_loop().create_task(self._run())

    # --- plumbing ---------------------------------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def _dispatch(self) -> None:
        conn = self.connection
        while (event := conn.next_event()) is not None:
            match event:
                case Connected():
                    self._connected.set()
                case StreamOpened(sid):
                    stream = self._stream(sid)
                    self._incoming.put_nowait(stream)
                case MoneyReceived(sid, amount):
                    stream = self._stream(sid)
                    stream.received += amount
                    stream._notify()
                    if self.on_money is not None:
                        self.on_money(sid, amount)
                case MoneySent(sid, amount):
                    stream = self._stream(sid)
                    stream.sent += amount
                    stream._notify()
                case DataReceived(sid) | DataSent(sid):
                    self._stream(sid)._notify()
                case StreamClosed(sid, code, message, _):
                    stream = self._stream(sid)
                    stream.closed, stream.close_code, stream.close_message = True, code, message
                    stream._notify()
                case ConnectionTerminated():
                    self.close_event = event
                    self.closed_at = time.monotonic()
                    if not event.ok:
                        self.error = event.message
                    self._connected.set()
                    self._done.set()
                    for s in self._streams.values():
                        s.closed = True
                        s._notify()
                case _:
                    pass

    def _stream(self, sid: int) -> Stream:
        stream = self._streams.get(sid)
        if stream is None:
            stream = self._streams[sid] = Stream(self, sid)
        return stream

    async def _run(self) -> None:
        conn = self.connection
        while True:
            self._wake.clear()
            for out in conn.poll(self._clock()):
                task = asyncio.ensure_future(self._send(out))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            self._dispatch()
            if conn.closed:
                break
            deadline = conn.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self._clock())
            if not self._wake.is_set():  # a reply that came while we polled: go round again at once
                # asyncio.timeout, not wait_for: a timer, not one more task per turn of this loop.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()
            conn.handle_timer(self._clock())
        self._dispatch()

    async def _send(self, out: OutgoingPrepare) -> None:
        conn = self.connection
        try:
            # asyncio.timeout, not wait_for: a timer, not one more task per packet.
            async with asyncio.timeout(conn.config.packet_timeout + 1):
                reply = await self._send_prepare(out.prepare)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the link failed: no reply is a temporary error to the connection
            conn.handle_send_failure(out.id, self._clock(), f"{type(e).__name__}: {e}")
        else:
            conn.handle_reply(out.id, reply, self._clock())
        self._dispatch()
        self.wake()

    # --- the application's side -----------------------------------------------------------------------------

    def handle_prepare(self, prepare: Prepare) -> Reply:
        reply = self.connection.handle_prepare(prepare, self._clock())
        self._dispatch()
        self.wake()
        return reply

    @property
    def closed(self) -> bool:
        return self.connection.closed

    async def connect(self, timeout: float | None = None) -> Fraction:
        """Probe the path; returns the exchange rate (destination units per source unit)."""
        self.connection.connect()
        self.wake()
        async with asyncio.timeout(timeout):
            await self._connected.wait()
        rate = self.connection.exchange_rate
        if rate is None:
            raise ConnectionError(self.error or "connection closed before the exchange rate was known")
        return rate

    def open_stream(self) -> Stream:
        sid = self.connection.open_stream()
        self.wake()
        return self._stream(sid)

    async def accept_stream(self) -> Stream:
        """The next stream the peer opened."""
        get = asyncio.ensure_future(self._incoming.get())
        done = asyncio.ensure_future(self._done.wait())
        try:
            await asyncio.wait((get, done), return_when=asyncio.FIRST_COMPLETED)
        finally:
            done.cancel()
        if get.done():
            return get.result()
        get.cancel()
        raise ConnectionError(self.error or "connection closed")

    async def send_money(self, amount: int, timeout: float | None = None) -> PaymentResult:
        """Send ``amount`` source units on a new stream; never raises for a failed payment: see ``.error``."""
        conn = self.connection
        start = time.monotonic()
        sent0, delivered0, packets0 = conn.total_sent, conn.total_delivered, conn.packets_sent
        error: str | None = None
        stream: Stream | None = None
        try:
            stream = self.open_stream()
            await stream.send(amount, timeout)
        except (StreamError, ConnectionError) as e:
            error = self.error or str(e)
        except TimeoutError:
            error = f"timed out after {timeout}s"
        if error and stream is not None and not stream.closed:
            stream.close()  # no new money on it; what is in flight finishes
        if error and self._tasks:
            # Packets still in flight may yet be fulfilled: count them before reporting what was paid.
            await asyncio.wait(list(self._tasks), timeout=conn.config.packet_timeout + 1)
        return PaymentResult(amount, conn.total_sent - sent0, conn.total_delivered - delivered0,
                             conn.packets_sent - packets0, conn.exchange_rate, time.monotonic() - start,
                             error if error or conn.total_sent - sent0 >= amount else self.error or "incomplete")

    async def close(self, error_code: int = ErrorCode.NO_ERROR, message: str = "",
                    timeout: float | None = 10.0) -> None:
        self.connection.close(error_code, message)
        self.wake()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._done.wait()
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the driver at once (after close, or when the link is gone)."""
        if not self.connection.closed:
            self.connection.close(ErrorCode.INTERNAL_ERROR, "shutting down")
            self.connection.handle_timer(self._clock())
        self.wake()
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(self._runner), 2)
        self._runner.cancel()
        if self._tasks:
            # Let the last packets (the ConnectionClose) reach the link before giving up on their replies.
            await asyncio.wait(list(self._tasks), timeout=1.0)
        for task in list(self._tasks):
            task.cancel()

    async def wait_closed(self) -> None:
        await self._done.wait()


class StreamClient(StreamConnection):
    """The sending side of a connection to ``destination`` with ``shared_secret`` (from SPSP)."""

    def __init__(
        self,
        send_prepare: OutgoingHandler,
        destination: str,
        shared_secret: bytes,
        *,
        source_account: str | None = None,
        asset_code: str = "",
        asset_scale: int = 0,
        config: ConnectionConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        conn = Connection(shared_secret, is_server=False, now=clock(), source_account=source_account,
                          destination_account=destination, asset_code=asset_code, asset_scale=asset_scale,
                          config=config)
        super().__init__(conn, send_prepare, clock)


class StreamServer:
    """Issues (address, shared secret) pairs like the JS server and serves every connection made with them."""

    def __init__(
        self,
        base_address: str,
        send_prepare: OutgoingHandler,
        *,
        server_secret: bytes | None = None,
        asset_code: str = "",
        asset_scale: int = 0,
        config: ConnectionConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.server_secret = server_secret or os.urandom(32)
        self.base_address = base_address
        self._send_prepare = send_prepare
        self.asset_code, self.asset_scale = asset_code, asset_scale
        self.config = config or ConnectionConfig()
        self._clock = clock
        self.connections: dict[str, StreamConnection] = {}
        self._new: asyncio.Queue[StreamConnection] = asyncio.Queue()
        self.on_connection: Callable[[StreamConnection, str | None], None] | None = None

    def generate_address_and_secret(self, connection_tag: str = "", receipt_nonce: bytes = b"",
                                    receipt_secret: bytes = b"") -> tuple[str, bytes]:
        """A fresh destination address and shared secret, as the JS server makes them (RFC 39 receipts are
        added to Fulfills when a receipt nonce and secret are given)."""
        token = crypto.make_token(self.server_secret, connection_tag, receipt_nonce, receipt_secret)
        return f"{self.base_address}.{crypto.base64url(token)}", crypto.shared_secret_from_token(
            self.server_secret, token)

    async def accept(self) -> StreamConnection:
        return await self._new.get()

    def handle_prepare(self, prepare: Prepare) -> Reply:
        """Answer a Prepare addressed to ``base_address.<token>...``; never raises."""
        prefix = self.base_address + "."
        if not prepare.destination.startswith(prefix):
            return Reject("F02", self.base_address, "not addressed to this STREAM server")
        conn_id = prepare.destination[len(prefix):].split(".", 1)[0]
        existing = self.connections.get(conn_id)
        if existing is not None:
            return existing.handle_prepare(prepare)
        try:
            token = crypto.base64_lenient(conn_id)
            secret = crypto.shared_secret_from_token(self.server_secret, token)
            crypto.decrypt(crypto.encryption_key(secret), prepare.data)
            contents = crypto.open_token(self.server_secret, token)
        except Exception:
            # As the JS server: a token we did not issue, or data not sealed with its secret.
            return Reject("F02", self.base_address, "")
        config = self.config
        if contents.receipt_nonce and contents.receipt_secret:
            config = replace(config, receipt_nonce=contents.receipt_nonce, receipt_secret=contents.receipt_secret)
        self.prune()
        conn = Connection(secret, is_server=True, now=self._clock(), source_account=self.base_address,
                          asset_code=self.asset_code, asset_scale=self.asset_scale, config=config)
        driver = StreamConnection(conn, self._send_prepare, self._clock)
        self.connections[conn_id] = driver
        if self.on_connection is not None:
            self.on_connection(driver, contents.connection_tag)
        self._new.put_nowait(driver)
        return driver.handle_prepare(prepare)

    def prune(self, older_than: float = CLOSED_KEEP) -> None:
        """Forget connections closed more than ``older_than`` seconds ago. Until then a late packet is answered
        with ConnectionClose; after, the token starts a fresh connection, as with the JS server."""
        now = time.monotonic()
        for cid, driver in list(self.connections.items()):
            if driver.closed_at is not None and now - driver.closed_at >= older_than and not driver._tasks:
                del self.connections[cid]

    async def close(self) -> None:
        await asyncio.gather(*(d.close(timeout=2) for d in self.connections.values()), return_exceptions=True)
