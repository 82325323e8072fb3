"""ILDCP (RFC 31): how a child learns its ILP address, asset code and scale from its parent."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from .address import check_address
from .errors import CodecError
from .ilp import Fulfill, Prepare
from .oer import Reader, encode_uint, encode_var_ascii, encode_var_octets

DESTINATION: Final = "peer.config"
FULFILLMENT: Final = bytes(32)
CONDITION: Final = hashlib.sha256(FULFILLMENT).digest()
DEFAULT_EXPIRY: Final = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class IldcpResponse:
    client_address: str
    asset_scale: int
    asset_code: str


def request(now: datetime | None = None) -> Prepare:
    now = now or datetime.now(UTC)
    return Prepare(0, now + DEFAULT_EXPIRY, CONDITION, DESTINATION, b"")


def is_request(prepare: Prepare) -> bool:
    return prepare.destination == DESTINATION


def check_request(prepare: Prepare, now: datetime | None = None) -> None:
    """Raise CodecError unless this Prepare is a well-formed, unexpired ILDCP request."""
    if prepare.destination != DESTINATION:
        raise CodecError(f"ILDCP request must go to {DESTINATION}, not {prepare.destination}")
    if prepare.execution_condition != CONDITION:
        raise CodecError("ILDCP request has the wrong executionCondition")
    if prepare.expires_at <= (now or datetime.now(UTC)):
        raise CodecError("ILDCP request has expired")


def encode_response(resp: IldcpResponse) -> bytes:
    return b"".join(
        (
            encode_var_ascii(check_address(resp.client_address, "ILDCP clientAddress"), "ILDCP clientAddress"),
            encode_uint(resp.asset_scale, 1, "ILDCP assetScale"),
            encode_var_octets(resp.asset_code.encode("utf-8")),
        )
    )


def response(resp: IldcpResponse) -> Fulfill:
    return Fulfill(FULFILLMENT, encode_response(resp))


def decode_response(data: bytes) -> IldcpResponse:
    r = Reader(data)
    address = check_address(r.read_var_ascii("ILDCP clientAddress"), "ILDCP clientAddress")
    scale = r.read_uint8("ILDCP assetScale")
    code = r.read_var_utf8("ILDCP assetCode")
    r.expect_end("ILDCP response")
    return IldcpResponse(address, scale, code)


def parse_fulfill(fulfill: Fulfill) -> IldcpResponse:
    if fulfill.fulfillment != FULFILLMENT:
        raise CodecError("ILDCP response has the wrong fulfillment")
    return decode_response(fulfill.data)
