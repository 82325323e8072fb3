"""The ETH protocolData: what we send, and hostile input from the peer (pure)."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moneyd.wire.btp import ContentType, ProtocolData, decode_frame, encode_frame
from moneyd.wire.btp import Message as BtpMessage
from tests.support.ethfixture import DETERMINISTIC_KEYS
from uplinks.eth import messages
from uplinks.eth.claims import sign_claim
from uplinks.eth.errors import ClaimRejected, ProtocolError

ADDRESS = "0x90F8bf6A479f320ead074411a4B0e7944Ea8c9C1"
CONTRACT = "0x07a457d878BF363E0Bb5aa0B096092f941e19962"


def info_with(data: bytes) -> list[ProtocolData]:
    return [ProtocolData(messages.INFO, ContentType.APPLICATION_JSON, data)]


def test_what_we_send() -> None:
    assert messages.info(ADDRESS.lower()) == ProtocolData(
        "info", ContentType.APPLICATION_JSON, b'{"ethereumAddress":"' + ADDRESS.encode() + b'"}'
    )
    assert messages.channel_deposit() == ProtocolData("channelDeposit", ContentType.OCTET_STREAM, b"")
    assert messages.request_close() == ProtocolData("requestClose", ContentType.TEXT_PLAIN_UTF8, b"")
    claim = sign_claim(DETERMINISTIC_KEYS[0], CONTRACT, b"\x01" * 32, 5)
    pd = messages.machinomy(claim)
    assert pd == ProtocolData("machinomy", ContentType.APPLICATION_JSON, claim.to_json())
    frame = BtpMessage(7, (pd,))
    assert decode_frame(encode_frame(frame)) == frame
    assert messages.parse_machinomy([pd]) == claim


def test_parse_info() -> None:
    assert messages.parse_info([]) is None
    for address in (ADDRESS, ADDRESS.lower(), "0x" + ADDRESS[2:].upper()):
        assert messages.parse_info(info_with(json.dumps({"ethereumAddress": address}).encode())) == ADDRESS


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"{",
        b"\xff\xfe",
        b"[]",
        b"null",
        b'"0x90F8bf6A479f320ead074411a4B0e7944Ea8c9C1"',
        b"{}",
        b'{"ethereumAddress": 5}',
        b'{"ethereumAddress": "0x1234"}',
        b'{"ethereumAddress": "0x90f8BF6A479f320ead074411a4B0e7944Ea8c9C1"}',  # bad checksum
        b'{"address": "0x90F8bf6A479f320ead074411a4B0e7944Ea8c9C1"}',
        b"[" * 100_000,
    ],
)
def test_hostile_info(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        messages.parse_info(info_with(data))


@given(st.binary(max_size=200))
def test_info_garbage_never_crashes(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        messages.parse_info(info_with(data))


def test_hostile_machinomy() -> None:
    assert messages.parse_machinomy([messages.info(ADDRESS)]) is None
    for data in (b"", b"[" * 100_000, b'{"value":"1"}'):
        with pytest.raises(ClaimRejected):
            messages.parse_machinomy([ProtocolData("machinomy", ContentType.APPLICATION_JSON, data)])


def test_kind_follows_the_js_precedence() -> None:
    def pd(name: str) -> ProtocolData:
        return ProtocolData(name, ContentType.OCTET_STREAM, b"")

    assert messages.kind([]) is None
    assert messages.kind([pd("ilp"), pd("machinomy")]) == "machinomy"
    assert messages.kind([pd("machinomy"), pd("requestClose")]) == "requestClose"
    assert messages.kind([pd("requestClose"), pd("channelDeposit")]) == "channelDeposit"
    assert messages.kind([pd("channelDeposit"), pd("info")]) == "info"
    assert messages.kind([pd("ilp")]) == "ilp"
    assert messages.kind([pd("balance")]) is None
