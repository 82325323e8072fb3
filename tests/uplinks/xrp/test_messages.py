"""The asym-server protocolData: what we send, byte for byte, and what we make of a hostile server's replies."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moneyd.btp import parent as auth
from moneyd.wire.btp import Message, ProtocolData, Transfer, decode_frame, encode_frame
from uplinks.xrp import claims, messages
from uplinks.xrp.claims import Claim, PayChannel
from uplinks.xrp.errors import ProtocolError, ScaleMismatch
from uplinks.xrp.keys import ChannelKey

KEY = ChannelKey.from_seed(bytes(range(32)))
SERVER = "rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh"
CH = "AB" * 32


def info(obj: object, raw: bytes | None = None) -> tuple[ProtocolData, ...]:
    return (ProtocolData("info", 2, raw if raw is not None else json.dumps(obj).encode()),)


GOOD_INFO = {"address": SERVER, "account": "test.parent.alice", "currencyScale": 9}


def test_requests_are_what_the_js_client_sends() -> None:
    # byte for byte what ilp-plugin-xrp-asym-client puts in its Messages
    frame = encode_frame(Message(1, messages.info_request()))
    assert frame.hex() == "06000000010a010104696e666f000102"
    assert messages.last_claim_request() == (ProtocolData("last_claim", 0, b""),)
    assert messages.fund_channel_request("rUs") == (ProtocolData("fund_channel", 1, b"rUs"),)
    proof = messages.channel_proof(KEY, CH.lower(), "test.parent.alice")
    assert proof[0] == ProtocolData("channel", 0, bytes.fromhex(CH))
    assert proof[1].protocol_name == "channel_signature" and proof[1].content_type == 0
    assert proof[1].data == claims.channel_signature(KEY, CH, "test.parent.alice")


def test_claim_json_is_the_js_json_stringify() -> None:
    sig = bytes(range(64))
    (pd,) = messages.claim_data(Claim(123, sig))
    assert pd.protocol_name == "claim" and pd.content_type == 2
    assert pd.data == b'{"amount":"123","signature":"' + sig.hex().upper().encode() + b'"}'
    frame = decode_frame(encode_frame(Transfer(7, 123, (pd,))))
    assert isinstance(frame, Transfer) and messages.parse_claim(frame.protocol_data) == Claim(123, sig)
    with pytest.raises(ValueError):
        messages.claim_data(Claim(1))


def test_info_reply() -> None:
    got = messages.parse_info(info({**GOOD_INFO, "channel": CH.lower(), "clientChannel": None}), 9)
    assert got == messages.Info(SERVER, "test.parent.alice", 9, CH, None)
    # the JS reads `currencyScale || 6`
    for missing in ({}, {"currencyScale": None}, {"currencyScale": 0}):
        base = {k: v for k, v in GOOD_INFO.items() if k != "currencyScale"}
        assert messages.parse_info(info({**base, **missing}), 6).currency_scale == 6
        with pytest.raises(ScaleMismatch, match="we use scale 9, the parent uses 6"):
            messages.parse_info(info({**base, **missing}), 9)


@pytest.mark.parametrize(
    "bad",
    [
        {**GOOD_INFO, "address": "rNotAnAddress"},
        {**GOOD_INFO, "address": 5},
        {**GOOD_INFO, "account": ""},
        {**GOOD_INFO, "account": "no spaces allowed"},
        {**GOOD_INFO, "account": ["test.a"]},
        {**GOOD_INFO, "currencyScale": "9"},
        {**GOOD_INFO, "currencyScale": 10**400},
        {**GOOD_INFO, "currencyScale": -1},
        {**GOOD_INFO, "currencyScale": 9.5},
        {**GOOD_INFO, "channel": "zz" * 32},
        {**GOOD_INFO, "channel": CH + "00"},
        {**GOOD_INFO, "clientChannel": 12},
        [GOOD_INFO],
        "info",
    ],
)
def test_hostile_info_replies(bad: object) -> None:
    with pytest.raises(ProtocolError):
        messages.parse_info(info(bad), 9)


@pytest.mark.parametrize("raw", [b"", b"{", b"NaN", b'{"address": Infinity}', b"[" * 100_000, b"\xff\xfe"])
def test_info_reply_that_is_not_json(raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        messages.parse_info(info(None, raw), 9)


def test_missing_protocol_data_is_named() -> None:
    with pytest.raises(ProtocolError, match="no 'info' protocol data"):
        messages.parse_info((ProtocolData("ilp", 0, b""),), 9)
    with pytest.raises(ProtocolError, match="no 'last_claim'"):
        messages.parse_last_claim(())


def test_fund_channel_and_channel_refresh() -> None:
    raw = bytes.fromhex(CH)
    assert messages.parse_fund_channel_reply((ProtocolData("fund_channel", 0, raw),)) == CH
    assert messages.parse_channel_refresh((ProtocolData("channel", 0, raw),)) == CH
    assert messages.parse_channel_refresh((ProtocolData("ilp", 0, b"\x0c"),)) is None
    for n in (0, 31, 33):
        with pytest.raises(ProtocolError, match="32-byte"):
            messages.parse_fund_channel_reply((ProtocolData("fund_channel", 0, b"\x01" * n),))
        with pytest.raises(ProtocolError, match="32-byte"):
            messages.parse_channel_refresh((ProtocolData("channel", 0, b"\x01" * n),))


def claim_pd(name: str, obj: object) -> tuple[ProtocolData, ...]:
    return (ProtocolData(name, 2, json.dumps(obj).encode()),)


def test_last_claim_reply() -> None:
    assert messages.parse_last_claim(claim_pd("last_claim", {"amount": "0"})) == Claim(0)
    sig = "ab" * 64
    assert messages.parse_last_claim(claim_pd("last_claim", {"amount": 5, "signature": sig})) == Claim(
        5, bytes.fromhex(sig)
    )


@pytest.mark.parametrize(
    "bad",
    [
        {"amount": "-1", "signature": "ab" * 64},
        {"amount": "1e3", "signature": "ab" * 64},
        {"amount": "01", "signature": "ab" * 64},
        {"amount": " 1", "signature": "ab" * 64},
        {"amount": "1" * 41, "signature": "ab" * 64},
        {"amount": 1.5, "signature": "ab" * 64},
        {"amount": True, "signature": "ab" * 64},
        {"amount": None, "signature": "ab" * 64},
        {"amount": "5", "signature": "ab" * 63},
        {"amount": "5", "signature": "xy" * 64},
        {"amount": "5", "signature": 5},
        {"amount": "5"},
        ["5", "ab"],
    ],
)
def test_hostile_claims(bad: object) -> None:
    with pytest.raises(ProtocolError):
        messages.parse_claim(claim_pd("claim", bad))


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash_the_parsers(data: bytes) -> None:
    for parse in (
        lambda pd: messages.parse_info(pd, 9),
        messages.parse_claim,
        messages.parse_last_claim,
        messages.parse_fund_channel_reply,
        messages.parse_channel_refresh,
    ):
        for name in ("info", "claim", "last_claim", "fund_channel", "channel"):
            with contextlib.suppress(ProtocolError):
                parse((ProtocolData(name, 2, data),))


def test_ledger_entry_parsing() -> None:
    node = {
        "LedgerEntryType": "PayChannel",
        "Account": SERVER,
        "Destination": "rPEPPER7kfTD9w2To4CQk6UCfuHM9c6GDY",
        "Amount": "10000000",
        "Balance": "0",
        "PublicKey": KEY.ledger_public_key.lower(),
        "SettleDelay": 3600,
    }
    ch = PayChannel.from_ledger_entry(CH.lower(), node)
    assert (ch.channel_id, ch.amount, ch.balance, ch.public_key) == (CH, 10_000_000, 0, KEY.ledger_public_key)
    for field, value in [
        ("Amount", 10_000_000),
        ("Amount", "1e7"),
        ("Balance", "20000000"),
        ("Account", "rBad"),
        ("SettleDelay", "3600"),
        ("SettleDelay", None),
        ("Expiration", -1),
        ("LedgerEntryType", "AccountRoot"),
    ]:
        with pytest.raises(ProtocolError):
            PayChannel.from_ledger_entry(CH, {**node, field: value})


def test_auth_checks() -> None:
    assert auth.parent_url("btp+ws://127.0.0.1:7443", "alice", "s").startswith("btp+ws://alice:")
    assert auth.parent_url("btp+wss://host:7443/", "alice", "s").startswith("btp+wss://alice:")
    for name in ("", "a.b", "a:b", "a@b", "a b", "x" * 129):
        with pytest.raises(auth.ParentError):
            auth.parent_url("host", name, "s")
    for parent in ("", "user@host", "wss://host", "host name", "btp+ws://remote.example", "btp+wss://u:t@host"):
        with pytest.raises(auth.ParentError):
            auth.parent_url(parent, "alice", "s")


def test_amount_conversions() -> None:
    assert claims.to_drops(1, 9) == 1 and claims.to_drops(1000, 9) == 1 and claims.to_drops(1001, 9) == 2
    assert claims.to_drops(7, 6) == 7 and claims.to_drops(7, 3) == 7000
    assert claims.from_drops(5, 9) == 5000 and claims.from_drops(5500, 3) == 5
    assert claims.xrp_to_drops("10") == 10_000_000 and claims.xrp_to_drops("0.000001") == 1
    for bad in ("1e3", "-1", "0.0000001", ""):
        with pytest.raises(ValueError):
            claims.xrp_to_drops(bad)
    with pytest.raises(ValueError):
        claims.to_drops(1, 19)
