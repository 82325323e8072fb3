"""The two time formats on the wire.

ILP packets carry a fixed 17-character ``YYYYMMDDHHmmssfff`` (RFC 27); BTP errors carry a GeneralizedTime, which
the JS library writes as ``YYYYMMDDHHmmss.fffZ`` (we write that too) and which RFC 30 writes without trailing
zeros (we read both).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from .errors import CodecError

_FIXED = re.compile(rb"\A[0-9]{17}\Z")
_GENERALIZED = re.compile(r"\A([0-9]{14})(?:\.([0-9]{1,3}))?Z\Z")


def _build(digits: str, millis: int, what: str) -> datetime:
    try:
        return datetime(
            int(digits[0:4]),
            int(digits[4:6]),
            int(digits[6:8]),
            int(digits[8:10]),
            int(digits[10:12]),
            int(digits[12:14]),
            millis * 1000,
            tzinfo=UTC,
        )
    except ValueError as e:
        raise CodecError(f"{what}: {digits!r} is not a valid time ({e})") from None


def decode_ilp_timestamp(raw: bytes, what: str = "expiresAt") -> datetime:
    if not _FIXED.match(raw):
        raise CodecError(f"{what}: {raw!r} is not a 17-digit timestamp")
    text = raw.decode("ascii")
    return _build(text[:14], int(text[14:]), what)


def encode_ilp_timestamp(when: datetime) -> bytes:
    when = when.astimezone(UTC)
    # %-formatting of the fields: strftime costs several times as much, on every hop of every Prepare.
    return b"%04d%02d%02d%02d%02d%02d%03d" % (
        when.year, when.month, when.day, when.hour, when.minute, when.second, when.microsecond // 1000
    )


def decode_generalized_time(text: str, what: str = "triggeredAt") -> datetime:
    m = _GENERALIZED.match(text)
    if m is None:
        raise CodecError(f"{what}: {text!r} is not a GeneralizedTime like 20170828183200.000Z")
    frac = (m.group(2) or "").ljust(3, "0")
    return _build(m.group(1), int(frac), what)


def encode_generalized_time(when: datetime) -> str:
    """The ``…ss.fffZ`` form the JS btp-packet writes and requires."""
    when = when.astimezone(UTC)
    return f"{when:%Y%m%d%H%M%S}.{when.microsecond // 1000:03d}Z"
