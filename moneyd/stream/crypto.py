"""STREAM cryptography (RFC 29 §4) and the JS server's address tokens (ilp-protocol-stream 2.7.1).

Keys: ``HMAC-SHA256(shared_secret, "ilp_stream_encryption")`` for AES-256-GCM (layout nonce(12) | tag(16) |
ciphertext, no associated data) and ``HMAC-SHA256(shared_secret, "ilp_stream_fulfillment")`` for fulfillments.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..wire.errors import CodecError
from ..wire.oer import Reader, encode_var_octets

ENCRYPTION_KEY_STRING: Final = b"ilp_stream_encryption"
FULFILLMENT_GENERATION_STRING: Final = b"ilp_stream_fulfillment"
SHARED_SECRET_GENERATION_STRING: Final = b"ilp_stream_shared_secret"
PACKET_ID_STRING: Final = b"ilp_stream_packet_id"
NONCE_LENGTH: Final = 12
TAG_LENGTH: Final = 16
ENCRYPTION_OVERHEAD: Final = NONCE_LENGTH + TAG_LENGTH
TOKEN_NONCE_LENGTH: Final = 18
RECEIPT_VERSION: Final = 1
RECEIPT_LENGTH: Final = 58


class DecryptError(CodecError):
    """Data that was not encrypted with this key, or was altered on the way."""


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def encryption_key(shared_secret: bytes) -> bytes:
    return hmac_sha256(shared_secret, ENCRYPTION_KEY_STRING)


def fulfillment_key(shared_secret: bytes) -> bytes:
    return hmac_sha256(shared_secret, FULFILLMENT_GENERATION_STRING)


def fulfillment(fulfillment_key_: bytes, data: bytes) -> bytes:
    return hmac_sha256(fulfillment_key_, data)


def condition(fulfillment_: bytes) -> bytes:
    return hashlib.sha256(fulfillment_).digest()


def random_condition() -> bytes:
    """A condition nobody can fulfil: STREAM's test packets and connection-close packets carry one."""
    return os.urandom(32)


def packet_id(shared_secret: bytes, sequence: int) -> bytes:
    return hmac_sha256(shared_secret, PACKET_ID_STRING + sequence.to_bytes(8, "big"))


class Cipher:
    """AES-256-GCM with STREAM's nonce | tag | ciphertext layout, keyed once per connection."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError(f"AES-256-GCM key must be 32 bytes, not {len(key)}")
        self._aead = AESGCM(key)

    def encrypt(self, plaintext: bytes, nonce: bytes | None = None) -> bytes:
        iv = os.urandom(NONCE_LENGTH) if nonce is None else nonce
        sealed = self._aead.encrypt(iv, plaintext, None)  # ciphertext | tag
        return iv + sealed[-TAG_LENGTH:] + sealed[:-TAG_LENGTH]

    def decrypt(self, data: bytes) -> bytes:
        if len(data) < ENCRYPTION_OVERHEAD:
            raise DecryptError(f"encrypted data of {len(data)} bytes is shorter than nonce and tag")
        iv, tag, body = data[:NONCE_LENGTH], data[NONCE_LENGTH:ENCRYPTION_OVERHEAD], data[ENCRYPTION_OVERHEAD:]
        try:
            return self._aead.decrypt(iv, body + tag, None)
        except InvalidTag:
            raise DecryptError("unable to decrypt: wrong key or corrupted data") from None


def encrypt(key: bytes, plaintext: bytes, nonce: bytes | None = None) -> bytes:
    return Cipher(key).encrypt(plaintext, nonce)


def decrypt(key: bytes, data: bytes) -> bytes:
    return Cipher(key).decrypt(data)


# --- the JS server's connection tokens --------------------------------------------------------------------


def base64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def base64_lenient(text: str) -> bytes:
    """Decode base64 or base64url with or without padding, as Node's Buffer.from(s, 'base64') does."""
    cleaned = text.replace("-", "+").replace("_", "/").rstrip("=")
    try:
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except ValueError:
        raise CodecError(f"not base64: {text[:40]!r}") from None


@dataclass(frozen=True, slots=True)
class TokenContents:
    connection_tag: str | None
    receipt_nonce: bytes | None
    receipt_secret: bytes | None


def shared_secret_from_token(server_secret: bytes, token: bytes) -> bytes:
    return hmac_sha256(hmac_sha256(server_secret, SHARED_SECRET_GENERATION_STRING), token)


def make_token(
    server_secret: bytes,
    connection_tag: str = "",
    receipt_nonce: bytes = b"",
    receipt_secret: bytes = b"",
) -> bytes:
    """The encrypted token the JS server puts as the last segment of a connection's address."""
    if not connection_tag.isascii():
        raise ValueError("connection tag must be ASCII")
    if bool(receipt_nonce) != bool(receipt_secret):
        raise ValueError("receipt nonce and receipt secret must accompany each other")
    if receipt_nonce and len(receipt_nonce) != 16:
        raise ValueError("receipt nonce must be 16 bytes")
    if receipt_secret and len(receipt_secret) != 32:
        raise ValueError("receipt secret must be 32 bytes")
    plaintext = b"".join(
        (
            os.urandom(TOKEN_NONCE_LENGTH),
            encode_var_octets(connection_tag.encode("ascii")),
            encode_var_octets(receipt_nonce),
            encode_var_octets(receipt_secret),
        )
    )
    return encrypt(server_secret, plaintext)


def open_token(server_secret: bytes, token: bytes) -> TokenContents:
    """Decrypt and parse a token we issued; DecryptError/CodecError if it is not ours."""
    r = Reader(decrypt(server_secret, token))
    r.read(TOKEN_NONCE_LENGTH, "token nonce")
    tag = r.read_var_octets("connection tag")
    nonce = r.read_var_octets("receipt nonce")
    secret = r.read_var_octets("receipt secret")
    if len(nonce) not in (0, 16) or len(secret) not in (0, 32) or bool(nonce) != bool(secret):
        raise CodecError("token carries a malformed receipt nonce or secret")
    return TokenContents(tag.decode("ascii", "replace") or None, nonce or None, secret or None)


# --- STREAM receipts (RFC 39, as ilp-protocol-stream 2.7.1 writes them) -----------------------------------


@dataclass(frozen=True, slots=True)
class Receipt:
    nonce: bytes
    stream_id: int
    total_received: int


def create_receipt(nonce: bytes, stream_id: int, total_received: int, secret: bytes) -> bytes:
    if len(nonce) != 16 or len(secret) != 32:
        raise ValueError("receipt nonce must be 16 bytes and secret 32 bytes")
    # The JS writes the stream id as a single byte.
    body = bytes((RECEIPT_VERSION,)) + nonce + bytes((stream_id & 0xFF,)) + total_received.to_bytes(8, "big")
    return body + hmac_sha256(secret, body)


def verify_receipt(receipt: bytes, secret: bytes) -> Receipt:
    if len(receipt) != RECEIPT_LENGTH:
        raise CodecError(f"receipt malformed: {len(receipt)} bytes, expected {RECEIPT_LENGTH}")
    if receipt[0] != RECEIPT_VERSION:
        raise CodecError(f"receipt has invalid version {receipt[0]}")
    if not hmac.compare_digest(receipt[26:], hmac_sha256(secret, receipt[:26])):
        raise CodecError("receipt has an invalid HMAC")
    return Receipt(receipt[1:17], receipt[17], int.from_bytes(receipt[18:26], "big"))
