"""Each pipeline layer alone, with no socket."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta

from moneyd.router.layers import (
    Accounts,
    AccountsLayer,
    ExpiryLayer,
    IldcpLayer,
    MaxPacketAmountLayer,
    RateLimitLayer,
    RouteLayer,
    ValidateLayer,
)
from moneyd.router.routing import RoutingTable
from moneyd.wire import ildcp, ilp

ADDR = "private.moneyd"
FULFILLMENT = b"\x07" * 32
CONDITION = hashlib.sha256(FULFILLMENT).digest()


def prep(amount: int = 10, seconds: float = 10, dest: str = "private.moneyd.local.bob") -> ilp.Prepare:
    return ilp.Prepare(amount, datetime.now(UTC) + timedelta(seconds=seconds), CONDITION, dest, b"")


class Recorder:
    def __init__(self, reply: ilp.Reply | None = None) -> None:
        self.seen: list[tuple[ilp.Prepare, str]] = []
        self.reply = reply or ilp.Fulfill(FULFILLMENT)

    async def __call__(self, prepare: ilp.Prepare, source: str) -> ilp.Reply:
        self.seen.append((prepare, source))
        return self.reply


def addr() -> str:
    return ADDR


async def test_validate_refuses_expired() -> None:
    nxt = Recorder()
    layer = ValidateLayer(ADDR, nxt)
    r = await layer(prep(seconds=-1), "a")
    assert isinstance(r, ilp.Reject) and (r.code, r.triggered_by) == ("R00", ADDR)
    assert await layer(prep(), "a") == nxt.reply and len(nxt.seen) == 1


async def test_ildcp_answers_local_apps_only() -> None:
    nxt = Recorder()
    layer = IldcpLayer(lambda a: None if a == "uplink" else f"{ADDR}.local.{a}", lambda: "XRP", lambda: 9, addr, nxt)
    r = await layer(ildcp.request(), "alice")
    assert isinstance(r, ilp.Fulfill)
    assert ildcp.parse_fulfill(r) == ildcp.IldcpResponse(f"{ADDR}.local.alice", 9, "XRP")
    r2 = await layer(ildcp.request(), "uplink")
    assert isinstance(r2, ilp.Reject) and r2.code == "F02"
    await layer(prep(), "alice")
    assert len(nxt.seen) == 1


async def test_max_packet_amount_gives_f08_with_data() -> None:
    nxt = Recorder()
    layer = MaxPacketAmountLayer(addr, 100, nxt)
    r = await layer(prep(amount=101), "a")
    assert isinstance(r, ilp.Reject) and r.code == "F08"
    assert ilp.decode_amount_too_large(r.data) == ilp.AmountTooLargeData(101, 100)
    assert isinstance(await layer(prep(amount=100), "a"), ilp.Fulfill)


async def test_rate_limit_is_per_app() -> None:
    nxt = Recorder()
    layer = RateLimitLayer(addr, packets_per_second=0.001, burst=2, max_in_flight_amount=None, next=nxt)
    codes = [getattr(await layer(prep(), "busy"), "code", "ok") for _ in range(3)]
    assert codes == ["ok", "ok", "T05"]
    # Another app still has its own bucket.
    assert isinstance(await layer(prep(), "quiet"), ilp.Fulfill)


async def test_amount_in_flight_limit() -> None:
    gate = asyncio.Event()

    async def slow(prepare: ilp.Prepare, source: str) -> ilp.Reply:
        await gate.wait()
        return ilp.Fulfill(FULFILLMENT)

    layer = RateLimitLayer(addr, 1000, 1000, max_in_flight_amount=15, next=slow)
    first = asyncio.create_task(layer(prep(amount=10), "a"))
    await asyncio.sleep(0)
    r = await layer(prep(amount=10), "a")
    assert isinstance(r, ilp.Reject) and r.code == "T04"
    gate.set()
    assert isinstance(await first, ilp.Fulfill)
    assert isinstance(await layer(prep(amount=10), "a"), ilp.Fulfill)


async def test_accounts_count_in_flight_and_fulfilled_both_ways() -> None:
    accounts = Accounts()
    gate = asyncio.Event()
    table = RoutingTable()

    async def bob(p: ilp.Prepare) -> ilp.Reply:
        await gate.wait()
        return ilp.Fulfill(FULFILLMENT) if p.amount != 7 else ilp.Reject("F99", "", "no")

    table.add("private.moneyd.local.bob", "bob", bob)
    layer = AccountsLayer(accounts, RouteLayer(addr, table, accounts))
    first = asyncio.create_task(layer(prep(amount=20), "a"))
    await asyncio.sleep(0)
    a, b = accounts.of("a"), accounts.of("bob")
    assert (a.sending_packets, a.sending_amount, b.receiving_packets, b.receiving_amount) == (1, 20, 1, 20)
    gate.set()
    assert isinstance(await first, ilp.Fulfill)
    assert isinstance(await layer(prep(amount=7), "a"), ilp.Reject)  # a reject moves nothing
    assert (a.sending_packets, a.sending_amount, b.receiving_packets, b.receiving_amount) == (0, 0, 0, 0)
    assert (a.sent, a.received, a.balance) == (20, 0, 20)  # a owes moneyd what it paid through it
    assert (b.sent, b.received, b.balance) == (0, 20, -20)
    accounts.forget("bob")
    assert accounts.get("bob") is None and accounts.names() == ["a"]


async def test_expiry_splices_the_new_expiry_into_the_bytes() -> None:
    nxt = Recorder()
    layer = ExpiryLayer(addr, timedelta(seconds=1), timedelta(seconds=30), nxt)
    original = prep(seconds=10)
    wire = ilp.encode_prepare(original)
    p = ilp.decode_prepare(wire)
    await layer(p, "a")
    out = nxt.seen[-1][0]
    assert out.raw is not None and out.raw != wire and len(out.raw) == len(wire)
    assert ilp.decode_prepare(out.raw) == ilp.decode_prepare(ilp.encode_packet(ilp.Prepare(
        out.amount, out.expires_at, out.execution_condition, out.destination, out.data)))
    assert ilp.decode_prepare(out.raw).expires_at == (p.expires_at - timedelta(seconds=1))


async def test_expiry_is_shortened_and_r02_when_too_short() -> None:
    nxt = Recorder()
    layer = ExpiryLayer(addr, timedelta(seconds=1), timedelta(seconds=30), nxt)
    p = prep(seconds=10)
    await layer(p, "a")
    assert nxt.seen[-1][0].expires_at == p.expires_at - timedelta(seconds=1)
    await layer(prep(seconds=100), "a")
    assert nxt.seen[-1][0].expires_at <= datetime.now(UTC) + timedelta(seconds=30)
    r = await layer(prep(seconds=1.5), "a")
    assert isinstance(r, ilp.Reject) and r.code == "R02"


async def test_routing_table_longest_prefix() -> None:
    table = RoutingTable()

    async def a(p: ilp.Prepare) -> ilp.Reply:
        return ilp.Reject("F99", "", "a")

    async def b(p: ilp.Prepare) -> ilp.Reply:
        return ilp.Reject("F99", "", "b")

    table.add("private.moneyd.local.alice", "alice", a)
    table.add("private.moneyd.local.alice.sub", "sub", b)
    assert table.lookup("private.moneyd.local.alice.x")[0] == "alice"  # type: ignore[index]
    assert table.lookup("private.moneyd.local.alice.sub.y")[0] == "sub"  # type: ignore[index]
    assert table.lookup("private.moneyd.local.alicex") is None
    table.default = ("uplink", a)
    assert table.lookup("g.anything")[0] == "uplink"  # type: ignore[index]


async def test_route_checks_fulfillment_and_counts_fulfilled() -> None:
    table = RoutingTable()

    async def good(p: ilp.Prepare) -> ilp.Reply:
        return ilp.Fulfill(FULFILLMENT)

    async def bad(p: ilp.Prepare) -> ilp.Reply:
        return ilp.Fulfill(bytes(32))

    async def slow(p: ilp.Prepare) -> ilp.Reply:
        raise TimeoutError

    table.add("private.moneyd.local.bob", "bob", good)
    table.add("private.moneyd.local.eve", "eve", bad)
    table.add("private.moneyd.local.sam", "sam", slow)
    accounts = Accounts()
    layer = RouteLayer(addr, table, accounts)
    assert isinstance(await layer(prep(amount=3), "a"), ilp.Fulfill)
    r = await layer(prep(dest="private.moneyd.local.eve"), "a")
    assert isinstance(r, ilp.Reject) and r.code == "F05"
    r = await layer(prep(dest="private.moneyd.local.sam"), "a")
    assert isinstance(r, ilp.Reject) and r.code == "R00"
    r = await layer(prep(dest="g.nowhere"), "a")
    assert isinstance(r, ilp.Reject) and r.code == "F02"
    assert [(n, accounts.of(n).received) for n in accounts.names()] == [("bob", 3), ("eve", 0), ("sam", 0)]
    assert [accounts.of(n).received_packets for n in accounts.names()] == [1, 0, 0]
