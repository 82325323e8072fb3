"""Exchange-rate probing: unfulfillable test Prepares of growing amounts tell how many destination units a source
unit buys (RFC 29 §5.2, as ilp-protocol-stream does it), and F08s on the way teach the path's maximum amount.

One round sends one packet per candidate amount (``PROBE_AMOUNTS`` up to the known maximum). When every reply of a
round is in, ``finish_round`` says what follows: a rate (enough digits of precision, or the best the path allows
after ``max_attempts`` rounds), a failure, or another round with new amounts (smaller after T04s, the F08 maximum).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Final

from ..wire.ilp import ErrorFamily, Reject
from .congestion import CongestionControl
from .packet import StreamPacket

PROBE_AMOUNTS: Final = (1, 10**3, 10**6, 10**9, 10**12)

# What came back for a test packet: the receiver's STREAM reply, a Reject from the path, or nothing usable.
ProbeResult = Reject | StreamPacket | None


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    """The end of a round. Neither ``rate`` nor ``failure``: send another round (after a pause if ``backoff``)."""

    rate: Fraction | None = None
    failure: str | None = None
    backoff: bool = False


class RateProbe:
    def __init__(self, *, min_rate_precision: int, max_attempts: int, min_exchange_rate: Fraction | None) -> None:
        self.min_rate_precision = min_rate_precision
        self.max_attempts = max_attempts
        self.min_exchange_rate = min_exchange_rate
        self.round: dict[int, int] = {}  # sequence -> amount, for the test packets in flight
        self._results: list[tuple[int, ProbeResult]] = []
        self._next: list[int] = list(PROBE_AMOUNTS)
        self.attempts = 0
        self.best: tuple[int, int] | None = None  # (source, delivered) of the most precise answer
        self.max_ok = 0  # the largest amount that reached the receiver
        self.saw_temporary = False

    @property
    def in_round(self) -> bool:
        return bool(self.round)

    def start_round(self, max_packet_amount: int) -> list[int]:
        """The amounts to test in a new round; register each packet with ``sent``."""
        self.attempts += 1
        return sorted({a for a in self._next if 0 < a <= max_packet_amount}) or [max_packet_amount]

    def sent(self, sequence: int, amount: int) -> None:
        self.round[sequence] = amount

    def cancel(self) -> None:
        self.round.clear()

    def on_reply(self, sequence: int, amount: int, result: ProbeResult) -> bool:
        """Record one answer; True when it was the round's last."""
        self.round.pop(sequence, None)
        self._results.append((amount, result))
        return not self.round

    @property
    def start_amount(self) -> int | None:
        """When bigger test packets ran out of liquidity, money starts at the largest amount that got through."""
        return self.max_ok if self.saw_temporary and self.max_ok else None

    def finish_round(self, congestion: CongestionControl) -> ProbeOutcome | None:
        """Weigh the round's answers (F08s update ``congestion``); None: send the next round."""
        results, self._results = self._results, []
        next_amounts: set[int] = set()
        temporary: list[int] = []
        finals: list[Reject] = []
        answered: set[int] = set()
        for amount, result in results:
            if isinstance(result, StreamPacket):
                answered.add(amount)
                self.max_ok = max(self.max_ok, amount)
                self._consider(amount, result.prepare_amount)
            elif isinstance(result, Reject) and result.code == "F08":
                before = congestion.max_packet_amount
                congestion.on_amount_too_large(amount, result.data)
                if congestion.max_packet_amount == 0:
                    return ProbeOutcome(failure="Cannot send: the path's maximum packet amount is 0")
                if congestion.max_packet_amount < before:
                    next_amounts.add(congestion.max_packet_amount)
            elif isinstance(result, Reject) and result.family is ErrorFamily.FINAL:
                finals.append(result)
            else:
                temporary.append(amount)
                self.saw_temporary = True
        best = self.best
        if best is not None and len(str(best[1])) >= self.min_rate_precision:
            return self._rate(Fraction(best[1], best[0]))
        backoff = False
        if temporary:
            smallest = min(temporary)
            next_amounts.add(max(1, smallest - smallest // 3))
            # Nothing got through: wait. (When only the bigger amounts failed, the amount was the problem.)
            backoff = best is None or smallest <= best[0]
        next_amounts -= answered
        if next_amounts and self.attempts < self.max_attempts:
            self._next = sorted(next_amounts)
            return ProbeOutcome(backoff=True) if backoff else None
        if best is not None:
            # The path cannot carry a packet big enough for full precision: the largest that got through gives
            # the best rate anyone can know here (ilp-protocol-stream gives up instead).
            return self._rate(Fraction(best[1], best[0]), backoff)
        if finals:
            r = finals[0]
            detail = f": {r.message}" if r.message else ""
            return ProbeOutcome(failure=f"cannot reach the receiver: {r.code} from {r.triggered_by or 'the path'}"
                                        f"{detail}", backoff=backoff)
        return ProbeOutcome(failure="Unable to establish the exchange rate: no test packet made it to the receiver",
                            backoff=backoff)

    def _consider(self, amount: int, delivered: int) -> None:
        # More digits win; on a tie, the larger test amount (less rounding).
        best = self.best
        if delivered > 0 and (best is None or (len(str(delivered)), amount) > (len(str(best[1])), best[0])):
            self.best = (amount, delivered)

    def _rate(self, rate: Fraction, backoff: bool = False) -> ProbeOutcome:
        minimum = self.min_exchange_rate
        if minimum is not None and rate < minimum:
            return ProbeOutcome(failure=f"exchange rate {float(rate):.6g} is below the minimum acceptable "
                                        f"{float(minimum):.6g}", backoff=backoff)
        return ProbeOutcome(rate=rate, backoff=backoff)
