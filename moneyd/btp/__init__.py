"""BTP over WebSocket: one connection abstraction for both roles (server side for local apps, client side for
uplinks)."""

from .connection import BtpConnection, BtpPeerError, ConnectionClosed, connect, parse_btp_url

__all__ = ["BtpConnection", "BtpPeerError", "ConnectionClosed", "connect", "parse_btp_url"]
