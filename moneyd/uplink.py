"""The Uplink: moneyd's one connection to its parent connector, and how uplinks are found.

An uplink speaks to the parent (BTP, with XRP or ETH settlement, or anything a third party ships). The router
only sees this interface. Uplinks are discovered through the entry-point group ``moneyd.uplinks``; each entry
point names an :class:`UplinkPlugin`, which adds its commands (``NAME:configure``, ``NAME:start`` …) to the CLI.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Awaitable, Callable

from .wire.ildcp import IldcpResponse
from .wire.ilp import Prepare, Reply

log = logging.getLogger(__name__)

PrepareHandler = Callable[[Prepare], Awaitable[Reply]]


class Uplink(abc.ABC):
    """One link to a parent connector. Implementations own their I/O; the router owns routing and limits."""

    def __init__(self) -> None:
        self._incoming: PrepareHandler | None = None
        # Set when the uplink cannot go on (say the parent closed our channel): moneyd then shuts down.
        self.failed = asyncio.Event()
        self.failure: str | None = None

    def fail(self, reason: str) -> None:
        """Give up for good: moneyd stops, saying ``reason``."""
        self.failure = reason
        self.failed.set()

    def set_prepare_handler(self, handler: PrepareHandler) -> None:
        """Where Prepares that the parent sends us go (the router's inbound pipeline)."""
        self._incoming = handler

    async def handle_incoming(self, prepare: Prepare) -> Reply:
        if self._incoming is None:
            from .wire.ilp import ErrorCode, Reject

            return Reject(ErrorCode.T01_PEER_UNREACHABLE, "", "moneyd is not ready for incoming packets")
        return await self._incoming(prepare)

    @abc.abstractmethod
    async def connect(self) -> None:
        """Connect and authenticate; return once packets can flow. Raise with a clear message on failure."""

    @abc.abstractmethod
    async def ildcp_info(self) -> IldcpResponse:
        """Our address, asset code and scale, as the parent tells them (ILDCP)."""

    @abc.abstractmethod
    async def send_prepare(self, prepare: Prepare) -> Reply:
        """Forward a Prepare to the parent and return its Fulfill or Reject (never raise for a peer's answer)."""

    async def settle(self, amount: int) -> None:  # noqa: B027 - optional hook, plain BTP has nothing to settle
        """Pay the parent ``amount`` base units we owe it (a claim, a transfer). The default settles nothing."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop: settle what should be settled, then close the connection. Safe to call twice."""


# Plugin discovery lives in moneyd.plugins (cheap to import at CLI startup); kept importable from here.
from .plugins import ENTRY_POINT_GROUP, PluginLoadError, UplinkPlugin, discover_uplinks  # noqa: E402

__all__ = ["ENTRY_POINT_GROUP", "PluginLoadError", "PrepareHandler", "Uplink", "UplinkPlugin", "discover_uplinks"]
