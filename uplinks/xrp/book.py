"""The ClaimBook: every settlement decision of the XRP uplink, as a pure object (no I/O, no clock).

Two channels meet here. Ours (us -> parent) carries the claims we sign to pay; the parent's (parent -> us, the
"client channel") carries the claims it signs to pay us. Around them runs the connector's balance, as the JS
moneyd configures it (maximum 20e6, settleThreshold 5e6, settleTo 10e6 at scale 9): the balance is what the
parent owes us, positive when we prepaid. It has two parts, kept apart because each is reconciled from its own
record at the parent:

- ``credit``: our claims minus our Prepares the parent holds (the asym server's ``last_claim`` minus its prepared
  balance). Our outgoing Prepares lower it when they are *sent* (the asym server counts prepared amounts against
  our claims, with no bandwidth) and their rejects raise it back; when it would fall below ``settle_threshold`` we
  sign, before the Prepare goes, a claim that brings it back to ``settle_to``. After a reconnect it is set from
  what the parent says (``reconcile``), never carried over from before.
- ``owed``: the parent's Prepares to us not yet paid by its claims. Incoming Prepares raise it (refused when the
  balance would pass ``maximum``), their rejects lower it. A claim pays it down but never below 0: the asym server
  pays only for fulfilled Prepares, so a claim beyond what we count pays for Prepares fulfilled before a crash,
  whose record went with the process (``unattributed`` counts such amounts).

The I/O layer calls these methods and does what they return: send a claim, submit one to the ledger, top the
channel up, store the best incoming claim durably before acknowledging it. The method names are those of every
claim book (moneyd.claimbook); what is stored is an ``XrpState`` (``to_json`` / ``from_json``), in the keys moneyd
has always written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Final

from moneyd import claimbook
from moneyd.uplink import ChannelView, UplinkBalance

from .claims import (
    MAX_DROPS,
    Claim,
    PayChannel,
    check_incoming_channel,
    check_outgoing_channel,
    check_scale,
    from_drops,
    pow10,
    sign_claim,
    to_drops,
    verify_claim,
)
from .errors import (
    BalanceExceeded,
    ClaimRejected,
    ConfigError,
    InsufficientCapacity,
    ProtocolError,
)
from .keys import ChannelKey

DEFAULT_FUND_DROPS: Final = 10 * 1_000_000  # the JS client's OUTGOING_CHANNEL_DEFAULT_AMOUNT: 10 XRP
DEFAULT_MAX_FEE: Final = Fraction(1, 100)  # submit a claim only when the fee is at most 1% of what it gains


@dataclass(frozen=True, slots=True)
class BalanceSettings:
    """The connector balance limits, base units. ``minimum`` None means no lower limit (the JS -Infinity)."""

    maximum: int = 20_000_000
    settle_threshold: int | None = 5_000_000
    settle_to: int = 10_000_000
    minimum: int | None = None

    def __post_init__(self) -> None:
        if self.settle_to > self.maximum:
            raise ConfigError(f"settle_to {self.settle_to} is above maximum {self.maximum}")
        if self.settle_threshold is not None and self.settle_threshold > self.settle_to:
            raise ConfigError(f"settle_threshold {self.settle_threshold} is above settle_to {self.settle_to}")
        if self.minimum is not None and self.minimum > 0:
            raise ConfigError(f"minimum {self.minimum} must be at most 0")

    @classmethod
    def moneyd(cls, scale: int = 9) -> BalanceSettings:
        """The JS moneyd-uplink-xrp settings (0.02 / 0.005 / 0.01 XRP) expressed at ``scale``."""
        check_scale(scale)

        def at(v: int) -> int:
            return v * pow10(scale - 9) if scale >= 9 else v // pow10(9 - scale)

        return cls(maximum=at(20_000_000), settle_threshold=at(5_000_000), settle_to=at(10_000_000))


@dataclass(frozen=True, slots=True)
class Settlement:
    """A payment to the parent: send ``claim`` in a BTP Transfer whose amount is ``amount``."""

    amount: int
    claim: Claim
    drops: int


class ClaimBook(claimbook.ClaimBook[Settlement, Claim]):
    def __init__(
        self,
        *,
        scale: int,
        key: ChannelKey,
        our_address: str,
        server_address: str,
        settings: BalanceSettings | None = None,
        fund_drops: int = DEFAULT_FUND_DROPS,
        max_fee: Fraction = DEFAULT_MAX_FEE,
    ) -> None:
        self.scale = check_scale(scale)
        self.key = key
        self.our_address = our_address
        self.server_address = server_address
        self.settings = settings if settings is not None else BalanceSettings.moneyd(scale)
        if fund_drops <= 0:
            raise ConfigError(f"fund amount must be positive, got {fund_drops} drops")
        self.fund_drops = fund_drops
        self.max_fee = max_fee
        self.credit = 0  # what our claims prepaid, minus our Prepares the parent holds
        self.owed = 0  # the parent's Prepares to us, not yet paid by its claims
        self.unattributed = 0  # claim amounts beyond ``owed``: paying for Prepares from before a restart
        # ours -> parent
        self.outgoing: PayChannel | None = None
        self.sent: Claim | None = None  # None until the parent's last_claim is loaded
        self.funding = False
        # parent -> us
        self.incoming: PayChannel | None = None
        self.best = Claim(0)
        self.claimed = 0  # base units already claimed on the ledger, or submitted

    # --- our channel -----------------------------------------------------------------------------------

    def set_outgoing(self, paychan: PayChannel) -> None:
        """Our channel as the ledger shows it (after create, fund, or at start)."""
        if self.outgoing is not None and paychan.channel_id != self.outgoing.channel_id:
            raise ProtocolError(f"our channel is {self.outgoing.channel_id}, not {paychan.channel_id}")
        self.outgoing = check_outgoing_channel(paychan, self.our_address, self.key, self.server_address)

    def load_last_claim(self, claim: Claim) -> None:
        """The parent's ``last_claim`` answer: the cumulative claim we start from. An amount equal to what the
        ledger already paid needs no signature; any other must carry our valid signature."""
        paychan = self._outgoing()
        drops = to_drops(claim.amount, self.scale)
        signed = (
            drops <= paychan.amount
            and claim.signature is not None
            and verify_claim(self.key.public_key, paychan.channel_id, drops, claim.signature)
        )
        if drops != paychan.balance and not signed:
            raise ProtocolError(
                f"the parent's last claim on our channel ({claim.amount} units, {drops} drops) "
                "is not one we signed; refusing to continue from it"
            )
        self.sent = claim

    def reconcile(self, last_claim: Claim, credit: int) -> None:
        """Adopt the parent's record of our side: its ``last_claim`` (checked as in ``load_last_claim``) and
        ``credit``, its last claim minus the Prepares of ours it holds. Called at every (re)connection, with no
        claim of ours in flight: what we counted before (a crash, a claim lost or refused) no longer matters.
        What it owed us is forgotten too (a Fulfill lost with the link is never paid): its next claims pay the
        rest, and ``money_received`` takes them as that."""
        self.load_last_claim(last_claim)
        if credit > last_claim.amount:
            raise ProtocolError(f"the parent's credit {credit} exceeds our last claim {last_claim.amount}")
        self.credit = credit
        self.owed = 0

    def sign_payment(self, amount: int) -> Settlement:
        """A claim for ``amount`` more base units than the last one, without touching the balance."""
        if amount <= 0:
            raise ValueError(f"payment amount must be positive, got {amount}")
        paychan = self._outgoing()
        if self.sent is None:
            raise ProtocolError("ask the parent for last_claim before signing a new claim")
        total = self.sent.amount + amount
        drops = to_drops(total, self.scale)
        if drops > paychan.amount or drops > MAX_DROPS:
            raise InsufficientCapacity(
                f"a claim for {drops} drops exceeds our channel {paychan.channel_id} "
                f"of {paychan.amount} drops; top it up first"
            )
        claim = Claim(total, sign_claim(self.key, paychan.channel_id, drops))
        self.sent = claim
        return Settlement(amount, claim, drops)

    def needs_topup(self) -> bool:
        """True when our claims use more than the channel minus half a top-up (the JS client's rule) and no
        top-up is under way. Call ``topup_started`` when submitting PaymentChannelFund of ``fund_drops``."""
        if self.funding or self.outgoing is None:
            return False
        used = to_drops(self.sent.amount, self.scale) if self.sent is not None else self.outgoing.balance
        return self.outgoing.amount - self.fund_drops // 2 < used

    def topup_started(self) -> None:
        self.funding = True

    def topup_finished(self, paychan: PayChannel | None) -> None:
        """The fund went through (pass the reloaded channel, then send ``channel`` + ``channel_signature``)
        or failed (pass None)."""
        if paychan is not None:
            self.set_outgoing(paychan)
        self.funding = False

    # --- the parent's channel --------------------------------------------------------------------------

    def set_incoming(self, paychan: PayChannel) -> None:
        """The parent's channel to us, at connect or on a ``channel`` refresh. Refuses unsafe channels."""
        check_incoming_channel(paychan, self.our_address)
        if self.incoming is not None and paychan.channel_id != self.incoming.channel_id:
            raise ProtocolError(
                f"the parent's channel to us is {self.incoming.channel_id}; refusing to switch to {paychan.channel_id}"
            )
        self.incoming = paychan
        on_ledger = from_drops(paychan.balance, self.scale)
        self.claimed = max(self.claimed, on_ledger)
        # Only when the ledger paid out more drops than our best claim is worth: the ledger rounds a claim up to
        # whole drops, and a best claim raised to that rounded figure would refuse the parent's next claims.
        if paychan.balance > to_drops(self.best.amount, self.scale):
            self.best = Claim(on_ledger)

    def restore_best(self, claim: Claim) -> bool:
        """A best claim loaded from our store after a restart; kept when valid and better than what we have."""
        try:
            self.check_claim(claim.amount, claim.signature)
        except ClaimRejected:
            return False
        if claim.amount <= self.best.amount:
            return False
        self.best = claim
        return True

    def check_claim(self, amount: int, signature: bytes | None) -> int:
        """How much an incoming cumulative claim adds (0 for a repeat of the best one); ClaimRejected when it
        is lower than the best, beyond the channel, or not signed by the channel's key. Changes nothing."""
        paychan = self.incoming
        if paychan is None:
            raise ClaimRejected("no_channel", "got a claim but the parent has no channel to us")
        if amount < 0:
            raise ClaimRejected("amount", f"claim amount {amount} is negative")
        if amount < self.best.amount:
            raise ClaimRejected(
                "lower", f"claim for {amount} is lower than our best claim {self.best.amount}"
            )
        if amount == self.best.amount:
            return 0
        drops = to_drops(amount, self.scale)
        if drops > paychan.amount:
            raise ClaimRejected(
                "too_large", f"claim for {drops} drops exceeds the channel's {paychan.amount} drops"
            )
        if signature is None or not verify_claim(paychan.ed25519_key, paychan.channel_id, drops, signature):
            raise ClaimRejected("signature", f"invalid signature on claim for {drops} drops")
        return amount - self.best.amount

    def receive(self, claim: Claim) -> int:
        """Accept an incoming claim: it becomes the best one and the balance drops by what it adds. Returns that
        amount; store the state durably before acknowledging the Transfer."""
        added = self.take_claim(claim)
        if added:
            self.money_received(added)
        return added

    def take_claim(self, claim: Claim) -> int:
        """The first half of ``receive``: the claim becomes the best one (what is stored), the balance is not
        touched. Returns what it adds; call ``money_received`` with that once the state is durable, so no incoming
        Prepare is let in on the strength of a claim a crash could still lose."""
        added = self.check_claim(claim.amount, claim.signature)
        if added:
            self.best = claim
        return added

    def claimable(self) -> Claim | None:
        """The best claim, when a PaymentChannelClaim of it would gain more than the ledger holds."""
        if self.incoming is None or self.best.signature is None:
            return None
        gain = self.best.amount - self.claimed
        if gain <= 0 or to_drops(self.best.amount, self.scale) <= self.incoming.balance:
            return None
        return self.best

    def should_claim(self, fee_drops: int, *, force: bool = False) -> bool:
        """Submit ``claimable()`` now: there is one, and the fee is at most ``max_fee`` of its gain (``force`` skips
        the fee rule: the channel is closing)."""
        best = self.claimable()
        if best is None:
            return False
        return force or Fraction(from_drops(fee_drops, self.scale), best.amount - self.claimed) <= self.max_fee

    def mark_submitted(self, claim: Claim) -> None:
        self.claimed = max(self.claimed, claim.amount)

    # --- the balance (ilp-connector's balance middleware) -----------------------------------------------

    @property
    def balance(self) -> int:
        """What the parent owes us in all: prepaid credit plus its unpaid Prepares."""
        return self.credit + self.owed

    def prepare_incoming(self, amount: int) -> None:
        """A Prepare from the parent: reserve it against ``maximum`` of ``owed`` (BalanceExceeded is an ILP T04)."""
        if amount == 0:
            return
        # Only what the parent owes us counts: our prepaid credit is ours to spend on outgoing Prepares, and Prepares
        # the parent rejected after we paid for them can leave far more of it there than ``settle_to``.
        if self.owed + amount > self.settings.maximum:
            raise BalanceExceeded(
                f"exceeded maximum balance: {self.owed} + {amount} > {self.settings.maximum}"
            )
        self.owed += amount

    def incoming_rejected(self, amount: int) -> None:
        self.owed -= amount

    def prepare(self, amount: int) -> Settlement | None:
        """A Prepare of ``amount`` we are about to send the parent, charged now: the asym server counts what we
        have *prepared*, not what was fulfilled, against our claims (with no bandwidth by default), so a claim
        sent only after fulfills lets a window of packets in flight outrun it (T04). Returns the claim to send
        before the Prepare when the balance would fall below ``settle_threshold``; call ``rejected`` if the
        Prepare is rejected. Raises InsufficientCapacity (changing nothing) when the Prepare needs a
        claim our channel cannot hold; BalanceExceeded below ``minimum``."""
        if amount <= 0:
            return None
        if self.settings.minimum is not None and self.balance - amount < self.settings.minimum:
            raise BalanceExceeded(f"insufficient funds: {self.balance} - {amount} < {self.settings.minimum}")
        new = self.credit - amount
        t = self.settings.settle_threshold
        if t is None or new >= t or self.outgoing is None or self.sent is None:
            self.credit = new
            return None
        try:
            settlement = self.sign_payment(self.settings.settle_to - new)
        except InsufficientCapacity:
            if new < 0:
                raise
            self.credit = new  # still prepaid: it goes through; the caller tops the channel up
            return None
        self.credit = self.settings.settle_to
        return settlement

    def rejected(self, amount: int) -> None:
        """Our Prepare of ``amount`` was rejected: the parent no longer counts it."""
        self.credit += amount

    def money_received(self, amount: int) -> None:
        """A claim from the parent added ``amount``: it pays what it owes us, and no more (see the module doc)."""
        paid = min(amount, max(self.owed, 0))
        self.owed -= paid
        self.unattributed += amount - paid

    def settle_amount(self) -> int:
        t = self.settings.settle_threshold
        if t is None or self.credit >= t:
            return 0
        return self.settings.settle_to - self.credit

    def settle(self) -> Settlement | None:
        """When the balance is below the threshold, sign the claim that brings it to ``settle_to`` and count it
        as paid (a lost Transfer is recovered by the next, cumulative, claim)."""
        amount = self.settle_amount()
        if amount <= 0 or self.outgoing is None or self.sent is None:
            return None
        settlement = self.sign_payment(amount)
        self.credit += amount
        return settlement

    # --- status and persistence ------------------------------------------------------------------------

    def uplink_balance(self) -> UplinkBalance:
        """The balance (what the parent owes us) and its limits. ``details``: ``sent`` our latest claim,
        ``best_incoming`` the parent's best claim, ``claimed`` what of it is cashed (base units); ``outgoing_drops``
        / ``incoming_drops`` each channel's capacity and ``..._claimed_drops`` what the ledger paid out of it."""
        out, inc = self.outgoing, self.incoming
        return UplinkBalance(self.balance, self.settings.minimum, self.settings.maximum, {
            "settle_threshold": self.settings.settle_threshold,
            "settle_to": self.settings.settle_to,
            "sent": self.sent.amount if self.sent is not None else None,
            "best_incoming": self.best.amount,
            "claimed": self.claimed,
            "outgoing_channel": out.channel_id if out is not None else None,
            "outgoing_drops": out.amount if out is not None else None,
            "outgoing_claimed_drops": out.balance if out is not None else None,
            "incoming_channel": inc.channel_id if inc is not None else None,
            "incoming_drops": inc.amount if inc is not None else None,
            "incoming_claimed_drops": inc.balance if inc is not None else None,
        })

    def channels(self) -> tuple[ChannelView | None, ChannelView | None]:
        out, inc, scale = self.outgoing, self.incoming, self.scale
        ours = theirs = None
        if out is not None:
            ours = ChannelView(out.channel_id, from_drops(out.amount, scale), self.sent.amount if self.sent else 0,
                               from_drops(out.balance, scale))
        if inc is not None:
            theirs = ChannelView(inc.channel_id, from_drops(inc.amount, scale), self.best.amount,
                                 from_drops(inc.balance, scale))
        return ours, theirs

    def to_json(self) -> dict[str, Any]:
        """What must survive a restart: the best incoming claim first of all (``XrpState`` keys)."""
        return XrpState.of(self).to_json()

    def restore(self, state: XrpState) -> bool:
        """Take back what a stored state holds for the parent's channel the book now has: its best claim, when it
        still verifies, and what of it was claimed. Our side is never restored (``reconcile`` takes it from the
        parent), nor what the parent owed us (its next claims pay it: ``money_received``). False when the state
        is of another channel or unreadable."""
        if self.incoming is None or state.incoming_channel != self.incoming.channel_id or state.unreadable:
            return False
        if state.best.signature is not None:
            self.restore_best(state.best)
        self.claimed = max(self.claimed, state.claimed)
        return True

    def _outgoing(self) -> PayChannel:
        if self.outgoing is None:
            raise ProtocolError("our payment channel to the parent is not loaded yet")
        return self.outgoing


def _int(data: dict[str, Any], name: str, default: int) -> int:
    try:
        return int(data.get(name, default))
    except (TypeError, ValueError):
        return default


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


@dataclass
class XrpState:
    """What the Store keeps for one XRP account at one parent (namespace ``xrp``): the book's side (the best incoming
    claim, what of it was claimed, our channel and latest claim, the balance's parts) and the uplink's own
    (``announced_drops``, our channel's amount as the parent was last told it). The keys are the ones moneyd has
    always written, so a store written by any earlier version reads back; a value that cannot be read is left at
    its default (``unreadable`` says why the best claim could not be, and then nothing of it is restored)."""

    incoming_channel: str | None = None
    best: Claim = field(default_factory=lambda: Claim(0))
    claimed: int = 0
    credit: int = 0
    owed: int = 0
    outgoing_channel: str | None = None
    sent: Claim | None = None
    announced_drops: int | None = None
    unreadable: str | None = None

    @classmethod
    def of(cls, book: ClaimBook, announced_drops: int | None = None) -> XrpState:
        return cls(
            incoming_channel=book.incoming.channel_id if book.incoming else None,
            best=book.best, claimed=book.claimed, credit=book.credit, owed=book.owed,
            outgoing_channel=book.outgoing.channel_id if book.outgoing else None,
            sent=book.sent, announced_drops=announced_drops,
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "incoming_channel": self.incoming_channel,
            "best_amount": str(self.best.amount),
            "best_signature": self.best.signature_hex,
            "claimed": str(self.claimed),
            "balance": str(self.credit + self.owed),  # for people reading the store; never read back
            "credit": str(self.credit),
            "owed": str(self.owed),
            "outgoing_channel": self.outgoing_channel,
        }
        if self.announced_drops is not None:
            data["announced_drops"] = self.announced_drops
        if self.sent is not None:
            data["sent_amount"], data["sent_signature"] = str(self.sent.amount), self.sent.signature_hex
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> XrpState:
        state = cls(
            incoming_channel=_str(data.get("incoming_channel")),
            credit=_int(data, "credit", 0),
            owed=_int(data, "owed", 0),
            outgoing_channel=_str(data.get("outgoing_channel")),
            announced_drops=data["announced_drops"] if type(data.get("announced_drops")) is int else None,
        )
        try:
            signature = data.get("best_signature")
            state.best = Claim(int(data["best_amount"]), bytes.fromhex(signature) if signature else None)
            state.claimed = int(data.get("claimed", "0"))
        except (KeyError, ValueError, TypeError) as e:
            state.unreadable = f"{type(e).__name__}: {e}" if state.incoming_channel is not None else None
        try:
            signature = data.get("sent_signature")
            if "sent_amount" in data:
                state.sent = Claim(int(data["sent_amount"]), bytes.fromhex(signature) if signature else None)
        except (ValueError, TypeError):
            state.sent = None  # informational: the parent's last_claim is what counts
        return state
