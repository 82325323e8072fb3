"""The mini-accounts server: where local apps connect, over BTP on a WebSocket (default 127.0.0.1:7768).

It authenticates apps the way JS ilp-plugin-mini-accounts does, so apps written for the JS moneyd work unchanged:
the first frame is a Message with ``auth`` + ``auth_token`` (+ ``auth_username``); the account is the username if
there is one, else base64url(sha256(token)). The first token seen for an account is bound for good.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus

from websockets.datastructures import MultipleValuesError
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol

from .accounts import AccountBook, AccountRefused
from .btp import ilplink
from .btp.connection import BtpConnection, ConnectionClosed, error_frame
from .btp.transport import Link, LinkLimits, WsLink, server_protocol
from .handlers import IncomingHandler
from .loglimit import RateLimitedLog
from .store import Store
from .wire import btp, ilp
from .wire.address import is_valid_segment
from .wire.btp import ProtocolData
from .wire.errors import CodecError
from .wire.ilp import ErrorCode, Prepare, Reject, Reply

log = logging.getLogger(__name__)
limited = RateLimitedLog(log)

AUTH_TIMEOUT = 10.0
MAX_MESSAGE_SIZE = 1 << 20  # an ILP packet is at most 32 KiB of data; 1 MiB leaves room for any sub-protocol
# Connections between TCP accept and a successful BTP auth. Beyond this the oldest is dropped: a flood of half-open
# connections then only churns itself, while a real app gets through its handshake in milliseconds.
MAX_HANDSHAKES = 256

EXTENSION_ORIGIN = re.compile(r"\A(?:chrome-extension|moz-extension|safari-web-extension)://")


def account_for_token(token: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(token.encode("utf-8")).digest()).rstrip(b"=").decode("ascii")


@dataclass
class OriginPolicy:
    """Browsers send an Origin header; other clients don't. Browser pages may not connect unless allowed."""

    allow: re.Pattern[str] | None = None
    allow_extensions: bool = False

    def permits(self, origin: str | None) -> bool:
        if origin is None:
            return True
        if self.allow is not None and self.allow.fullmatch(origin):
            return True
        return self.allow_extensions and EXTENSION_ORIGIN.match(origin) is not None


@dataclass
class _Account:
    sockets: list[BtpConnection] = field(default_factory=list)
    next_index: int = 0


class MiniAccountsServer:
    def __init__(
        self,
        store: Store,
        on_prepare: IncomingHandler,
        router_address: Callable[[], str],
        origin_policy: OriginPolicy | None = None,
        on_account_connected: Callable[[str], None] | None = None,
        on_account_disconnected: Callable[[str], None] | None = None,
        reserved: Mapping[str, str] | None = None,
    ) -> None:
        self.store = store
        # Account names the router keeps for itself (name -> whose it is): an app under one would share its
        # routes, counters, limits and admin entry, so it is refused at auth.
        self.reserved: Mapping[str, str] = reserved or {}
        self.on_prepare = on_prepare
        self.router_address = router_address
        self.origin_policy = origin_policy or OriginPolicy()
        self.on_account_connected = on_account_connected
        self.on_account_disconnected = on_account_disconnected
        self.accounts: dict[str, _Account] = {}
        self.link_limits = LinkLimits(max_message=MAX_MESSAGE_SIZE)
        self.max_handshakes = MAX_HANDSHAKES
        self._server: asyncio.Server | None = None
        self._handshaking: dict[Link, None] = {}  # insertion-ordered: the oldest first
        self._handlers: set[asyncio.Task[None]] = set()
        self.book = AccountBook(store, self.has_account)

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def start(self, host: str, port: int) -> None:
        raise_open_files_limit()
        loop = asyncio.get_running_loop()
        # A deeper accept queue than asyncio's 100: a burst of connections waits in it instead of being refused.
        self._server = await loop.create_server(self._new_link, host, port, backlog=1024)

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for link in list(self._handshaking):
            link.abort("moneyd is stopping")
        conns = [conn for acct in self.accounts.values() for conn in acct.sockets]
        await asyncio.gather(*(conn.close(1001, "moneyd is stopping") for conn in conns), return_exceptions=True)
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=5)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 5)

    def _new_link(self) -> WsLink:
        return WsLink(
            server_protocol(self.link_limits.max_message),
            label="app",
            limits=self.link_limits,
            check_request=self._check_origin,
            on_open=self._opened,
            on_connect=self._connected,
        )

    def _connected(self, link: WsLink) -> None:
        self._handshaking[link] = None
        link.lost.add_done_callback(lambda _: self._handshaking.pop(link, None))
        if len(self._handshaking) > self.max_handshakes:
            oldest = next(iter(self._handshaking))
            limited.warning("handshakes", "more than %d connections are in their handshake; dropping the oldest", self.max_handshakes)
            self._handshaking.pop(oldest, None)
            oldest.abort("too many handshakes in progress")

    def _opened(self, link: WsLink) -> None:
        conn = BtpConnection(link, None, label=f"app at {link.peer}", hold=True)
        task = asyncio.get_running_loop().create_task(self._handle(conn))
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    def _check_origin(self, proto: ServerProtocol, request: Request) -> Response | None:
        try:
            origin = request.headers.get("Origin")
        except MultipleValuesError:
            limited.info("origin-multiple", "refused a WebSocket handshake with more than one Origin header")
            return proto.reject(HTTPStatus.BAD_REQUEST, "more than one Origin header\n")
        if self.origin_policy.permits(origin):
            return None
        # Header bytes that are not UTF-8 arrive as surrogates: escape them, or encoding the answer would fail.
        shown = (origin or "")[:100].encode("ascii", "backslashreplace").decode("ascii")
        limited.warning("origin", "refused a connection from browser origin %s (see --allow-origin)", shown)
        return proto.reject(HTTPStatus.FORBIDDEN, f"origin {shown} is not allowed\n")

    # -- sending to apps -------------------------------------------------------------------------------------

    def has_account(self, account: str) -> bool:
        acct = self.accounts.get(account)
        return acct is not None and bool(acct.sockets)

    async def _paying(self, account: str, prepare: Prepare) -> Reject | None:
        """The account's binding is durable before its first paid packet goes on (moneyd.accounts)."""
        if not prepare.amount or self.book.is_bound(account):
            return None
        try:
            await self.book.used_for_payment(account)
        except AccountRefused as e:
            return Reject(ErrorCode.T05_RATE_LIMITED, self.router_address(), str(e))
        return None

    async def send_to(self, account: str, prepare: Prepare) -> Reply:
        if prepare.amount and not self.book.is_bound(account):
            refused = await self._paying(account, prepare)
            if refused is not None:
                return refused
        acct = self.accounts.get(account)
        address = self.router_address()
        closed: Reject | None = None
        # Round robin over the account's sockets, each tried at most once (a closing one stays listed for a moment).
        for _ in range(len(acct.sockets) if acct is not None else 0):
            if acct is None or not acct.sockets:
                break
            acct.next_index = (acct.next_index + 1) % len(acct.sockets)
            conn = acct.sockets[acct.next_index]
            try:
                return await ilplink.request_prepare(conn, prepare, address, peer="the app")
            except ilplink.LinkClosed as e:
                # The app vanished with this packet in flight: a clean reject, never a crash (another of its
                # sockets may still take the packet).
                closed = e.reject(address)
            except (ilplink.LinkFailure, ilplink.LinkExpired) as e:
                return e.reject(address)
        return closed or Reject(ErrorCode.F02_UNREACHABLE, address, f"no app is connected as {account}")

    # -- one connection --------------------------------------------------------------------------------------

    async def _handle(self, conn: BtpConnection) -> None:
        peer = conn.link.peer
        try:
            account = await asyncio.wait_for(self._authenticate(conn), AUTH_TIMEOUT)
        except (TimeoutError, ConnectionClosed):
            limited.info("auth-timeout", "app at %s sent no auth within %.0fs or left", peer, AUTH_TIMEOUT)
            await conn.close(1008, "no auth")
            return
        except _AuthFailed as e:
            limited.info("auth-refused", "app at %s refused: %s", peer, e)
            await conn.close(1008, str(e))
            return
        finally:
            self._handshaking.pop(conn.link, None)
        conn.label = f"app {account}"
        conn.handler = lambda frame: self._on_request(account, frame)
        conn.ilp_handler = functools.partial(self._on_ilp, account)
        acct = self.accounts.setdefault(account, _Account())
        acct.sockets.append(conn)
        if self.on_account_connected is not None:
            self.on_account_connected(account)
        conn.serve()
        try:
            await conn.run()
        finally:
            acct.sockets.remove(conn)
            await conn.close()
            if not acct.sockets:
                self.accounts.pop(account, None)
                if self.on_account_disconnected is not None:
                    self.on_account_disconnected(account)

    async def _authenticate(self, conn: BtpConnection) -> str:
        raw = await conn.recv()
        request_id = int.from_bytes(raw[1:5], "big") if isinstance(raw, bytes) and len(raw) >= 5 else 0
        try:
            if not isinstance(raw, bytes):
                raise _AuthFailed("the first message must be a binary BTP frame")
            try:
                frame = btp.decode_frame(raw)
            except CodecError as e:
                raise _AuthFailed(f"malformed auth frame: {e}") from None
            if not isinstance(frame, btp.Message) or not frame.protocol_data:
                raise _AuthFailed("the first frame must be a BTP Message with auth data")
            if frame.protocol_data[0].protocol_name != "auth":
                raise _AuthFailed("the first protocol data entry must be 'auth'")
            token_pd = btp.find(frame.protocol_data, "auth_token")
            if token_pd is None:
                raise _AuthFailed("auth_token subprotocol is required")
            token = token_pd.data.decode("utf-8", "replace")
            user_pd = btp.find(frame.protocol_data, "auth_username")
            username = user_pd.data.decode("utf-8", "replace") if user_pd is not None else ""
            account = username or account_for_token(token)
            if not is_valid_segment(account):
                raise _AuthFailed(f"account name {account[:40]!r} may only hold A-Z a-z 0-9 _ ~ -")
            if account in self.reserved:
                raise _AuthFailed(f"account name {account!r} is reserved for {self.reserved[account]}: connect under another name")
            try:
                await self.book.admit(account, token)
            except AccountRefused as e:
                raise _AuthFailed(str(e)) from None
        except _AuthFailed as e:
            conn.send_raw(btp.encode_frame(error_frame(request_id, "F00", "NotAcceptedError", str(e))))
            raise
        conn.send_raw(btp.encode_frame(btp.Response(request_id, ())))
        return account

    async def _on_ilp(self, account: str, packet: bytes) -> bytes:
        """The fast path: a Message whose only entry is ``ilp``, as bytes; its reply as bytes."""
        prepare = ilp.decode_prepare(packet)
        refused = await self._paying(account, prepare) if prepare.amount and not self.book.is_bound(account) else None
        reply = refused or await self.on_prepare(prepare, account)
        return ilplink.reply_bytes(reply, self.router_address())

    async def _on_request(self, account: str, frame: btp.Message | btp.Transfer) -> Sequence[ProtocolData]:
        """Any other shape of request (an ``ilp`` entry among others, a Transfer)."""
        if isinstance(frame, btp.Transfer):
            return ()  # local apps settle nothing with us
        prepare = ilplink.unwrap_prepare(frame.protocol_data)
        reply = await self._paying(account, prepare) or await self.on_prepare(prepare, account)
        return ilplink.wrap_reply(reply, self.router_address())


class _AuthFailed(Exception):
    pass


def raise_open_files_limit() -> None:
    """Raise the open-files soft limit to the hard limit: each app holds a socket, and at the usual 1024 a burst
    of half-open connections would keep real apps out."""
    try:
        import resource
    except ImportError:  # not on this platform
        return
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY:
            hard = max(soft, 1 << 20) if soft != resource.RLIM_INFINITY else soft
        if soft != resource.RLIM_INFINITY and soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    except (ValueError, OSError) as e:
        log.debug("could not raise the open-files limit: %s", e)


