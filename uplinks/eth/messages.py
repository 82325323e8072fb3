"""The BTP protocolData ilp-plugin-ethereum 3.0.0-beta.20 sends and expects (both roles speak the same set).

  ``info`` (JSON ``{"ethereumAddress": "0x…"}``)   both ways; the answer to one is the other side's ``info``
  ``machinomy`` (JSON claim, see claims.py)          a claim on the sender's channel; answered with nothing
  ``channelDeposit`` (empty octets)                  "I deposited to my channel": re-read it from chain
  ``requestClose`` (empty text)                      "claim my channel now": the receiver claims on chain

The JS handles a Message by the first of info, channelDeposit, requestClose, machinomy, ilp it carries;
``kind`` applies the same order. Everything the peer sends is parsed as hostile: ProtocolError or
ClaimRejected, never anything else.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

from moneyd.wire.btp import ProtocolData, find

from .claims import Claim, parse_address, parse_claim
from .errors import ConfigError, ProtocolError

INFO: Final = "info"
MACHINOMY: Final = "machinomy"
CHANNEL_DEPOSIT: Final = "channelDeposit"
REQUEST_CLOSE: Final = "requestClose"
ILP: Final = "ilp"
_ORDER: Final = (INFO, CHANNEL_DEPOSIT, REQUEST_CLOSE, MACHINOMY, ILP)


def info(address: str) -> ProtocolData:
    """Our ``info``: the checksummed address, as the JS sends ``wallet.address``."""
    return ProtocolData.json(INFO, json.dumps({"ethereumAddress": parse_address(address)}, separators=(",", ":")))


def machinomy(claim: Claim) -> ProtocolData:
    return ProtocolData.json(MACHINOMY, claim.to_json().decode())


def channel_deposit() -> ProtocolData:
    return ProtocolData.octets(CHANNEL_DEPOSIT, b"")


def request_close() -> ProtocolData:
    return ProtocolData.text(REQUEST_CLOSE, "")


def kind(protocol_data: Sequence[ProtocolData]) -> str | None:
    """Which message this is, in the JS order of precedence; None when it carries none of them."""
    names = {p.protocol_name for p in protocol_data}
    return next((name for name in _ORDER if name in names), None)


def parse_info(protocol_data: Sequence[ProtocolData]) -> str | None:
    """The peer's address from its ``info`` (checksummed or lowercase); None when there is no ``info``."""
    pd = find(protocol_data, INFO)
    if pd is None:
        return None
    try:
        obj: Any = json.loads(pd.data)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise ProtocolError(f"info is not JSON: {e}") from None
    address = obj.get("ethereumAddress") if isinstance(obj, dict) else None
    try:
        return parse_address(address, "the peer's ethereumAddress")
    except ConfigError as e:
        raise ProtocolError(str(e)) from None


def parse_machinomy(protocol_data: Sequence[ProtocolData]) -> Claim | None:
    """The claim in a ``machinomy`` protocolData (ClaimRejected when malformed); None when there is none."""
    pd = find(protocol_data, MACHINOMY)
    return None if pd is None else parse_claim(pd.data)
