"""Who may use which account name, at a bounded cost.

Local apps authenticate as ilp-plugin-mini-accounts apps do: the account is the ``auth_username``, or with none
base64url(sha256(token)), and the first token seen for an account keeps it. The JS moneyd writes that binding for
good on the first connect, so every fresh token costs an fsync'd row forever. Here:

- a binding is held in memory while its app is connected, and written (fsync'd) only when the account is first
  used for a payment (a Prepare with an amount, sent or received): an account that never moved money has nothing
  to protect, and the first paid packet is exactly when an address starts to matter (it receives money, its
  balance counts). ILDCP and zero-amount probes, which every app sends on connect, don't count;
- at most ``new_per_second`` (burst ``new_burst``) accounts are written per second; a paid packet over the limit
  gets T05 (retryable) and the account stays unwritten;
- bindings from before this rule that were never used for a payment expire (Store.expire_unpaid_bindings);
- a paid binding expires when its app has not connected for ``IDLE_BINDING_TTL`` (90 days). When it was last seen
  is written at connect (and at disconnect, for an app connected for long), at most once a day per account;
- at most ``max_bindings`` are written. When the table is full an app named by its token's hash goes on unwritten
  (its name has the shape check below to protect it, so the binding adds nothing), and a paid packet of an app with
  a username new to the table gets T05 and one log line: the accounts already written keep their addresses, and a
  flood of fresh tokens (5 a second, 432,000 a day) cannot grow the table past the cap;
- a username shaped like a token hash (43 base64url characters) is refused unless it is this token's own hash,
  so nobody can take the account of a token that has not connected yet.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .loglimit import RateLimitedLog
from .store import Store

limited = RateLimitedLog(logging.getLogger("moneyd.accounts"))

TOKEN_HASH_SHAPE = re.compile(r"\A[A-Za-z0-9_-]{43}\Z")
NEW_PER_SECOND = 5.0
NEW_BURST = 50.0
# A binding of an app still authenticating (not yet in the server's accounts) stays held this long.
AUTH_GRACE = 10.0
MAX_PENDING = 10_000
UNPAID_BINDING_TTL = 7 * 24 * 3600.0
IDLE_BINDING_TTL = 90 * 24 * 3600.0
SEEN_EVERY = 24 * 3600.0  # how stale a binding's last-seen time may get before it is written again
# A home router has a handful of apps; 100,000 rows is ~10 MB of SQLite, and ~5.5 hours of a fresh-token flood.
MAX_BINDINGS = 100_000
# When the table is full, idle bindings are looked for at most this often (a DELETE over the table).
EXPIRE_EVERY = 3600.0


class AccountRefused(Exception):
    """The app may not use this account (now); the message says why."""


def token_account(token: str) -> str:
    """The account of an app with no username: base64url(sha256(token)), unpadded (43 characters)."""
    return base64.urlsafe_b64encode(hashlib.sha256(token.encode("utf-8")).digest()).rstrip(b"=").decode("ascii")


def token_hash(token: str) -> str:
    """What the store keeps of a token (hex sha256, as before)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_name(account: str, token: str) -> None:
    """Refuse a name that looks like another token's account."""
    if TOKEN_HASH_SHAPE.match(account) and account != token_account(token):
        raise AccountRefused(f"account name {account[:12]}… has the shape of a token's hash and is not this token's")


@dataclass
class TokenBucket:
    rate: float
    burst: float
    clock: Callable[[], float] = time.monotonic
    tokens: float = -1.0
    stamp: float = 0.0

    def take(self) -> bool:
        now = self.clock()
        if self.tokens < 0:
            self.tokens, self.stamp = self.burst, now
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


@dataclass
class _Pending:
    token_hash: str
    since: float


@dataclass
class AccountBook:
    """The account bindings: durable ones in the store, the rest in memory while their app is connected."""

    store: Store
    is_connected: Callable[[str], bool]
    new_per_second: float = NEW_PER_SECOND
    new_burst: float = NEW_BURST
    clock: Callable[[], float] = time.monotonic
    max_pending: int = MAX_PENDING
    max_bindings: int = MAX_BINDINGS
    wall_clock: Callable[[], float] = time.time  # for what the store keeps across restarts
    _pending: dict[str, _Pending] = field(default_factory=dict)
    _durable: set[str] = field(default_factory=set)
    _seen: dict[str, float] = field(default_factory=dict)  # durable accounts: their last-seen time in the store
    _writing: dict[str, asyncio.Future[None]] = field(default_factory=dict)
    _limit: TokenBucket = field(init=False)
    _count: int = field(init=False)
    _expired_at: float = field(init=False)

    def __post_init__(self) -> None:
        self._limit = TokenBucket(self.new_per_second, self.new_burst, self.clock)
        self._expire()

    def _expire(self) -> None:
        now = self.wall_clock()
        self.store.expire_unpaid_bindings(UNPAID_BINDING_TTL, now)
        self.store.expire_idle_bindings(IDLE_BINDING_TTL, now)
        self._count = self.store.count_bindings()
        self._expired_at = self.clock()

    def _live(self, account: str, p: _Pending, now: float) -> bool:
        return self.is_connected(account) or now - p.since < AUTH_GRACE

    def _sweep(self, now: float) -> None:
        for account, p in list(self._pending.items()):
            if not self._live(account, p, now):
                del self._pending[account]

    async def admit(self, account: str, token: str) -> None:
        """May this token use this account? Raises AccountRefused if not. Writes nothing."""
        check_name(account, token)
        th = token_hash(token)
        now_wall = self.wall_clock()
        row = await asyncio.to_thread(self._bound_and_seen, account, th, now_wall)
        if row is not None:
            bound, seen = row
            if bound != th:
                raise AccountRefused(f"incorrect token for account {account}")
            self._durable.add(account)
            self._seen[account] = seen
            return
        now = self.clock()
        p = self._pending.get(account)
        if p is not None and p.token_hash != th and self._live(account, p, now):
            raise AccountRefused(f"incorrect token for account {account}")
        if p is None and len(self._pending) >= self.max_pending:
            self._sweep(now)
            if len(self._pending) >= self.max_pending:
                raise AccountRefused("too many new accounts at once; try again later")
        self._pending[account] = _Pending(th, now)

    def _bound_and_seen(self, account: str, th: str, now: float) -> tuple[str, float] | None:
        """The binding (token hash, last seen); for this token's own, its last-seen time is brought up to date if
        stale. Runs in a thread."""
        row = self.store.binding(account)
        if row is None:
            return None
        bound, seen = row
        if bound == th and now - seen >= SEEN_EVERY:
            self.store.touch_binding(account, now)
            seen = now
        return bound, seen

    def is_bound(self, account: str) -> bool:
        return account in self._durable

    def left(self, account: str) -> None:
        """The account's app disconnected (all its sockets): an app that stayed connected for days is noted as seen
        now, so its binding counts as idle only from here. At most one write a day per account."""
        seen = self._seen.get(account)
        if seen is None:
            return
        now = self.wall_clock()
        if now - seen >= SEEN_EVERY:
            self._seen[account] = now
            try:
                self.store.touch_binding(account, now)
            except sqlite3.Error as e:  # e.g. the store closed first at shutdown: only a last-seen time is lost
                limited.warning("touch failed", "could not note when account %s was last seen: %s", account, e)

    async def _full(self) -> bool:
        if self._count < self.max_bindings:
            return False
        if self.clock() - self._expired_at >= EXPIRE_EVERY:
            self._expired_at = self.clock()
            await asyncio.to_thread(self._expire)
        return self._count >= self.max_bindings

    async def used_for_payment(self, account: str) -> None:
        """Make the account's binding durable before its first paid packet goes on; AccountRefused (the caller
        answers T05) when too many accounts are being written."""
        if account in self._durable:
            return
        writing = self._writing.get(account)
        if writing is not None:
            await asyncio.shield(writing)
            return
        p = self._pending.get(account)
        if p is None:
            return  # not an app admitted here (the uplink, or an app of a test's own making)
        if await self._full():
            if TOKEN_HASH_SHAPE.match(account):
                return  # admit checked it is this token's own hash: nobody else can use the name, binding or not
            limited.warning("bindings full", "the account table is full (%d accounts); refusing new accounts with a "
                            "username until idle ones expire", self.max_bindings)
            raise AccountRefused(f"too many accounts ({self.max_bindings}); try again later")
        if not self._limit.take():
            raise AccountRefused("too many new accounts; try again shortly")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._writing[account] = fut
        try:
            now_wall = self.wall_clock()
            if not await asyncio.to_thread(self.store.bind_token, account, p.token_hash, True, now_wall):
                raise AccountRefused(f"incorrect token for account {account}")
            self._durable.add(account)
            self._seen[account] = now_wall
            self._count += 1
            self._pending.pop(account, None)
            fut.set_result(None)
        except Exception as e:
            fut.set_exception(e)
            fut.exception()  # marked retrieved: the waiters re-raise it, nobody else must log it
            raise
        finally:
            if not fut.done():
                fut.cancel()
            del self._writing[account]
