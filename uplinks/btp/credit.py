"""Asking a settlement parent how much of our prepaid credit it holds.

Both parents moneyd settles with (ilp-plugin-xrp-asym-server, ilp-plugin-ethereum in role server) refuse a Prepare
from us that our claims do not cover, with a T04 and before forwarding it anywhere: the asym server when its
prepared balance plus the amount passes our last claim (no bandwidth), ilp-plugin-ethereum when its receivable
balance would pass its maximum of 0. Neither has a message that says how much credit it holds for us, and after a
crash we cannot know it ourselves: whether the Prepares in flight at the crash reached the parent, and whether they
were fulfilled there, went with the process. So at every connection the uplink asks, with Prepares that can never
be fulfilled (a random condition nobody knows the preimage of) to an address no one has:

    "would you take a Prepare of ``a``?"   T04        -> our credit there is below ``a``
                                           any other  -> it is at least ``a`` (passed the check, then refused)

``find_credit`` searches with such questions, starting from our own count (usually right, then it takes one or
two questions), and never guesses: an answer it cannot read (an F08, a Fulfill) ends the search with None.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from moneyd.btp.connection import BtpConnection
from moneyd.wire.ilp import ErrorCode, Prepare, Reject, Reply

PROBE_ACCOUNT: Final = "~moneyd-credit-probe"  # "~" keeps it apart from any account name moneyd would configure
PROBE_EXPIRY: Final = timedelta(seconds=5)
MAX_QUESTIONS: Final = 200  # a uint64 range is searched in about 130
MAX_AMOUNT: Final = 2**64 - 1


@dataclass(frozen=True, slots=True)
class Answer:
    """``refused`` True: the credit is below the amount; False: at least the amount. ``exact``: the credit,
    when the parent's refusal says it (the asym server's T04 text does)."""

    refused: bool
    exact: int | None = None


Ask = Callable[[int], Awaitable[Answer | None]]


def probe_destination(our_address: str) -> str:
    """An address next to ours at the parent that no client has: a Prepare that passes the credit check fails
    at once when the parent tries to deliver it."""
    prefix, _, _ = our_address.rpartition(".")
    return f"{prefix}.{PROBE_ACCOUNT}" if prefix else PROBE_ACCOUNT


def probe_prepare(amount: int, destination: str) -> Prepare:
    return Prepare(amount, datetime.now(UTC) + PROBE_EXPIRY, os.urandom(32), destination, b"")


async def ask_parent(conn: BtpConnection, amount: int, destination: str, read: Callable[[Reject, int], Answer | None]) -> Answer | None:
    """Send one probe of ``amount``; ``read`` turns the parent's Reject into an Answer (None: unreadable)."""
    reply: Reply = await conn.send_prepare(probe_prepare(amount, destination))
    if not isinstance(reply, Reject):
        return None  # a Fulfill of a condition nobody can meet: something is wrong, trust nothing
    return read(reply, amount)


def read_t04(reject: Reject, amount: int) -> Answer | None:
    """The plain reading: T04 is "not covered", F08 is unreadable (checked before the credit), anything else
    means the Prepare passed the credit check and was refused further on."""
    if reject.code == ErrorCode.T04_INSUFFICIENT_LIQUIDITY:
        return Answer(True)
    if reject.code == ErrorCode.F08_AMOUNT_TOO_LARGE:
        return None
    return Answer(False)


async def find_credit(ask: Ask, guess: int, upper: int | None = None) -> int | None:
    """The credit the parent holds (an integer in 0..``upper``), found by questions; None when an answer
    could not be read. ``guess`` (our own count) is asked about first."""
    if upper is not None:
        upper = min(upper, MAX_AMOUNT - 1)
    guess = max(0, min(guess, MAX_AMOUNT - 1 if upper is None else upper))
    lo, hi = 0, upper  # invariant: lo <= credit <= hi (hi None: not bounded yet)
    questions = 0

    async def question(amount: int) -> Answer | None:
        nonlocal questions
        questions += 1
        if questions > MAX_QUESTIONS:
            return None
        return await ask(amount)

    first = await question(guess + 1)
    if first is None:
        return None
    if first.exact is not None:
        return first.exact if first.exact >= 0 and (upper is None or first.exact <= upper) else None
    if first.refused:
        hi = guess
        if guess == 0:
            return 0
        # Most often our count is right: one more question says so.
        second = await question(guess)
        if second is None:
            return None
        if second.exact is not None:
            return second.exact
        if not second.refused:
            return guess
        hi = guess - 1
    else:
        lo = guess + 1
        if upper is not None and lo > upper:
            return None  # "at least more than it can hold": not a parent that answers as we read it
        step = 1
        while hi is None:  # bracket the credit from above
            if lo >= MAX_AMOUNT:
                return None  # it would take any Prepare at all: not a parent that answers as we read it
            amount = min(lo + step, MAX_AMOUNT)
            answer = await question(amount)
            if answer is None:
                return None
            if answer.exact is not None:
                return answer.exact
            if answer.refused:
                hi = amount - 1
            else:
                lo = amount
            step *= 2
    while lo < hi:
        mid = (lo + hi + 1) // 2
        answer = await question(mid)
        if answer is None:
            return None
        if answer.exact is not None:
            return answer.exact
        if answer.refused:
            hi = mid - 1
        else:
            lo = mid
    return lo
