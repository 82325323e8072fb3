"""Machinomy claims as ilp-plugin-ethereum 3.0.0-beta.20 signs, sends and checks them. Pure: no I/O.

A claim promises the receiver of a Unidirectional channel a cumulative amount of wei. The sender signs
``personal_sign(keccak256(contract ‖ channelId ‖ uint256 value))`` (the contract's ``paymentDigest`` behind the
"\\x19Ethereum Signed Message:\\n32" prefix) and sends it as the ``machinomy`` BTP protocolData, JSON
``{"channelId","signature","value","contractAddress"}`` (the JS leaves ``tokenContract`` out for ether).
The signature is hex ``r ‖ s ‖ v`` with v ``1b``/``1c``.

Amounts: the uplink's accounting scale is 9, so one base unit is one gwei (1e9 wei).
"""

from __future__ import annotations

# isort: off
from . import _ecc  # noqa: F401  (first: eth-account must be imported through it)
# isort: on

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from ._ecc import Signer, recover
from .errors import ClaimRejected, ConfigError

WEI_PER_UNIT: Final = 10**9  # scale 9 base units are gwei
UINT256_MAX: Final = 2**256 - 1
ZERO_ADDRESS: Final = "0x" + "00" * 20
SIGNED_MESSAGE_PREFIX: Final = b"\x19Ethereum Signed Message:\n32"

# The JS server's floor for incoming channels (MIN_INCOMING_DISPUTE_PERIOD_BLOCKS: 3 days of 15 s blocks).
MIN_DISPUTE_PERIOD: Final = 3 * 24 * 60 * 60 // 15

_HEX_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_HEX_32 = re.compile(r"0x[0-9a-fA-F]{64}")
_HEX_SIG = re.compile(r"0x[0-9a-fA-F]{130}")
_DECIMAL = re.compile(r"[0-9]{1,78}")


# -- amounts ----------------------------------------------------------------------------------------------


def units_to_wei(units: int) -> int:
    """Base units (gwei, scale 9) to wei."""
    if units < 0:
        raise ValueError(f"negative amount {units}")
    return units * WEI_PER_UNIT


def wei_to_units(wei: int) -> int:
    """Wei to base units, rounded down as the JS plugin does (``ROUND_DOWN``)."""
    if wei < 0:
        raise ValueError(f"negative amount {wei}")
    return wei // WEI_PER_UNIT


# -- addresses and ids ------------------------------------------------------------------------------------


# The checksum costs a keccak; the same few addresses (the contract, the parent) come back on every claim.
_checksum = lru_cache(maxsize=64)(to_checksum_address)


def parse_address(text: object, what: str = "address") -> str:
    """A 20-byte hex address in checksum form. Mixed case must be a valid checksum (as ethers' getAddress)."""
    if not isinstance(text, str) or not _HEX_ADDRESS.fullmatch(text):
        raise ConfigError(f"{what} {text!r} is not a 0x-prefixed 20-byte hex address")
    checksummed: str = _checksum(text)
    body = text[2:]
    if body != body.lower() and body != body.upper() and text != checksummed:
        raise ConfigError(f"{what} {text!r} has a bad checksum (expected {checksummed})")
    return checksummed


def same_address(a: str, b: str) -> bool:
    return a.lower() == b.lower()


def channel_id_hex(channel_id: bytes) -> str:
    return "0x" + channel_id.hex()


def parse_channel_id(text: object) -> bytes:
    if not isinstance(text, str) or not _HEX_32.fullmatch(text):
        raise ConfigError(f"channel id {text!r} is not a 0x-prefixed 32-byte hex string")
    return bytes.fromhex(text[2:])


# -- the digest and signatures ----------------------------------------------------------------------------


def payment_digest(contract: str, channel_id: bytes, value: int) -> bytes:
    """keccak256(contract ‖ channelId ‖ uint256 value): the contract's ``paymentDigest(channelId, value)``."""
    if len(channel_id) != 32:
        raise ValueError(f"channel id must be 32 bytes, got {len(channel_id)}")
    if not 0 <= value <= UINT256_MAX:
        raise ValueError(f"claim value {value} is not a uint256")
    return keccak(bytes.fromhex(parse_address(contract, "contract")[2:]) + channel_id + value.to_bytes(32, "big"))


def recovery_digest(contract: str, channel_id: bytes, value: int) -> bytes:
    """What the signature actually covers: the payment digest behind the personal_sign prefix."""
    return keccak(SIGNED_MESSAGE_PREFIX + payment_digest(contract, channel_id, value))


@dataclass(frozen=True, slots=True)
class Claim:
    """A signed promise of ``value`` wei (cumulative) from channel ``channel_id`` on ``contract``."""

    channel_id: bytes
    value: int
    signature: bytes
    contract: str

    def to_json(self) -> bytes:
        """The ``machinomy`` protocolData, key for key and in the JS order (JSON.stringify, no spaces)."""
        obj = {
            "channelId": channel_id_hex(self.channel_id),
            "signature": "0x" + self.signature.hex(),
            "value": str(self.value),
            "contractAddress": self.contract,
        }
        return json.dumps(obj, separators=(",", ":")).encode()

    @property
    def signer(self) -> str | None:
        """The address that signed this claim, or None when the signature recovers to nothing."""
        return recover_signer(self)


def as_account(key: LocalAccount | str | bytes) -> LocalAccount:
    if isinstance(key, LocalAccount):
        return key
    try:
        account: LocalAccount = Account.from_key(key)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"not an Ethereum private key: {e}") from None
    return account


def as_signer(key: Signer | LocalAccount | str | bytes) -> Signer:
    """The libsecp256k1 signer for a key (build it once per key: sign_claim takes it as it is)."""
    return key if isinstance(key, Signer) else Signer(bytes(as_account(key).key))


def sign_claim(key: Signer | LocalAccount | str | bytes, contract: str, channel_id: bytes, value: int) -> Claim:
    """Sign a claim for ``value`` wei as the JS client does (personal_sign, v 27/28)."""
    contract = parse_address(contract, "contract")
    sig = as_signer(key).sign(recovery_digest(contract, channel_id, value))
    return Claim(channel_id=channel_id, value=value, signature=sig, contract=contract)


def recover_signer(claim: Claim) -> str | None:
    """The signer's checksum address; None for a signature that is malformed or recovers to nothing."""
    signer = recover_address(claim)
    return None if signer is None else _checksum("0x" + signer.hex())


def recover_address(claim: Claim) -> bytes | None:
    """The signer's 20-byte address (no checksum to compute: what verify_claim compares)."""
    try:
        digest = recovery_digest(claim.contract, claim.channel_id, claim.value)
    except (ValueError, ConfigError):
        return None
    return recover(digest, claim.signature)


def parse_claim(data: bytes | str) -> Claim:
    """Decode ``machinomy`` protocolData strictly. Any defect is ClaimRejected("schema") or ("token")."""
    try:
        obj: Any = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:  # RecursionError: absurdly nested JSON
        raise ClaimRejected("schema", f"claim is not JSON: {e}") from None
    if not isinstance(obj, dict):
        raise ClaimRejected("schema", "claim is not a JSON object")
    if obj.get("tokenContract") is not None:
        raise ClaimRejected("token", f"claim is for the ERC-20 token {obj['tokenContract']!r}, not ether")
    value = obj.get("value")
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value) or int(value) > UINT256_MAX:
        raise ClaimRejected("schema", f"claim value {value!r} is not a decimal uint256 string")
    signature = obj.get("signature")
    if not isinstance(signature, str) or not _HEX_SIG.fullmatch(signature):
        raise ClaimRejected("schema", f"claim signature {signature!r} is not 0x-prefixed 65-byte hex")
    try:
        channel_id = parse_channel_id(obj.get("channelId"))
        contract = parse_address(obj.get("contractAddress"), "contract")
    except ConfigError as e:
        raise ClaimRejected("schema", str(e)) from None
    return Claim(channel_id=channel_id, value=int(value), signature=bytes.fromhex(signature[2:]), contract=contract)


# -- channels ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelState:
    """``channels(id)`` on chain. A channel that does not exist (never opened, or closed) has sender 0x0."""

    channel_id: bytes
    sender: str
    receiver: str
    value: int
    settling_period: int
    settling_until: int

    @property
    def exists(self) -> bool:
        return not same_address(self.sender, ZERO_ADDRESS)

    @property
    def is_settling(self) -> bool:
        return self.settling_until != 0


def verify_claim(
    claim: Claim,
    channel: ChannelState,
    *,
    receiver: str,
    contract: str,
    best: int | None,
    linked_channel: bytes | None = None,
    min_dispute_period: int = MIN_DISPUTE_PERIOD,
) -> int:
    """Check an incoming claim against the channel as the chain reports it; return the wei it adds.

    ``best`` is the value of the best claim accepted so far on this channel (None before the first: the
    value-0 claim that links a channel is accepted then, and adds 0). Raises ClaimRejected.
    """
    if not same_address(claim.contract, contract):
        raise ClaimRejected("contract", f"claim is for contract {claim.contract}, ours is {contract}")
    if linked_channel is not None and claim.channel_id != linked_channel:
        raise ClaimRejected(
            "channel",
            f"claim is for channel {channel_id_hex(claim.channel_id)}, the linked one is {channel_id_hex(linked_channel)}",
        )
    if channel.channel_id != claim.channel_id:
        raise ValueError("verify_claim needs the state of the claim's own channel")
    if not channel.exists:
        raise ClaimRejected("no_channel", f"channel {channel_id_hex(claim.channel_id)} does not exist on chain")
    if not same_address(channel.receiver, receiver):
        raise ClaimRejected(
            "not_ours", f"channel {channel_id_hex(claim.channel_id)} pays {channel.receiver}, not us ({receiver})"
        )
    if channel.settling_period < min_dispute_period:
        raise ClaimRejected(
            "dispute_period",
            f"channel dispute period is {channel.settling_period} blocks, below our floor of {min_dispute_period}",
        )
    if channel.is_settling:
        raise ClaimRejected("settling", f"channel is settling (until block {channel.settling_until})")
    signer = recover_address(claim)
    if signer is None or signer != bytes.fromhex(channel.sender[2:]):
        raise ClaimRejected("signature", f"claim is not signed by the channel sender {channel.sender}")
    if claim.value > channel.value:
        raise ClaimRejected("above_value", f"claim for {claim.value} wei is above the channel value {channel.value}")
    if best is not None and claim.value <= best:
        raise ClaimRejected("not_increasing", f"claim for {claim.value} wei does not exceed the best {best}")
    return claim.value - (best or 0)


@dataclass(slots=True)
class ChannelFacts:
    """The last chain read of the channel that pays us, reused to check the next claims on it without a chain call.

    What the Unidirectional contract lets change while a channel exists: its value only grows (``deposit``), and
    only its sender can start settling it, after which nobody but us can close it (``settle``) for the whole
    dispute period; closing it early (``claim``) is ours alone. Sender, receiver and dispute period never change.
    So a read stays good for a claim of at most the value it showed, for ``max_age`` seconds: a claim above that
    value, an older read, or a read that showed the channel settling or gone goes back to the chain. A claim taken
    in the window after the parent started settling is still ours to claim for the days of the dispute period,
    and the uplink's watcher claims when it sees the settling. The caller forgets the read whenever it closes
    or drops the channel itself.
    """

    max_age: float
    state: ChannelState | None = None
    read_at: float = 0.0

    def fresh_for(self, claim: Claim, now: float) -> ChannelState | None:
        """The remembered read if it is good for checking ``claim`` at ``now``, else None (read the chain)."""
        st = self.state
        if (
            st is None
            or st.channel_id != claim.channel_id
            or not 0 <= now - self.read_at <= self.max_age
            or not st.exists
            or st.is_settling
            or claim.value > st.value
        ):
            return None
        return st

    def remember(self, state: ChannelState, now: float) -> None:
        self.state, self.read_at = state, now

    def forget(self) -> None:
        self.state = None
