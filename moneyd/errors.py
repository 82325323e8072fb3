"""moneyd's own exceptions, one meaning per name. Every one carries the line the user sees.

The core and every uplink raise these (an uplink adds its own subclasses of :class:`MoneydError` for what only it
can meet, such as a ledger's or a chain's refusals), so a caller catches one name whatever the uplink. Codecs raise
``moneyd.wire.errors.CodecError`` (a ValueError) and stay apart: they are pure and know nothing of moneyd.
"""

from __future__ import annotations

__all__ = ["ClaimRejected", "ConfigError", "InsufficientCapacity", "MoneydError", "ProtocolError", "StoreError"]


class MoneydError(Exception):
    """Base of moneyd's own errors; the message says what was wrong and with which value."""


class ConfigError(MoneydError, ValueError):
    """The config file, or a value configured in it or given on the command line, cannot be used; the message
    names the file or the value and the problem."""


class StoreError(MoneydError):
    """The state database cannot be opened or written; the message names it and says what to do."""


class ProtocolError(MoneydError):
    """A peer sent something its protocol does not allow (BTP sub-protocol data, a settlement message)."""


class ClaimRejected(MoneydError):
    """An incoming payment-channel claim we refuse. ``reason`` is a short word each uplink documents (``amount``,
    ``signature``, ``no_channel`` …); the message says why for people."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class InsufficientCapacity(MoneydError):
    """Signing this claim would promise more than our channel holds: top the channel up first."""
