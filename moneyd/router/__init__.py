"""The packet pipeline: a chain of small layers between where a Prepare comes from and where it goes."""

from .layers import (
    Accounts,
    AccountsLayer,
    AccountStats,
    ExpiryLayer,
    IldcpLayer,
    MaxPacketAmountLayer,
    RateLimitLayer,
    RouteLayer,
    ValidateLayer,
    reject,
)
from .routing import RoutingTable

__all__ = [
    "AccountStats",
    "Accounts",
    "AccountsLayer",
    "ExpiryLayer",
    "IldcpLayer",
    "MaxPacketAmountLayer",
    "RateLimitLayer",
    "RouteLayer",
    "RoutingTable",
    "ValidateLayer",
    "reject",
]
