"""Errors of the XRP uplink. The ones every uplink shares (ConfigError, ProtocolError, ClaimRejected,
InsufficientCapacity) are moneyd's own (moneyd.errors), imported here so the XRP modules find them in one place;
the ones below only the XRP uplink meets. Each says what was wrong and with which value."""

from __future__ import annotations

from moneyd.errors import ClaimRejected, ConfigError, InsufficientCapacity, MoneydError, ProtocolError

__all__ = ["BalanceExceeded", "ClaimRejected", "ConfigError", "InsufficientCapacity", "MoneydError", "ProtocolError",
           "ScaleMismatch", "UnsafeChannel", "XrpUplinkError"]


class XrpUplinkError(MoneydError):
    """An error only the XRP uplink raises (catch MoneydError for every error an uplink raises)."""


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


class BalanceExceeded(XrpUplinkError):
    """An incoming Prepare would put the parent's unsettled debt over the maximum (ILP T04)."""
