"""The layers a Prepare passes through, outermost first. Each one is small and testable with no socket:

validate → ILDCP responder → max packet amount → rate and in-flight limits → balance → expiry → route
(the route layer also checks the fulfillment against the condition and enforces the expiry).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ..wire import ildcp
from ..wire.ilp import AmountTooLargeData, ErrorCode, Fulfill, Prepare, Reject, Reply, encode_amount_too_large
from .routing import RoutingTable

# A handler takes the Prepare and the name of the account it came from.
Handler = Callable[[Prepare, str], Awaitable[Reply]]


def reject(code: str, triggered_by: str, message: str, data: bytes = b"") -> Reject:
    return Reject(code, triggered_by, message, data)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class ValidateLayer:
    """Refuse what can never succeed: an already expired Prepare."""

    address: str
    next: Handler

    async def __call__(self, prepare: Prepare, source: str) -> Reply:
        if prepare.expires_at <= _now():
            return reject(ErrorCode.R00_TRANSFER_TIMED_OUT, self.address, "source transfer has already expired")
        return await self.next(prepare, source)


@dataclass
class IldcpLayer:
    """Answer ``peer.config`` for local apps with their address, asset code and scale."""

    address_of: Callable[[str], str | None]
    asset_code: Callable[[], str]
    asset_scale: Callable[[], int]
    router_address: Callable[[], str]
    next: Handler

    async def __call__(self, prepare: Prepare, source: str) -> Reply:
        if prepare.destination != ildcp.DESTINATION:
            return await self.next(prepare, source)
        client = self.address_of(source)
        if client is None:
            return reject(ErrorCode.F02_UNREACHABLE, self.router_address(), "ILDCP is only answered for local apps")
        return ildcp.response(ildcp.IldcpResponse(client, self.asset_scale(), self.asset_code()))


@dataclass
class MaxPacketAmountLayer:
    router_address: Callable[[], str]
    maximum: int
    next: Handler

    async def __call__(self, prepare: Prepare, source: str) -> Reply:
        if prepare.amount > self.maximum:
            data = encode_amount_too_large(AmountTooLargeData(prepare.amount, self.maximum))
            return reject(
                ErrorCode.F08_AMOUNT_TOO_LARGE,
                self.router_address(),
                f"packet size too large. maxAmount={self.maximum} actualAmount={prepare.amount}",
                data,
            )
        return await self.next(prepare, source)


@dataclass
class _Bucket:
    tokens: float
    stamp: float
    in_flight: int = 0  # amount
    packets: int = 0  # Prepares in flight
    gone: bool = False  # the app disconnected; drop the bucket once nothing of its is in flight


def default_max_in_flight_amount(asset_scale: int) -> int:
    """1,000 whole units of the asset (1,000 XRP at scale 9): far above what one app pays at once, and it keeps an
    app from tying up unbounded value (an uplink pays for Prepares before it sends them)."""
    return int(1000 * 10**asset_scale)


# A STREAM sender keeps up to 128 Prepares in flight, the JS benchmark client 32: 1,000 leaves ample room and
# bounds what one app can make the router hold (a pending Prepare costs ~4 KB, so ~4 MB per app at the cap).
DEFAULT_MAX_IN_FLIGHT_PACKETS = 1000


@dataclass
class RateLimitLayer:
    """Per-app limits: a token bucket of packets per second, and caps on the Prepares and the amount in flight.

    The JS moneyd shares one 10,000-packets-a-minute bucket among all apps; here one busy app cannot starve others:
    an app at a cap gets T05/T04 at once (nothing is queued for it), and every other app has its own bucket and caps.
    """

    router_address: Callable[[], str]
    packets_per_second: float
    burst: float
    max_in_flight_amount: int | None
    next: Handler
    max_in_flight_packets: int | None = DEFAULT_MAX_IN_FLIGHT_PACKETS
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    async def __call__(self, prepare: Prepare, source: str) -> Reply:
        now = time.monotonic()
        b = self._buckets.get(source)
        if b is None:
            b = self._buckets[source] = _Bucket(self.burst, now)
        b.gone = False
        b.tokens = min(self.burst, b.tokens + (now - b.stamp) * self.packets_per_second)
        b.stamp = now
        if b.tokens < 1:
            return reject(ErrorCode.T05_RATE_LIMITED, self.router_address(), "too many requests, throttling.")
        if self.max_in_flight_packets is not None and b.packets >= self.max_in_flight_packets:
            return reject(
                ErrorCode.T05_RATE_LIMITED,
                self.router_address(),
                f"too many packets in flight for this app (at most {self.max_in_flight_packets})",
            )
        if self.max_in_flight_amount is not None and b.in_flight + prepare.amount > self.max_in_flight_amount:
            return reject(ErrorCode.T04_INSUFFICIENT_LIQUIDITY, self.router_address(), "too much money in flight for this app")
        b.tokens -= 1
        b.in_flight += prepare.amount
        b.packets += 1
        try:
            return await self.next(prepare, source)
        finally:
            b.in_flight -= prepare.amount
            b.packets -= 1
            if b.gone and b.packets == 0 and self._buckets.get(source) is b:
                del self._buckets[source]

    def in_flight(self, source: str) -> tuple[int, int]:
        """(packets, amount) this source has in flight now."""
        b = self._buckets.get(source)
        return (0, 0) if b is None else (b.packets, b.in_flight)

    def forget(self, source: str) -> None:
        """The app disconnected. Its bucket stays while Prepares of its are still in flight, so a reconnect cannot
        reset its caps; the last of them drops it."""
        b = self._buckets.get(source)
        if b is not None:
            b.gone = True
            if b.packets == 0:
                del self._buckets[source]


@dataclass
class Limits:
    minimum: int | None = None  # how far the account may go below zero (it owes us), None = unlimited
    maximum: int | None = None  # how much we may owe the account, None = unlimited


@dataclass
class BalanceLayer:
    """Track what each account is owed (positive) or owes (negative), refusing Prepares that would cross a limit.

    An incoming Prepare reserves its amount against the source's maximum; a Fulfill makes it final.
    """

    router_address: Callable[[], str]
    limits: Callable[[str], Limits]
    next: Handler
    balances: dict[str, int] = field(default_factory=dict)
    pending: dict[str, int] = field(default_factory=dict)

    async def __call__(self, prepare: Prepare, source: str) -> Reply:
        amount = prepare.amount
        if amount:
            lim = self.limits(source)
            held = self.balances.get(source, 0) + self.pending.get(source, 0) + amount
            if lim.maximum is not None and held > lim.maximum:
                return reject(
                    ErrorCode.T04_INSUFFICIENT_LIQUIDITY,
                    self.router_address(),
                    f"exceeded maximum balance. maximum={lim.maximum} newBalance={held}",
                )
            self.pending[source] = self.pending.get(source, 0) + amount
        try:
            reply = await self.next(prepare, source)
        finally:
            if amount:
                self.pending[source] -= amount
        if amount and isinstance(reply, Fulfill):
            self.balances[source] = self.balances.get(source, 0) + amount
        return reply

    def settle_outgoing(self, destination_account: str, amount: int) -> None:
        """A Prepare we forwarded to this account was fulfilled: it is owed less."""
        self.balances[destination_account] = self.balances.get(destination_account, 0) - amount


@dataclass
class ExpiryLayer:
    """Shorten the expiry for the next hop, leaving a minimum message window; refuse when too little time is left."""

    router_address: Callable[[], str]
    min_message_window: timedelta
    max_hold_time: timedelta
    next: Handler

    async def __call__(self, prepare: Prepare, source: str) -> Reply:
        now = _now()
        outgoing = min(prepare.expires_at - self.min_message_window, now + self.max_hold_time)
        if outgoing - now < self.min_message_window:
            return reject(
                ErrorCode.R02_INSUFFICIENT_TIMEOUT,
                self.router_address(),
                "source transfer expires too soon to complete payment.",
            )
        if outgoing != prepare.expires_at:
            prepare = Prepare(prepare.amount, outgoing, prepare.execution_condition, prepare.destination, prepare.data)
        return await self.next(prepare, source)


@dataclass
class RouteLayer:
    """Send the Prepare to its next hop, with the expiry enforced and the fulfillment checked."""

    router_address: Callable[[], str]
    table: RoutingTable
    on_fulfilled: Callable[[str, int], None] | None = None

    async def __call__(self, prepare: Prepare, source: str) -> Reply:
        route = self.table.lookup(prepare.destination)
        if route is None:
            return reject(ErrorCode.F02_UNREACHABLE, self.router_address(), f"no route found. destination={prepare.destination}")
        hop, send = route
        if hop == source and hop != "uplink":
            return reject(ErrorCode.F02_UNREACHABLE, self.router_address(), "refusing to route a packet back to its source")
        # Every next hop stops waiting at the Prepare's expiry (BtpConnection.send_prepare, the uplinks) and raises
        # TimeoutError; no extra timer task per packet here.
        try:
            reply = await send(prepare)
        except TimeoutError:
            return reject(ErrorCode.R00_TRANSFER_TIMED_OUT, self.router_address(), "packet expired while waiting for the next hop")
        if isinstance(reply, Fulfill):
            if hashlib.sha256(reply.fulfillment).digest() != prepare.execution_condition:
                return reject(
                    ErrorCode.F05_WRONG_CONDITION,
                    self.router_address(),
                    "fulfillment did not match the execution condition",
                )
            if self.on_fulfilled is not None and prepare.amount:
                self.on_fulfilled(hop, prepare.amount)
        return reply
