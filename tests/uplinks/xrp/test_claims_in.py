"""The parent's claims as the XRP uplink takes them, in process (a real Store on disk, a real ClaimBook, no socket):
claims that arrive together share one commit, none pays for anything before it is on disk, and a Prepare that
finds the balance limit full waits for the claims on their way instead of being refused at once, without the
limit ever being passed.

The asym server sends a claim after every Fulfill; a commit (an fsync) per claim on the event loop held every
packet behind it, and the T04s the full limit gave made moneyd's STREAM sender pause for seconds (bench/uplinks.py,
direction "in")."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from xrpl.wallet import Wallet

from moneyd.store import Store
from moneyd.wire import ilp
from tests.support.xrp_book import new_book, server_claim
from uplinks.xrp import messages
from uplinks.xrp import uplink as xrp_uplink
from uplinks.xrp.uplink import XrpSettings, XrpUplink

UNIT = 1_000_000  # a packet of 0.001 XRP at scale 9, as the bench sends them
MAXIMUM = 20_000_000  # BalanceSettings.moneyd(): what the parent may owe us, Prepares in flight included


class CountingStore(Store):
    """A real Store that also says what it wrote, and what the book owed when it did."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.writes: list[dict[str, Any]] = []
        self.owed_at_write: list[int] = []
        self.uplink: XrpUplink | None = None

    def put(self, namespace: str, key: str, value: Any) -> None:
        super().put(namespace, key, value)
        if namespace == "xrp":
            self.writes.append(value)
            assert self.uplink is not None and self.uplink.book is not None
            self.owed_at_write.append(self.uplink.book.owed)


@pytest.fixture
def uplink(tmp_path: Path) -> Iterator[XrpUplink]:
    seed = Wallet.create().seed
    assert seed is not None
    store = CountingStore(tmp_path / "moneyd.sqlite")
    up = XrpUplink(XrpSettings(parent="127.0.0.1:1", name="alice", secret=seed, xrp_server="ws://127.0.0.1:1"), store)
    up.book = new_book()  # the parent's channel to us holds 1 XRP
    store.uplink = up

    async def fulfill(prepare: ilp.Prepare) -> ilp.Reply:
        return ilp.Fulfill(b"\x00" * 32, b"")

    up.set_prepare_handler(fulfill)
    try:
        yield up
    finally:
        store.close()


def prepare(amount: int = UNIT) -> ilp.Prepare:
    return ilp.Prepare(amount, datetime.now(UTC) + timedelta(seconds=30), b"\x11" * 32, "test.parent.child.alice")


def claim(amount: int) -> Any:
    return messages.claim_data(server_claim(amount))


async def test_claims_that_arrive_together_share_one_commit_and_pay_only_once_on_disk(uplink: XrpUplink) -> None:
    book, store = uplink.book, uplink.store
    assert book is not None and isinstance(store, CountingStore)
    for _ in range(10):
        assert isinstance(await uplink._incoming_prepare(prepare()), ilp.Fulfill)
    assert book.owed == 10 * UNIT
    # ten claims, one per Fulfill, as the asym server sends them: all read before the first commit starts
    await asyncio.gather(*(uplink._on_claim(claim(k * UNIT)) for k in range(1, 11)))
    assert len(store.writes) == 1, store.writes  # one commit for the ten, not ten fsyncs in a row
    assert store.writes[0]["best_amount"] == str(10 * UNIT)
    assert store.owed_at_write == [10 * UNIT]  # nothing was paid before the claims were on disk
    assert book.owed == 0 and book.best.amount == 10 * UNIT

    # a claim arriving while a commit is under way waits for the next one, which holds it
    first = asyncio.ensure_future(uplink._on_claim(claim(11 * UNIT)))
    await asyncio.sleep(0)  # the first commit has started (in its thread)
    second = asyncio.ensure_future(uplink._on_claim(claim(12 * UNIT)))
    await asyncio.gather(first, second)
    assert [w["best_amount"] for w in store.writes[1:]] == [str(11 * UNIT), str(12 * UNIT)]


async def test_a_prepare_past_the_limit_waits_for_the_claim_on_its_way(uplink: XrpUplink) -> None:
    book = uplink.book
    assert book is not None
    for _ in range(MAXIMUM // UNIT):
        assert isinstance(await uplink._incoming_prepare(prepare()), ilp.Fulfill)
    assert book.owed == MAXIMUM  # the limit is full: twenty Fulfills whose claims have not arrived

    held = asyncio.ensure_future(uplink._incoming_prepare(prepare()))
    await asyncio.sleep(0)
    assert not held.done() and book.owed == MAXIMUM  # waiting, and not counted while it waits
    await uplink._on_claim(claim(UNIT))  # the claim for the first Fulfill makes room for exactly one
    assert book.owed == MAXIMUM  # the held Prepare took it
    assert isinstance(await held, ilp.Fulfill)


async def test_without_a_claim_the_limit_holds_and_the_prepare_is_refused(uplink: XrpUplink,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xrp_uplink, "ROOM_WAIT", 0.05)
    book = uplink.book
    assert book is not None
    book.prepare_incoming(MAXIMUM)
    reply = await uplink._incoming_prepare(prepare())
    assert isinstance(reply, ilp.Reject) and reply.code == "T04", reply
    assert "exceeded maximum balance" in reply.message
    assert book.owed == MAXIMUM and not uplink._room_waiters

    # a claim too small for the next held Prepare admits nothing, and one that is big enough admits it
    book.incoming_rejected(UNIT // 2)  # half a packet of room
    held = asyncio.ensure_future(uplink._incoming_prepare(prepare()))
    await asyncio.sleep(0)
    assert not held.done() and book.owed == MAXIMUM - UNIT // 2
    await uplink._on_claim(claim(UNIT // 2))
    assert isinstance(await held, ilp.Fulfill)
    assert book.owed == MAXIMUM


async def test_held_prepares_are_bounded(uplink: XrpUplink, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xrp_uplink, "ROOM_WAITERS", 3)
    book = uplink.book
    assert book is not None
    book.prepare_incoming(MAXIMUM)
    held = [asyncio.ensure_future(uplink._incoming_prepare(prepare())) for _ in range(3)]
    await asyncio.sleep(0)
    reply = await uplink._incoming_prepare(prepare())  # a fourth is refused at once
    assert isinstance(reply, ilp.Reject) and reply.code == "T04"
    await uplink._on_claim(claim(3 * UNIT))  # room for all three, first come first served
    assert all(isinstance(r, ilp.Fulfill) for r in await asyncio.gather(*held))
    assert book.owed == MAXIMUM


async def test_a_held_prepare_whose_link_goes_away_leaves_nothing_behind(uplink: XrpUplink) -> None:
    book = uplink.book
    assert book is not None
    book.prepare_incoming(MAXIMUM)
    held = asyncio.ensure_future(uplink._incoming_prepare(prepare()))
    await asyncio.sleep(0)
    held.cancel()  # the connection it came on closed
    with pytest.raises(asyncio.CancelledError):
        await held
    assert not uplink._room_waiters and book.owed == MAXIMUM

    # one held when the link is renewed is refused: the new link's count starts afresh
    held = asyncio.ensure_future(uplink._incoming_prepare(prepare()))
    await asyncio.sleep(0)
    uplink._refuse_waiters()
    reply = await held
    assert isinstance(reply, ilp.Reject) and reply.code == "T04"
    assert book.owed == MAXIMUM
