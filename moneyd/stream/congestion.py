"""How much a STREAM sender puts on the path at once: a window of packets in flight, the amount per packet, and a
pause after errors. Pure arithmetic over what the replies said; the connection decides what the replies mean.

- ``CongestionControl``: the window grows by one packet per fulfilled money packet below ``ssthresh`` (slow
  start), then by about one packet per window (additive increase), and halves once per round of losses (a loss
  counts only if its packet was sent after the previous decrease). The packet amount starts at the path's maximum
  (as ilp-protocol-stream does), shrinks by a third on T04 (insufficient liquidity), is cut to what an F08 says the
  path carries, and climbs back after fulfills.
- ``Backoff``: after temporary errors, wait before sending again, doubling up to a ceiling; a fulfill resets it.
"""

from __future__ import annotations

from ..wire.errors import CodecError
from ..wire.ilp import decode_amount_too_large
from ..wire.oer import UINT64_MAX


class CongestionControl:
    def __init__(self, *, initial_window: int, max_window: int, max_packet_amount: int) -> None:
        self.max_window = max_window
        self.congestion_window = float(initial_window)  # in packets; fractional during additive increase
        self.ssthresh = float(max_window)
        self.recovery_until = 0  # no further decrease for packets sent before this sequence
        self.max_packet_amount = max_packet_amount  # what the path is known to carry (F08 lowers it)
        self.packet_amount = max_packet_amount  # what we try now (T04 lowers it, fulfills raise it)

    @property
    def window(self) -> int:
        """Packets that may be in flight now."""
        return max(1, int(self.congestion_window))

    def on_fulfilled(self, amount: int) -> None:
        """A money packet of ``amount`` was fulfilled: open the window, and try bigger packets."""
        if self.congestion_window < self.ssthresh:
            self.congestion_window += 1
        else:
            self.congestion_window += 1 / self.congestion_window
        self.congestion_window = min(self.congestion_window, float(self.max_window))
        if amount >= self.packet_amount and self.packet_amount < self.max_packet_amount:
            if self.max_packet_amount != UINT64_MAX:
                step = max(1, self.max_packet_amount // 10)
                self.packet_amount = min(self.packet_amount + step, self.max_packet_amount)
            else:
                self.packet_amount = min(self.packet_amount * 2, UINT64_MAX)

    def on_temporary_error(self, sequence: int, amount: int, next_sequence: int, *, liquidity: bool) -> None:
        """Packet ``sequence`` carrying ``amount`` met a temporary error (``liquidity``: it was T04)."""
        if sequence < self.recovery_until:
            return  # already reacted to this round of losses
        if liquidity:
            smallest = min(amount, self.packet_amount) or 1
            self.packet_amount = max(2, smallest - smallest // 3)
        self.congestion_window = max(1.0, self.congestion_window / 2)
        self.ssthresh = max(2.0, self.congestion_window)
        self.recovery_until = next_sequence

    def on_amount_too_large(self, sent: int, reject_data: bytes) -> None:
        """An F08 for a packet of ``sent``: scale to the maximum it states, or at least go below what was sent."""
        new_max = max(0, sent - 1)
        try:
            d = decode_amount_too_large(reject_data)
            if d.received_amount > d.maximum_amount:
                new_max = sent * d.maximum_amount // d.received_amount
        except CodecError:
            pass
        self.max_packet_amount = min(self.max_packet_amount, new_max)
        self.packet_amount = min(self.packet_amount, self.max_packet_amount)

    def limit_packet_amount(self, amount: int) -> None:
        """Start money at ``amount`` (the largest test packet that got through while bigger ones ran short)."""
        self.packet_amount = min(self.packet_amount, amount)


class Backoff:
    def __init__(self, start: float, ceiling: float) -> None:
        self.start = start
        self.ceiling = ceiling
        self.delay = start
        self.resume_at = 0.0  # 0: not paused
        self._event_end = 0  # packets numbered below this were in flight at the last pause

    def pause(self, now: float, sequence: int | None = None, next_sequence: int | None = None) -> None:
        """Pause after a temporary error. Given the rejected packet's ``sequence`` and the next one to be sent, the
        rejects of packets that were already in flight at the last pause are that same event: they neither lengthen
        the pause nor double the next one (eight T04s at once are one step, not a jump to the ceiling)."""
        if sequence is not None:
            if sequence < self._event_end:
                return
            if next_sequence is not None:
                self._event_end = next_sequence
        self.resume_at = max(self.resume_at, now + self.delay)
        self.delay = min(self.delay * 2, self.ceiling)

    def reset(self) -> None:
        self.delay = self.start

    def paused(self, now: float) -> bool:
        return self.resume_at > now

    def expire(self, now: float) -> None:
        if self.resume_at and now >= self.resume_at:
            self.resume_at = 0.0
