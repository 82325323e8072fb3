"""The mini-accounts server: where local apps connect, over BTP on a WebSocket (default 127.0.0.1:7768).

It authenticates apps the way JS ilp-plugin-mini-accounts does, so apps written for the JS moneyd work unchanged:
the first frame is a Message with ``auth`` + ``auth_token`` (+ ``auth_username``); the account is the username if
there is one, else base64url(sha256(token)). The first token seen for an account is bound for good.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed as WsClosed
from websockets.http11 import Request, Response

from .accounts import AccountBook, AccountRefused
from .btp.connection import BtpConnection, ConnectionClosed, RequestRefused, error_frame
from .store import Store
from .wire import btp, ilp
from .wire.address import is_valid_segment
from .wire.btp import ProtocolData
from .wire.errors import CodecError
from .wire.ilp import ErrorCode, Prepare, Reject, Reply

log = logging.getLogger(__name__)

AUTH_TIMEOUT = 10.0
MAX_MESSAGE_SIZE = 1 << 20  # an ILP packet is at most 32 KiB of data; 1 MiB leaves room for any sub-protocol

PrepareHandler = Callable[[Prepare, str], Awaitable[Reply]]
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
        on_prepare: PrepareHandler,
        router_address: Callable[[], str],
        origin_policy: OriginPolicy | None = None,
        on_account_connected: Callable[[str], None] | None = None,
        on_account_disconnected: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.on_prepare = on_prepare
        self.router_address = router_address
        self.origin_policy = origin_policy or OriginPolicy()
        self.on_account_connected = on_account_connected
        self.on_account_disconnected = on_account_disconnected
        self.accounts: dict[str, _Account] = {}
        self.book = AccountBook(store, self.has_account)
        self._server: Server | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def start(self, host: str, port: int) -> None:
        self._server = await serve(
            self._handle,
            host,
            port,
            process_request=self._check_origin,
            max_size=MAX_MESSAGE_SIZE,
            compression=None,
            ping_interval=20,
            ping_timeout=20,
        )

    @property
    def port(self) -> int:
        assert self._server is not None
        sock = next(iter(self._server.sockets))
        port: int = sock.getsockname()[1]
        return port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    def _check_origin(self, connection: ServerConnection, request: Request) -> Response | None:
        origin = request.headers.get("Origin")
        if self.origin_policy.permits(origin):
            return None
        log.warning("refused a connection from browser origin %s (see --allow-origin)", origin)
        return connection.respond(HTTPStatus.FORBIDDEN, f"origin {origin} is not allowed\n")

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
        refused = await self._paying(account, prepare)
        if refused is not None:
            return refused
        acct = self.accounts.get(account)
        while acct is not None and acct.sockets:
            # Round robin over the account's open sockets.
            acct.next_index = (acct.next_index + 1) % len(acct.sockets)
            conn = acct.sockets[acct.next_index]
            try:
                return await conn.send_prepare(prepare)
            except ConnectionClosed:
                # The app vanished with this packet in flight: a clean reject, never a crash.
                if conn in acct.sockets:
                    continue
                return Reject(ErrorCode.T01_PEER_UNREACHABLE, self.router_address(), "the app disconnected before answering")
            except TimeoutError:
                raise  # the route layer turns it into R00
            except CodecError as e:
                return Reject(ErrorCode.T00_INTERNAL_ERROR, self.router_address(), f"the app answered with an invalid packet: {e}")
            except Exception as e:  # the BTP error an app may send instead of an ILP reply
                return Reject(ErrorCode.T00_INTERNAL_ERROR, self.router_address(), f"the app failed to answer: {e}")
        return Reject(ErrorCode.F02_UNREACHABLE, self.router_address(), f"no app is connected as {account}")

    # -- one connection --------------------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        peer = f"{ws.remote_address[0]}:{ws.remote_address[1]}" if ws.remote_address else "?"
        try:
            account = await asyncio.wait_for(self._authenticate(ws), AUTH_TIMEOUT)
        except (TimeoutError, WsClosed):
            return
        except _AuthFailed as e:
            log.info("app at %s refused: %s", peer, e)
            with contextlib.suppress(Exception):
                await ws.close(1008, str(e)[:100])
            return
        conn = BtpConnection(ws, lambda frame: self._on_request(account, frame), label=f"app {account}")
        acct = self.accounts.setdefault(account, _Account())
        acct.sockets.append(conn)
        if self.on_account_connected is not None:
            self.on_account_connected(account)
        try:
            await conn.run()
        finally:
            acct.sockets.remove(conn)
            await conn.close()
            if not acct.sockets:
                self.accounts.pop(account, None)
                if self.on_account_disconnected is not None:
                    self.on_account_disconnected(account)

    async def _authenticate(self, ws: ServerConnection) -> str:
        raw = await ws.recv()
        request_id = int.from_bytes(raw[1:5], "big") if isinstance(raw, bytes) and len(raw) >= 5 else 0
        try:
            if not isinstance(raw, bytes):
                raise _AuthFailed("the first message must be a binary BTP frame")
            try:
                frame = btp.decode_frame(raw)
            except TimeoutError:
                raise  # the route layer turns it into R00
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
            try:
                await self.book.admit(account, token)
            except AccountRefused as e:
                raise _AuthFailed(str(e)) from None
        except _AuthFailed as e:
            with contextlib.suppress(Exception):
                await ws.send(btp.encode_frame(error_frame(request_id, "F00", "NotAcceptedError", str(e))))
            raise
        await ws.send(btp.encode_frame(btp.Response(request_id, ())))
        return account

    async def _on_request(self, account: str, frame: btp.Message | btp.Transfer) -> Sequence[ProtocolData]:
        if isinstance(frame, btp.Transfer):
            return ()  # local apps settle nothing with us
        entry = btp.find(frame.protocol_data, "ilp")
        if entry is None:
            raise RequestRefused("F00", "NotAcceptedError", "invalid packet, no ilp protocol data.")
        prepare = ilp.decode_prepare(entry.data)
        reply = await self._paying(account, prepare) or await self.on_prepare(prepare, account)
        return (ProtocolData("ilp", 0, ilp.encode_packet(reply)),)


class _AuthFailed(Exception):
    pass


