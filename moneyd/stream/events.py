"""What a STREAM connection tells its owner: the Prepares to send, and events (``Connection.next_event()``).

Events are plain frozen dataclasses, one per thing that happened, so an owner matches on them (as with h11 and
aioquic) and a test compares them with ``==``.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from ..wire.ilp import Prepare
from .packet import ErrorCode, error_code_name


@dataclass(frozen=True, slots=True)
class OutgoingPrepare:
    """A Prepare to send; hand its reply back with ``Connection.handle_reply(id, ...)``."""

    id: int
    prepare: Prepare


@dataclass(frozen=True, slots=True)
class Connected:
    """The exchange rate is known (probed, or given), so money can flow."""

    exchange_rate: Fraction


@dataclass(frozen=True, slots=True)
class RemoteAddress:
    address: str


@dataclass(frozen=True, slots=True)
class RemoteAssetDetails:
    asset_code: str
    asset_scale: int


@dataclass(frozen=True, slots=True)
class StreamOpened:
    stream_id: int


@dataclass(frozen=True, slots=True)
class MoneyReceived:
    stream_id: int
    amount: int


@dataclass(frozen=True, slots=True)
class MoneySent:
    stream_id: int
    amount: int


@dataclass(frozen=True, slots=True)
class DataReceived:
    stream_id: int


@dataclass(frozen=True, slots=True)
class DataSent:
    """Outgoing bytes were acknowledged; writers waiting for room may continue."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class StreamClosed:
    stream_id: int
    error_code: int
    message: str
    by_remote: bool


@dataclass(frozen=True, slots=True)
class ConnectionTerminated:
    error_code: int
    message: str
    by_remote: bool
    total_sent: int
    total_delivered: int
    total_received: int

    @property
    def ok(self) -> bool:
        return self.error_code == ErrorCode.NO_ERROR


Event = (
    Connected
    | RemoteAddress
    | RemoteAssetDetails
    | StreamOpened
    | MoneyReceived
    | MoneySent
    | DataReceived
    | DataSent
    | StreamClosed
    | ConnectionTerminated
)


class StreamError(Exception):
    """A stream operation the connection cannot do (unknown or closed stream, too many streams...)."""


def describe_close(event: ConnectionTerminated) -> str:
    who = "peer" if event.by_remote else "local"
    text = f"{who} closed: {error_code_name(event.error_code)}"
    return text + (f" ({event.message})" if event.message else "")
