"""The ed25519 key that signs our payment-channel claims and proves the channel is ours.

It is derived, not stored: seed = HMAC-SHA256(key=xrp_secret, msg="ilp-plugin-xrp-stateless" + server_address),
as ilp-plugin-xrp-asym-client does, so the same secret and parent give the same key (and channel) after a
reinstall. On the ledger the channel's PublicKey is "ED" + the 32-byte key in upper-case hex.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .errors import UnsafeChannel

CHANNEL_KEY_PREFIX: Final = "ilp-plugin-xrp-stateless"
_ED_KEY_RE: Final = re.compile(r"ED[0-9A-Fa-f]{64}")


def channel_seed(xrp_secret: str, server_address: str) -> bytes:
    return hmac.new(xrp_secret.encode(), (CHANNEL_KEY_PREFIX + server_address).encode(), hashlib.sha256).digest()


@dataclass(frozen=True)
class ChannelKey:
    seed: bytes = field(repr=False)
    public_key: bytes
    _private: Ed25519PrivateKey = field(repr=False, compare=False)

    @classmethod
    def from_seed(cls, seed: bytes) -> ChannelKey:
        if len(seed) != 32:
            raise ValueError(f"an ed25519 seed is 32 bytes, got {len(seed)}")
        private = Ed25519PrivateKey.from_private_bytes(seed)
        public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return cls(seed, public, private)

    @classmethod
    def derive(cls, xrp_secret: str, server_address: str) -> ChannelKey:
        """Our key for channels to the server whose XRP address is ``server_address``."""
        return cls.from_seed(channel_seed(xrp_secret, server_address))

    @property
    def ledger_public_key(self) -> str:
        """The PublicKey field of our PaymentChannelCreate: "ED" + upper-case hex."""
        return "ED" + self.public_key.hex().upper()

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)


def parse_ledger_public_key(value: object) -> bytes:
    """The 32 raw key bytes of a channel's "ED…" PublicKey; anything else (secp256k1, junk) is refused."""
    if not isinstance(value, str) or not _ED_KEY_RE.fullmatch(value):
        raise UnsafeChannel(f"channel public key {value!r} is not an ed25519 key ('ED' + 64 hex digits)")
    return bytes.fromhex(value[2:])


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """ed25519 verification that never raises: a malformed key or signature is simply not valid."""
    if len(public_key) != 32 or len(signature) != 64:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True
