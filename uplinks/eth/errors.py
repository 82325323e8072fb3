"""Errors of the ETH uplink. Each says what was wrong and with which value."""

from __future__ import annotations


class EthUplinkError(Exception):
    """Base of every error raised by uplinks.eth."""


class ConfigError(EthUplinkError, ValueError):
    """A configured value (key, contract address, dispute period, amount) cannot be used."""


class ProtocolError(EthUplinkError):
    """The parent sent something the ilp-plugin-ethereum protocol does not allow."""


class ClaimRejected(EthUplinkError):
    """An incoming claim we refuse. ``reason`` is one of: schema, contract, token, channel, no_channel,
    not_ours, dispute_period, settling, signature, above_value, not_increasing."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class InsufficientCapacity(EthUplinkError):
    """Signing this claim would promise more than our channel holds: top the channel up first."""


class ChainError(EthUplinkError):
    """The Ethereum node refused, reverted or did not confirm a transaction in time."""
