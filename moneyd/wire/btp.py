"""BTP 2.0 (RFC 23): the frames that carry ILP packets and settlement messages over a WebSocket."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import Final

from .errors import CodecError
from .oer import (
    Reader,
    encode_length,
    encode_uint,
    encode_uint64,
    encode_var_ascii,
    encode_var_octets,
    encode_var_uint,
)
from .timestamps import decode_generalized_time, encode_generalized_time

TYPE_RESPONSE: Final = 1
TYPE_ERROR: Final = 2
TYPE_MESSAGE: Final = 6
TYPE_TRANSFER: Final = 7


class ContentType(IntEnum):
    OCTET_STREAM = 0
    TEXT_PLAIN_UTF8 = 1
    APPLICATION_JSON = 2


@dataclass(frozen=True, slots=True)
class ProtocolData:
    protocol_name: str
    content_type: int
    data: bytes

    @classmethod
    def octets(cls, name: str, data: bytes) -> ProtocolData:
        return cls(name, ContentType.OCTET_STREAM, data)

    @classmethod
    def text(cls, name: str, text: str) -> ProtocolData:
        return cls(name, ContentType.TEXT_PLAIN_UTF8, text.encode("utf-8"))

    @classmethod
    def json(cls, name: str, text: str) -> ProtocolData:
        return cls(name, ContentType.APPLICATION_JSON, text.encode("utf-8"))


@dataclass(frozen=True, slots=True)
class Message:
    request_id: int
    protocol_data: tuple[ProtocolData, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Response:
    request_id: int
    protocol_data: tuple[ProtocolData, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Transfer:
    request_id: int
    amount: int
    protocol_data: tuple[ProtocolData, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Error:
    request_id: int
    code: str
    name: str
    triggered_at: datetime
    data: bytes = b""
    protocol_data: tuple[ProtocolData, ...] = field(default=())


Frame = Message | Response | Transfer | Error


def find(protocol_data: Sequence[ProtocolData], name: str) -> ProtocolData | None:
    for pd in protocol_data:
        if pd.protocol_name == name:
            return pd
    return None


# --- encoding -------------------------------------------------------------------------------------------


def _encode_protocol_data(items: Sequence[ProtocolData]) -> bytes:
    parts = [encode_var_uint(len(items))]
    for pd in items:
        parts.append(encode_var_ascii(pd.protocol_name, "protocolName"))
        parts.append(encode_uint(pd.content_type, 1, "contentType"))
        parts.append(encode_var_octets(pd.data))
    return b"".join(parts)


def encode_frame(frame: Frame) -> bytes:
    if isinstance(frame, Message):
        kind, body = TYPE_MESSAGE, _encode_protocol_data(frame.protocol_data)
    elif isinstance(frame, Response):
        kind, body = TYPE_RESPONSE, _encode_protocol_data(frame.protocol_data)
    elif isinstance(frame, Transfer):
        kind = TYPE_TRANSFER
        body = encode_uint64(frame.amount, "Transfer amount") + _encode_protocol_data(frame.protocol_data)
    else:
        if len(frame.code) != 3 or not frame.code.isascii():
            raise CodecError(f"BTP error code {frame.code!r} must be 3 ASCII characters")
        kind = TYPE_ERROR
        body = b"".join(
            (
                frame.code.encode("ascii"),
                encode_var_ascii(frame.name, "BTP error name"),
                encode_var_ascii(encode_generalized_time(frame.triggered_at), "triggeredAt"),
                encode_var_octets(frame.data),
                _encode_protocol_data(frame.protocol_data),
            )
        )
    return bytes((kind,)) + encode_uint(frame.request_id, 4, "requestId") + encode_length(len(body)) + body


# --- decoding -------------------------------------------------------------------------------------------


def _decode_protocol_data(r: Reader) -> tuple[ProtocolData, ...]:
    count = r.read_var_uint("protocolData count")
    # Each entry takes at least 3 bytes, so a count beyond that is a lie we can refuse before looping.
    if count * 3 > r.remaining:
        raise CodecError(f"protocolData count {count} is more than the {r.remaining} bytes left can hold")
    items = []
    for _ in range(count):
        name = r.read_var_ascii("protocolName")
        content_type = r.read_uint8("contentType")
        data = r.read_var_octets(f"protocolData {name!r}")
        items.append(ProtocolData(name, content_type, data))
    return tuple(items)


def decode_frame(data: bytes) -> Frame:
    r = Reader(data)
    kind = r.read_uint8("BTP type")
    request_id = r.read_uint32("BTP requestId")
    body = r.read_var_octets_reader("BTP body")
    r.expect_end("BTP frame")
    frame: Frame
    if kind == TYPE_MESSAGE:
        frame = Message(request_id, _decode_protocol_data(body))
    elif kind == TYPE_RESPONSE:
        frame = Response(request_id, _decode_protocol_data(body))
    elif kind == TYPE_TRANSFER:
        amount = body.read_uint64("Transfer amount")
        frame = Transfer(request_id, amount, _decode_protocol_data(body))
    elif kind == TYPE_ERROR:
        code = body.read_ascii(3, "BTP error code")
        name = body.read_var_ascii("BTP error name")
        triggered_at = decode_generalized_time(body.read_var_ascii("triggeredAt"))
        err_data = body.read_var_octets("BTP error data")
        frame = Error(request_id, code, name, triggered_at, err_data, _decode_protocol_data(body))
    else:
        raise CodecError(f"unsupported BTP frame type {kind}")
    body.expect_end("BTP body")
    return frame
