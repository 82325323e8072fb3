"""The plain BTP uplink: moneyd as a BTP client of its parent, with no settlement.

It keeps the link up: when the parent drops, local apps stay connected, their packets to the parent get T01 at once
(nothing hangs), and the link comes back with exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

from moneyd.btp import ilplink
from moneyd.btp.connection import BtpConnection, BtpPeerError, connect
from moneyd.btp.parent import without_token
from moneyd.uplink import Uplink, keep_trying
from moneyd.wire import btp, ildcp, ilp
from moneyd.wire.btp import ProtocolData
from moneyd.wire.ilp import ErrorCode, Prepare, Reject, Reply

log = logging.getLogger("moneyd.uplink.btp")
T = TypeVar("T")


class _Unreachable(ConnectionError):
    """Nothing answers at the parent's address (yet); the message says where and why."""


class BtpUplink(Uplink):
    def __init__(self, parent_url: str, *, connect_timeout: float = 10.0, backoff_initial: float = 0.5, backoff_max: float = 30.0,
                 startup_wait: float | None = 0.0) -> None:
        super().__init__()
        self.parent_url = parent_url
        # How long connect() keeps trying an unreachable parent (None: until it answers; 0: one try).
        self.startup_wait = startup_wait
        self._startup_deadline: float | None = None
        self.connect_timeout = connect_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.conn: BtpConnection | None = None
        self.info: ildcp.IldcpResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False
        self.connected = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()  # background work of subclasses (claims, top-ups)

    @property
    def _address(self) -> str:
        return self.info.client_address if self.info else ""

    async def _open(self) -> None:
        conn, reader = await connect(self.parent_url, self._on_request, timeout=self.connect_timeout, label="parent")
        # A Message carrying only a Prepare takes the raw fast path; claims and other messages reach _on_request.
        ilplink.serve_ilp(conn, self._incoming_prepare, lambda: self._address)
        self.conn, self._reader = conn, reader
        self.connected.set()

    def startup_deadline(self) -> float | None:
        """When connecting at start stops waiting for what does not answer (event loop time; None: never). One
        deadline for the whole start: a subclass that first waits for its ledger leaves the rest for the parent."""
        if self._startup_deadline is None and self.startup_wait is not None:
            self._startup_deadline = asyncio.get_running_loop().time() + self.startup_wait
        return self._startup_deadline

    async def keep_trying(self, what: str, attempt: Callable[[], Awaitable[T]],
                          unreachable: type[BaseException] | tuple[type[BaseException], ...]) -> T:
        """``attempt`` at start, waiting with backoff while ``what`` does not answer (moneyd.uplink.keep_trying)."""
        return await keep_trying(what, attempt, unreachable, self.startup_deadline(),
                                 initial=self.backoff_initial, maximum=self.backoff_max)

    async def _open_or_say(self) -> None:
        try:
            await self._open()
        except BtpPeerError as e:
            raise ConnectionError(f"the parent refused us: {e}") from None
        except (OSError, TimeoutError) as e:
            raise _Unreachable(f"cannot reach the parent at {without_token(self.parent_url)}: {e or type(e).__name__}") from None

    async def connect(self) -> None:
        await self.keep_trying("the parent", self._open_or_say, _Unreachable)
        self.info = await self._fetch_info()
        log.info("connected to the parent as %s (%s, scale %d)", self.info.client_address, self.info.asset_code, self.info.asset_scale)
        self._supervisor = asyncio.create_task(self._keep_up())

    async def _fetch_info(self) -> ildcp.IldcpResponse:
        assert self.conn is not None
        try:
            reply = await ilplink.request_prepare(self.conn, ildcp.request(), "", peer="the parent")
        except (ilplink.LinkFailure, ilplink.LinkExpired) as e:
            raise ConnectionError(f"the parent did not answer ILDCP: {e or type(e).__name__}") from None
        if not isinstance(reply, ilp.Fulfill):
            raise ConnectionError(f"the parent refused ILDCP: {reply.code} {reply.message}")
        return ildcp.parse_fulfill(reply)

    async def _keep_up(self) -> None:
        while not self._closing:
            assert self._reader is not None
            await asyncio.gather(self._reader, return_exceptions=True)
            self.connected.clear()
            self.conn = None
            if self._closing:
                return
            log.warning("lost the connection to the parent; reconnecting")
            delay = self.backoff_initial
            while not self._closing:
                await asyncio.sleep(delay)
                try:
                    await self._open()
                    info = await self._fetch_info()
                except Exception as e:  # keep trying whatever went wrong; say what it was
                    log.info("parent still unreachable (%s); next try in %.1fs", e or type(e).__name__, min(delay * 2, self.backoff_max))
                    if self.conn is not None:
                        await self.conn.close()
                        self.conn = None
                    delay = min(delay * 2, self.backoff_max)
                    continue
                if self.info is not None and info.client_address != self.info.client_address:
                    log.warning("the parent now calls us %s (was %s)", info.client_address, self.info.client_address)
                log.info("reconnected to the parent as %s", info.client_address)
                break

    async def ildcp_info(self) -> ildcp.IldcpResponse:
        if self.info is None:
            raise ConnectionError("not connected to the parent")
        return self.info

    async def send_prepare(self, prepare: Prepare) -> Reply:
        conn = self.conn
        if conn is None:
            return Reject(ErrorCode.T01_PEER_UNREACHABLE, self._address, "the parent is unreachable; moneyd is reconnecting")
        return await self._forward(conn, prepare)

    async def _forward(self, conn: BtpConnection, prepare: Prepare, timeout: float | None = None) -> Reply:
        """The Prepare over the link, its reply checked (ilplink). A link failure is its Reject; a timeout is not
        one of these: LinkExpired (a TimeoutError) goes up to the router, which answers R00, so the uplinks' books
        count a Prepare that timed out as still charged (the parent may hold it), one that failed as refused."""
        try:
            return await ilplink.request_prepare(conn, prepare, self._address, timeout, peer="the parent")
        except ilplink.LinkFailure as e:
            return e.reject(self._address)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` in the background, keeping a reference (so it is not collected) until it ends."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _on_request(self, frame: btp.Message | btp.Transfer) -> Sequence[ProtocolData]:
        if isinstance(frame, btp.Transfer):
            return ()
        return await ilplink.answer(frame.protocol_data, self._incoming_prepare, self._address)

    async def _incoming_prepare(self, prepare: Prepare) -> Reply:
        """A Prepare from the parent (either path); a subclass with books to keep checks it here."""
        return await self.handle_incoming(prepare)

    async def close(self) -> None:
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._supervisor
        if self.conn is not None:
            await self.conn.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
