"""The shape of a payment-channel uplink's claim book, shared by the XRP and ETH uplinks and public for third-party
ones: the same method names, moneyd's errors, a settings dataclass, and one way to persist state.

A claim book is a pure object (no I/O, no clock) that makes every settlement decision of an uplink; the uplink calls
it and does what it returns (send a claim, cash one on the ledger, commit the state). Two channels meet there: ours
(us -> parent) carries the cumulative claims we sign to pay, the parent's (parent -> us) the ones it signs to pay us.

- Ours: ``prepare(amount)`` for each Prepare about to go to the parent returns the payment (a signed claim) to send
  *before* it when the prepaid credit does not cover it, or None; ``rejected(amount)`` gives a rejected Prepare's
  amount back. ``prepare`` raises ``InsufficientCapacity`` (changing nothing) when our channel cannot pay.
- Theirs: ``receive(claim, ...)`` checks an incoming claim (the evidence it is judged by depends on the ledger: the
  XRP book holds the channel, the ETH book is given the channel as the chain reports it) and returns the base units
  it adds, or raises ``ClaimRejected`` changing nothing; the caller commits the state before acknowledging.
  ``claimable()`` is the best incoming claim that would gain something on the ledger; ``should_claim(fee, ...)``
  says whether to cash it now.
- For status pages: ``uplink_balance()`` (the balance this book owns, :class:`moneyd.uplink.UplinkBalance`) and
  ``channels()`` (both channels as :class:`moneyd.uplink.ChannelView`).
- Durable: the book's state is ``to_json()`` / ``from_json(...)``; the uplink keeps it in an ``UplinkState`` of its
  own (a dataclass with ``to_json`` / ``from_json``: the book plus what the uplink itself must remember), stored with
  :class:`StateSlot` in moneyd's Store. A format change must keep reading what earlier versions wrote.
- Settings: a frozen dataclass per book (limits and amounts, checked in ``__post_init__``, raising ``ConfigError``).

Amounts are base units at the parent's asset scale unless a name says otherwise (``..._drops``, ``..._wei``).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from .errors import ClaimRejected, ConfigError, InsufficientCapacity, ProtocolError
from .store import Store
from .uplink import ChannelView, UplinkBalance

__all__ = [
    "ChannelView", "ClaimBook", "ClaimRejected", "ConfigError", "InsufficientCapacity", "JsonState", "ProtocolError",
    "StateSlot", "UplinkBalance",
]

PaymentT = TypeVar("PaymentT")  # what ``prepare`` asks the uplink to send before a Prepare
ClaimT = TypeVar("ClaimT")  # an incoming claim
StateT = TypeVar("StateT", bound="JsonState")


class ClaimBook(abc.ABC, Generic[PaymentT, ClaimT]):
    """The methods every claim book has (see the module doc); ``receive`` and ``should_claim`` take the evidence
    their ledger needs, so each book declares them with its own parameters."""

    # -- ours -> the parent ---------------------------------------------------------------------------------

    @abc.abstractmethod
    def prepare(self, amount: int) -> PaymentT | None:
        """Charge a Prepare of ``amount`` we are about to send; the payment to send before it, if any."""

    @abc.abstractmethod
    def rejected(self, amount: int) -> None:
        """The parent rejected our Prepare of ``amount``: it no longer counts it."""

    # -- the parent -> us -----------------------------------------------------------------------------------

    @abc.abstractmethod
    def claimable(self) -> ClaimT | None:
        """The best incoming claim, when cashing it on the ledger would gain something."""

    # -- status and durability ------------------------------------------------------------------------------

    @abc.abstractmethod
    def uplink_balance(self) -> UplinkBalance:
        """The balance with the parent as this book keeps it, with its limits and the book's own figures."""

    @abc.abstractmethod
    def channels(self) -> tuple[ChannelView | None, ChannelView | None]:
        """Our channel and the parent's (None: not known yet), in base units."""

    @abc.abstractmethod
    def to_json(self) -> dict[str, Any]:
        """What must survive a restart, as JSON values (never key material)."""


class JsonState(Protocol):
    """A record kept in the Store: written as ``to_json()``."""

    def to_json(self) -> dict[str, Any]: ...


class StateSlot(Generic[StateT]):
    """Where one uplink's state lives in the Store (``namespace``, ``key``): ``load`` reads it back through
    ``from_json`` (None when nothing is stored), ``save`` commits ``to_json()`` and returns once it is on disk."""

    def __init__(self, store: Store, namespace: str, key: str, from_json: Callable[[dict[str, Any]], StateT]) -> None:
        self.store, self.namespace, self.key, self._from_json = store, namespace, key, from_json

    def load(self) -> StateT | None:
        """The stored state; a record that is not a JSON object raises ProtocolError (nothing is overwritten)."""
        data = self.store.get(self.namespace, self.key)
        if data is None:
            return None
        if not isinstance(data, dict):
            raise ProtocolError(f"the stored {self.namespace} uplink state {self.key!r} is damaged (not an object)")
        return self._from_json(data)

    def save(self, state: StateT) -> None:
        self.store.put(self.namespace, self.key, state.to_json())
