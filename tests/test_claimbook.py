"""One shape for claim books (moneyd.claimbook): the XRP and ETH books answer the same methods, report through the
same views, and keep their state through StateSlot in the records earlier versions of moneyd wrote."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from eth_account import Account

from moneyd.claimbook import ClaimBook, StateSlot
from moneyd.errors import ProtocolError
from moneyd.store import Store
from moneyd.uplink import ChannelView, UplinkBalance
from uplinks.eth.book import ClaimBook as EthBook
from uplinks.eth.claims import channel_id_hex, sign_claim
from uplinks.eth.uplink import NAMESPACE as ETH_NAMESPACE
from uplinks.eth.uplink import UplinkState
from uplinks.xrp import claims as xrp_claims
from uplinks.xrp.book import ClaimBook as XrpBook
from uplinks.xrp.book import XrpState
from uplinks.xrp.claims import Claim as XrpClaim
from uplinks.xrp.claims import PayChannel
from uplinks.xrp.keys import ChannelKey

US, SERVER = "rPEPPER7kfTD9w2To4CQk6UCfuHM9c6GDY", "rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh"
OUR_KEY, SERVER_KEY = ChannelKey.from_seed(bytes(range(32))), ChannelKey.from_seed(bytes(range(1, 33)))
OUT_CH, IN_CH = xrp_claims.channel_id(US, SERVER, 5), xrp_claims.channel_id(SERVER, US, 9)

ETH_KEY, PARENT_KEY = "0x" + "11" * 32, "0x" + "22" * 32
ETH_CONTRACT = "0x07a457d878BF363E0Bb5aa0B096092f941e19962"
GWEI = 10**9


def xrp_book() -> XrpBook:
    book = XrpBook(scale=9, key=OUR_KEY, our_address=US, server_address=SERVER)
    book.set_outgoing(PayChannel(OUT_CH, US, SERVER, 10_000_000, 1_000, OUR_KEY.ledger_public_key, 3600))
    book.load_last_claim(XrpClaim(1_000_000))
    book.set_incoming(PayChannel(IN_CH, SERVER, US, 2_000_000, 0, SERVER_KEY.ledger_public_key, 3600))
    return book


def xrp_claim(amount: int) -> XrpClaim:
    return XrpClaim(amount, SERVER_KEY.sign(xrp_claims.encode_claim(IN_CH, xrp_claims.to_drops(amount, 9))))


def test_both_books_have_the_shared_methods() -> None:
    for book in (XrpBook, EthBook):
        assert issubclass(book, ClaimBook)
        assert not inspect.isabstract(book)
        for name in ("prepare", "rejected", "receive", "claimable", "should_claim", "uplink_balance", "channels",
                     "to_json"):
            assert callable(getattr(book, name)), (book, name)


def test_xrp_book_reports_through_the_shared_views() -> None:
    book = xrp_book()
    settlement = book.prepare(6_000_000)  # below settle_threshold: a claim to settle_to goes first
    assert settlement is not None and settlement.claim.amount == 1_000_000 + 16_000_000
    assert book.receive(xrp_claim(300_000)) == 300_000
    ours, theirs = book.channels()
    assert ours == ChannelView(OUT_CH, 10_000_000_000, 17_000_000, 1_000_000)
    assert theirs == ChannelView(IN_CH, 2_000_000_000, 300_000, 0)
    balance = book.uplink_balance()
    assert isinstance(balance, UplinkBalance) and balance.balance == book.balance == 10_000_000
    assert book.unattributed == 300_000  # the parent owed us nothing this book counts
    assert balance.details["best_incoming"] == 300_000


def test_eth_book_reports_through_the_shared_views() -> None:
    book = EthBook(ETH_KEY, ETH_CONTRACT)
    cid = bytes(range(32))
    parent = Account.from_key(PARENT_KEY).address
    book.open_outgoing(cid, parent, 100 * GWEI)
    assert book.prepare(7) == sign_claim(Account.from_key(ETH_KEY), ETH_CONTRACT, cid, 7 * GWEI)
    book.rejected(7)
    ours, theirs = book.channels()
    assert ours == ChannelView(channel_id_hex(cid), 100, 7, None) and theirs is None
    assert book.uplink_balance() == UplinkBalance(7, 0, None, book.uplink_balance().details)
    assert book.uplink_balance().details["paid"] == 7


# What moneyd wrote before the claim books shared a shape (the keys of uplinks/xrp/uplink.py's _save then).
def old_xrp_record() -> dict[str, object]:
    best = xrp_claim(250_000)
    return {
        "incoming_channel": IN_CH, "best_amount": "250000", "best_signature": best.signature_hex, "claimed": "100000",
        "balance": "4750000", "credit": "5000000", "owed": "-250000", "outgoing_channel": OUT_CH,
        "announced_drops": 10_000_000, "sent_amount": "1000000", "sent_signature": "AB" * 64,
    }


def test_an_xrp_store_written_by_the_previous_version_loads(tmp_path: Path) -> None:
    store = Store(tmp_path / "moneyd.sqlite")
    old = old_xrp_record()
    store.put("xrp", "account", old)
    store.put("xrp", "created-before-a-crash", {"outgoing_channel": OUT_CH})
    store.close()
    store = Store(tmp_path / "moneyd.sqlite")
    state = StateSlot(store, "xrp", "account", XrpState.from_json).load()
    assert state is not None and state.unreadable is None
    assert (state.incoming_channel, state.claimed, state.credit, state.announced_drops) == (IN_CH, 100_000, 5_000_000,
                                                                                           10_000_000)
    assert state.to_json() == old  # written back in the same keys: the previous version reads it too
    book = xrp_book()
    assert book.restore(state) and book.best == xrp_claim(250_000) and book.claimed == 100_000
    early = StateSlot(store, "xrp", "created-before-a-crash", XrpState.from_json).load()
    assert early is not None and early.outgoing_channel == OUT_CH and not xrp_book().restore(early)
    assert StateSlot(store, "xrp", "nothing", XrpState.from_json).load() is None


def test_a_tampered_or_unreadable_xrp_record_restores_nothing() -> None:
    tampered = {**old_xrp_record(), "best_amount": "1250000"}  # the signature is for 250000
    book = xrp_book()
    assert book.restore(XrpState.from_json(tampered)) and book.best == XrpClaim(0)
    unreadable = XrpState.from_json({**old_xrp_record(), "best_amount": "lots"})
    assert unreadable.unreadable and not xrp_book().restore(unreadable)


def test_an_eth_store_written_by_the_previous_version_loads(tmp_path: Path) -> None:
    account = Account.from_key(ETH_KEY)
    parent = Account.from_key(PARENT_KEY).address
    cid, theirs = bytes(range(32)), b"\x05" * 32
    sent = sign_claim(account, ETH_CONTRACT, cid, 7 * GWEI)
    best = sign_claim(Account.from_key(PARENT_KEY), ETH_CONTRACT, theirs, 3 * GWEI)
    old = {  # UplinkState.to_json and ClaimBook.snapshot of the previous version
        "book": {
            "contract": ETH_CONTRACT,
            "outgoing": {"channelId": channel_id_hex(cid), "receiver": parent, "value": str(100 * GWEI),
                         "spent": str(7 * GWEI)},
            "lastSent": {"channelId": channel_id_hex(cid), "value": str(7 * GWEI), "signature": "0x" + sent.signature.hex()},
            "paid": "7", "charged": "5",
            "incomingChannel": channel_id_hex(theirs),
            "bestIncoming": {"channelId": channel_id_hex(theirs), "value": str(3 * GWEI),
                             "signature": "0x" + best.signature.hex()},
            "received": "3",
        },
        "parentAddress": parent, "pendingOpen": None, "retired": ["0x" + "ab" * 32], "announced": str(100 * GWEI),
    }
    store = Store(tmp_path / "moneyd.sqlite")
    store.put(ETH_NAMESPACE, "1337:key", old)
    slot = UplinkState.slot(store, "1337:key", account, ETH_CONTRACT)
    state = slot.load()
    assert state is not None and state.to_json() == old
    assert state.book.credit() == 2 and state.book.last_sent == sent and state.book.best_incoming == best
    assert state.book.prepare(3) == sign_claim(account, ETH_CONTRACT, cid, 8 * GWEI)  # 2 prepaid, 1 more promised
    slot.save(state)
    assert store.get(ETH_NAMESPACE, "1337:key")["book"]["paid"] == "8"


def test_a_damaged_record_is_refused_not_overwritten(tmp_path: Path) -> None:
    store = Store(tmp_path / "moneyd.sqlite")
    store.put(ETH_NAMESPACE, "k", ["not", "an", "object"])
    with pytest.raises(ProtocolError, match="damaged"):
        UplinkState.slot(store, "k", Account.from_key(ETH_KEY), ETH_CONTRACT).load()
    store.put(ETH_NAMESPACE, "k", {"book": None})
    with pytest.raises(ProtocolError, match="no claim book"):
        UplinkState.load(store, "k", Account.from_key(ETH_KEY), ETH_CONTRACT)
    assert store.get(ETH_NAMESPACE, "k") == {"book": None}
