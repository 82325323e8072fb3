"""ILPv4 packets (RFC 27): Prepare, Fulfill, Reject, and the error codes a Reject carries.

A decoded packet remembers the bytes it came from (``raw``), and encoding it gives those bytes back: a router
forwards what it did not change without re-encoding it. ``dataclasses.replace`` and the constructors make packets
with no remembered bytes, so a changed packet is always encoded from its fields.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Final, TypeVar

from .address import check_address, is_valid_address
from .errors import CodecError
from .oer import (
    UINT64_MAX,
    Reader,
    encode_length,
    encode_uint64,
    encode_var_ascii,
    encode_var_octets,
)
from .timestamps import decode_ilp_timestamp, encode_ilp_timestamp

TYPE_PREPARE: Final = 12
TYPE_FULFILL: Final = 13
TYPE_REJECT: Final = 14


@dataclass(frozen=True, slots=True)
class Prepare:
    amount: int
    expires_at: datetime
    execution_condition: bytes
    destination: str
    data: bytes = b""
    # The packet as it arrived (set by the decoder only; never part of equality).
    raw: bytes | None = field(default=None, init=False, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Fulfill:
    fulfillment: bytes
    data: bytes = b""
    raw: bytes | None = field(default=None, init=False, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Reject:
    code: str
    triggered_by: str = ""
    message: str = ""
    data: bytes = b""
    raw: bytes | None = field(default=None, init=False, compare=False, repr=False)

    @property
    def family(self) -> ErrorFamily:
        return ErrorFamily.of(self.code)


Packet = Prepare | Fulfill | Reject
Reply = Fulfill | Reject
_P = TypeVar("_P", Prepare, Fulfill, Reject)


class ErrorFamily(Enum):
    FINAL = "F"
    TEMPORARY = "T"
    RELATIVE = "R"

    @classmethod
    def of(cls, code: str) -> ErrorFamily:
        try:
            return cls(code[:1])
        except ValueError:
            # RFC 27: an unknown family is treated as final.
            return cls.FINAL


class ErrorCode:
    """Every ILPv4 error code (RFC 27 §3.3) with its registered name."""

    F00_BAD_REQUEST: Final = "F00"
    F01_INVALID_PACKET: Final = "F01"
    F02_UNREACHABLE: Final = "F02"
    F03_INVALID_AMOUNT: Final = "F03"
    F04_INSUFFICIENT_DESTINATION_AMOUNT: Final = "F04"
    F05_WRONG_CONDITION: Final = "F05"
    F06_UNEXPECTED_PAYMENT: Final = "F06"
    F07_CANNOT_RECEIVE: Final = "F07"
    F08_AMOUNT_TOO_LARGE: Final = "F08"
    F99_APPLICATION_ERROR: Final = "F99"
    T00_INTERNAL_ERROR: Final = "T00"
    T01_PEER_UNREACHABLE: Final = "T01"
    T02_PEER_BUSY: Final = "T02"
    T03_CONNECTOR_BUSY: Final = "T03"
    T04_INSUFFICIENT_LIQUIDITY: Final = "T04"
    T05_RATE_LIMITED: Final = "T05"
    T99_APPLICATION_ERROR: Final = "T99"
    R00_TRANSFER_TIMED_OUT: Final = "R00"
    R01_INSUFFICIENT_SOURCE_AMOUNT: Final = "R01"
    R02_INSUFFICIENT_TIMEOUT: Final = "R02"
    R99_APPLICATION_ERROR: Final = "R99"


ERROR_NAMES: Final[dict[str, str]] = {
    "F00": "Bad Request",
    "F01": "Invalid Packet",
    "F02": "Unreachable",
    "F03": "Invalid Amount",
    "F04": "Insufficient Destination Amount",
    "F05": "Wrong Condition",
    "F06": "Unexpected Payment",
    "F07": "Cannot Receive",
    "F08": "Amount Too Large",
    "F99": "Application Error",
    "T00": "Internal Error",
    "T01": "Peer Unreachable",
    "T02": "Peer Busy",
    "T03": "Connector Busy",
    "T04": "Insufficient Liquidity",
    "T05": "Rate Limited",
    "T99": "Application Error",
    "R00": "Transfer Timed Out",
    "R01": "Insufficient Source Amount",
    "R02": "Insufficient Timeout",
    "R99": "Application Error",
}


def fulfillment_matches(fulfillment: bytes, condition: bytes) -> bool:
    return hashlib.sha256(fulfillment).digest() == condition


# --- encoding -------------------------------------------------------------------------------------------


def _envelope(packet_type: int, body: bytes) -> bytes:
    return bytes((packet_type,)) + encode_length(len(body)) + body


def _check_32(value: bytes, what: str) -> bytes:
    if len(value) != 32:
        raise CodecError(f"{what} must be 32 bytes, not {len(value)}")
    return value


def _remember(packet: _P, raw: bytes) -> _P:
    object.__setattr__(packet, "raw", raw)  # frozen: the decoder is the only writer
    return packet


def encode_prepare(p: Prepare) -> bytes:
    if p.raw is not None:
        return p.raw
    if not 0 <= p.amount <= UINT64_MAX:
        raise CodecError(f"Prepare amount {p.amount} is not a uint64")
    dest = check_address(p.destination, "Prepare destination").encode("ascii")
    body = b"".join(
        (
            p.amount.to_bytes(8, "big"),
            encode_ilp_timestamp(p.expires_at),
            _check_32(p.execution_condition, "Prepare executionCondition"),
            encode_length(len(dest)),
            dest,
            encode_var_octets(p.data),
        )
    )
    return _envelope(TYPE_PREPARE, body)


def encode_fulfill(f: Fulfill) -> bytes:
    if f.raw is not None:
        return f.raw
    body = _check_32(f.fulfillment, "Fulfill fulfillment") + encode_var_octets(f.data)
    return _envelope(TYPE_FULFILL, body)


def encode_reject(r: Reject) -> bytes:
    if r.raw is not None:
        return r.raw
    if len(r.code) != 3 or not r.code.isascii():
        raise CodecError(f"Reject code {r.code!r} must be 3 ASCII characters")
    body = b"".join(
        (
            r.code.encode("ascii"),
            encode_var_ascii(r.triggered_by, "Reject triggeredBy"),
            encode_var_octets(r.message.encode("utf-8")),
            encode_var_octets(r.data),
        )
    )
    return _envelope(TYPE_REJECT, body)


def encode_packet(packet: Packet) -> bytes:
    if isinstance(packet, Prepare):
        return encode_prepare(packet)
    if isinstance(packet, Fulfill):
        return encode_fulfill(packet)
    return encode_reject(packet)


# --- decoding -------------------------------------------------------------------------------------------


def _open(data: bytes, expected: int | None) -> tuple[int, Reader]:
    r = Reader(data)
    kind = r.read_uint8("ILP packet type")
    if kind not in (TYPE_PREPARE, TYPE_FULFILL, TYPE_REJECT):
        raise CodecError(f"unknown ILP packet type {kind}")
    if expected is not None and kind != expected:
        raise CodecError(f"expected ILP packet type {expected}, got {kind}")
    body = r.read_var_octets_reader("ILP packet body")
    r.expect_end("ILP packet")
    return kind, body


def _prepare_body(r: Reader) -> Prepare:
    amount = r.read_uint64("Prepare amount")
    expires_at = decode_ilp_timestamp(r.read(17, "Prepare expiresAt"))
    condition = r.read(32, "Prepare executionCondition")
    destination = check_address(r.read_var_ascii("Prepare destination"), "Prepare destination")
    data = r.read_var_octets("Prepare data")
    r.expect_end("Prepare")
    return Prepare(amount, expires_at, condition, destination, data)


def _fulfill_body(r: Reader) -> Fulfill:
    fulfillment = r.read(32, "Fulfill fulfillment")
    data = r.read_var_octets("Fulfill data")
    r.expect_end("Fulfill")
    return Fulfill(fulfillment, data)


def _reject_body(r: Reader) -> tuple[Reject, bool]:
    """The Reject, and whether its message was valid UTF-8 (if not, it must not be forwarded as it came)."""
    code = r.read_ascii(3, "Reject code")
    triggered_by = r.read_var_ascii("Reject triggeredBy")
    raw_message = r.read_var_octets("Reject message")
    data = r.read_var_octets("Reject data")
    r.expect_end("Reject")
    try:
        message, clean = raw_message.decode("utf-8"), True
    except UnicodeDecodeError:
        # A peer's message is for humans; a bad byte in it must not make us lose the Reject itself.
        message, clean = raw_message.decode("utf-8", "replace"), False
    return Reject(code, triggered_by, message, data), clean


def _reply(kind: int, body: Reader, data: bytes) -> Reply:
    if kind == TYPE_FULFILL:
        return _remember(_fulfill_body(body), data)
    reject, clean = _reject_body(body)
    return _remember(reject, data) if clean else reject


# The fast paths read the common shape of a packet (canonical lengths of up to 2 bytes) by index, with no Reader;
# anything else, valid or not, goes to the Reader path, which alone decides what is wrong.


def _length_at(data: bytes, i: int) -> tuple[int, int]:
    """(length, index after it) for a canonical OER length of up to 3 bytes, else (-1, -1); IndexError past the end."""
    first = data[i]
    if first < 0x80:
        return first, i + 1
    if first == 0x81 and data[i + 1] >= 0x80:
        return data[i + 1], i + 2
    if first == 0x82 and data[i + 1] != 0:
        return (data[i + 1] << 8) | data[i + 2], i + 3
    return -1, -1


_last_expiry: tuple[bytes, datetime] = (b"", datetime.min)  # Prepares in a burst often share their millisecond


def _fast_prepare(data: bytes) -> Prepare | None:
    global _last_expiry
    try:
        if data[0] != TYPE_PREPARE:
            return None
        n, i = _length_at(data, 1)
        end = len(data)
        if i < 0 or i + n != end:
            return None
        dn, j = _length_at(data, i + 57)
        if j < 0:
            return None
        pn, k = _length_at(data, j + dn)
        if k < 0 or k + pn != end:
            return None
    except IndexError:
        return None
    destination = data[j : j + dn]
    if not destination.isascii():
        return None
    stamp = data[i + 8 : i + 25]
    try:
        if stamp == _last_expiry[0]:
            expires_at = _last_expiry[1]
        else:
            expires_at = decode_ilp_timestamp(stamp)
            _last_expiry = (stamp, expires_at)
        address = check_address(destination.decode("ascii"), "Prepare destination")
    except CodecError:
        return None
    return Prepare(int.from_bytes(data[i : i + 8], "big"), expires_at, data[i + 25 : i + 57], address, data[k:])


def _fast_fulfill(data: bytes) -> Fulfill | None:
    try:
        if data[0] != TYPE_FULFILL:
            return None
        n, i = _length_at(data, 1)
        if i < 0 or i + n != len(data):
            return None
        dn, k = _length_at(data, i + 32)
        if k < 0 or k + dn != len(data):
            return None
    except IndexError:
        return None
    return Fulfill(data[i : i + 32], data[k:])


def decode_packet(data: bytes) -> Packet:
    data = bytes(data)
    kind, body = _open(data, None)
    if kind == TYPE_PREPARE:
        return _remember(_prepare_body(body), data)
    return _reply(kind, body, data)


def decode_prepare(data: bytes) -> Prepare:
    data = bytes(data)
    fast = _fast_prepare(data)
    if fast is not None:
        return _remember(fast, data)
    return _remember(_prepare_body(_open(data, TYPE_PREPARE)[1]), data)


def decode_reply(data: bytes) -> Reply:
    """A Fulfill or a Reject, the only valid answers to a Prepare."""
    data = bytes(data)
    fast = _fast_fulfill(data)
    if fast is not None:
        return _remember(fast, data)
    kind, body = _open(data, None)
    if kind == TYPE_PREPARE:
        raise CodecError("expected a Fulfill or Reject, got a Prepare")
    return _reply(kind, body, data)


# --- changing a Prepare in place ---------------------------------------------------------------------------


def with_expiry(p: Prepare, expires_at: datetime) -> Prepare:
    """``p`` with a new expiry. A decoded Prepare gets the new 17 bytes spliced into its bytes, not re-encoded."""
    out = Prepare(p.amount, expires_at, p.execution_condition, p.destination, p.data)
    raw = p.raw
    if raw is not None:
        # type (1) + length prefix (1, or 1 + n when the first byte is 0x80 + n) + amount (8), then the expiry
        at = 1 + (1 if raw[1] < 0x80 else 1 + (raw[1] & 0x7F)) + 8
        _remember(out, b"".join((raw[:at], encode_ilp_timestamp(expires_at), raw[at + 17 :])))
    return out


# --- checking replies from peers -------------------------------------------------------------------------------

_ERROR_CODE = re.compile(r"\A[FTR][0-9]{2}\Z")


def is_valid_error_code(code: str) -> bool:
    """RFC 27: a family letter (F, T, R) and two digits, as every code it defines (F00 … R99); a peer's other
    three characters are not passed on as if they were a code."""
    return _ERROR_CODE.match(code) is not None


def is_valid_triggered_by(address: str) -> bool:
    # ilp-packet accepts an empty triggeredBy as well as a valid address.
    return address == "" or is_valid_address(address)


def checked_reply(reply: Reply, our_address: str) -> Reply:
    """A reply from a peer (an app, the parent) made valid ILP before we pass it on.

    A Fulfill is valid once decoded (the route layer checks it against the condition). A Reject with an invalid
    code becomes our own F00 (for an F code) or T00; an invalid ``triggeredBy`` is repaired when only trailing dots
    spoil it (ilp-plugin-xrp-asym-server 1.8.1 sends ``test.parent.child.``), else it names us. A message that was
    not UTF-8 was already replaced by the decoder.
    """
    if isinstance(reply, Fulfill):
        return reply
    code, triggered_by = reply.code, reply.triggered_by
    if not is_valid_error_code(code):
        ours = ErrorCode.F00_BAD_REQUEST if code[:1] == "F" else ErrorCode.T00_INTERNAL_ERROR
        return Reject(ours, our_address, f"the next hop answered with an invalid ILP error code {code!r}")
    if is_valid_triggered_by(triggered_by):
        return reply
    repaired = triggered_by.rstrip(".")
    if not is_valid_triggered_by(repaired) or repaired == "":
        repaired = our_address if is_valid_triggered_by(our_address) else ""
    return Reject(code, repaired, reply.message, reply.data)


# --- F08 Amount Too Large ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AmountTooLargeData:
    received_amount: int
    maximum_amount: int


def encode_amount_too_large(d: AmountTooLargeData) -> bytes:
    return encode_uint64(d.received_amount, "receivedAmount") + encode_uint64(d.maximum_amount, "maximumAmount")


def decode_amount_too_large(data: bytes) -> AmountTooLargeData:
    r = Reader(data)
    received = r.read_uint64("F08 receivedAmount")
    maximum = r.read_uint64("F08 maximumAmount")
    # JS connectors may append nothing else; extra bytes are tolerated as RFC 30 asks.
    return AmountTooLargeData(received, maximum)
