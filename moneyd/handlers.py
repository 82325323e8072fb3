"""The two shapes of packet handler, defined once for the router, the server, local apps and the uplinks.

- ``IncomingHandler(prepare, source) -> Reply``: takes a Prepare that came in from the account named ``source``
  (the router's pipeline and each of its layers).
- ``OutgoingHandler(prepare) -> Reply``: sends a Prepare one way and answers it (a next hop in the routing table,
  a local app's send, what an uplink hands the Prepares its parent sends).

Neither raises for what a peer does: a peer's failure is a Reject (see moneyd.btp.ilplink).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from .wire.ilp import Prepare, Reply

IncomingHandler = Callable[[Prepare, str], Awaitable[Reply]]
OutgoingHandler = Callable[[Prepare], Awaitable[Reply]]


def answering(answer: Callable[[Prepare], Reply]) -> OutgoingHandler:
    """An OutgoingHandler from a sans-I/O endpoint that answers at once (a STREAM client or server)."""

    async def handle(prepare: Prepare) -> Reply:
        return answer(prepare)

    return handle
