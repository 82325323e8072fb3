"""ILP over BTP, written once: the ``ilp`` protocolData entry in and out, and every way a link can fail, as a Reject.

Every user of a BtpConnection that carries ILP (the mini-accounts server, ``LocalApp``, each uplink) goes through
here, using only BtpConnection's public API:

- ``answer`` (or ``unwrap_prepare`` + ``wrap_reply`` where money logic sits in between): a BTP request carrying a
  Prepare → the handler → the BTP answer carrying its reply, checked (``ilp.checked_reply``).
- ``send_prepare``: a Prepare out over the link → its reply, checked; never raises for a link failure:

  ==========================================  ====  ====================================
  the link                                    code  why
  ==========================================  ====  ====================================
  closed, before or while waiting             T01   the peer is unreachable
  the peer answers with a BTP Error           T00   it failed to handle the request
  the answer is no ILP reply (or malformed)   T00   ditto
  no answer by the Prepare's expiry           R00   the transfer timed out
  ==========================================  ====  ====================================

  ``request_prepare`` raises instead (``LinkFailure``, and ``LinkExpired``, a TimeoutError), for an uplink whose
  books treat a timed-out Prepare differently from one refused; each failure knows its Reject (``.reject``).

Packets cross untouched: the Prepare's own bytes go out, the reply's own bytes come back (``ilp``'s ``raw``).
Both directions use BtpConnection's raw fast path: ``request_ilp`` out, and ``serve_ilp`` in (a Message whose only
entry is ``ilp`` goes bytes → Prepare → handler → reply bytes, with no BTP objects built; other shapes still reach
the connection's frame handler, which uses ``answer``/``unwrap_prepare``/``wrap_reply``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

from ..handlers import OutgoingHandler
from ..wire import ilp
from ..wire.btp import ContentType, ProtocolData
from ..wire.errors import CodecError
from ..wire.ilp import ErrorCode, Prepare, Reject, Reply
from .connection import BtpConnection, BtpPeerError, ConnectionClosed, IlpHandler, RequestRefused

ILP = "ilp"


class LinkFailure(Exception):
    """The link could not carry a Prepare and bring back its reply (other than by running out of time)."""

    code: str = ErrorCode.T00_INTERNAL_ERROR

    def reject(self, address: str) -> Reject:
        return Reject(self.code, address, str(self))


class LinkClosed(LinkFailure):
    code = ErrorCode.T01_PEER_UNREACHABLE


class LinkPeerError(LinkFailure):
    """The peer answered with a BTP Error frame, not an ILP reply."""


class LinkBadAnswer(LinkFailure):
    """The peer's answer carried no valid ILP Fulfill or Reject."""


class LinkExpired(TimeoutError):
    """No answer by the Prepare's expiry. A TimeoutError, so code that lets timeouts through keeps doing so."""

    def reject(self, address: str) -> Reject:
        return Reject(ErrorCode.R00_TRANSFER_TIMED_OUT, address, "packet expired while waiting for the next hop")


# -- incoming: a BTP request carrying a Prepare ---------------------------------------------------------------


def unwrap_prepare(protocol_data: Sequence[ProtocolData]) -> Prepare:
    """The Prepare in a BTP request; RequestRefused (a BTP F00 Error, as ilp-plugin-btp answers) if there is none,
    CodecError (BTP F01) if it is not a valid Prepare."""
    for pd in protocol_data:
        if pd.protocol_name == ILP:
            return ilp.decode_prepare(pd.data)
    raise RequestRefused("F00", "NotAcceptedError", "invalid packet, no ilp protocol data.")


def reply_bytes(reply: Reply, address: str) -> bytes:
    """``reply`` checked (it may come from a peer: an app, the parent), as bytes: a reply that needs no repair is
    the very bytes it came in as."""
    return ilp.encode_packet(ilp.checked_reply(reply, address))


def wrap_reply(reply: Reply, address: str) -> tuple[ProtocolData, ...]:
    """The BTP answer carrying ``reply``, checked first."""
    return (ProtocolData(ILP, ContentType.OCTET_STREAM, reply_bytes(reply, address)),)


def ilp_handler(handle: Callable[[Prepare], Awaitable[Reply]], address: Callable[[], str]) -> IlpHandler:
    """The raw fast path's handler: Prepare bytes (decoded once; CodecError is answered F01) → ``handle`` → the
    reply's bytes, checked. ``address``: ours, asked per packet (it may change with a reconnection)."""

    async def on_ilp(packet: bytes) -> bytes:
        reply = await handle(ilp.decode_prepare(packet))
        return reply_bytes(reply, address())

    return on_ilp


def serve_ilp(conn: BtpConnection, handle: Callable[[Prepare], Awaitable[Reply]], address: Callable[[], str]) -> None:
    """Hand the Prepares ``conn`` receives in plain ilp Messages to ``handle`` on the raw fast path."""
    conn.ilp_handler = ilp_handler(handle, address)


async def answer(protocol_data: Sequence[ProtocolData], handler: OutgoingHandler, address: str) -> tuple[ProtocolData, ...]:
    """Unwrap the Prepare in a BTP request, handle it, wrap the reply."""
    prepare = unwrap_prepare(protocol_data)
    return wrap_reply(await handler(prepare), address)


# -- outgoing: a Prepare over the link -------------------------------------------------------------------------


def time_left(prepare: Prepare) -> float:
    return max(0.0, prepare.expires_at.timestamp() - time.time())


async def request_prepare(
    conn: BtpConnection, prepare: Prepare, address: str, timeout: float | None = None, peer: str = "the peer"
) -> Reply:
    """Send ``prepare`` and return its reply, checked. Raises LinkFailure, or LinkExpired (by default the wait ends
    at the Prepare's expiry: after that no Fulfill can count). ``peer`` names the other end in messages."""
    try:
        packet = ilp.encode_prepare(prepare)
    except CodecError as e:
        raise LinkFailure(f"cannot send {peer} this Prepare: {e}") from None
    try:
        data = await conn.request_ilp(packet, time_left(prepare) if timeout is None else timeout)
    except ConnectionClosed:
        raise LinkClosed(f"{peer} disconnected before answering") from None
    except BtpPeerError as e:
        raise LinkPeerError(f"{peer} answered with an error: {e}") from None
    except TimeoutError:
        raise LinkExpired() from None
    except CodecError as e:  # a Response with no ilp entry, or a malformed answer frame
        raise LinkBadAnswer(f"{peer} answered a Prepare with no valid ilp packet: {e}") from None
    except Exception as e:  # whatever else the transport raises, the sender gets a Reject, never a traceback
        raise LinkFailure(f"cannot reach {peer}: {type(e).__name__}: {e}") from None
    try:
        reply = ilp.decode_reply(data)
    except CodecError as e:
        raise LinkBadAnswer(f"{peer} answered with an invalid packet: {e}") from None
    return ilp.checked_reply(reply, address)


async def send_prepare(
    conn: BtpConnection | None, prepare: Prepare, address: str, timeout: float | None = None, peer: str = "the peer"
) -> Reply:
    """Send ``prepare`` and return its reply, checked, or the Reject for whatever kept the link from answering."""
    if conn is None:
        return LinkClosed(f"{peer} is not connected").reject(address)
    try:
        return await request_prepare(conn, prepare, address, timeout, peer)
    except (LinkFailure, LinkExpired) as e:
        return e.reject(address)
