"""The BTP protocolData the XRP asym server (ilp-plugin-xrp-asym-server 1.8.1) expects and sends.

Client -> server (BTP Message unless noted):
  ``info`` (octets, one byte 0x02)                         -> ``info`` JSON {address, account, currencyScale, …}
  ``channel`` (32 octets) + ``channel_signature`` (64)     -> [] (registers or refreshes our channel)
  ``fund_channel`` (text: our XRP address)                 -> ``fund_channel`` (32 octets: its channel to us)
  ``last_claim`` (empty octets)                            -> ``last_claim`` JSON {amount, signature?}
  Transfer: ``claim`` JSON {"amount":"<base units>","signature":"<HEX>"}
Server -> client:
  Transfer: ``claim`` JSON {"amount":"…","signature":"<hex>"}; Message: ``channel`` (32 octets) after it funds.

Everything the server sends is parsed as hostile: wrong types, huge numbers, bad hex give ProtocolError.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from xrpl.core.addresscodec import is_valid_classic_address

from moneyd.wire.address import is_valid_address
from moneyd.wire.btp import ProtocolData, find

from .claims import MAX_SCALE, Claim, channel_signature, check_channel_id
from .errors import ProtocolError, ScaleMismatch
from .keys import ChannelKey

INFO_REQUEST_ALL: Final = 2
DEFAULT_PEER_SCALE: Final = 6  # an info reply without currencyScale comes from a scale-6 server
MAX_AMOUNT_DIGITS: Final = 40  # far above 10^17 drops at scale 18; bounds the work on hostile input
_DIGITS: Final = re.compile(r"0|[1-9][0-9]*")
_SIGNATURE: Final = re.compile(r"[0-9A-Fa-f]{128}")

Data = tuple[ProtocolData, ...]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(pd: ProtocolData, what: str) -> dict[str, Any]:
    try:
        value = json.loads(pd.data.decode("utf-8", "replace"), parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        raise ProtocolError(f"{what} is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise ProtocolError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def parse_amount(value: object, what: str) -> int:
    """A non-negative integer amount as the JS sends it: a decimal string (or a JSON integer)."""
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, str):
        text = value
    else:
        raise ProtocolError(f"{what} must be a decimal string, got {type(value).__name__}")
    if len(text) > MAX_AMOUNT_DIGITS or not _DIGITS.fullmatch(text):
        raise ProtocolError(
            f"{what} {text[:60]!r} is not a non-negative integer below 10^{MAX_AMOUNT_DIGITS}"
        )
    return int(text)


def parse_signature(value: object, what: str) -> bytes:
    if not isinstance(value, str) or not _SIGNATURE.fullmatch(value):
        shown = value[:140] if isinstance(value, str) else type(value).__name__
        raise ProtocolError(f"{what} must be 128 hex digits (an ed25519 signature), got {shown!r}")
    return bytes.fromhex(value)


def _entry(protocol_data: Sequence[ProtocolData], name: str) -> ProtocolData:
    pd = find(protocol_data, name)
    if pd is None:
        names = [p.protocol_name for p in protocol_data]
        raise ProtocolError(f"the parent's reply has no {name!r} protocol data (got {names})")
    return pd


# --- info ---------------------------------------------------------------------------------------------------


def info_request() -> Data:
    return (ProtocolData.octets("info", bytes([INFO_REQUEST_ALL])),)


@dataclass(frozen=True, slots=True)
class Info:
    address: str  # the server's XRP address
    account: str  # our ILP address at the parent (what channel_signature covers)
    currency_scale: int
    channel: str | None  # our channel to the server, if it knows one
    client_channel: str | None  # its channel to us, if it has one


def parse_info(protocol_data: Sequence[ProtocolData], our_scale: int) -> Info:
    obj = parse_json(_entry(protocol_data, "info"), "info reply")
    address = obj.get("address")
    if not isinstance(address, str) or not is_valid_classic_address(address):
        raise ProtocolError(f"info reply address {address!r} is not an XRP address")
    account = obj.get("account")
    if not isinstance(account, str) or not is_valid_address(account):
        raise ProtocolError(f"info reply account {account!r} is not an ILP address")
    raw_scale = obj.get("currencyScale")
    # The JS client reads `info.currencyScale || 6`: absent, null and 0 all mean 6.
    if raw_scale is None or raw_scale == 0:
        scale = DEFAULT_PEER_SCALE
    elif isinstance(raw_scale, int) and not isinstance(raw_scale, bool) and 0 < raw_scale <= MAX_SCALE:
        scale = raw_scale
    else:
        raise ProtocolError(f"info reply currencyScale {raw_scale!r} is not an integer 0..{MAX_SCALE}")
    if scale != our_scale:
        raise ScaleMismatch(our_scale, scale)

    def channel(name: str) -> str | None:
        value = obj.get(name)
        if value is None:
            return None
        try:
            return check_channel_id(value)
        except ProtocolError as e:
            raise ProtocolError(f"info reply {name}: {e}") from None

    return Info(address, account, scale, channel("channel"), channel("clientChannel"))


# --- channels -----------------------------------------------------------------------------------------------


def channel_proof(key: ChannelKey, channel: str, account: str) -> Data:
    """``channel`` + ``channel_signature``: registers our new channel, or refreshes it after a top-up."""
    return (
        ProtocolData.octets("channel", bytes.fromhex(check_channel_id(channel))),
        ProtocolData.octets("channel_signature", channel_signature(key, channel, account)),
    )


def fund_channel_request(our_address: str) -> Data:
    """Asks the server to open its channel to us (only once ours holds at least 10 XRP)."""
    return (ProtocolData.text("fund_channel", our_address),)


def parse_fund_channel_reply(protocol_data: Sequence[ProtocolData]) -> str:
    pd = _entry(protocol_data, "fund_channel")
    if len(pd.data) != 32:
        raise ProtocolError(f"fund_channel reply is {len(pd.data)} bytes, expected a 32-byte channel id")
    return pd.data.hex().upper()


def parse_channel_refresh(protocol_data: Sequence[ProtocolData]) -> str | None:
    """The server's ``channel`` Message after it funded its channel to us: the id to reload, or None when
    the Message carries no ``channel`` (then it is an ILP Message)."""
    pd = find(protocol_data, "channel")
    if pd is None:
        return None
    if len(pd.data) != 32:
        raise ProtocolError(f"channel message is {len(pd.data)} bytes, expected a 32-byte channel id")
    return pd.data.hex().upper()


# --- claims -------------------------------------------------------------------------------------------------


def last_claim_request() -> Data:
    return (ProtocolData.octets("last_claim", b""),)


def parse_last_claim(protocol_data: Sequence[ProtocolData]) -> Claim:
    """The server's record of our cumulative claim: {amount} alone when it is the ledger balance."""
    obj = parse_json(_entry(protocol_data, "last_claim"), "last_claim reply")
    amount = parse_amount(obj.get("amount"), "last_claim amount")
    sig = obj.get("signature")
    return Claim(amount, None if sig is None else parse_signature(sig, "last_claim signature"))


def claim_data(claim: Claim) -> Data:
    """Our claim for a BTP Transfer, byte for byte what the JS client's JSON.stringify writes."""
    if claim.signature is None:
        raise ValueError("a claim we send must be signed")
    body = json.dumps({"amount": str(claim.amount), "signature": claim.signature_hex}, separators=(",", ":"))
    return (ProtocolData.json("claim", body),)


def parse_claim(protocol_data: Sequence[ProtocolData]) -> Claim:
    """The claim in a Transfer from the server (amount in base units, signature over its drops)."""
    obj = parse_json(_entry(protocol_data, "claim"), "claim")
    return Claim(
        parse_amount(obj.get("amount"), "claim amount"),
        parse_signature(obj.get("signature"), "claim signature"),
    )
