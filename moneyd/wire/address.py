"""ILP addresses (RFC 15)."""

from __future__ import annotations

import re

from .errors import CodecError

MAX_ADDRESS_LENGTH = 1023
SCHEMES = frozenset({"g", "private", "example", "peer", "self", "test", "test1", "test2", "test3", "local"})

_ADDRESS = re.compile(r"\A(?:g|private|example|peer|self|test[1-3]?|local)(?:\.[A-Za-z0-9_~-]+)+\Z")
_SEGMENT = re.compile(r"\A[A-Za-z0-9_~-]+\Z")


def is_valid_address(address: str) -> bool:
    return len(address) <= MAX_ADDRESS_LENGTH and _ADDRESS.match(address) is not None


def check_address(address: str, what: str = "address") -> str:
    if not is_valid_address(address):
        if len(address) > MAX_ADDRESS_LENGTH:
            raise CodecError(f"{what}: {len(address)} characters is longer than {MAX_ADDRESS_LENGTH}")
        scheme = address.split(".", 1)[0]
        if scheme not in SCHEMES:
            raise CodecError(f"{what}: {address[:60]!r} does not start with a known scheme ({', '.join(sorted(SCHEMES))})")
        raise CodecError(f"{what}: {address[:60]!r} is not a valid ILP address (segments of A-Z a-z 0-9 _ ~ -)")
    return address


def is_valid_segment(segment: str) -> bool:
    return _SEGMENT.match(segment) is not None


def with_suffix(address: str, suffix: str) -> str:
    """``address + "." + suffix``, checked: the suffix may hold several segments but none empty."""
    if not all(is_valid_segment(s) for s in suffix.split(".")):
        raise CodecError(f"suffix {suffix!r} is not a valid address suffix")
    return check_address(f"{address}.{suffix}")
