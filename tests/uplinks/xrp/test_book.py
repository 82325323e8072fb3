"""The ClaimBook's invariants under random operation sequences (Hypothesis), and its decisions one by one."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tests.support.xrp_book import (
    IN_CH,
    OUR_KEY,
    OUT_CH,
    SERVER,
    SERVER_KEY,
    US,
    in_chan,
    new_book,
    out_chan,
    server_claim,
)
from uplinks.xrp import claims
from uplinks.xrp.book import BalanceSettings, ClaimBook
from uplinks.xrp.claims import Claim, PayChannel
from uplinks.xrp.errors import (
    BalanceExceeded,
    ClaimRejected,
    ConfigError,
    InsufficientCapacity,
    ProtocolError,
    UnsafeChannel,
)


class BookMachine(RuleBasedStateMachine):
    """Random traffic both ways. Tracks what a correct connector would: fulfilled amounts and settlements."""

    def __init__(self) -> None:
        super().__init__()
        self.book = new_book()
        self.settled = 0  # what our claims have paid in total
        self.out_charged = 0  # our Prepares the parent holds: in flight or fulfilled
        self.out_flight: list[int] = []
        self.out_rejected = 0  # prepaid, then rejected: the only way our float passes settle_to
        self.in_fulfilled = 0
        self.received = 0  # what the server's claims paid of what it owed (a claim beyond pays nothing we count)
        self.in_flight: list[int] = []
        self.server_total = 0  # what the server's claims to us add up to
        self.best_seen = 0

    def _settle(self) -> None:
        try:
            s = self.book.settle()
        except InsufficientCapacity:
            self.book.topup_started()
            assert self.book.outgoing is not None
            self.book.topup_finished(out_chan(self.book.outgoing.amount + self.book.fund_drops))
            s = self.book.settle()
        if s is not None:
            self.settled += s.amount
            assert self.book.credit == self.book.settings.settle_to
            assert claims.verify_claim(OUR_KEY.public_key, OUT_CH, s.drops, s.claim.signature or b"")

    @rule()
    def startup(self) -> None:
        self._settle()

    @rule(amount=st.integers(1, 30_000_000))
    def outgoing_prepare(self, amount: int) -> None:
        before, sent = self.book.credit, self.book.sent
        try:
            s = self.book.prepare(amount)
        except InsufficientCapacity:
            assert (self.book.credit, self.book.sent) == (before, sent)  # refused: nothing changed
            self._settle()  # tops the channel up
            return
        self.out_charged += amount
        self.out_flight.append(amount)
        if s is not None:
            self.settled += s.amount
            assert self.book.credit == self.book.settings.settle_to
            assert claims.verify_claim(OUR_KEY.public_key, OUT_CH, s.drops, s.claim.signature or b"")
        assert self.book.credit >= 0  # the parent holds claims for every Prepare it has seen

    @precondition(lambda self: self.out_flight)
    @rule(fulfil=st.booleans())
    def outgoing_result(self, fulfil: bool) -> None:
        amount = self.out_flight.pop(0)
        if not fulfil:
            self.book.rejected(amount)
            self.out_charged -= amount
            self.out_rejected += amount

    @rule(amount=st.integers(0, 30_000_000))
    def incoming_prepare(self, amount: int) -> None:
        before = self.book.owed
        try:
            self.book.prepare_incoming(amount)
        except BalanceExceeded:
            assert before + amount > self.book.settings.maximum
            assert self.book.owed == before
            return
        if amount:
            self.in_flight.append(amount)

    @precondition(lambda self: self.in_flight)
    @rule(fulfil=st.booleans())
    def incoming_result(self, fulfil: bool) -> None:
        amount = self.in_flight.pop(0)
        if fulfil:
            self.in_fulfilled += amount
            self._settle()
        else:
            self.book.incoming_rejected(amount)

    @rule(amount=st.integers(1, 5_000_000_000))
    def server_pays(self, amount: int) -> None:
        claim = server_claim(self.server_total + amount)
        try:
            added = self.book.receive(claim)
        except ClaimRejected as e:
            assert e.reason == "too_large"
            assert claims.to_drops(claim.amount, 9) > 1_000_000
            return
        self.server_total += amount
        owed = self.in_fulfilled + sum(self.in_flight) - self.received
        self.received += min(added, max(owed, 0))
        assert added == amount

    @rule(back=st.integers(1, 10**9), forge=st.booleans())
    def hostile_claim(self, back: int, forge: bool) -> None:
        best = self.book.best
        if forge:
            claim = server_claim(best.amount + back, key=OUR_KEY)  # right channel, wrong key
        else:
            claim = server_claim(max(best.amount - back, 0))
        if claim.amount == best.amount:
            assert self.book.receive(claim) == 0
            return
        with pytest.raises(ClaimRejected):
            self.book.receive(claim)
        assert self.book.best == best

    @rule(fee=st.integers(1, 5000))
    def submit(self, fee: int) -> None:
        claim = self.book.claimable() if self.book.should_claim(fee) else None
        if claim is not None:
            gain = claim.amount - self.book.claimed
            assert gain > 0 and Fraction(claims.from_drops(fee, 9), gain) <= Fraction(1, 100)
            self.book.mark_submitted(claim)

    @invariant()
    def accounting(self) -> None:
        b = self.book
        pending = sum(self.in_flight)
        assert b.credit == self.settled - self.out_charged
        assert b.owed == self.in_fulfilled + pending - self.received
        assert b.balance == b.credit + b.owed
        assert b.unattributed == self.server_total - self.received
        # Never prepay more than settle_to, but for Prepares we paid for before sending that were then rejected
        # (the parent keeps that as credit for the next ones); never let the parent owe us more than the limit.
        assert b.credit <= b.settings.settle_to + self.out_rejected
        assert b.owed <= b.settings.maximum
        assert b.sent is not None and b.sent.amount == self.settled
        # The best incoming claim only grows, and we never claim past it.
        assert b.best.amount >= self.best_seen
        self.best_seen = b.best.amount
        assert b.claimed <= max(b.best.amount, 0)


TestBookMachine = BookMachine.TestCase
TestBookMachine.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


# --- one decision at a time ---------------------------------------------------------------------------------


def test_startup_prepays_settle_to_like_the_js_moneyd() -> None:
    book = new_book()
    s = book.settle()
    assert s is not None and s.amount == 10_000_000 and s.drops == 10_000
    assert book.balance == 10_000_000 and book.settle() is None
    s = book.prepare(5_000_001)
    assert s is not None and s.amount == 5_000_001 and s.claim.amount == 15_000_001 and s.drops == 15_001


def test_prepares_are_paid_for_before_they_are_sent() -> None:
    book = new_book()
    assert book.settle() is not None and book.balance == 10_000_000
    # five Prepares in flight at once: each is charged when sent, so claims keep ahead of what the parent holds
    paid_ahead = 10_000_000
    charged = 0
    for _ in range(5):
        s = book.prepare(3_000_000)
        charged += 3_000_000
        if s is not None:
            paid_ahead += s.amount
        assert book.sent is not None and book.sent.amount - charged >= 5_000_000 - 1  # never behind the parent
    assert paid_ahead == book.sent.amount == charged + book.balance
    # a rejected Prepare is credited back; a big one gets a claim big enough for it alone
    book.rejected(3_000_000)
    before = book.sent.amount
    s = book.prepare(50_000_000)
    assert s is not None and book.sent.amount == before + s.amount and book.balance == 10_000_000
    assert book.prepare(0) is None


def test_a_prepare_beyond_the_channel_is_refused_unless_already_prepaid() -> None:
    book = new_book()
    book.set_outgoing(out_chan(amount=20_000))  # 20,000 drops = 20,000,000 units
    assert book.settle() is not None  # 10,000,000 prepaid
    assert book.prepare(6_000_000) is not None  # below the threshold: topped to 10,000,000 again
    sent = book.sent
    # 20,000,000 more is beyond the channel: refused, nothing changed
    with pytest.raises(InsufficientCapacity):
        book.prepare(20_000_000)
    assert book.sent == sent and book.balance == 10_000_000
    # 8,000,000 is within what is prepaid: it goes, without the claim the channel cannot hold
    assert book.prepare(8_000_000) is None and book.balance == 2_000_000


def test_scaled_settings_and_bad_settings() -> None:
    assert BalanceSettings.moneyd(6) == BalanceSettings(20_000, 5_000, 10_000)
    assert BalanceSettings.moneyd(12).maximum == 20_000_000_000
    with pytest.raises(ConfigError):
        BalanceSettings(maximum=1, settle_to=2)
    with pytest.raises(ConfigError):
        BalanceSettings(settle_threshold=11_000_000)


def test_signing_needs_last_claim_and_stays_within_the_channel() -> None:
    book = ClaimBook(scale=9, key=OUR_KEY, our_address=US, server_address=SERVER)
    with pytest.raises(ProtocolError):
        book.sign_payment(1)
    book.set_outgoing(out_chan(amount=1000))
    with pytest.raises(ProtocolError, match="last_claim"):
        book.sign_payment(1)
    book.load_last_claim(Claim(0))
    book.sign_payment(1_000_000)  # exactly 1000 drops
    with pytest.raises(InsufficientCapacity):
        book.sign_payment(1)
    assert book.sent is not None and book.sent.amount == 1_000_000


def test_last_claim_must_be_ours_unless_it_is_the_ledger_balance() -> None:
    book = ClaimBook(scale=9, key=OUR_KEY, our_address=US, server_address=SERVER)
    book.set_outgoing(out_chan(balance=3))
    book.load_last_claim(Claim(3000))  # what the ledger paid: no signature needed
    ours = Claim(7000, OUR_KEY.sign(claims.encode_claim(OUT_CH, 7)))
    book.load_last_claim(ours)
    assert book.sent == ours
    for bad in (
        Claim(8000),
        Claim(8000, ours.signature),
        Claim(7000, SERVER_KEY.sign(claims.encode_claim(OUT_CH, 7))),
    ):
        with pytest.raises(ProtocolError, match="not one we signed"):
            book.load_last_claim(bad)


def test_topup_rule_and_channel_identity() -> None:
    book = new_book()
    assert not book.needs_topup()
    book.sign_payment(5_000_000_000)  # 5 XRP of a 10 XRP channel: at the JS threshold, not over it
    assert not book.needs_topup()
    book.sign_payment(1000)
    assert book.needs_topup()
    book.topup_started()
    assert not book.needs_topup()
    book.topup_finished(out_chan(amount=20_000_000))
    assert not book.needs_topup() and not book.funding
    with pytest.raises(UnsafeChannel):
        book.set_outgoing(PayChannel(OUT_CH, US, SERVER, 1, 0, SERVER_KEY.ledger_public_key, 3600))
    with pytest.raises(ProtocolError):
        book.set_outgoing(PayChannel(IN_CH, US, SERVER, 1, 0, OUR_KEY.ledger_public_key, 3600))


@pytest.mark.parametrize(
    ("chan", "match"),
    [
        (PayChannel(IN_CH, SERVER, SERVER, 10, 0, SERVER_KEY.ledger_public_key, 3600), "not us"),
        (in_chan(delay=3599), "settle delay"),
        (in_chan(expiration=1), "closing"),
        (in_chan(cancel_after=1), "CancelAfter"),
        (PayChannel(IN_CH, SERVER, US, 10, 0, "02" + "AB" * 32, 3600), "ed25519"),
    ],
)
def test_unsafe_incoming_channels_are_refused(chan: PayChannel, match: str) -> None:
    book = ClaimBook(scale=9, key=OUR_KEY, our_address=US, server_address=SERVER)
    with pytest.raises(UnsafeChannel, match=match):
        book.set_incoming(chan)
    assert book.incoming is None


def test_incoming_claim_checks() -> None:
    book = ClaimBook(scale=9, key=OUR_KEY, our_address=US, server_address=SERVER)
    with pytest.raises(ClaimRejected) as e:
        book.receive(Claim(1, b"x" * 64))
    assert e.value.reason == "no_channel"
    book.set_incoming(in_chan(amount=1000, balance=10))
    assert book.best == Claim(10_000) and book.claimed == 10_000
    with pytest.raises(ClaimRejected) as e:
        book.receive(Claim(9_999, server_claim(9_999).signature))
    assert e.value.reason == "lower"
    c = server_claim(1_000_001)
    with pytest.raises(ClaimRejected) as e:
        book.receive(c)
    assert e.value.reason == "too_large"
    c = server_claim(20_000, channel=OUT_CH)  # signed for another channel
    with pytest.raises(ClaimRejected) as e:
        book.receive(c)
    assert e.value.reason == "signature"
    c = server_claim(990_000)
    assert book.receive(c) == 980_000
    # it owed us nothing: the claim pays for Prepares we have no record of (from before a restart)
    assert (book.balance, book.unattributed) == (0, 980_000)
    book.prepare_incoming(5_000)
    c = server_claim(992_000)
    assert book.receive(c) == 2_000
    assert (book.owed, book.unattributed) == (3_000, 980_000)


def test_submission_follows_the_one_percent_rule_and_restores_from_store() -> None:
    book = new_book()
    assert book.claimable() is None and not book.should_claim(12)  # nothing signed yet
    c = server_claim(1_200_000)  # 1200 drops gained
    book.receive(c)
    assert book.claimable() == c and book.should_claim(12)  # 12 drops = 1%
    assert not book.should_claim(13)
    assert book.should_claim(13, force=True)
    book.mark_submitted(c)
    assert book.claimable() is None and not book.should_claim(1, force=True)
    # a restart: a fresh book learns the ledger, then the stored best claim
    again = new_book()
    assert not again.restore_best(Claim(c.amount + 1000, c.signature))  # tampered in the store
    assert again.restore_best(c) and again.best == c
    assert again.to_json()["best_signature"] == c.signature_hex


def test_balance_limits() -> None:
    book = new_book()
    book.prepare_incoming(20_000_000)
    with pytest.raises(BalanceExceeded):
        book.prepare_incoming(1)
    book.incoming_rejected(20_000_000)
    assert book.balance == 0
    strict = ClaimBook(
        scale=9, key=OUR_KEY, our_address=US, server_address=SERVER, settings=BalanceSettings(minimum=-5)
    )
    with pytest.raises(BalanceExceeded):
        strict.prepare(6)


def test_reconcile_takes_the_parents_figures() -> None:
    book = new_book()
    s = book.settle()
    assert s is not None
    book.prepare(3_000_000)  # in flight when we crashed: the parent rejected it
    book.prepare_incoming(2_000_000)  # fulfilled, but the Fulfill went down with the link: never paid
    book.reconcile(s.claim, 10_000_000)
    assert (book.credit, book.owed, book.sent) == (10_000_000, 0, s.claim)
    with pytest.raises(ProtocolError):
        book.reconcile(s.claim, s.claim.amount + 1)  # more credit than our claims ever paid: not believable


def test_a_ledger_payout_rounded_up_to_drops_does_not_raise_the_best_claim() -> None:
    book = new_book()
    c = server_claim(9_889_890)  # 9,890 drops signed
    book.receive(c)
    book.set_incoming(in_chan(balance=9_890))  # we cashed it: the ledger paid 9,890 drops
    assert book.best == c and book.claimed == 9_890_000
    nxt = server_claim(9_890_890)  # the parent's next claim: 1,000 more than its last
    assert book.receive(nxt) == 1_000
