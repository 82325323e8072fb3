"""The Uplink: moneyd's one connection to its parent connector, and how uplinks are found.

An uplink speaks to the parent (BTP, with XRP or ETH settlement, or anything a third party ships). The router
only sees this interface. Uplinks are discovered through the entry-point group ``moneyd.uplinks``; each entry
point names an :class:`UplinkPlugin`, which adds its commands (``NAME:configure``, ``NAME:start`` …) to the CLI.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

if TYPE_CHECKING:
    import typer

    from .handlers import OutgoingHandler
    from .wire.ildcp import IldcpResponse
    from .wire.ilp import Prepare, Reply

ENTRY_POINT_GROUP = "moneyd.uplinks"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class UplinkBalance:
    """The uplink's balance with its parent, as its own book keeps it (the one place that says it), in base units
    at the parent's asset scale.

    ``balance`` is what the parent owes us: positive when we have prepaid (our claims are ahead of our Prepares) or
    it has sent us Prepares it has not paid for yet; negative when we owe it. The book refuses to go below
    ``minimum`` or above ``maximum`` (None: no such limit). ``details`` are the uplink's own figures (claims, channel
    capacity …), JSON-able strings and ints, documented by each uplink.
    """

    balance: int
    minimum: int | None = None
    maximum: int | None = None
    details: Mapping[str, int | str | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ChannelView:
    """One payment channel as status pages show it, in base units: what it holds (``capacity``), what the best
    claim on it promises (``claimed``) and what the ledger has paid out of it (``on_ledger``); None: not known."""

    channel_id: str
    capacity: int | None
    claimed: int | None
    on_ledger: int | None


@dataclass(frozen=True, slots=True)
class SettlementFacts:
    """How an uplink settles, for status pages: the ledger (``xrp``, ``eth`` …), the server it reads it through,
    and both payment channels (ours to the parent, the parent's to us; None: none yet)."""

    ledger: str
    server: str | None
    ours: ChannelView | None = None
    theirs: ChannelView | None = None


class Uplink(abc.ABC):
    """One link to a parent connector. Implementations own their I/O, their balance with the parent and its
    settlement (the router owns routing and reads the balance through ``balance()``)."""

    def __init__(self) -> None:
        import asyncio  # here, not at module level: the CLI imports this module for --help (plugin discovery)

        self._incoming: OutgoingHandler | None = None
        # Set when the uplink cannot go on (say the parent closed our channel): moneyd then shuts down.
        self.failed = asyncio.Event()
        self.failure: str | None = None

    def fail(self, reason: str) -> None:
        """Give up for good: moneyd stops, saying ``reason``."""
        self.failure = reason
        self.failed.set()

    def set_prepare_handler(self, handler: OutgoingHandler) -> None:
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

    def balance(self) -> UplinkBalance | None:
        """The balance with the parent as this uplink's book keeps it; None when it keeps none (plain BTP: the
        parent alone keeps it). Cheap and synchronous: status pages may call it often."""
        return None

    def settlement(self) -> SettlementFacts | None:
        """The ledger and payment channels this uplink settles over; None when it settles nothing (plain BTP).
        Cheap and synchronous, like ``balance()``."""
        return None

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop: settle what should be settled, then close the connection. Safe to call twice."""


@runtime_checkable
class UplinkPlugin(Protocol):
    """What an entry point in ``moneyd.uplinks`` names."""

    name: str
    summary: str

    def register_commands(self, app: typer.Typer) -> None:
        """Add this uplink's commands (``<name>:configure``, ``<name>:start`` …) to the CLI."""


@dataclass(frozen=True, slots=True)
class PluginLoadError:
    entry_point: str
    error: str


def discover_uplinks() -> tuple[dict[str, UplinkPlugin], list[PluginLoadError]]:
    """Every installed uplink plugin by name, plus the ones that failed to load (a broken third-party
    plugin must not take the whole CLI down)."""
    from importlib.metadata import entry_points

    found: dict[str, UplinkPlugin] = {}
    errors: list[PluginLoadError] = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            obj = ep.load()
            plugin = obj() if isinstance(obj, type) else obj
            if not isinstance(plugin, UplinkPlugin):
                raise TypeError(f"{ep.value} is not an UplinkPlugin (needs name, summary, register_commands)")
        except Exception as e:  # any import-time failure of a plugin is reported, not raised
            errors.append(PluginLoadError(ep.name, f"{type(e).__name__}: {e}"))
            continue
        if plugin.name in found:
            errors.append(PluginLoadError(ep.name, f"a second uplink named {plugin.name!r}; keeping the first"))
            continue
        found[plugin.name] = plugin
    return found, errors


async def keep_trying(
    what: str,
    attempt: Callable[[], Awaitable[T]],
    unreachable: type[BaseException] | tuple[type[BaseException], ...],
    deadline: float | None,
    *,
    initial: float = 0.5,
    maximum: float = 30.0,
) -> T:
    """``await attempt()`` (which reaches ``what``, e.g. "the parent") until it succeeds, trying again with
    exponential backoff while it fails with an ``unreachable`` error (nothing answers yet: a parent, a ledger or a
    node that is down or not up yet), until ``deadline`` (event loop time; None: forever). Any other error ends it
    at once; running out of time ends it with a ConnectionError carrying the last error's message (the one line the
    user sees). The exception's message says what is unreachable and why.

    What is unreachable is said once, as a warning with the next delay; later failures only at debug level, so a
    long wait does not fill the log. Every uplink's start waits through this one loop (``btp:``, ``xrp:``, ``eth:``)."""
    import asyncio
    import logging

    log = logging.getLogger("moneyd.uplink")
    loop = asyncio.get_running_loop()
    delay, tries = initial, 0
    while True:
        try:
            result = await attempt()
        except unreachable as e:
            why = str(e) or type(e).__name__
            tries += 1
            if deadline is not None and loop.time() + delay > deadline:
                raise ConnectionError(why) from None
            if tries == 1:
                log.warning("%s; trying again in %.1fs, then with backoff up to %gs (Ctrl-C stops)", why, delay, maximum)
            else:
                log.debug("%s; next try in %.1fs", why, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, maximum)
            continue
        if tries:
            log.info("%s answered after %d tries", what, tries + 1)
        return result
