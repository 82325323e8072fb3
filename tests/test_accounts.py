"""Accounts cost nothing until they move money (moneyd.accounts), and nobody can take another token's account."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from moneyd.accounts import AUTH_GRACE, AccountBook, AccountRefused, check_name, token_account, token_hash
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
