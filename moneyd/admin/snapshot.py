"""The one place the admin API reads money state from: balances, limits, the uplink's link and channels.

Balances come from ``Router.accounts()`` (one owner each: the uplink's claim book, the router's count for apps)
and channel facts from ``Uplink.settlement()`` (the uplinks' claim books), so moneyd's core never imports an
uplink, and a third-party uplink shows what it has the same way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..btp.parent import without_token
from ..router.layers import UPLINK
from ..uplink import ChannelView

if TYPE_CHECKING:
    from ..app import Router

APP_PLUGIN = "ilp-plugin-mini-accounts"  # what a local app's account is in the JS moneyd


@dataclass
class AccountFacts:
    id: str
    relation: str  # "parent" (the uplink) or "child" (a local app)
    plugin: str
    connected: bool
    balance: int
    minimum: int | None
    maximum: int | None


@dataclass
class LinkWatch:
    """When the uplink was last seen to connect or drop (polled by the admin server; uplinks need not report)."""

    up: bool | None = None
    since: float | None = None
    changes: list[tuple[float, bool]] = field(default_factory=list)

    def observe(self, up: bool) -> bool:
        """Record the state; True when it changed."""
        if up == self.up:
            return False
        self.up, self.since = up, time.time()
        return True


def uplink_kind(router: Router) -> str | None:
    up = router.uplink
    if up is None:
        return None
    name = getattr(up, "admin_name", None)
    if isinstance(name, str):
        return name
    parts = type(up).__module__.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "uplinks" else type(up).__name__


def uplink_connected(router: Router) -> bool:
    up = router.uplink
    if up is None:
        return False
    if up.failure is not None:
        return False
    ev = getattr(up, "connected", None)
    return bool(ev.is_set()) if ev is not None and hasattr(ev, "is_set") else True


def app_accounts(router: Router) -> list[str]:
    return sorted(router.server.accounts)


def accounts(router: Router) -> list[AccountFacts]:
    """The uplink first, then every connected app, by name: read from ``Router.accounts()``, the one owner of
    balances (the uplink's claim book where it keeps one, else the router's count)."""
    out: list[AccountFacts] = []
    for view in router.accounts():
        if view.kind == "uplink":
            book = view.uplink
            balance = view.balance
            if balance is None:  # plain BTP: the parent keeps the books; show what the router counted
                st = router.traffic.get(UPLINK)
                balance = st.balance if st is not None else 0
            lo, hi = (book.minimum, book.maximum) if book is not None else (None, None)
            out.append(AccountFacts(UPLINK, "parent", uplink_kind(router) or "uplink", uplink_connected(router),
                                    balance, lo, hi))
        else:
            out.append(AccountFacts(view.name, "child", APP_PLUGIN, True, view.balance or 0, None, None))
    return out


def account(router: Router, account_id: str) -> AccountFacts | None:
    return next((a for a in accounts(router) if a.id == account_id), None)


def adjust_balance(router: Router, account_id: str, diff: int) -> int:
    """``POST /balance``: add ``diff`` to an account's balance (as ilp-connector's modifyBalance); the new balance.
    An uplink whose claim book keeps its balance refuses: that is money state, changed only by claims."""
    if account(router, account_id) is None:
        raise LookupError(f"account {account_id} does not exist")
    if account_id == UPLINK and router.uplink is not None and router.uplink.balance() is not None:
        raise PermissionError("the uplink's balance is kept by its claim book and changes only with claims")
    st = router.traffic.of(account_id)
    st.adjusted += diff
    return st.balance


# -- the uplink's own facts ---------------------------------------------------------------------------------------


def _channel(view: ChannelView | None) -> dict[str, Any] | None:
    if view is None:
        return None
    left = None if view.capacity is None or view.claimed is None else view.capacity - view.claimed

    def s(v: int | None) -> str | None:
        return None if v is None else str(v)

    return {"id": view.channel_id, "capacity": s(view.capacity), "claimed": s(view.claimed), "left": s(left),
            "on_ledger": s(view.on_ledger)}


def uplink_facts(router: Router, watch: LinkWatch) -> dict[str, Any] | None:
    """The uplink beyond what ilp-connector shows: link, settlement ledger and both payment channels."""
    up = router.uplink
    if up is None:
        return None
    kind = uplink_kind(router)
    connected = uplink_connected(router)
    watch.observe(connected)
    settles: str | None = None
    ours = theirs = server = None
    try:
        facts = up.settlement()
        if facts is not None:
            settles, server, ours, theirs = facts.ledger, facts.server, _channel(facts.ours), _channel(facts.theirs)
    except Exception as e:  # a half-loaded book must not break the status page; say so instead
        settles, server = kind, f"unreadable: {e}"
    parent = getattr(up, "parent_url", None)
    return {
        "type": kind,
        "connected": connected,
        "since": watch.since,
        "parent": without_token(parent) if isinstance(parent, str) else None,
        "failure": up.failure,
        "settlement": {"ledger": settles, "server": server},
        "channels": {"ours": ours, "theirs": theirs},
    }
