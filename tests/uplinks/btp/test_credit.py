"""find_credit (uplinks/btp/credit.py) against a model parent: whatever the credit and our guess, it finds the
credit exactly, asks little when the guess is right, and gives up (None) rather than guess on an answer it cannot
read."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from moneyd.wire.ilp import Reject
from uplinks.btp.credit import Answer, find_credit, probe_destination, read_t04


class ModelParent:
    """Refuses (T04) a probe the credit does not cover, lets any other through (then it is refused further on)."""

    def __init__(self, credit: int, exact: bool = False) -> None:
        self.credit, self.exact = credit, exact
        self.asked: list[int] = []

    async def ask(self, amount: int) -> Answer | None:
        self.asked.append(amount)
        if amount > self.credit:
            return Answer(True, self.credit if self.exact else None)
        return Answer(False)


def find(parent: ModelParent, guess: int, upper: int | None = None) -> int | None:
    return asyncio.run(find_credit(parent.ask, guess, upper))


@given(credit=st.integers(0, 10**18), guess=st.integers(0, 10**18))
def test_finds_any_credit_from_any_guess(credit: int, guess: int) -> None:
    parent = ModelParent(credit)
    assert find(parent, guess) == credit
    assert len(parent.asked) <= 2 * 64 + 2


@given(credit=st.integers(0, 10**12))
def test_a_right_guess_takes_at_most_two_questions_and_one_passes(credit: int) -> None:
    parent = ModelParent(credit)
    assert find(parent, credit) == credit
    assert parent.asked == ([1] if credit == 0 else [credit + 1, credit])


def test_an_exact_refusal_answers_at_once() -> None:
    # the XRP uplink asks first just past the most the parent can hold (its last claim): always refused, exactly
    parent = ModelParent(123_456, exact=True)
    assert find(parent, 10**9, upper=10**9) == 123_456 and parent.asked == [10**9 + 1]


def test_unreadable_answers_give_none() -> None:
    async def f08(amount: int) -> Answer | None:
        return None

    assert asyncio.run(find_credit(f08, 5)) is None
    # a parent that lets through more than it can hold (its last claim), or anything at all, we cannot read
    assert find(ModelParent(50), 5, upper=0) is None
    assert find(ModelParent(2**70), 5) is None


def test_reading_rejects() -> None:
    assert read_t04(Reject("T04", "test.parent.child.", "Insufficient bandwidth, used: 5 max: 0"), 9) == Answer(True)
    assert read_t04(Reject("F08", "test.parent", "too large"), 9) is None
    assert read_t04(Reject("F02", "test.parent", "no such account"), 9) == Answer(False)
    assert probe_destination("test.parent.child.alice") == "test.parent.child.~moneyd-credit-probe"
