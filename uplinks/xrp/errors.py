"""Errors of the XRP uplink core. Each says what was wrong and with which value."""

from __future__ import annotations


class XrpUplinkError(Exception):
    """Base of every error raised by uplinks.xrp."""


class ConfigError(XrpUplinkError, ValueError):
    """A configured value (parent, name, secret, scale) cannot be used."""


class ProtocolError(XrpUplinkError):
    """The parent sent something that is not what the asym server protocol allows."""


class ScaleMismatch(ProtocolError):
    """The parent settles at another currency scale than ours: amounts would be off by powers of ten."""

    def __init__(self, ours: int, theirs: int) -> None:
        super().__init__(
            f"currency scale mismatch: we use scale {ours}, the parent uses {theirs}; "
            f"reconfigure the uplink with scale {theirs} or choose another parent"
        )
        self.ours = ours
        self.theirs = theirs


class UnsafeChannel(XrpUplinkError):
    """A payment channel the parent points us to could be taken back or isn't ours: never trust it."""


class ClaimRejected(XrpUplinkError):
    """An incoming claim we refuse. ``reason`` is one of: amount, lower, too_large, signature, no_channel."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class InsufficientCapacity(XrpUplinkError):
    """Signing this claim would promise more than our channel holds: top the channel up first."""


class BalanceExceeded(XrpUplinkError):
    """An incoming Prepare would put the parent's unsettled debt over the maximum (ILP T04)."""
