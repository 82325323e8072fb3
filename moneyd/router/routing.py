"""Longest-prefix routing: local apps by their address, everything else to the uplink."""

from __future__ import annotations

from ..handlers import OutgoingHandler


class RoutingTable:
    """Maps address prefixes to next hops. A prefix matches the address itself or anything below it."""

    def __init__(self) -> None:
        self._routes: dict[str, tuple[str, OutgoingHandler]] = {}
        self.default: tuple[str, OutgoingHandler] | None = None

    def add(self, prefix: str, hop: str, send: OutgoingHandler) -> None:
        self._routes[prefix] = (hop, send)

    def remove(self, prefix: str) -> None:
        self._routes.pop(prefix, None)

    def lookup(self, destination: str) -> tuple[str, OutgoingHandler] | None:
        # Walk up the address segment by segment: at most a handful of dict lookups, no scan of all routes.
        candidate = destination
        while True:
            hit = self._routes.get(candidate)
            if hit is not None:
                return hit
            cut = candidate.rfind(".")
            if cut <= 0:
                return self.default
            candidate = candidate[:cut]
