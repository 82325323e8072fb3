"""The layers a Prepare passes through, outermost first. Each one is small and testable with no socket:

validate → ILDCP responder → max packet amount → rate and in-flight limits → accounts → expiry → route
(the route layer also checks the fulfillment against the condition and enforces the expiry).

Balances have one owner each: the uplink's claim book for the uplink (``Uplink.balance()``; it settles by itself,
before the Prepares it pays for), ``Accounts`` here for local apps, which settle nothing with moneyd.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ..handlers import IncomingHandler
from ..wire import ildcp
from ..wire.ilp import (
    AmountTooLargeData,
    ErrorCode,
    Fulfill,
    Prepare,
    Reject,
    Reply,
    encode_amount_too_large,
    with_expiry,
)
from .routing import RoutingTable


def reject(code: str, triggered_by: str, message: str, data: bytes = b"") -> Reject:
    return Reject(code, triggered_by, message, data)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class ValidateLayer:
    """Refuse what can never succeed: an already expired Prepare."""

    address: str
    next: IncomingHandler

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
    next: IncomingHandler

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
    next: IncomingHandler

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


# A STREAM sender keeps up to 128 Prepares in flight, the JS benchmark client 32: 500 leaves ample room and
# bounds what one app can make the router hold (a pending Prepare costs ~4 KB, so ~2 MB per app at the cap). It
# stays below the BTP layer's cap on requests served at once per connection (BtpLimits.max_serving, 512), so an
# app over it gets a clear T05 at once rather than having its socket paused behind a backlog.
DEFAULT_MAX_IN_FLIGHT_PACKETS = 500
UPLINK = "uplink"  # the uplink's account name (routing, counters, admin API): no app may take it (refused at auth)


@dataclass
class RateLimitLayer:
    """Per-app limits: a token bucket of packets per second, and caps on the Prepares and the amount in flight.

    The JS moneyd shares one 10,000-packets-a-minute bucket among all apps; here one busy app cannot starve others:
    an app at a cap gets T05/T04 at once (nothing is queued for it), and every other app has its own bucket and caps.

    Sources in ``unlimited`` (the uplink) pass uncounted: the parent's traffic is many senders' payments to all the
    local apps, not one app's, and as in ilp-connector it is bounded elsewhere: by the parent's own limits, the
    uplink's balance limits, max packet amount, and its BTP connection (512 Prepares served at once, then reading
    pauses: back-pressure rather than T05).
    """

    router_address: Callable[[], str]
    packets_per_second: float
    burst: float
    max_in_flight_amount: int | None
    next: IncomingHandler
    max_in_flight_packets: int | None = DEFAULT_MAX_IN_FLIGHT_PACKETS
    unlimited: frozenset[str] = frozenset()
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    async def __call__(self, prepare: Prepare, source: str) -> Reply:
        if source in self.unlimited:
            return await self.next(prepare, source)
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
class AccountStats:
    """One account as the router sees it, in base units. ``balance`` is what the account owes moneyd (positive)
    or moneyd owes it (negative) from the Prepares it sent and received that were fulfilled."""

    sent: int = 0  # fulfilled: the account paid this much through moneyd
    received: int = 0  # fulfilled: moneyd delivered this much to it...
    received_packets: int = 0  # ...in this many Prepares
    sending_packets: int = 0  # its Prepares waiting for a reply
    sending_amount: int = 0
    receiving_packets: int = 0  # Prepares sent to it, waiting for its reply
    receiving_amount: int = 0
    adjusted: int = 0  # changed by hand (the admin API's POST /balance)

    @property
    def balance(self) -> int:
        return self.sent - self.received + self.adjusted


class Accounts:
    """What each account has moved through the router, and what is in flight from and to it. The one count of it:
    the admin API's traffic counters read it too (``on_forget`` hands them an account's last figures)."""

    def __init__(self, on_forget: Callable[[str, AccountStats], None] | None = None) -> None:
        self._stats: dict[str, AccountStats] = {}
        self.on_forget = on_forget

    def of(self, account: str) -> AccountStats:
        st = self._stats.get(account)
        if st is None:
            st = self._stats[account] = AccountStats()
        return st

    def get(self, account: str) -> AccountStats | None:
        return self._stats.get(account)

    def names(self) -> list[str]:
        return list(self._stats)

    def items(self) -> list[tuple[str, AccountStats]]:
        return list(self._stats.items())

    def forget(self, account: str) -> None:
        """An app that left: its figures go with it (a new token is a new account; memory stays bounded)."""
        st = self._stats.pop(account, None)
        if st is not None and self.on_forget is not None:
            self.on_forget(account, st)


@dataclass
class AccountsLayer:
    """Count each source account's Prepares in flight and what it paid once fulfilled (the route layer counts
    the receiving side). It limits nothing: apps settle nothing with moneyd, and the uplink's book limits itself."""

    accounts: Accounts
    next: IncomingHandler

    async def __call__(self, prepare: Prepare, source: str) -> Reply:
        amount = prepare.amount
        st = self.accounts.of(source)
        st.sending_packets += 1
        st.sending_amount += amount
        try:
            reply = await self.next(prepare, source)
        finally:
            st.sending_packets -= 1
            st.sending_amount -= amount
        if isinstance(reply, Fulfill):
            st.sent += amount
        return reply


@dataclass
class ExpiryLayer:
    """Shorten the expiry for the next hop, leaving a minimum message window; refuse when too little time is left."""

    router_address: Callable[[], str]
    min_message_window: timedelta
    max_hold_time: timedelta
    next: IncomingHandler

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
            prepare = with_expiry(prepare, outgoing)  # the new 17 bytes spliced in, nothing re-encoded
        return await self.next(prepare, source)


@dataclass
class RouteLayer:
    """Send the Prepare to its next hop, with the expiry enforced and the fulfillment checked."""

    router_address: Callable[[], str]
    table: RoutingTable
    accounts: Accounts | None = None  # counts the receiving side

    async def __call__(self, prepare: Prepare, source: str) -> Reply:
        route = self.table.lookup(prepare.destination)
        if route is None:
            return reject(ErrorCode.F02_UNREACHABLE, self.router_address(), f"no route found. destination={prepare.destination}")
        hop, send = route
        if hop == source and hop != UPLINK:
            return reject(ErrorCode.F02_UNREACHABLE, self.router_address(), "refusing to route a packet back to its source")
        amount = prepare.amount
        st = self.accounts.of(hop) if self.accounts is not None else None
        if st is not None:
            st.receiving_packets += 1
            st.receiving_amount += amount
        # Every next hop stops waiting at the Prepare's expiry (moneyd.btp.ilplink, the uplinks): an app's link
        # answers R00 itself, an uplink may raise TimeoutError. No extra timer task per packet here.
        try:
            reply = await send(prepare)
        except TimeoutError:
            return reject(ErrorCode.R00_TRANSFER_TIMED_OUT, self.router_address(), "packet expired while waiting for the next hop")
        finally:
            if st is not None:
                st.receiving_packets -= 1
                st.receiving_amount -= amount
        if isinstance(reply, Fulfill):
            if hashlib.sha256(reply.fulfillment).digest() != prepare.execution_condition:
                return reject(
                    ErrorCode.F05_WRONG_CONDITION,
                    self.router_address(),
                    "fulfillment did not match the execution condition",
                )
            if st is not None:
                st.received += amount
                st.received_packets += 1
        return reply
