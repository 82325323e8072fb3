"""The running moneyd: the mini-accounts server, the packet pipeline and (optionally) one uplink."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import timedelta

from .admin.monitor import Monitor
from .handlers import IncomingHandler
from .router.layers import (
    DEFAULT_MAX_IN_FLIGHT_PACKETS,
    UPLINK,
    Accounts,
    AccountsLayer,
    AccountStats,
    ExpiryLayer,
    IldcpLayer,
    MaxPacketAmountLayer,
    RateLimitLayer,
    RouteLayer,
    ValidateLayer,
    default_max_in_flight_amount,
)
from .router.routing import RoutingTable
from .server import MiniAccountsServer, OriginPolicy
from .store import Store
from .uplink import Uplink, UplinkBalance
from .wire.address import check_address
from .wire.ilp import ErrorCode, Prepare, Reject, Reply


class StartupError(Exception):
    """moneyd cannot start, or its uplink cannot go on (Uplink.fail); the message is the one line the user sees."""


@dataclass
class RouterSettings:
    host: str = "127.0.0.1"
    port: int = 7768
    address: str = "private.moneyd"
    asset_code: str = "XRP"
    asset_scale: int = 9
    allow_origin: str | None = None
    allow_extensions: bool = False
    max_packet_amount: int | None = None
    packets_per_second: float = 10_000.0
    burst: float = 20_000.0
    # Per-app caps (RateLimitLayer; local apps only, not the uplink): packets/s, Prepares in flight, and amount in
    # flight (None: 1,000 units of the asset).
    max_in_flight_packets: int | None = DEFAULT_MAX_IN_FLIGHT_PACKETS
    max_in_flight_amount: int | None = None
    min_message_window: timedelta = timedelta(seconds=1)
    max_hold_time: timedelta = timedelta(seconds=30)
    # The admin API / dashboard on 127.0.0.1 (None: off). Not strict: a busy default port only warns.
    admin_api_port: int | None = None
    admin_api_strict: bool = True
    log_level: str = "info"
    log_format: str = "text"


@dataclass(frozen=True, slots=True)
class AccountView:
    """One account of the router, for status pages (``Router.accounts()``). Amounts in base units at the router's
    asset scale; a snapshot, taken without waiting."""

    name: str  # the app's account name, or "uplink"
    kind: str  # "app" or "uplink"
    address: str | None  # an app's ILP address; None for the uplink (its addresses are everything else)
    connections: int | None  # an app's open sockets; None for the uplink
    sent: int  # fulfilled Prepares from this account since moneyd started (apps: since it connected)
    received: int  # fulfilled Prepares to it
    sending_packets: int  # its Prepares in flight (waiting for a reply) …
    sending_amount: int  # … and their amount
    receiving_packets: int  # Prepares in flight to it
    receiving_amount: int
    # What the account owes moneyd (positive) or moneyd owes it (negative). One owner each: for an app the
    # router's count (sent - received; apps settle nothing), for the uplink its own book (``uplink.balance``),
    # None when the uplink keeps none (plain BTP: the parent keeps it).
    balance: int | None
    uplink: UplinkBalance | None  # the uplink's book: limits and its own figures; None for apps


class Router:
    def __init__(self, settings: RouterSettings, store: Store, uplink: Uplink | None = None) -> None:
        self.settings = settings
        self.store = store
        self.uplink = uplink
        self.address = check_address(settings.address, "router address")
        self.asset_code = settings.asset_code
        self.asset_scale = settings.asset_scale
        self.table = RoutingTable()
        policy = OriginPolicy(re.compile(settings.allow_origin) if settings.allow_origin else None, settings.allow_extensions)
        self.server = MiniAccountsServer(
            store,
            self.handle_prepare,
            lambda: self.address,
            policy,
            on_account_connected=self._app_connected,
            on_account_disconnected=self._app_disconnected,
            reserved={UPLINK: "moneyd's parent connector"},
        )
        self.monitor = Monitor()  # counters for the admin API, fed synchronously (no awaits on the packet path)
        # The one count of what moved through each account; the monitor reads it, and keeps the figures of apps that left.
        self.traffic = Accounts(on_forget=lambda name, st: self.monitor.retire(name, st.received_packets, st.received))
        self.rate_limit: RateLimitLayer | None = None
        self.pipeline: IncomingHandler = self._build_pipeline()
        self._in_flight: set[asyncio.Task[Reply]] = set()
        self.accepting = True

    # -- assembly --------------------------------------------------------------------------------------------

    def _build_pipeline(self) -> IncomingHandler:
        s = self.settings
        addr = lambda: self.address  # noqa: E731 - the address can change once the uplink tells us ours
        route = RouteLayer(addr, self.table, self.traffic)
        h: IncomingHandler = AccountsLayer(self.traffic, ExpiryLayer(addr, s.min_message_window, s.max_hold_time, route))
        in_flight_amount = s.max_in_flight_amount if s.max_in_flight_amount is not None else default_max_in_flight_amount(self.asset_scale)
        # The caps are per local app; the uplink's traffic is everyone's (RateLimitLayer.unlimited says what bounds it).
        self.rate_limit = RateLimitLayer(
            addr, s.packets_per_second, s.burst, in_flight_amount, h, s.max_in_flight_packets, unlimited=frozenset({UPLINK})
        )
        h = self.rate_limit
        if s.max_packet_amount is not None:
            h = MaxPacketAmountLayer(addr, s.max_packet_amount, h)
        h = IldcpLayer(self.app_address, lambda: self.asset_code, lambda: self.asset_scale, addr, h)
        return ValidateLayer(self.address, h)

    def app_address(self, account: str) -> str | None:
        return None if account == UPLINK else f"{self.address}.local.{account}"

    def _app_connected(self, account: str) -> None:
        self.table.add(f"{self.address}.local.{account}", account, lambda p: self.server.send_to(account, p))
        self.monitor.link(account, True)

    def _app_disconnected(self, account: str) -> None:
        self.table.remove(f"{self.address}.local.{account}")
        if self.rate_limit is not None:
            self.rate_limit.forget(account)
        self.traffic.forget(account)
        self.server.book.left(account)
        self.monitor.link(account, False)

    # -- status ----------------------------------------------------------------------------------------------

    def accounts(self) -> list[AccountView]:
        """Every account: the uplink first (when there is one), then the connected apps by name."""
        views: list[AccountView] = []
        if self.uplink is not None:
            book = self.uplink.balance()
            st = self.traffic.get(UPLINK) or AccountStats()
            views.append(self._view(UPLINK, "uplink", None, None, st, None if book is None else book.balance, book))
        for name in sorted(self.server.accounts):
            st = self.traffic.get(name) or AccountStats()
            conns = len(self.server.accounts[name].sockets)
            views.append(self._view(name, "app", self.app_address(name), conns, st, st.balance, None))
        return views

    @staticmethod
    def _view(
        name: str, kind: str, address: str | None, conns: int | None, st: AccountStats, balance: int | None,
        book: UplinkBalance | None,
    ) -> AccountView:
        return AccountView(
            name, kind, address, conns, st.sent, st.received, st.sending_packets, st.sending_amount,
            st.receiving_packets, st.receiving_amount, balance, book,
        )

    async def handle_prepare(self, prepare: Prepare, source: str) -> Reply:
        if not self.accepting:
            return Reject(ErrorCode.T01_PEER_UNREACHABLE, self.address, "moneyd is shutting down")
        reply = await self.pipeline(prepare, source)
        self.monitor.packet(source, prepare, reply)
        return reply

    async def _from_uplink(self, prepare: Prepare) -> Reply:
        if not prepare.destination.startswith(f"{self.address}."):
            return Reject(ErrorCode.F02_UNREACHABLE, self.address, f"no route found. destination={prepare.destination}")
        return await self.handle_prepare(prepare, UPLINK)

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        if self.uplink is not None:
            try:
                await self.uplink.connect()
                info = await self.uplink.ildcp_info()
            except Exception as e:
                raise StartupError(f"the uplink did not start: {e}") from e
            self.address, self.asset_code, self.asset_scale = info.client_address, info.asset_code, info.asset_scale
            self.pipeline = self._build_pipeline()
            self.table.default = (UPLINK, self.uplink.send_prepare)
            self.uplink.set_prepare_handler(self._from_uplink)
        try:
            await self.server.start(self.settings.host, self.settings.port)
        except OSError as e:
            if self.uplink is not None:
                await self.uplink.close()
            raise StartupError(f"cannot listen on {self.settings.host}:{self.settings.port}: {e.strerror or e}") from e

    async def stop(self) -> None:
        self.accepting = False
        await self.server.stop()
        if self.uplink is not None:
            await self.uplink.close()
