"""RateProbe on its own: which amounts a round tests, and what a round's answers lead to."""

from __future__ import annotations

from fractions import Fraction

from moneyd.stream.congestion import CongestionControl
from moneyd.stream.packet import PacketType, StreamPacket
from moneyd.stream.probing import PROBE_AMOUNTS, ProbeOutcome, ProbeResult, RateProbe
from moneyd.wire.ilp import AmountTooLargeData, Reject, encode_amount_too_large
from moneyd.wire.oer import UINT64_MAX


def probe(precision: int = 3, attempts: int = 15, minimum: Fraction | None = None) -> RateProbe:
    return RateProbe(min_rate_precision=precision, max_attempts=attempts, min_exchange_rate=minimum)


def cc(max_packet: int = UINT64_MAX) -> CongestionControl:
    return CongestionControl(initial_window=4, max_window=128, max_packet_amount=max_packet)


def arrived(amount: int) -> StreamPacket:
    """The receiver's STREAM reply to a test packet: what arrived."""
    return StreamPacket(1, PacketType.REJECT, amount, ())


def f08(received: int, maximum: int) -> Reject:
    return Reject("F08", "test.c", "too large", encode_amount_too_large(AmountTooLargeData(received, maximum)))


def run_round(p: RateProbe, c: CongestionControl, answer: dict[int, ProbeResult] | None = None,
              default: ProbeResult = None) -> tuple[list[int], ProbeOutcome | None]:
    """Send one round (sequences from 1) and answer each amount; returns the amounts and the round's end."""
    amounts = p.start_round(c.max_packet_amount)
    for seq, amount in enumerate(amounts, 1):
        p.sent(seq, amount)
    done = [p.on_reply(seq, amount, (answer or {}).get(amount, default)) for seq, amount in enumerate(amounts, 1)]
    assert done == [False] * (len(amounts) - 1) + [True]  # only the round's last answer ends it
    return amounts, p.finish_round(c)


def test_first_round_tests_every_amount_up_to_the_known_maximum() -> None:
    assert probe().start_round(UINT64_MAX) == list(PROBE_AMOUNTS)
    assert probe().start_round(5000) == [1, 1000]
    assert probe().start_round(0) == [0]  # nothing fits: the maximum itself, for the path to correct


def test_most_precise_answer_gives_the_rate() -> None:
    p, c = probe(), cc()
    amounts, outcome = run_round(p, c, {1: arrived(2), 1000: arrived(2500), 10**6: arrived(2_500_000)},
                                 default=Reject("T04", "test.c", "no liquidity"))
    assert amounts == list(PROBE_AMOUNTS)
    assert outcome == ProbeOutcome(rate=Fraction(5, 2))
    assert p.best == (10**6, 2_500_000) and p.max_ok == 10**6
    assert p.start_amount == 10**6  # bigger packets ran out of liquidity: start money at what got through
    assert not p.in_round


def test_f08_teaches_the_maximum_and_the_next_round_tests_it() -> None:
    p, c = probe(precision=5), cc()
    _, outcome = run_round(p, c, {1: arrived(1), 10**3: arrived(1000)}, default=f08(10**6, 50_000))
    assert outcome is None  # 4 digits are not enough: test the maximum the F08 stated
    assert c.max_packet_amount == 50_000
    amounts, outcome = run_round(p, c, {50_000: arrived(50_000)})
    assert amounts == [50_000]
    assert outcome == ProbeOutcome(rate=Fraction(1))


def test_temporary_errors_retry_smaller_after_a_pause() -> None:
    p, c = probe(), cc(max_packet=900)
    amounts, outcome = run_round(p, c, default=Reject("T04", "test.c", "no liquidity"))
    assert amounts == [1]
    assert outcome == ProbeOutcome(backoff=True)
    assert p.start_round(c.max_packet_amount) == [1]  # max(1, 1 - 0): still the smallest


def test_only_big_amounts_failing_retries_smaller_without_a_pause() -> None:
    p, c = probe(precision=5), cc()
    _, outcome = run_round(p, c, {1: arrived(1), 1000: arrived(1000)}, default=Reject("T04", "test.c", ""))
    assert outcome is None  # 4 digits are not enough here; 10**6 failed for liquidity, not the path
    assert p.start_round(c.max_packet_amount) == [666_667]


def test_final_errors_fail_with_what_the_path_said() -> None:
    p, c = probe(), cc()
    _, outcome = run_round(p, c, default=Reject("F02", "test.connector", "unreachable"))
    assert outcome == ProbeOutcome(failure="cannot reach the receiver: F02 from test.connector: unreachable")


def test_gives_up_after_max_attempts() -> None:
    p, c = probe(attempts=2), cc()
    _, first = run_round(p, c)
    assert first == ProbeOutcome(backoff=True)
    _, second = run_round(p, c)
    assert second == ProbeOutcome(
        failure="Unable to establish the exchange rate: no test packet made it to the receiver", backoff=True)


def test_low_precision_path_settles_for_the_best_it_carries() -> None:
    # ilp-protocol-stream gives up here; the largest packet that got through is the best rate anyone can know.
    p, c = probe(attempts=3), cc()
    _, outcome = run_round(p, c, {1: arrived(3)}, default=f08(1000, 5))
    assert outcome is None
    amounts, outcome = run_round(p, c, {5: arrived(15)})  # 2 digits, and nothing bigger gets through
    assert amounts == [5]
    assert outcome == ProbeOutcome(rate=Fraction(3))


def test_rate_below_the_minimum_fails() -> None:
    p, c = probe(minimum=Fraction(1, 2)), cc()
    _, outcome = run_round(p, c, {1000: arrived(400)})
    assert outcome is not None and outcome.rate is None
    assert outcome.failure == "exchange rate 0.4 is below the minimum acceptable 0.5"


def test_a_path_that_carries_nothing_fails_at_once() -> None:
    p, c = probe(), cc()
    _, outcome = run_round(p, c, {1: f08(1, 0)}, default=f08(1, 0))
    assert outcome == ProbeOutcome(failure="Cannot send: the path's maximum packet amount is 0")


def test_cancel_forgets_the_round() -> None:
    p = probe()
    p.sent(1, 1000)
    assert p.in_round
    p.cancel()
    assert not p.in_round
