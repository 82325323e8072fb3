"""CongestionControl and Backoff on their own: the window, the packet amount, the pause after errors."""

from __future__ import annotations

import pytest

from moneyd.stream.congestion import Backoff, CongestionControl
from moneyd.wire.ilp import AmountTooLargeData, encode_amount_too_large
from moneyd.wire.oer import UINT64_MAX


def cc(initial: int = 4, max_window: int = 128, max_packet: int = UINT64_MAX) -> CongestionControl:
    return CongestionControl(initial_window=initial, max_window=max_window, max_packet_amount=max_packet)


def test_slow_start_then_additive_increase() -> None:
    c = cc(initial=4, max_window=64)
    c.on_temporary_error(sequence=1, amount=10, next_sequence=2, liquidity=False)
    assert (c.window, c.ssthresh) == (2, 2.0)
    c.on_fulfilled(10)
    c.on_fulfilled(10)
    # At ssthresh: +1/window per fulfill, about one packet more per window of fulfills.
    assert c.congestion_window == pytest.approx(2 + 1 / 2 + 1 / 2.5) and c.window == 2
    c.on_fulfilled(10)
    assert c.window == 3
    fresh = cc(initial=4)
    for _ in range(4):
        fresh.on_fulfilled(10)
    assert fresh.window == 8  # below ssthresh: one more packet per fulfill


def test_window_is_capped_and_never_below_one() -> None:
    c = cc(initial=4, max_window=6)
    for _ in range(10):
        c.on_fulfilled(1)
    assert c.window == 6
    for seq in range(10):
        c.on_temporary_error(sequence=100 + seq * 10, amount=1, next_sequence=100 + seq * 10 + 1, liquidity=False)
    assert c.window == 1 and c.ssthresh == 2.0


def test_one_decrease_per_round_of_losses() -> None:
    c = cc(initial=16)
    c.on_temporary_error(sequence=5, amount=1, next_sequence=20, liquidity=False)
    assert c.window == 8
    # Packets sent before the decrease (sequence < 20) were already in flight: their losses are the same round.
    c.on_temporary_error(sequence=6, amount=1, next_sequence=21, liquidity=False)
    c.on_temporary_error(sequence=19, amount=1, next_sequence=21, liquidity=False)
    assert c.window == 8
    c.on_temporary_error(sequence=20, amount=1, next_sequence=30, liquidity=False)
    assert c.window == 4


def test_t04_shrinks_the_packet_amount_by_a_third_other_errors_do_not() -> None:
    c = cc(max_packet=900)
    c.on_temporary_error(sequence=1, amount=900, next_sequence=2, liquidity=False)
    assert c.packet_amount == 900
    c.on_temporary_error(sequence=2, amount=900, next_sequence=3, liquidity=True)
    assert c.packet_amount == 600
    c.on_temporary_error(sequence=2, amount=600, next_sequence=3, liquidity=True)  # same round: no change
    assert c.packet_amount == 600
    c.on_temporary_error(sequence=3, amount=2, next_sequence=4, liquidity=True)
    assert c.packet_amount == 2  # never below 2
    assert c.max_packet_amount == 900  # T04 says nothing about what the path carries


def test_packet_amount_climbs_back_after_fulfills() -> None:
    known = cc(max_packet=1000)
    known.on_temporary_error(sequence=1, amount=1000, next_sequence=2, liquidity=True)
    assert known.packet_amount == 667
    known.on_fulfilled(666)  # below the amount tried: no evidence more would pass
    assert known.packet_amount == 667
    known.on_fulfilled(667)
    assert known.packet_amount == 767  # a tenth of the known maximum per step
    for _ in range(5):
        known.on_fulfilled(known.packet_amount)
    assert known.packet_amount == 1000
    unknown = cc()
    unknown.limit_packet_amount(100)
    unknown.on_fulfilled(100)
    assert unknown.packet_amount == 200  # no known maximum: double


def test_f08_with_amounts_scales_to_the_stated_maximum() -> None:
    c = cc()
    c.on_amount_too_large(1000, encode_amount_too_large(AmountTooLargeData(received_amount=2000,
                                                                           maximum_amount=500)))
    # The path applied a rate of 2: 500 at the connector is 250 of ours.
    assert c.max_packet_amount == c.packet_amount == 250


@pytest.mark.parametrize("data", [b"", b"\x01", encode_amount_too_large(AmountTooLargeData(100, 100))])
def test_f08_without_usable_amounts_goes_just_below_what_was_sent(data: bytes) -> None:
    c = cc()
    c.on_amount_too_large(1000, data)
    assert c.max_packet_amount == c.packet_amount == 999


def test_f08_never_raises_the_maximum() -> None:
    c = cc(max_packet=100)
    c.on_amount_too_large(50, encode_amount_too_large(AmountTooLargeData(received_amount=60, maximum_amount=59)))
    assert c.max_packet_amount == 49
    c.on_amount_too_large(10, encode_amount_too_large(AmountTooLargeData(received_amount=200, maximum_amount=100)))
    assert c.max_packet_amount == 5
    c.on_amount_too_large(1, b"")
    assert c.max_packet_amount == 0


def test_backoff_doubles_to_a_ceiling_and_resets() -> None:
    b = Backoff(0.1, 0.5)
    assert not b.paused(0.0)
    b.pause(10.0)
    assert b.paused(10.05) and not b.paused(10.1)
    b.pause(10.0)  # the next pause is twice as long, and never shortens one already running
    assert b.resume_at == pytest.approx(10.2)
    b.pause(10.0)
    b.pause(10.0)
    assert b.delay == 0.5
    b.pause(10.0)
    assert b.resume_at == pytest.approx(10.5)
    b.expire(10.4)
    assert b.resume_at == pytest.approx(10.5)
    b.expire(10.5)
    assert b.resume_at == 0.0 and not b.paused(10.5)
    b.reset()
    b.pause(20.0)
    assert b.resume_at == pytest.approx(20.1)


def test_rejects_of_packets_in_flight_together_are_one_backoff_step() -> None:
    b = Backoff(0.1, 10.0)
    # Packets 0..7 were in flight when the path ran dry: their eight T04s are one event, not a jump to the ceiling.
    for seq in range(8):
        b.pause(5.0 + seq * 0.001, seq, 8)
    assert b.delay == pytest.approx(0.2) and b.resume_at == pytest.approx(5.1)
    # A packet sent after that pause is rejected too: the next step, twice as long.
    b.pause(6.0, 8, 9)
    assert b.resume_at == pytest.approx(6.2) and b.delay == pytest.approx(0.4)
    # A late reject of one of the first eight changes nothing.
    b.pause(6.1, 3, 9)
    assert b.resume_at == pytest.approx(6.2) and b.delay == pytest.approx(0.4)
