"""Errors of the ETH uplink. The ones every uplink shares (ConfigError, ProtocolError, ClaimRejected,
InsufficientCapacity) are moneyd's own (moneyd.errors), imported here so the ETH modules find them in one place;
the ones below only the ETH uplink meets. Each says what was wrong and with which value.

ClaimRejected reasons here: schema, contract, token, channel, no_channel, not_ours, dispute_period, settling,
signature, above_value, not_increasing."""

from __future__ import annotations

from moneyd.errors import ClaimRejected, ConfigError, InsufficientCapacity, MoneydError, ProtocolError

__all__ = ["ChainError", "ClaimRejected", "ConfigError", "EthUplinkError", "InsufficientCapacity", "MoneydError",
           "ProtocolError"]


class EthUplinkError(MoneydError):
    """An error only the ETH uplink raises (catch MoneydError for every error an uplink raises)."""


class ChainError(EthUplinkError):
    """The Ethereum node refused, reverted or did not confirm a transaction in time."""
