"""The packet pipeline: a chain of small layers between where a Prepare comes from and where it goes."""

from .layers import (
    BalanceLayer,
    ExpiryLayer,
    Handler,
    IldcpLayer,
    MaxPacketAmountLayer,
    RateLimitLayer,
    RouteLayer,
    ValidateLayer,
    reject,
)
from .routing import RoutingTable

__all__ = [
    "BalanceLayer",
    "ExpiryLayer",
    "Handler",
    "IldcpLayer",
    "MaxPacketAmountLayer",
    "RateLimitLayer",
    "RouteLayer",
    "RoutingTable",
    "ValidateLayer",
    "reject",
]
