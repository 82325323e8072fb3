"""One WebSocket over one TCP connection, either role: websockets' sans-I/O protocol driven by a thin asyncio.Protocol.

websockets parses and serializes (no home-made WebSocket parser); this layer only moves bytes. What it adds over
websockets' own asyncio API, and why:
- Sending is a plain call, never a coroutine: frames go to a buffer, and everything written in one loop iteration
  leaves in one ``transport.writelines`` (one flush per iteration, not one syscall and two awaits per message).
- A peer cannot hold our memory or our timers hostage: past a high-water mark of unsent bytes a stall deadline runs,
  and above a hard cap the connection is dropped at once. Keepalive pings are written whatever else is queued, and
  their deadline runs on its own timer, so a peer that stops reading is found even when nothing else is sent.
- Refusals and protocol errors are logged as one rate-limited line per kind, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidMessage
from websockets.frames import Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol

from ..loglimit import RateLimitedLog

log = logging.getLogger("moneyd.btp")
limited = RateLimitedLog(log)

# websockets' protocol objects log every open/refusal at INFO and some failures with a traceback; we report those
# ourselves (rate-limited, one line), so theirs go to a logger that writes nothing.
_quiet = logging.getLogger("moneyd.btp.websockets")
_quiet.setLevel(logging.CRITICAL + 1)
_quiet.propagate = False

OP_BINARY, OP_TEXT, OP_CONT, OP_PONG = Opcode.BINARY, Opcode.TEXT, Opcode.CONT, Opcode.PONG


@dataclass(frozen=True, slots=True)
class LinkLimits:
    """What one connection may cost us. The defaults fit local apps on the same machine."""

    max_message: int = 1 << 20  # an ILP packet holds at most 32 KiB of data; 1 MiB leaves room for sub-protocols
    high_water: int = 256 << 10  # unsent bytes above which the stall deadline runs
    stall_timeout: float = 10.0  # a peer that stays above high_water this long is dropped
    max_buffered: int = 4 << 20  # unsent bytes above which the peer is dropped...
    buffer_grace: float = 1.0  # ...once it has read nothing for this long (a reading peer drains a burst in ms)
    ping_interval: float = 20.0  # and a pong must come back within the same time
    close_timeout: float = 3.0  # after our Close frame, how long the peer has to finish the closing handshake
    handshake_timeout: float = 10.0  # TCP accept → WebSocket open (server side)


DEFAULT_LIMITS = LinkLimits()
# A client's peer is its parent connector, maybe across the internet: more room before a slow link counts as stuck.
CLIENT_LIMITS = LinkLimits(max_buffered=16 << 20, buffer_grace=5.0, stall_timeout=30.0)


POLICY_VIOLATION = 1008  # the close code of a peer we cut off (bad auth, too many malformed or held frames)


def _ignore_message(data: bytes) -> None:
    pass


def _ignore() -> None:
    pass


class WsLink(asyncio.Protocol):
    """The asyncio side of one WebSocket. Whoever uses it sets ``on_message`` (each complete binary message),
    ``on_text`` (a text message arrived, which BTP never sends) and ``on_lost`` (the TCP connection is gone)."""

    def __init__(
        self,
        proto: ServerProtocol | ClientProtocol,
        *,
        label: str = "btp",
        limits: LinkLimits = DEFAULT_LIMITS,
        check_request: Callable[[ServerProtocol, Request], Response | None] | None = None,
        on_open: Callable[[WsLink], None] | None = None,
        on_connect: Callable[[WsLink], None] | None = None,
    ) -> None:
        self.proto = proto
        self.label = label
        self.limits = limits
        self.check_request = check_request
        self.on_open = on_open
        self.on_connect = on_connect
        self.on_message: Callable[[bytes], None] = _ignore_message
        self.on_text: Callable[[], None] = _ignore
        self.on_lost: Callable[[], None] = _ignore
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        loop = asyncio.get_running_loop()
        self._loop = loop
        self.opened: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.is_open = False
        self._out: list[bytes] = []
        self._flush_handle: asyncio.Handle | None = None
        self._eof_pending = False
        self._fragments: list[bytes] | None = None
        self._writing_paused = False
        self._paused_at = 0.0
        self._reading_paused = False
        self._stall_timer: asyncio.TimerHandle | None = None
        self._cap_timer: asyncio.TimerHandle | None = None
        self._ping_timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._handshake_timer: asyncio.TimerHandle | None = None
        self._awaiting_pong = False
        self.close_reason = ""

    # -- asyncio.Protocol ------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have the same methods.
        self.transport = transport = cast(asyncio.Transport, transport)
        addr = transport.get_extra_info("peername")
        if isinstance(addr, tuple) and len(addr) >= 2:
            self.peer = f"{addr[0]}:{addr[1]}"
        # pause_writing()/resume_writing() tell us when the unsent bytes cross the high-water mark.
        transport.set_write_buffer_limits(high=self.limits.high_water, low=self.limits.high_water // 4)
        if isinstance(self.proto, ClientProtocol):
            request = self.proto.connect()
            self.proto.send_request(request)
            self._queue(self.proto.data_to_send())
        self._handshake_timer = self._loop.call_later(self.limits.handshake_timeout, self._handshake_expired)
        if self.on_connect is not None:
            self.on_connect(self)

    def data_received(self, data: bytes) -> None:
        proto = self.proto
        try:
            proto.receive_data(data)
        except EOFError:  # data after the peer's EOF: nothing to do with it
            return
        try:
            events = proto.events_received()
            if events:
                if self.is_open:
                    self._frames(events)
                else:
                    self._handshake_events(events)
            out = proto.data_to_send()
            if out:
                self._queue(out)
            if proto.state is not State.OPEN:
                self._after_close_or_failure()
        except Exception:  # a bug of ours must not leave this socket half-handled: drop it, say so once
            limited.error("internal", "%s: internal error handling input; connection dropped", self.label, exc_info=True)
            self.abort("internal error")

    def eof_received(self) -> bool | None:
        with contextlib.suppress(EOFError):
            self.proto.receive_eof()
        self.is_open = False
        out = self.proto.data_to_send()
        if out:
            self._queue(out)
        return None  # let asyncio close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._stall_timer, self._cap_timer, self._ping_timer, self._close_timer, self._handshake_timer):
            if timer is not None:
                timer.cancel()
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._out.clear()
        self.is_open = False
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(self.close_reason or "the connection closed during the handshake"))
            self.opened.exception()  # retrieved: nobody may be waiting for it (a refused server-side handshake)
        if not self.lost.done():
            self.lost.set_result(None)
        self.on_lost()

    def pause_writing(self) -> None:
        self._writing_paused = True
        self._paused_at = self._loop.time()
        if self._stall_timer is None:
            self._stall_timer = self._loop.call_later(self.limits.stall_timeout, self._stalled)

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None

    # -- sending ---------------------------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Queue one binary message; it leaves with everything else queued in this loop iteration."""
        proto = self.proto
        if proto.state is State.OPEN:  # not is_open alone: an EOF read moves the protocol on first
            proto.send_binary(data)
            self._out += proto.data_to_send()
            if self._flush_handle is None:
                self._flush_handle = self._loop.call_soon(self._flush)

    def _queue(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            if chunk:
                self._out.append(chunk)
            else:  # websockets' SEND_EOF: close our side once what is queued has gone
                self._eof_pending = True
        if self._flush_handle is None and self.transport is not None:
            self._flush_handle = self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        transport = self.transport
        if transport is None or transport.is_closing():
            self._out.clear()
            return
        if self._out:
            out, self._out = self._out, []
            transport.writelines(out)
        if self._eof_pending:
            transport.close()  # sends what is buffered first; the close timer aborts a peer that never reads it
            self._arm_close_timer()
        elif self._writing_paused:
            self._check_cap()

    def _check_cap(self) -> None:
        """Over ``max_buffered`` unsent bytes with nothing read for ``buffer_grace``: drop the peer. Checked at each
        flush while writing is paused, and once more when the grace ends (nothing else may be flushed by then)."""
        self._cap_timer = None
        transport = self.transport
        if not self._writing_paused or transport is None or transport.is_closing():
            return
        if transport.get_write_buffer_size() <= self.limits.max_buffered:
            return
        wait = self._paused_at + self.limits.buffer_grace - self._loop.time()
        if wait <= 0:
            self.abort_noisy("buffer", "%s: the peer is not reading (over %d bytes unsent); disconnected", self.label, self.limits.max_buffered)
        elif self._cap_timer is None:
            self._cap_timer = self._loop.call_later(wait, self._check_cap)

    # -- incoming frames -------------------------------------------------------------------------------------

    def _frames(self, events: Sequence[Any]) -> None:
        on_message = self.on_message
        for ev in events:
            opcode = ev.opcode
            if opcode is OP_BINARY:
                data = ev.data
                if ev.fin:
                    on_message(data if type(data) is bytes else bytes(data))
                else:
                    self._fragments = [bytes(data)]
            elif opcode is OP_CONT:
                if self._fragments is not None:  # else a continuation of a text message, which we ignore
                    self._fragments.append(bytes(ev.data))
                    if ev.fin:
                        data, self._fragments = b"".join(self._fragments), None
                        on_message(data)
            elif opcode is OP_PONG:
                self._awaiting_pong = False
            elif opcode is OP_TEXT:
                self.on_text()
            if not self.is_open:
                break

    # -- the opening handshake -------------------------------------------------------------------------------

    def _handshake_events(self, events: Sequence[Any]) -> None:
        proto = self.proto
        for i, ev in enumerate(events):
            if isinstance(ev, Request) and isinstance(proto, ServerProtocol):
                if proto.eof_sent:
                    # websockets already gave up on this connection (it refused an earlier request in the same
                    # read): there is nothing left to answer, and answering would trip its own assertion.
                    self.close_reason = "the peer closed during the handshake"
                    break
                response = self._respond(proto, ev)
                proto.send_response(response)
                if proto.state is State.OPEN:
                    self._opened()
                else:
                    self.close_reason = f"refused the handshake ({response.status_code})"
            elif isinstance(ev, Response) and isinstance(proto, ClientProtocol):
                # Not proto.state: a Close frame in the same packets as the 101 has already moved it on.
                if proto.handshake_exc is None:
                    self._opened()
                else:
                    self.close_reason = f"WebSocket handshake refused: {_one_line(proto.handshake_exc)}"
                    if not self.opened.done():
                        self.opened.set_exception(ConnectionError(self.close_reason))
            elif self.is_open:  # frames that came in the same packets as the handshake
                self._frames(events[i:])
                return

    def _respond(self, proto: ServerProtocol, request: Request) -> Response:
        if self.check_request is not None and _headers_are_utf8(request):
            refusal = self.check_request(proto, request)
            if refusal is not None:
                return refusal
        if not _headers_are_utf8(request):
            # websockets would quote such a header in its refusal (and fail to encode it) or fail on it inside
            # accept() (a 500 and a traceback in the log): refuse it ourselves.
            limited.info("handshake-not-utf8", "refused a WebSocket handshake from %s (a header is not UTF-8)", self.peer)
            return proto.reject(400, "invalid WebSocket handshake: a header is not UTF-8\n")
        response = proto.accept(request)
        if response.status_code != 101:
            limited.info(f"handshake-{response.status_code}", "refused a WebSocket handshake from %s (%d: %s)",
                         self.peer, response.status_code, _one_line(proto.handshake_exc))
        return response

    def _opened(self) -> None:
        self.is_open = True
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        self._ping_timer = self._loop.call_later(self.limits.ping_interval, self._keepalive)
        if not self.opened.done():
            self.opened.set_result(None)
        if self.on_open is not None:
            self.on_open(self)

    def _handshake_expired(self) -> None:
        self._handshake_timer = None
        if not self.is_open:
            self.close_reason = "the WebSocket handshake timed out"
            limited.info("handshake-timeout", "%s: no WebSocket handshake from %s within %.0fs; disconnected",
                         self.label, self.peer, self.limits.handshake_timeout)
            self.abort(self.close_reason)

    # -- keepalive, closing ----------------------------------------------------------------------------------

    def _keepalive(self) -> None:
        self._ping_timer = None
        if not self.is_open or self.proto.state is not State.OPEN:
            return
        if self._awaiting_pong:
            self.abort_noisy("keepalive", "%s: no pong within %.0fs; disconnected", self.label, self.limits.ping_interval)
            return
        self._awaiting_pong = True
        self.proto.send_ping(os.urandom(4))
        self._queue(self.proto.data_to_send())
        self._ping_timer = self._loop.call_later(self.limits.ping_interval, self._keepalive)

    def _stalled(self) -> None:
        self._stall_timer = None
        if self._writing_paused:
            self.abort_noisy("stalled", "%s: the peer read nothing for %.0fs with data waiting; disconnected",
                             self.label, self.limits.stall_timeout)

    def _after_close_or_failure(self) -> None:
        """The protocol is not (or no longer) OPEN: a handshake under way or refused, a closing handshake, or a
        connection the protocol failed on bad input."""
        proto = self.proto
        if self.is_open:
            self.is_open = False
            exc = proto.parser_exc
            if exc is not None and not isinstance(exc, EOFError):
                limited.info(f"ws-{type(exc).__name__}", "%s: WebSocket protocol error (%s); closing", self.label, _one_line(exc))
        elif proto.state is State.CONNECTING and isinstance(proto.handshake_exc, InvalidMessage) and not self.close_reason:
            self.close_reason = "not an HTTP request"
            limited.info("handshake-http", "%s: not a valid HTTP request from %s (%s); disconnected",
                         self.label, self.peer, _one_line(proto.handshake_exc))
        if proto.close_expected() or proto.state is State.CLOSED:
            self._arm_close_timer()

    def _arm_close_timer(self) -> None:
        if self._close_timer is None and self.transport is not None:
            self._close_timer = self._loop.call_later(self.limits.close_timeout, self.abort, "closing handshake timed out")

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake (or drop the connection if it never opened)."""
        if self.transport is None or self.lost.done():
            return
        if self.transport.is_closing():
            self._arm_close_timer()  # closing already, maybe waiting for a peer that does not read: bound it
        elif self.is_open and self.proto.state is State.OPEN:
            self.is_open = False
            self.proto.send_close(code, _close_reason(reason))
            self._queue(self.proto.data_to_send())
            if code == POLICY_VIOLATION:
                # We fail the connection (RFC 6455 7.1.7): hang up once the Close frame is written, reading nothing
                # more. Awaiting the peer's Close meant reading and parsing whatever an abuser kept sending (a
                # flood of frames) for the whole close timeout, which took the loop from every other app.
                self._eof_pending = True
            self._arm_close_timer()
        else:
            self.abort(reason or "closed")

    def abort(self, reason: str = "") -> None:
        """Drop the TCP connection now, whatever is unsent."""
        if reason and not self.close_reason:
            self.close_reason = reason
        self.is_open = False
        if self.transport is not None:
            self.transport.abort()

    def abort_noisy(self, kind: str, msg: str, *args: object) -> None:
        limited.warning(kind, msg, *args)
        self.abort(kind)

    # -- reading back-pressure -------------------------------------------------------------------------------

    @property
    def reading_paused(self) -> bool:
        return self._reading_paused

    def pause_reading(self) -> None:
        if not self._reading_paused and self.transport is not None and not self.transport.is_closing():
            self._reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._reading_paused and self.transport is not None and not self.transport.is_closing():
            self._reading_paused = False
            self.transport.resume_reading()

    @property
    def buffered(self) -> int:
        """Bytes accepted for sending and not yet handed to the kernel."""
        size = sum(map(len, self._out))
        if self.transport is not None and not self.transport.is_closing():
            size += self.transport.get_write_buffer_size()
        return size


def _one_line(exc: BaseException | None) -> str:
    if exc is None:
        return "no details"
    text = str(exc)
    while exc.__cause__ is not None:
        exc = exc.__cause__
        text += f"; {exc}"
    # A header that was not UTF-8 arrives as surrogates: escape them, or writing the log line would fail.
    return text.replace("\n", " ")[:200].encode("utf-8", "backslashreplace").decode("utf-8")


def _close_reason(reason: str) -> str:
    """A Close frame's reason is at most 123 bytes of UTF-8: cut on a character boundary."""
    return reason.encode("utf-8")[:123].decode("utf-8", "ignore")


def server_protocol(max_size: int) -> ServerProtocol:
    return ServerProtocol(max_size=max_size, logger=_quiet)


def client_protocol(ws_url: str, max_size: int | None) -> ClientProtocol:
    from websockets.uri import parse_uri

    return ClientProtocol(parse_uri(ws_url), max_size=max_size, logger=_quiet)


class Link(Protocol):
    """What a BtpConnection needs from its WebSocket: WsLink, or AsyncioLink around websockets' asyncio API."""

    on_message: Callable[[bytes], None]
    on_text: Callable[[], None]
    on_lost: Callable[[], None]
    lost: asyncio.Future[None]
    peer: str

    @property
    def transport(self) -> asyncio.Transport | None: ...
    @property
    def reading_paused(self) -> bool: ...
    @property
    def buffered(self) -> int: ...
    def send(self, data: bytes) -> None: ...
    def close(self, code: int = 1000, reason: str = "") -> None: ...
    def abort(self, reason: str = "") -> None: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...


class AsyncioLink:
    """A connection from websockets' own asyncio API behind the same interface, for code that already holds one
    (the fake peers in tests serve with ``websockets.asyncio.server.serve``). Not the fast path: one task reads,
    one writes, in order."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.on_message: Callable[[bytes], None] = _ignore_message
        self.on_text: Callable[[], None] = _ignore
        self.on_lost: Callable[[], None] = _ignore
        loop = asyncio.get_running_loop()
        self.lost: asyncio.Future[None] = loop.create_future()
        addr = getattr(ws, "remote_address", None)
        self.peer = f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) and len(addr) >= 2 else "?"
        self._out: deque[bytes] = deque()
        self._writer: asyncio.Task[None] | None = None
        self._reader = loop.create_task(self._read())

    @property
    def transport(self) -> asyncio.Transport | None:
        transport: asyncio.Transport | None = getattr(self.ws, "transport", None)
        return transport

    @property
    def reading_paused(self) -> bool:
        return False

    @property
    def buffered(self) -> int:
        return sum(map(len, self._out))

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                if isinstance(message, str):
                    self.on_text()
                else:
                    self.on_message(bytes(message))
        except Exception:  # closed, or a protocol error: either way the connection is gone
            pass
        finally:
            if not self.lost.done():
                self.lost.set_result(None)
            self.on_lost()

    def send(self, data: bytes) -> None:
        if self.lost.done():
            return
        self._out.append(data)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        while self._out:
            try:
                await self.ws.send(self._out.popleft())
            except Exception:
                self._out.clear()
                return

    def close(self, code: int = 1000, reason: str = "") -> None:
        if not self.lost.done():
            asyncio.get_running_loop().create_task(self.ws.close(code, _close_reason(reason)))

    def abort(self, reason: str = "") -> None:
        if self.transport is not None:
            self.transport.abort()

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _headers_are_utf8(request: Request) -> bool:
    """Header bytes that are not UTF-8 reach us as lone surrogates (websockets decodes with surrogateescape)."""
    try:
        request.path.encode()
        for _name, value in request.headers.raw_items():
            value.encode()
    except UnicodeEncodeError:
        return False
    return True
