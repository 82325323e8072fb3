"""A rippled stand-in for the XRP uplink tests: a pure ledger engine plus a thin WebSocket server."""

from .ledger import (
    GENESIS_ADDRESS,
    GENESIS_SECRET,
    AccountRoot,
    Clock,
    InvalidTransaction,
    Ledger,
    PayChannel,
    SubmitOutcome,
    channel_id,
    claim_message,
)
from .server import XrplEmulator

__all__ = [
    "GENESIS_ADDRESS",
    "GENESIS_SECRET",
    "AccountRoot",
    "Clock",
    "InvalidTransaction",
    "Ledger",
    "PayChannel",
    "SubmitOutcome",
    "XrplEmulator",
    "channel_id",
    "claim_message",
]
