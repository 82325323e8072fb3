"""RateLimitLayer's per-app caps on Prepares and amount in flight, with no socket."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta

from moneyd.app import UPLINK, Router, RouterSettings
from moneyd.router.layers import DEFAULT_MAX_IN_FLIGHT_PACKETS, RateLimitLayer, default_max_in_flight_amount
from moneyd.store import Store
from moneyd.wire import ilp

ADDR = "private.moneyd"
FULFILLMENT = b"\x07" * 32


def addr() -> str:
    return ADDR


def prep(amount: int = 10) -> ilp.Prepare:
    return ilp.Prepare(amount, datetime.now(UTC) + timedelta(seconds=10), hashlib.sha256(FULFILLMENT).digest(), "private.moneyd.local.bob", b"")


class Gate:
    """A next hop that holds every Prepare until released."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.seen: list[str] = []

    async def __call__(self, prepare: ilp.Prepare, source: str) -> ilp.Reply:
        self.seen.append(source)
        await self.open.wait()
        return ilp.Fulfill(FULFILLMENT)


async def test_packet_cap_refuses_at_once_and_others_are_served() -> None:
    gate = Gate()
    layer = RateLimitLayer(addr, 1e6, 1e6, None, gate, max_in_flight_packets=3)
    held = [asyncio.create_task(layer(prep(), "hog")) for _ in range(3)]
    await asyncio.sleep(0)
    assert layer.in_flight("hog") == (3, 30)
    r = await asyncio.wait_for(layer(prep(), "hog"), 1)  # refused at once, not queued
    assert isinstance(r, ilp.Reject) and r.code == "T05" and "in flight" in r.message
    assert gate.seen == ["hog"] * 3
    # Another app is served as before while the hog is at its cap.
    other = asyncio.create_task(layer(prep(), "quiet"))
    await asyncio.sleep(0)
    assert gate.seen[-1] == "quiet"
    gate.open.set()
    assert all(isinstance(r, ilp.Fulfill) for r in await asyncio.gather(*held, other))
    assert layer.in_flight("hog") == (0, 0)
    assert isinstance(await layer(prep(), "hog"), ilp.Fulfill)


async def test_amount_cap_is_per_app() -> None:
    gate = Gate()
    layer = RateLimitLayer(addr, 1e6, 1e6, 100, gate, max_in_flight_packets=None)
    first = asyncio.create_task(layer(prep(90), "a"))
    await asyncio.sleep(0)
    r = await layer(prep(20), "a")
    assert isinstance(r, ilp.Reject) and r.code == "T04"
    other = asyncio.create_task(layer(prep(90), "b"))
    await asyncio.sleep(0)
    assert gate.seen == ["a", "b"]
    gate.open.set()
    assert isinstance(await first, ilp.Fulfill) and isinstance(await other, ilp.Fulfill)


async def test_reconnecting_does_not_reset_the_caps() -> None:
    gate = Gate()
    layer = RateLimitLayer(addr, 1e6, 1e6, None, gate, max_in_flight_packets=2)
    held = [asyncio.create_task(layer(prep(), "app")) for _ in range(2)]
    await asyncio.sleep(0)
    layer.forget("app")  # it disconnected with two Prepares still in flight, and comes back at once
    r = await layer(prep(), "app")
    assert isinstance(r, ilp.Reject) and r.code == "T05"
    layer.forget("app")
    gate.open.set()
    await asyncio.gather(*held)
    assert layer.in_flight("app") == (0, 0) and "app" not in layer._buckets  # dropped with its last packet


def test_defaults_cap_every_app() -> None:
    s = RouterSettings()
    assert s.max_in_flight_packets == DEFAULT_MAX_IN_FLIGHT_PACKETS == 500
    assert s.max_in_flight_amount is None and default_max_in_flight_amount(9) == 1000 * 10**9


async def test_the_uplink_is_not_capped_like_an_app() -> None:
    # The layer as the Router builds it, in front of a gate that holds every Prepare.
    settings = RouterSettings(max_in_flight_packets=3, max_in_flight_amount=100, burst=5, packets_per_second=0.001)
    router = Router(settings, Store(":memory:"))
    layer = router.rate_limit
    assert layer is not None and layer.unlimited == frozenset({UPLINK})
    gate = Gate()
    layer.next = gate
    # The parent's traffic (payments of many senders to all the apps) goes past every per-app cap: 10 Prepares at
    # once (cap 3), 500 units in flight (cap 100), more than the burst of 5.
    from_parent = [asyncio.create_task(layer(prep(50), UPLINK)) for _ in range(10)]
    await asyncio.sleep(0)
    assert gate.seen == [UPLINK] * 10
    # An app is still capped: 3 in flight, then T05 at once; and the amount cap still holds for another app.
    held = [asyncio.create_task(layer(prep(), "app")) for _ in range(3)]
    await asyncio.sleep(0)
    r = await asyncio.wait_for(layer(prep(), "app"), 1)
    assert isinstance(r, ilp.Reject) and r.code == "T05" and "in flight" in r.message
    r = await asyncio.wait_for(layer(prep(101), "other"), 1)
    assert isinstance(r, ilp.Reject) and r.code == "T04"
    gate.open.set()
    assert all(isinstance(x, ilp.Fulfill) for x in await asyncio.gather(*from_parent, *held))
    assert UPLINK not in layer._buckets  # nothing counted for it, so nothing to forget
