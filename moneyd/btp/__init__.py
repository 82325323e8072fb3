"""BTP over WebSocket: one connection abstraction for both roles (server side for local apps, client side for
uplinks)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .connection import BtpConnection, BtpPeerError, ConnectionClosed, connect, parse_btp_url

__all__ = ["BtpConnection", "BtpPeerError", "ConnectionClosed", "connect", "parse_btp_url"]


def __getattr__(name: str) -> Any:
    # Lazy: importing moneyd.btp.parent (every uplink's configure command) must not load websockets at CLI startup.
    if name in __all__:
        from . import connection

        return getattr(connection, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
