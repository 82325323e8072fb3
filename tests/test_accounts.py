"""Accounts cost nothing until they move money (moneyd.accounts), and nobody can take another token's account."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from moneyd.accounts import (
    AUTH_GRACE,
    EXPIRE_EVERY,
    IDLE_BINDING_TTL,
    SEEN_EVERY,
    AccountBook,
    AccountRefused,
    check_name,
    token_account,
    token_hash,
)
from moneyd.app import Router
from moneyd.btp import BtpPeerError, connect
from moneyd.store import Store
from moneyd.wire import ilp
from tests.support.apps import app, fulfiller, prepare_for, url


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def book(store: Store, connected: set[str], **kw: object) -> tuple[AccountBook, Clock]:
    clock = Clock()
    return AccountBook(store, connected.__contains__, clock=clock, **kw), clock  # type: ignore[arg-type]


def test_token_shaped_names_only_for_their_own_token() -> None:
    mine = token_account("secret")
    assert len(mine) == 43
    check_name(mine, "secret")  # an app may spell out its own default account
    with pytest.raises(AccountRefused, match="shape of a token's hash"):
        check_name(token_account("someone else's"), "secret")
    check_name("alice", "secret")
    check_name("a" * 42, "secret")  # one character short of the shape: an ordinary name


async def test_connecting_writes_nothing_and_holds_the_name_while_connected() -> None:
    store = Store(":memory:")
    connected: set[str] = set()
    b, clock = book(store, connected)
    await b.admit("alice", "t1")
    connected.add("alice")
    assert store.count_bindings() == 0 and not b.is_bound("alice")
    clock.now += 3600
    with pytest.raises(AccountRefused, match="incorrect token for account alice"):
        await b.admit("alice", "t2")
    await b.admit("alice", "t1")  # a second socket of the same app
    connected.discard("alice")
    # Gone without ever paying: the name is free again once the app is away past the auth grace.
    clock.now += AUTH_GRACE + 1
    await b.admit("alice", "t2")
    assert store.count_bindings() == 0


async def test_first_payment_binds_for_good() -> None:
    store = Store(":memory:")
    connected: set[str] = set()
    b, clock = book(store, connected)
    await b.admit("bob", "t1")
    await asyncio.gather(*(b.used_for_payment("bob") for _ in range(3)))  # concurrent first packets: one write
    assert store.count_bindings() == 1 and store.bound_token("bob") == token_hash("t1") and b.is_bound("bob")
    clock.now += 10 * AUTH_GRACE  # bob is not even connected now
    with pytest.raises(AccountRefused, match="incorrect token for account bob"):
        await b.admit("bob", "t2")
    await b.admit("bob", "t1")
    # A new book (a restart) still knows bob.
    b2, _ = book(store, set())
    with pytest.raises(AccountRefused, match="incorrect token"):
        await b2.admit("bob", "t2")
    # The uplink or any source not admitted here is left alone.
    await b.used_for_payment("uplink")
    assert store.count_bindings() == 1


async def test_new_accounts_per_second_are_limited() -> None:
    store = Store(":memory:")
    b, clock = book(store, set(), new_per_second=1.0, new_burst=2.0)
    for name in ("a", "b", "c"):
        await b.admit(name, name)
    await b.used_for_payment("a")
    await b.used_for_payment("b")
    with pytest.raises(AccountRefused, match="too many new accounts"):
        await b.used_for_payment("c")
    await b.used_for_payment("a")  # already bound: costs nothing, never refused
    assert store.count_bindings() == 2
    clock.now += 1.0
    await b.used_for_payment("c")
    assert store.count_bindings() == 3


async def test_pending_names_are_bounded() -> None:
    store = Store(":memory:")
    connected: set[str] = set()
    b, clock = book(store, connected, max_pending=3)
    for i in range(3):
        await b.admit(f"n{i}", "t")
        connected.add(f"n{i}")
    with pytest.raises(AccountRefused, match="too many new accounts at once"):
        await b.admit("n3", "t")
    connected.discard("n0")
    clock.now += AUTH_GRACE + 1
    await b.admit("n3", "t")  # the one that left was swept


def test_unpaid_bindings_expire_and_old_stores_migrate(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE account_tokens (account TEXT PRIMARY KEY, token_hash TEXT NOT NULL);")
    db.executemany("INSERT INTO account_tokens VALUES (?,?)", [(f"fuzz{i}", "h") for i in range(5)])
    db.commit()
    db.close()
    store = Store(path)
    assert store.count_bindings() == 5 and store.bound_token("fuzz0") == "h"  # kept as they were
    assert store.bind_token("paid", "h2", paid=True)
    assert store.bind_token("fuzz1", "h", paid=True)  # an old binding now used for a payment
    assert store.expire_unpaid_bindings(3600) == 0  # too recent


    assert store.expire_unpaid_bindings(3600, now=time.time() + 7200) == 4
    assert store.bound_token("fuzz1") == "h" and store.bound_token("paid") == "h2" and store.count_bindings() == 2


DAY = 24 * 3600.0


def seen_at(store: Store, account: str) -> float:
    row = store.binding(account)
    assert row is not None
    return row[1]


async def test_paid_bindings_expire_only_after_long_idleness() -> None:
    store = Store(":memory:")
    wall = Clock()
    wall.now = 1e9
    connected: set[str] = set()
    b, _ = book(store, connected, wall_clock=wall)
    for name in ("daily", "gone", "long"):
        await b.admit(name, name)
        await b.used_for_payment(name)
    b.left("gone")  # it leaves the same day: nothing written, and it never comes back
    assert seen_at(store, "gone") == 1e9
    wall.now += DAY / 2
    await b.admit("daily", "daily")  # reconnecting within a day writes nothing
    assert seen_at(store, "daily") == 1e9
    wall.now += DAY / 2
    await b.admit("daily", "daily")
    assert seen_at(store, "daily") == wall.now
    await b.admit("long", "long")  # connected, and stays so for 100 days...
    wall.now += 100 * DAY
    await b.admit("daily", "daily")
    b.left("long")  # ...then leaves: seen now
    assert seen_at(store, "long") == wall.now
    assert seen_at(store, "gone") == 1e9
    # A restart: only the binding idle for more than 90 days is gone; the others keep their tokens.
    b2, _ = book(store, set(), wall_clock=wall)
    assert store.bound_token("gone") is None and store.count_bindings() == 2
    with pytest.raises(AccountRefused, match="incorrect token"):
        await b2.admit("daily", "thief")
    with pytest.raises(AccountRefused, match="incorrect token"):
        await b2.admit("long", "thief")
    assert IDLE_BINDING_TTL == 90 * DAY and SEEN_EVERY == DAY


async def test_the_bindings_are_capped_and_written_ones_keep_their_names() -> None:
    store = Store(":memory:")
    wall = Clock()
    wall.now = 1e9
    b, clock = book(store, set(), wall_clock=wall, max_bindings=2)
    for name in ("alice", "bob"):
        await b.admit(name, name)
        await b.used_for_payment(name)
    # Full: a new username is refused (T05 from the server), nothing written; the bound ones pay on.
    await b.admit("mallory", "m")
    with pytest.raises(AccountRefused, match=r"too many accounts \(2\)"):
        await b.used_for_payment("mallory")
    await b.used_for_payment("alice")
    # An app named by its token's hash goes on unwritten: the name's shape alone keeps it its own.
    fresh = token_account("fresh")
    await b.admit(fresh, "fresh")
    await b.used_for_payment(fresh)
    assert store.count_bindings() == 2 and store.bound_token(fresh) is None and not b.is_bound(fresh)
    with pytest.raises(AccountRefused, match="shape of a token's hash"):
        await b.admit(fresh, "thief")
    # Once bob is idle past 90 days (looked for at most every EXPIRE_EVERY while full), there is room again.
    wall.now += IDLE_BINDING_TTL + 1
    await b.admit("alice", "alice")  # alice came back: seen now
    with pytest.raises(AccountRefused, match="too many accounts"):
        await b.used_for_payment("mallory")  # not looked for again yet
    clock.now += EXPIRE_EVERY
    await b.used_for_payment("mallory")
    assert store.bound_token("bob") is None and store.bound_token("mallory") == token_hash("m")
    assert store.count_bindings() == 2


def test_a_store_from_before_last_seen_keeps_its_paid_bindings(tmp_path: Path) -> None:
    path = tmp_path / "v2.sqlite"
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE account_tokens (account TEXT PRIMARY KEY, token_hash TEXT NOT NULL, created_at REAL, paid_at REAL);")
    db.execute("INSERT INTO account_tokens VALUES ('old', 'h', 1.0, 1.0)")  # paid long ago, last use unknown
    db.commit()
    db.close()
    before = time.time()
    store = Store(path)
    assert store.bound_token("old") == "h" and seen_at(store, "old") >= before  # counts as seen at the upgrade
    assert store.expire_idle_bindings(IDLE_BINDING_TTL) == 0
    assert store.expire_idle_bindings(IDLE_BINDING_TTL, now=time.time() + IDLE_BINDING_TTL + 1) == 1


async def test_real_router_binds_on_the_first_payment(router: Router) -> None:
    store = router.store
    # Fresh tokens that only connect (and ask ILDCP, as every app does) leave nothing behind.
    for i in range(20):
        conn, _reader, _ = await app(router, "", f"fresh-{i}")
        await conn.close()
    assert store.count_bindings() == 0
    a, _ra, _ = await app(router, "carol", "carol-token")
    b, _rb, addr_b = await app(router, "", "dave-token", fulfiller)
    p0, _ = prepare_for(addr_b, amount=0)
    assert isinstance(await a.send_prepare(p0), ilp.Fulfill)
    assert store.count_bindings() == 0  # a zero-amount packet moves no money
    p, f = prepare_for(addr_b, amount=5)
    assert await a.send_prepare(p) == ilp.Fulfill(f)
    assert store.bound_token("carol") == token_hash("carol-token")
    assert store.bound_token(token_account("dave-token")) == token_hash("dave-token")
    for c in (a, b):
        await c.close()
    with pytest.raises(BtpPeerError, match="incorrect token for account carol"):
        await connect(url(router, "carol", "another"))
    with pytest.raises(BtpPeerError, match="shape of a token's hash"):
        await connect(url(router, token_account("dave-token"), "thief"))


async def test_real_router_when_the_bindings_are_full(router: Router) -> None:
    store = router.store
    router.server.book.max_bindings = 1
    carol, _rc, _ = await app(router, "carol", "carol-token")
    dave, _rd, addr_d = await app(router, "", "dave-token", fulfiller)
    p, f = prepare_for(addr_d, amount=5)
    assert await carol.send_prepare(p) == ilp.Fulfill(f)  # carol takes the last row; dave goes on unwritten
    assert store.bound_token("carol") == token_hash("carol-token") and store.count_bindings() == 1
    erin, _re, _ = await app(router, "erin", "erin-token")
    frank, _rf, _ = await app(router, "", "frank-token")
    p, f = prepare_for(addr_d, amount=5)
    r = await erin.send_prepare(p)
    assert isinstance(r, ilp.Reject) and r.code == "T05" and "too many accounts (1)" in r.message
    p, f = prepare_for(addr_d, amount=5)
    assert await frank.send_prepare(p) == ilp.Fulfill(f)
    p, f = prepare_for(addr_d, amount=5)
    assert await carol.send_prepare(p) == ilp.Fulfill(f)
    assert store.count_bindings() == 1
    for c in (carol, dave, erin, frank):
        await c.close()
