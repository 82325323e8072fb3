"""STREAM packets and frames (RFC 29 §5), unencrypted form.

A packet is ``version(1) | ilpPacketType(uint8) | sequence VarUInt | prepareAmount VarUInt | frames``, where
frames is a VarUInt count followed by ``type(uint8) | contents(var octet string)`` each. Decoding is lenient
exactly where RFC 29 asks for extensibility: unknown frame types are skipped, bytes after the last frame (the JS
sender's padding) and after a frame's known fields are ignored, and ``receiveMax``/``sendMax`` wider than 64 bits
saturate to 2^64-1.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from ..wire.errors import CodecError
from ..wire.oer import UINT64_MAX, Reader, encode_var_octets, encode_var_uint

VERSION: Final = 1
# The JS implementation never puts more than this many bytes in an ILP packet's data.
MAX_DATA_SIZE: Final = 32767


class PacketType(IntEnum):
    """The ILP packet type a STREAM packet says it rides on."""

    PREPARE = 12
    FULFILL = 13
    REJECT = 14


class ErrorCode(IntEnum):
    """STREAM error codes (RFC 29 §5.3) carried by ConnectionClose and StreamClose."""

    NO_ERROR = 0x01
    INTERNAL_ERROR = 0x02
    ENDPOINT_BUSY = 0x03
    FLOW_CONTROL_ERROR = 0x04
    STREAM_ID_ERROR = 0x05
    STREAM_STATE_ERROR = 0x06
    FRAME_FORMAT_ERROR = 0x07
    PROTOCOL_VIOLATION = 0x08
    APPLICATION_ERROR = 0x09


def error_code_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"0x{code:02x}"


class FrameType(IntEnum):
    CONNECTION_CLOSE = 0x01
    CONNECTION_NEW_ADDRESS = 0x02
    CONNECTION_MAX_DATA = 0x03
    CONNECTION_DATA_BLOCKED = 0x04
    CONNECTION_MAX_STREAM_ID = 0x05
    CONNECTION_STREAM_ID_BLOCKED = 0x06
    CONNECTION_ASSET_DETAILS = 0x07
    STREAM_CLOSE = 0x10
    STREAM_MONEY = 0x11
    STREAM_MAX_MONEY = 0x12
    STREAM_MONEY_BLOCKED = 0x13
    STREAM_DATA = 0x14
    STREAM_MAX_DATA = 0x15
    STREAM_DATA_BLOCKED = 0x16
    STREAM_RECEIPT = 0x17


@dataclass(frozen=True, slots=True)
class ConnectionClose:
    error_code: int
    error_message: str


@dataclass(frozen=True, slots=True)
class ConnectionNewAddress:
    source_account: str


@dataclass(frozen=True, slots=True)
class ConnectionMaxData:
    max_offset: int


@dataclass(frozen=True, slots=True)
class ConnectionDataBlocked:
    max_offset: int


@dataclass(frozen=True, slots=True)
class ConnectionMaxStreamId:
    max_stream_id: int


@dataclass(frozen=True, slots=True)
class ConnectionStreamIdBlocked:
    max_stream_id: int


@dataclass(frozen=True, slots=True)
class ConnectionAssetDetails:
    source_asset_code: str
    source_asset_scale: int


@dataclass(frozen=True, slots=True)
class StreamClose:
    stream_id: int
    error_code: int
    error_message: str


@dataclass(frozen=True, slots=True)
class StreamMoney:
    stream_id: int
    shares: int


@dataclass(frozen=True, slots=True)
class StreamMaxMoney:
    stream_id: int
    receive_max: int
    total_received: int


@dataclass(frozen=True, slots=True)
class StreamMoneyBlocked:
    stream_id: int
    send_max: int
    total_sent: int


@dataclass(frozen=True, slots=True)
class StreamData:
    stream_id: int
    offset: int
    data: bytes


@dataclass(frozen=True, slots=True)
class StreamMaxData:
    stream_id: int
    max_offset: int


@dataclass(frozen=True, slots=True)
class StreamDataBlocked:
    stream_id: int
    max_offset: int


@dataclass(frozen=True, slots=True)
class StreamReceipt:
    stream_id: int
    receipt: bytes


Frame = (
    ConnectionClose
    | ConnectionNewAddress
    | ConnectionMaxData
    | ConnectionDataBlocked
    | ConnectionMaxStreamId
    | ConnectionStreamIdBlocked
    | ConnectionAssetDetails
    | StreamClose
    | StreamMoney
    | StreamMaxMoney
    | StreamMoneyBlocked
    | StreamData
    | StreamMaxData
    | StreamDataBlocked
    | StreamReceipt
)


@dataclass(frozen=True, slots=True)
class StreamPacket:
    sequence: int
    packet_type: PacketType
    prepare_amount: int
    frames: tuple[Frame, ...] = ()


# --- encoding -------------------------------------------------------------------------------------------


def _u8(value: int, what: str) -> bytes:
    if not 0 <= value <= 0xFF:
        raise CodecError(f"{what}: {value} does not fit in a uint8")
    return bytes((value,))


def _vu(value: int, what: str) -> bytes:
    if not 0 <= value <= UINT64_MAX:
        raise CodecError(f"{what}: {value} is not a uint64")
    return encode_var_uint(value)


def _text(value: str) -> bytes:
    return encode_var_octets(value.encode("utf-8"))


def _frame_body(frame: Frame) -> tuple[FrameType, bytes]:
    match frame:
        case ConnectionClose(code, message):
            return FrameType.CONNECTION_CLOSE, _u8(code, "ConnectionClose errorCode") + _text(message)
        case ConnectionNewAddress(account):
            return FrameType.CONNECTION_NEW_ADDRESS, _text(account)
        case ConnectionMaxData(offset):
            return FrameType.CONNECTION_MAX_DATA, _vu(offset, "ConnectionMaxData maxOffset")
        case ConnectionDataBlocked(offset):
            return FrameType.CONNECTION_DATA_BLOCKED, _vu(offset, "ConnectionDataBlocked maxOffset")
        case ConnectionMaxStreamId(sid):
            return FrameType.CONNECTION_MAX_STREAM_ID, _vu(sid, "ConnectionMaxStreamId maxStreamId")
        case ConnectionStreamIdBlocked(sid):
            return FrameType.CONNECTION_STREAM_ID_BLOCKED, _vu(sid, "ConnectionStreamIdBlocked maxStreamId")
        case ConnectionAssetDetails(code, scale):
            return FrameType.CONNECTION_ASSET_DETAILS, _text(code) + _u8(scale, "ConnectionAssetDetails scale")
        case StreamClose(sid, code, message):
            body = _vu(sid, "StreamClose streamId") + _u8(code, "StreamClose errorCode") + _text(message)
            return FrameType.STREAM_CLOSE, body
        case StreamMoney(sid, shares):
            return FrameType.STREAM_MONEY, _vu(sid, "StreamMoney streamId") + _vu(shares, "StreamMoney shares")
        case StreamMaxMoney(sid, receive_max, total):
            body = _vu(sid, "StreamMaxMoney streamId") + _vu(receive_max, "receiveMax") + _vu(total, "totalReceived")
            return FrameType.STREAM_MAX_MONEY, body
        case StreamMoneyBlocked(sid, send_max, total):
            body = _vu(sid, "StreamMoneyBlocked streamId") + _vu(send_max, "sendMax") + _vu(total, "totalSent")
            return FrameType.STREAM_MONEY_BLOCKED, body
        case StreamData(sid, offset, data):
            body = _vu(sid, "StreamData streamId") + _vu(offset, "StreamData offset") + encode_var_octets(data)
            return FrameType.STREAM_DATA, body
        case StreamMaxData(sid, offset):
            return FrameType.STREAM_MAX_DATA, _vu(sid, "StreamMaxData streamId") + _vu(offset, "maxOffset")
        case StreamDataBlocked(sid, offset):
            return FrameType.STREAM_DATA_BLOCKED, _vu(sid, "StreamDataBlocked streamId") + _vu(offset, "maxOffset")
        case StreamReceipt(sid, receipt):
            return FrameType.STREAM_RECEIPT, _vu(sid, "StreamReceipt streamId") + encode_var_octets(receipt)
    raise CodecError(f"not a STREAM frame: {frame!r}")


def encode_frame(frame: Frame) -> bytes:
    kind, body = _frame_body(frame)
    return bytes((kind,)) + encode_var_octets(body)


def encode_stream_packet(packet: StreamPacket) -> bytes:
    parts = [
        bytes((VERSION,)),
        _u8(int(packet.packet_type), "STREAM packet type"),
        _vu(packet.sequence, "STREAM sequence"),
        _vu(packet.prepare_amount, "STREAM prepareAmount"),
        encode_var_uint(len(packet.frames)),
    ]
    parts.extend(encode_frame(f) for f in packet.frames)
    return b"".join(parts)


# --- decoding -------------------------------------------------------------------------------------------


def _read_text(r: Reader, what: str) -> str:
    # JS decodes these with Buffer.toString(), which replaces bad bytes; a peer's typo must not lose the frame.
    return r.read_var_octets(what).decode("utf-8", "replace")


def _decode_frame(kind: int, r: Reader) -> Frame | None:
    match kind:
        case FrameType.CONNECTION_CLOSE:
            return ConnectionClose(r.read_uint8("ConnectionClose errorCode"), _read_text(r, "errorMessage"))
        case FrameType.CONNECTION_NEW_ADDRESS:
            return ConnectionNewAddress(_read_text(r, "ConnectionNewAddress sourceAccount"))
        case FrameType.CONNECTION_MAX_DATA:
            return ConnectionMaxData(r.read_var_uint("ConnectionMaxData maxOffset"))
        case FrameType.CONNECTION_DATA_BLOCKED:
            return ConnectionDataBlocked(r.read_var_uint("ConnectionDataBlocked maxOffset"))
        case FrameType.CONNECTION_MAX_STREAM_ID:
            return ConnectionMaxStreamId(r.read_var_uint("ConnectionMaxStreamId maxStreamId"))
        case FrameType.CONNECTION_STREAM_ID_BLOCKED:
            return ConnectionStreamIdBlocked(r.read_var_uint("ConnectionStreamIdBlocked maxStreamId"))
        case FrameType.CONNECTION_ASSET_DETAILS:
            code = _read_text(r, "ConnectionAssetDetails sourceAssetCode")
            return ConnectionAssetDetails(code, r.read_uint8("ConnectionAssetDetails sourceAssetScale"))
        case FrameType.STREAM_CLOSE:
            sid = r.read_var_uint("StreamClose streamId")
            return StreamClose(sid, r.read_uint8("StreamClose errorCode"), _read_text(r, "StreamClose errorMessage"))
        case FrameType.STREAM_MONEY:
            return StreamMoney(r.read_var_uint("StreamMoney streamId"), r.read_var_uint("StreamMoney shares"))
        case FrameType.STREAM_MAX_MONEY:
            sid = r.read_var_uint("StreamMaxMoney streamId")
            receive_max = r.read_var_uint_saturating("StreamMaxMoney receiveMax")
            return StreamMaxMoney(sid, receive_max, r.read_var_uint("StreamMaxMoney totalReceived"))
        case FrameType.STREAM_MONEY_BLOCKED:
            sid = r.read_var_uint("StreamMoneyBlocked streamId")
            send_max = r.read_var_uint_saturating("StreamMoneyBlocked sendMax")
            return StreamMoneyBlocked(sid, send_max, r.read_var_uint("StreamMoneyBlocked totalSent"))
        case FrameType.STREAM_DATA:
            sid = r.read_var_uint("StreamData streamId")
            offset = r.read_var_uint("StreamData offset")
            return StreamData(sid, offset, r.read_var_octets("StreamData data"))
        case FrameType.STREAM_MAX_DATA:
            return StreamMaxData(r.read_var_uint("StreamMaxData streamId"), r.read_var_uint("StreamMaxData maxOffset"))
        case FrameType.STREAM_DATA_BLOCKED:
            sid = r.read_var_uint("StreamDataBlocked streamId")
            return StreamDataBlocked(sid, r.read_var_uint("StreamDataBlocked maxOffset"))
        case FrameType.STREAM_RECEIPT:
            sid = r.read_var_uint("StreamReceipt streamId")
            return StreamReceipt(sid, r.read_var_octets("StreamReceipt receipt"))
    return None


def decode_stream_packet(data: bytes) -> StreamPacket:
    """Decode an unencrypted STREAM packet; raises CodecError and nothing else."""
    r = Reader(data)
    version = r.read_uint8("STREAM version")
    if version != VERSION:
        raise CodecError(f"unsupported STREAM version {version}")
    kind = r.read_uint8("STREAM packet type")
    try:
        packet_type = PacketType(kind)
    except ValueError:
        raise CodecError(f"STREAM packet type {kind} is not 12, 13 or 14") from None
    sequence = r.read_var_uint("STREAM sequence")
    prepare_amount = r.read_var_uint("STREAM prepareAmount")
    count = r.read_var_uint("STREAM frame count")
    frames: list[Frame] = []
    for _ in range(count):
        # Each frame needs at least 2 bytes, so a huge count runs out of data instead of looping for ever.
        kind = r.read_uint8("STREAM frame type")
        contents = r.read_var_octets_reader("STREAM frame contents")
        frame = _decode_frame(kind, contents)
        if frame is not None:
            frames.append(frame)
    return StreamPacket(sequence, packet_type, prepare_amount, tuple(frames))
