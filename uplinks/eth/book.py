"""The ClaimBook: every settlement decision of the ETH uplink, as a pure object (no I/O, no clock).

Two channels meet here. Ours (us -> parent) carries the claims we sign to pay; the parent's (parent -> us)
carries the claims it signs to pay us. The JS server (ilp-plugin-ethereum beta.20, role server) keeps a
maximum balance of 0 for its clients: every Prepare we send must already be paid for by claims. So the book
tracks what the parent has charged (Prepares in flight or fulfilled) against what our claims have paid, and
``prepare`` returns the claim to send *before* a Prepare when the prepaid credit does not cover it. A reject
returns the amount to that credit (the server credits its balance back), a fulfill changes nothing.

The I/O layer calls these methods and does what they return: send a claim, store ``to_json()`` durably
before acknowledging an incoming claim, claim the best incoming claim on chain. The method names are those of every
claim book (moneyd.claimbook).
"""

from __future__ import annotations

# isort: off
from . import _ecc  # noqa: F401  (first: eth-account must be imported through it)
# isort: on

from dataclasses import dataclass, replace
from typing import Any

from eth_account.signers.local import LocalAccount

from moneyd import claimbook
from moneyd.uplink import ChannelView, UplinkBalance

from .claims import (
    MIN_DISPUTE_PERIOD,
    ChannelState,
    Claim,
    as_account,
    as_signer,
    channel_id_hex,
    parse_address,
    parse_channel_id,
    sign_claim,
    units_to_wei,
    verify_claim,
    wei_to_units,
)
from .errors import ClaimRejected, InsufficientCapacity, ProtocolError


@dataclass(frozen=True, slots=True)
class OutgoingChannel:
    """Our channel to the parent: ``value`` wei deposited, ``spent`` wei promised by our latest claim."""

    channel_id: bytes
    receiver: str
    value: int
    spent: int

    @property
    def remaining(self) -> int:
        return self.value - self.spent


class ClaimBook(claimbook.ClaimBook[Claim, Claim]):
    def __init__(
        self,
        key: LocalAccount | str | bytes,
        contract: str,
        *,
        min_incoming_dispute_period: int = MIN_DISPUTE_PERIOD,
    ) -> None:
        self._account = as_account(key)
        self._signer = as_signer(self._account)  # one libsecp256k1 key object, not one per claim
        self.address: str = self._account.address
        self.contract = parse_address(contract, "contract")
        self.min_incoming_dispute_period = min_incoming_dispute_period
        self.outgoing: OutgoingChannel | None = None
        self.last_sent: Claim | None = None
        self.paid: int = 0  # base units our claims have paid the parent, over every channel
        self.charged: int = 0  # base units of our Prepares the parent holds (in flight or fulfilled)
        self.incoming_channel: bytes | None = None
        self.best_incoming: Claim | None = None
        self.received: int = 0  # base units credited from incoming claims, over every channel

    # -- our channel ----------------------------------------------------------------------------------------

    def open_outgoing(self, channel_id: bytes, receiver: str, value: int) -> Claim:
        """Record our newly opened channel; return the value-0 claim that links it at the parent."""
        if self.outgoing is not None:
            raise ProtocolError(f"channel {channel_id_hex(self.outgoing.channel_id)} is still open")
        self.outgoing = OutgoingChannel(channel_id, parse_address(receiver, "receiver"), value, 0)
        self.last_sent = sign_claim(self._signer, self.contract, channel_id, 0)
        return self.last_sent

    def deposited(self, value: int) -> None:
        """Our channel now holds ``value`` wei in total (after a confirmed deposit)."""
        ch = self._our_channel()
        if value < ch.value:
            raise ProtocolError(f"channel value cannot fall from {ch.value} to {value} wei while open")
        self.outgoing = replace(ch, value=value)

    def outgoing_closed(self) -> None:
        """Our channel was claimed or settled on chain: the next payment needs a new one."""
        self.outgoing = None
        self.last_sent = None

    def pay(self, units: int) -> Claim:
        """Sign a claim adding ``units`` to what our channel promises the parent."""
        self._promise(units)
        claim = self.sign_promised()
        assert claim is not None
        return claim

    def _promise(self, units: int) -> None:
        if units <= 0:
            raise ValueError(f"payment must be positive, got {units}")
        ch = self._our_channel()
        wei = units_to_wei(units)
        if wei > ch.remaining:
            raise InsufficientCapacity(
                f"paying {units} units ({wei} wei) needs more than the {ch.remaining} wei left in our channel"
            )
        self.outgoing = replace(ch, spent=ch.spent + wei)
        self.paid += units

    def sign_promised(self) -> Claim | None:
        """The claim for everything our channel promises so far, when the last one signed does not cover it yet
        (claims are cumulative: one covers every ``reserve`` before it); None when there is nothing new."""
        ch = self.outgoing
        last = self.last_sent
        if ch is None or (last is not None and last.channel_id == ch.channel_id and last.value == ch.spent):
            return None
        self.last_sent = sign_claim(self._signer, self.contract, ch.channel_id, ch.spent)
        return self.last_sent

    def credit(self) -> int:
        """Base units the parent holds from our claims and has not charged for a Prepare yet."""
        return self.paid - self.charged

    def reserve(self, amount: int) -> bool:
        """Account for a Prepare of ``amount`` we are about to send, promising what the credit does not cover;
        True when a claim must reach the parent first. Signing waits for ``sign_promised``, so Prepares sent
        together cost one signature and one claim message."""
        if amount < 0:
            raise ValueError(f"negative Prepare amount {amount}")
        shortfall = amount - self.credit()
        if shortfall > 0:
            self._promise(shortfall)
        self.charged += amount
        return shortfall > 0

    def prepare(self, amount: int) -> Claim | None:
        """``reserve`` and sign at once: the claim to send before the Prepare, if any."""
        return self.sign_promised() if self.reserve(amount) else None

    def rejected(self, amount: int) -> None:
        """The parent rejected our Prepare of ``amount``: it credits the amount back."""
        self.charged -= amount

    def needs_topup(self, minimum_remaining: int) -> bool:
        """True when our channel holds less than ``minimum_remaining`` wei unpromised."""
        return self.outgoing is not None and self.outgoing.remaining < minimum_remaining

    # -- their channel --------------------------------------------------------------------------------------

    def receive(self, claim: Claim, channel: ChannelState) -> int:
        """Verify an incoming claim against ``channel`` (fresh from chain); return the base units it credits.

        Raises ClaimRejected and changes nothing when the claim is bad. The caller stores ``to_json()``
        durably before acknowledging.
        """
        best = self.best_incoming.value if self.best_incoming is not None else None
        added = verify_claim(
            claim,
            channel,
            receiver=self.address,
            contract=self.contract,
            best=best,
            linked_channel=self.incoming_channel,
            min_dispute_period=self.min_incoming_dispute_period,
        )
        before = wei_to_units(best or 0)
        after = wei_to_units((best or 0) + added)
        self.incoming_channel = claim.channel_id
        self.best_incoming = claim
        self.received += after - before
        return after - before

    def claimable(self) -> Claim | None:
        """The best incoming claim worth sending to the contract (value above 0), if any."""
        if self.best_incoming is None or self.best_incoming.value == 0:
            return None
        return self.best_incoming

    def should_claim(self, fee: int, channel: ChannelState, *, force: bool = False) -> bool:
        """Claim on chain when the parent started settling (or ``force``, for cleanup) and it gains more
        than the ``fee`` wei the transaction costs."""
        best = self.claimable()
        if best is None or best.channel_id != channel.channel_id or not channel.exists:
            return False
        if best.value <= fee:
            return False
        return force or channel.is_settling

    def incoming_claimed(self) -> None:
        """Their channel was claimed on chain and is gone: a new one will be linked by its value-0 claim."""
        self.incoming_channel = None
        self.best_incoming = None

    # -- status and durability ------------------------------------------------------------------------------

    def uplink_balance(self) -> UplinkBalance:
        """The prepaid credit (what the parent holds from our claims, not yet charged for a Prepare): the parent
        keeps a maximum balance of 0 for us, so it never goes below 0. ``details`` (base units, wei where named):
        ``paid`` by our claims, ``charged`` for our Prepares, ``received`` from the parent's claims,
        ``outgoing_remaining_wei`` left unpromised in our channel, ``best_incoming_wei`` the parent's best claim."""
        out, best = self.outgoing, self.best_incoming
        return UplinkBalance(self.credit(), 0, None, {
            "paid": self.paid,
            "charged": self.charged,
            "received": self.received,
            "outgoing_channel": channel_id_hex(out.channel_id) if out is not None else None,
            "outgoing_remaining_wei": out.remaining if out is not None else None,
            "incoming_channel": channel_id_hex(self.incoming_channel) if self.incoming_channel is not None else None,
            "best_incoming_wei": best.value if best is not None else None,
        })

    def channels(self, incoming_read: ChannelState | None = None) -> tuple[ChannelView | None, ChannelView | None]:
        """Ours (value and what our claims promise; the chain pays out only at the end), and the parent's as its
        best claim shows it, its value from ``incoming_read`` (the uplink's last chain read of it: the book keeps
        no deposit of the parent's; None or another channel: not known)."""
        out, best = self.outgoing, self.best_incoming
        ours = theirs = None
        if out is not None:
            ours = ChannelView(channel_id_hex(out.channel_id), wei_to_units(out.value), wei_to_units(out.spent), None)
        if best is not None:
            read = incoming_read
            known = read is not None and read.exists and read.channel_id == best.channel_id
            capacity = wei_to_units(read.value) if known and read is not None else None
            theirs = ChannelView(channel_id_hex(best.channel_id), capacity, wei_to_units(best.value), None)
        return ours, theirs

    def to_json(self) -> dict[str, Any]:
        """Everything needed to resume after a crash, as JSON-compatible values (no key material)."""

        def claim(c: Claim | None) -> dict[str, str] | None:
            if c is None:
                return None
            return {"channelId": channel_id_hex(c.channel_id), "value": str(c.value), "signature": "0x" + c.signature.hex()}

        out = self.outgoing
        return {
            "contract": self.contract,
            "outgoing": None
            if out is None
            else {
                "channelId": channel_id_hex(out.channel_id),
                "receiver": out.receiver,
                "value": str(out.value),
                "spent": str(out.spent),
            },
            "lastSent": claim(self.last_sent),
            "paid": str(self.paid),
            "charged": str(self.charged),
            "incomingChannel": None if self.incoming_channel is None else channel_id_hex(self.incoming_channel),
            "bestIncoming": claim(self.best_incoming),
            "received": str(self.received),
        }

    @classmethod
    def from_json(
        cls,
        key: LocalAccount | str | bytes,
        data: dict[str, Any],
        *,
        min_incoming_dispute_period: int = MIN_DISPUTE_PERIOD,
    ) -> ClaimBook:
        """Rebuild a book from ``to_json()``. A corrupt record raises ProtocolError, never half-loads."""
        try:
            book = cls(key, data["contract"], min_incoming_dispute_period=min_incoming_dispute_period)

            def claim(d: dict[str, str] | None) -> Claim | None:
                if d is None:
                    return None
                return Claim(
                    parse_channel_id(d["channelId"]), int(d["value"]), bytes.fromhex(d["signature"][2:]), book.contract
                )

            out = data["outgoing"]
            if out is not None:
                book.outgoing = OutgoingChannel(
                    parse_channel_id(out["channelId"]),
                    parse_address(out["receiver"]),
                    int(out["value"]),
                    int(out["spent"]),
                )
            book.last_sent = claim(data["lastSent"])
            book.paid = int(data["paid"])
            book.charged = int(data["charged"])
            inc = data["incomingChannel"]
            book.incoming_channel = None if inc is None else parse_channel_id(inc)
            book.best_incoming = claim(data["bestIncoming"])
            book.received = int(data["received"])
        except (KeyError, TypeError, ValueError) as e:
            raise ProtocolError(f"corrupt ETH claim book record: {e!r}") from None
        return book

    def _our_channel(self) -> OutgoingChannel:
        if self.outgoing is None:
            raise InsufficientCapacity("no outgoing channel is open: open one first")
        return self.outgoing


__all__ = ["ClaimBook", "ClaimRejected", "OutgoingChannel"]
