"""What the admin API shows that is sampled on a clock rather than fed per packet: the packet rate, the uplink's link
changes and its channel claims. Standard library only, so it runs from moneyd's start while the HTTP side
(``api.AdminServer``, on aiohttp) is loaded only when a client first connects (``gate.AdminGate``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..router.layers import UPLINK
from . import snapshot
from .snapshot import LinkWatch

if TYPE_CHECKING:
    from ..app import Router

log = logging.getLogger("moneyd.admin")

TICK = 0.5  # how often rates, link state and channels are sampled (not per packet)


@dataclass
class Rate:
    packets: int = 0
    stamp: float = 0.0
    per_second: float = 0.0


class Sampler:
    def __init__(self, router: Router) -> None:
        self.router = router
        self.monitor = router.monitor
        self.watch = LinkWatch()
        self.rate = Rate(stamp=time.monotonic())
        self._claimed: dict[str, str | None] = {}
        self._link_seen: bool | None = None
        self._ticker: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick())

    async def stop(self) -> None:
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await ticker

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            try:
                self.sample()
            except Exception:  # sampling is best effort; it must never stop
                log.debug("admin sampling failed", exc_info=True)

    def sample(self) -> None:
        """Packet rate, uplink link changes and channel claims, seen from outside the packet path."""
        now = time.monotonic()
        m = self.monitor
        dt = now - self.rate.stamp
        if dt > 0:
            self.rate.per_second = (m.packets - self.rate.packets) / dt
        self.rate.packets, self.rate.stamp = m.packets, now
        if self.router.uplink is None:
            return
        facts = snapshot.uplink_facts(self.router, self.watch)
        if facts is None:
            return
        # Compared with what this sampler saw last (requests also update self.watch, and must not hide a change).
        if self._link_seen is not None and self._link_seen != facts["connected"]:
            m.link(UPLINK, facts["connected"], facts.get("failure") or "")
        self._link_seen = facts["connected"]
        for side, ch in facts["channels"].items():
            claimed = ch["claimed"] if ch else None
            before = self._claimed.get(side)
            if claimed is not None and before is not None and claimed != before:
                m.claim("sent" if side == "ours" else "received", int(claimed) - int(before), ch.get("id") or "")
            self._claimed[side] = claimed
