"""The monitor the router feeds on every packet: bounded, and right about what it counts."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from moneyd.admin import monitor as monitor_mod
from moneyd.admin.monitor import Monitor
from moneyd.router.layers import Accounts
from moneyd.wire.ilp import Fulfill, Prepare, Reject

F = b"\x01" * 32


def prepare(amount: int, destination: str = "private.moneyd.local.bob.x") -> Prepare:
    return Prepare(amount, datetime.now(UTC) + timedelta(seconds=30), hashlib.sha256(F).digest(), destination, b"")


def test_counts_flows_and_errors() -> None:
    m = Monitor()
    for _ in range(3):
        m.packet("alice", prepare(10), Fulfill(F, b""))
    m.packet("alice", prepare(0), Fulfill(F, b""))  # ILDCP and other zero-amount packets move no money
    m.packet("alice", prepare(5), Reject("F99", "private.moneyd.local.bob", "closed", b""))
    assert m.incoming[("alice", "fulfilled")] == [4, 30]
    assert m.incoming[("alice", "rejected")] == [1, 5]
    assert m.last_error is None  # a receiver's F-code is not moneyd's trouble
    m.packet("alice", prepare(5), Reject("T04", "private.moneyd", "exceeded maximum balance. maximum=1", b""))
    assert m.last_error is not None and m.last_error["code"] == "T04"
    assert [a["count"] for a in m.alert_list()] == [1]
    payments = m.recent_payments()
    assert len(payments) == 1 and payments[0]["amount"] == "30" and payments[0]["packets"] == 3


def test_flows_and_events_are_bounded() -> None:
    m = Monitor()
    for i in range(monitor_mod.RECENT_FLOWS + 50):
        m.packet("alice", prepare(1, f"private.moneyd.local.bob.c{i}"), Fulfill(F, b""))
    assert len(m.flows) == monitor_mod.RECENT_FLOWS
    assert m.recent_payments(limit=1)[0]["destination"].endswith(f"c{monitor_mod.RECENT_FLOWS + 49}")
    for i in range(monitor_mod.RECENT_EVENTS + 10):
        m.link(f"app{i}", True)
    assert len(m.events) == monitor_mod.RECENT_EVENTS
    assert [e["seq"] for e in m.since(m.seq - 2)] == [m.seq - 1, m.seq]


def test_outgoing_counters_read_the_routers_counts_and_outlive_an_app() -> None:
    """What was delivered to each account is counted once, by the router's Accounts; the admin counters read it,
    and keep an app's figures after it leaves (a counter never goes back)."""
    m = Monitor()
    accounts = Accounts(on_forget=lambda name, st: m.retire(name, st.received_packets, st.received))

    def outgoing() -> dict[str, list[int]]:
        return m.outgoing({a: (st.received_packets, st.received) for a, st in accounts.items()})

    bob = accounts.of("bob")
    bob.received, bob.received_packets = 30, 3
    accounts.of("carol")  # connected, nothing delivered: no counter yet
    assert outgoing() == {"bob": [3, 30]}
    accounts.forget("bob")
    assert outgoing() == {"bob": [3, 30]}
    bob = accounts.of("bob")  # bob comes back and receives more
    bob.received, bob.received_packets = 7, 1
    assert outgoing() == {"bob": [4, 37]}
