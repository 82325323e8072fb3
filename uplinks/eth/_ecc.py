"""secp256k1 for the ETH uplink: eth-account imported safely, and the libsecp256k1 fast path for claims.

eth-account imports py_ecc, whose import raises the interpreter's recursion limit to 100000 for the whole process.
With that limit a deeply nested JSON document from a peer overflows the C stack and kills the process (segfault)
instead of raising RecursionError. Import it here, first, and put the limit back.

Claims are signed and recovered with coincurve (libsecp256k1) directly, on the 32-byte digest: eth-keys picks the
same library up by itself, but the way through eth-account (key objects, message encoding, checksum addresses)
costs more than the curve arithmetic. One claim per packet makes this the money path's main CPU cost.
"""

from __future__ import annotations

import sys

_limit = sys.getrecursionlimit()
import eth_account  # noqa: E402, F401

sys.setrecursionlimit(_limit)

from coincurve import PrivateKey, PublicKey  # noqa: E402
from eth_keys.constants import SECPK1_N  # noqa: E402
from eth_utils.crypto import keccak  # noqa: E402


class Signer:
    """One private key, kept as a libsecp256k1 key object so each signature costs only the signing."""

    __slots__ = ("_key", "address")

    def __init__(self, private_key: bytes) -> None:
        if len(private_key) != 32:
            raise ValueError(f"a secp256k1 private key is 32 bytes, got {len(private_key)}")
        self._key = PrivateKey(private_key)
        self.address: bytes = public_key_address(self._key.public_key)

    def sign(self, digest: bytes) -> bytes:
        """``r ‖ s ‖ v`` with v 27/28 over a 32-byte digest (RFC 6979 nonce, low s), as eth-account signs."""
        sig = self._key.sign_recoverable(digest, hasher=None)
        return sig[:64] + bytes((sig[64] + 27,))


def public_key_address(public_key: PublicKey) -> bytes:
    """The 20-byte Ethereum address of a public key: the last 20 bytes of keccak256 of its 64-byte point."""
    return keccak(public_key.format(compressed=False)[1:])[12:]


def recover(digest: bytes, signature: bytes) -> bytes | None:
    """The 20-byte address that signed ``digest``; None for a malformed signature or one that recovers to nothing.

    ``signature`` is ``r ‖ s ‖ v`` with v 27/28 (what personal_sign produces); r and s must be in [1, n-1].
    """
    if len(digest) != 32 or len(signature) != 65 or signature[64] not in (27, 28):
        return None
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big")
    if not (0 < r < SECPK1_N and 0 < s < SECPK1_N):
        return None
    try:
        public_key = PublicKey.from_signature_and_message(signature[:64] + bytes((signature[64] - 27,)), digest, hasher=None)
    except Exception:  # coincurve raises ValueError or its own errors for a point that does not exist
        return None
    return public_key_address(public_key)
