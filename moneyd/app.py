"""The running moneyd: the mini-accounts server, the packet pipeline and (optionally) one uplink."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from .router.layers import (
    BalanceLayer,
    ExpiryLayer,
    Handler,
    IldcpLayer,
    Limits,
    MaxPacketAmountLayer,
    RateLimitLayer,
    RouteLayer,
    ValidateLayer,
)
from .router.routing import RoutingTable
from .server import MiniAccountsServer, OriginPolicy
from .store import Store
from .uplink import Uplink
from .wire.address import check_address
from .wire.ilp import ErrorCode, Prepare, Reject, Reply

log = logging.getLogger("moneyd")

UPLINK = "uplink"


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
    max_in_flight_amount: int | None = None
    min_message_window: timedelta = timedelta(seconds=1)
    max_hold_time: timedelta = timedelta(seconds=30)


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
        )
        self.balance: BalanceLayer | None = None
        self.rate_limit: RateLimitLayer | None = None
        self.pipeline: Handler = self._build_pipeline()
        self._in_flight: set[asyncio.Task[Reply]] = set()
        self.accepting = True

    # -- assembly --------------------------------------------------------------------------------------------

    def _build_pipeline(self) -> Handler:
        s = self.settings
        addr = lambda: self.address  # noqa: E731 - the address can change once the uplink tells us ours
        route = RouteLayer(addr, self.table, on_fulfilled=lambda hop, amount: balance.settle_outgoing(hop, amount))
        balance = BalanceLayer(addr, lambda account: Limits(), ExpiryLayer(addr, s.min_message_window, s.max_hold_time, route))
        self.balance = balance
        h: Handler = balance
        self.rate_limit = RateLimitLayer(addr, s.packets_per_second, s.burst, s.max_in_flight_amount, h)
        h = self.rate_limit
        if s.max_packet_amount is not None:
            h = MaxPacketAmountLayer(addr, s.max_packet_amount, h)
        h = IldcpLayer(self.app_address, lambda: self.asset_code, lambda: self.asset_scale, addr, h)
        return ValidateLayer(self.address, h)

    def app_address(self, account: str) -> str | None:
        return None if account == UPLINK else f"{self.address}.local.{account}"

    def _app_connected(self, account: str) -> None:
        self.table.add(f"{self.address}.local.{account}", account, lambda p: self.server.send_to(account, p))

    def _app_disconnected(self, account: str) -> None:
        self.table.remove(f"{self.address}.local.{account}")
        if self.rate_limit is not None:
            self.rate_limit.forget(account)

    async def handle_prepare(self, prepare: Prepare, source: str) -> Reply:
        if not self.accepting:
            return Reject(ErrorCode.T01_PEER_UNREACHABLE, self.address, "moneyd is shutting down")
        return await self.pipeline(prepare, source)

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
                raise StartupError(f"cannot connect to the parent: {e}") from e
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


async def serve_until_signalled(router: Router, announce: Callable[[str], None]) -> None:
    """Start, announce, and run until SIGINT/SIGTERM; then shut down cleanly."""
    await router.start()
    # Handlers before the "ready" line: whoever reads it may signal us at once.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    s = router.settings
    host = "localhost" if s.host in ("127.0.0.1", "::1", "localhost") else s.host
    announce(
        f"moneyd ready: ILP address {router.address} ({router.asset_code}, scale {router.asset_scale}); "
        f"apps connect to btp+ws://:TOKEN@{host}:{router.server.port}"
    )
    if s.host not in ("127.0.0.1", "::1", "localhost"):
        log.warning("listening on %s: other machines can reach this moneyd; use --host 127.0.0.1 unless you mean it", s.host)
    waits = [asyncio.ensure_future(stop.wait())]
    if router.uplink is not None:
        waits.append(asyncio.ensure_future(router.uplink.failed.wait()))
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for w in waits:
        w.cancel()
    failure = router.uplink.failure if router.uplink is not None else None
    announce("moneyd: shutting down" if failure is None else f"moneyd: the uplink stopped: {failure}; shutting down")
    await router.stop()
    if failure is not None:
        raise StartupError(failure)


def _event_loop_runner() -> Callable[[Coroutine[Any, Any, None]], None]:
    """uvloop where it is installed (it roughly halves the event loop's cost per packet), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


def run(settings: RouterSettings, store: Store, uplink: Uplink | None = None, quiet: bool = False) -> int:
    """Run moneyd in the foreground; the exit code for the CLI."""
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    # websockets logs every connection at INFO ("connection open"); moneyd says what matters itself.
    logging.getLogger("websockets").setLevel(logging.WARNING)
    router = Router(settings, store, uplink)
    try:
        _event_loop_runner()(serve_until_signalled(router, lambda line: print(line, flush=True)))
    except StartupError as e:
        print(f"moneyd: error: {e}", file=sys.stderr)
        return 1
    finally:
        store.close()
    return 0
