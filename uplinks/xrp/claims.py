"""Payment-channel claims and channel ids, as rippled and the asym plugins encode them (pure functions).

- channel id = SHA-512Half(0x0078 ‖ AccountID source ‖ AccountID destination ‖ u32 sequence of the create tx)
- claim      = ed25519 over "CLM\\0" ‖ channel id (32 bytes) ‖ u64 drops, big-endian
- proof      = ed25519 over "channel_signature" ‖ channel id ‖ Buffer.from(account, 'base64') (Node's decoder)
- drops      = ceil(amount / 10^(scale-6)): base units are rounded up to whole drops, as the JS
  ``xrpToDrops(baseToXrp(amount))`` does (toFixed(6, ROUND_UP)).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Final

from xrpl.core.addresscodec import decode_classic_address, is_valid_classic_address

from . import nodebuf
from .errors import ProtocolError, UnsafeChannel
from .keys import ChannelKey, parse_ledger_public_key, verify

DROPS_PER_XRP: Final = 1_000_000
# The JS encodeClaim accepts 1 … 10^17 drops (all the XRP there is); a claim outside is refused by the server.
MAX_DROPS: Final = 10**17
MIN_SETTLE_DELAY: Final = 3600
MAX_SCALE: Final = 18
_CHANNEL_RE: Final = re.compile(r"[0-9A-Fa-f]{64}")
_U32: Final = 1 << 32


def pow10(n: int) -> int:
    if n < 0:
        raise ValueError(f"negative exponent {n}")
    return int(10**n)


def check_scale(scale: int) -> int:
    if isinstance(scale, bool) or not isinstance(scale, int) or not 0 <= scale <= MAX_SCALE:
        raise ValueError(f"currency scale must be an integer 0..{MAX_SCALE}, got {scale!r}")
    return scale


def to_drops(amount: int, scale: int) -> int:
    """Base units at ``scale`` to drops, rounding up like the JS plugins."""
    check_scale(scale)
    if amount < 0:
        raise ValueError(f"negative amount {amount}")
    if scale >= 6:
        d = pow10(scale - 6)
        return -(-amount // d)
    return amount * pow10(6 - scale)


def from_drops(drops: int, scale: int) -> int:
    """Drops to base units (``xrpToBase``); below scale 6 a fraction of a base unit is dropped."""
    check_scale(scale)
    if scale >= 6:
        return drops * pow10(scale - 6)
    return drops // pow10(6 - scale)


def xrp_to_drops(xrp: str) -> int:
    """A ledger XRP amount in decimal XRP ("10", "0.000001") to drops, exactly."""
    m = re.fullmatch(r"(\d{1,12})(?:\.(\d{1,6}))?", xrp)
    if not m:
        raise ValueError(f"not an XRP amount: {xrp!r}")
    return int(m.group(1)) * DROPS_PER_XRP + int((m.group(2) or "").ljust(6, "0"))


def check_channel_id(channel: object) -> str:
    """A channel id as 64 hex digits, returned upper-case (how rippled and the plugins print it)."""
    if not isinstance(channel, str) or not _CHANNEL_RE.fullmatch(channel):
        raise ProtocolError(f"invalid payment channel id {channel!r}: expected 64 hex digits")
    return channel.upper()


def channel_id(source: str, destination: str, sequence: int) -> str:
    """The id rippled gives the channel that ``source``'s PaymentChannelCreate with ``sequence`` opens."""
    if not 0 <= sequence < _U32:
        raise ValueError(f"sequence out of range for u32: {sequence}")
    preimage = (
        b"\x00x"
        + decode_classic_address(source)
        + decode_classic_address(destination)
        + sequence.to_bytes(4, "big")
    )
    return hashlib.sha512(preimage).digest()[:32].hex().upper()


def encode_claim(channel: str, drops: int) -> bytes:
    """The bytes a claim signature covers (rippled's serializePayChanAuthorization)."""
    if not 0 <= drops < 1 << 64:
        raise ValueError(f"drops out of range for u64: {drops}")
    return b"CLM\x00" + bytes.fromhex(check_channel_id(channel)) + drops.to_bytes(8, "big")


def sign_claim(key: ChannelKey, channel: str, drops: int) -> bytes:
    if not 1 <= drops <= MAX_DROPS:
        raise ValueError(f"claim of {drops} drops is outside 1..10^17")
    return key.sign(encode_claim(channel, drops))


def verify_claim(public_key: bytes, channel: str, drops: int, signature: bytes) -> bool:
    if not 0 <= drops < 1 << 64:
        return False
    return verify(public_key, encode_claim(channel, drops), signature)


def encode_channel_proof(channel: str, account: str) -> bytes:
    """What ``channel_signature`` signs; ``account`` is the ILP address the parent's info reply gave us."""
    return b"channel_signature" + bytes.fromhex(check_channel_id(channel)) + nodebuf.base64_decode(account)


def channel_signature(key: ChannelKey, channel: str, account: str) -> bytes:
    return key.sign(encode_channel_proof(channel, account))


@dataclass(frozen=True, slots=True)
class Claim:
    """A cumulative claim: ``amount`` base units (at the uplink's scale) and the ed25519 signature over its
    drops, or no signature when the amount is just what the ledger already paid out (nothing to submit)."""

    amount: int
    signature: bytes | None = None

    @property
    def signature_hex(self) -> str | None:
        return None if self.signature is None else self.signature.hex().upper()


# --- the ledger's view of a channel -------------------------------------------------------------------------


def _field(node: dict[str, Any], name: str, kind: type) -> Any:
    value = node.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ProtocolError(f"PayChannel field {name} is {value!r}, expected {kind.__name__}")
    return value


def _drops_field(node: dict[str, Any], name: str) -> int:
    value = node.get(name)
    if not isinstance(value, str) or not re.fullmatch(r"0|[1-9]\d{0,17}", value) or int(value) > MAX_DROPS:
        raise ProtocolError(f"PayChannel field {name} is {value!r}, expected drops as a decimal string")
    return int(value)


def _opt_u32(node: dict[str, Any], name: str) -> int | None:
    value = node.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < _U32:
        raise ProtocolError(f"PayChannel field {name} is {value!r}, expected a u32")
    return value


@dataclass(frozen=True, slots=True)
class PayChannel:
    """A PayChannel ledger entry, amounts in drops. ``balance`` is what the destination has already claimed."""

    channel_id: str
    account: str
    destination: str
    amount: int
    balance: int
    public_key: str
    settle_delay: int
    expiration: int | None = None
    cancel_after: int | None = None

    @classmethod
    def from_ledger_entry(cls, channel: str, node: object) -> PayChannel:
        """From the ``node`` of rippled's ``ledger_entry`` reply (PascalCase fields), validating every field."""
        if not isinstance(node, dict):
            raise ProtocolError(f"PayChannel entry is {type(node).__name__}, expected an object")
        cid = check_channel_id(channel)
        if node.get("LedgerEntryType", "PayChannel") != "PayChannel":
            raise ProtocolError(f"ledger entry {cid} is a {node.get('LedgerEntryType')!r}, not a PayChannel")
        account = _field(node, "Account", str)
        destination = _field(node, "Destination", str)
        for a in (account, destination):
            if not is_valid_classic_address(a):
                raise ProtocolError(f"PayChannel address {a!r} is not a classic XRP address")
        amount = _drops_field(node, "Amount")
        balance = _drops_field(node, "Balance")
        if balance > amount:
            raise ProtocolError(f"PayChannel {cid} balance {balance} exceeds its amount {amount}")
        settle_delay = _opt_u32(node, "SettleDelay")
        if settle_delay is None:
            raise ProtocolError(f"PayChannel {cid} has no SettleDelay")
        public_key = _field(node, "PublicKey", str)
        return cls(
            cid,
            account,
            destination,
            amount,
            balance,
            public_key.upper(),
            settle_delay,
            _opt_u32(node, "Expiration"),
            _opt_u32(node, "CancelAfter"),
        )

    @property
    def ed25519_key(self) -> bytes:
        return parse_ledger_public_key(self.public_key)


def check_incoming_channel(paychan: PayChannel, our_address: str) -> PayChannel:
    """Refuse a channel the parent could pull back before we claim: the asym client's rules, plus an ed25519
    key (the only kind the parent signs claims with)."""
    if paychan.destination != our_address:
        raise UnsafeChannel(
            f"payment channel {paychan.channel_id} pays {paychan.destination}, not us ({our_address}); "
            "the parent is misbehaving"
        )
    if paychan.settle_delay < MIN_SETTLE_DELAY:
        raise UnsafeChannel(
            f"payment channel {paychan.channel_id} settle delay {paychan.settle_delay}s is below {MIN_SETTLE_DELAY}s"
        )
    if paychan.expiration is not None:
        raise UnsafeChannel(f"payment channel {paychan.channel_id} is already closing (Expiration set)")
    if paychan.cancel_after is not None:
        raise UnsafeChannel(f"payment channel {paychan.channel_id} has a CancelAfter: it can be taken back")
    paychan.ed25519_key  # noqa: B018 - raises UnsafeChannel for a non-ed25519 key
    return paychan


def check_outgoing_channel(
    paychan: PayChannel, our_address: str, key: ChannelKey, server_address: str
) -> PayChannel:
    """Our own channel to the parent: from us, to the server, with our channel key (else claims are void)."""
    if paychan.account != our_address or paychan.destination != server_address:
        raise UnsafeChannel(
            f"payment channel {paychan.channel_id} goes {paychan.account} -> {paychan.destination}, "
            f"expected {our_address} -> {server_address}"
        )
    if paychan.public_key != key.ledger_public_key:
        raise UnsafeChannel(f"payment channel {paychan.channel_id} is signed by another key than ours")
    return paychan
