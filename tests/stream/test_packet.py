"""STREAM packets and crypto against every vector in tests/vectors (see SOURCES.md there), plus properties."""

from __future__ import annotations

import base64
import contextlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moneyd.stream import crypto
from moneyd.stream import packet as sp
from moneyd.wire import ilp
from moneyd.wire.errors import CodecError
from moneyd.wire.oer import UINT64_MAX, Reader
from tests.support.vectors import load

FIXTURES = load("interledger-rfcs/0029-stream/test-vectors/StreamPacketFixtures.json")
RS = load("extracted/interledger-rs_stream.json")
JSCRYPTO = load("extracted/ilp-protocol-stream_crypto.json")
RECEIPTS = load("extracted/ilp-protocol-stream_receipt.json")


def frame_from_json(f: dict[str, Any]) -> sp.Frame:
    """The fixtures' JSON view of a frame (numbers as strings, bytes as base64) as our dataclass."""
    t = f["type"]
    n = int
    if t == 1:
        return sp.ConnectionClose(f["errorCode"], f["errorMessage"])
    if t == 2:
        return sp.ConnectionNewAddress(f["sourceAccount"])
    if t == 3:
        return sp.ConnectionMaxData(n(f["maxOffset"]))
    if t == 4:
        return sp.ConnectionDataBlocked(n(f["maxOffset"]))
    if t == 5:
        return sp.ConnectionMaxStreamId(n(f["maxStreamId"]))
    if t == 6:
        return sp.ConnectionStreamIdBlocked(n(f["maxStreamId"]))
    if t == 7:
        return sp.ConnectionAssetDetails(f["sourceAssetCode"], f["sourceAssetScale"])
    if t == 16:
        return sp.StreamClose(n(f["streamId"]), f["errorCode"], f["errorMessage"])
    if t == 17:
        return sp.StreamMoney(n(f["streamId"]), n(f["shares"]))
    if t == 18:
        return sp.StreamMaxMoney(n(f["streamId"]), n(f["receiveMax"]), n(f["totalReceived"]))
    if t == 19:
        return sp.StreamMoneyBlocked(n(f["streamId"]), n(f["sendMax"]), n(f["totalSent"]))
    if t == 20:
        return sp.StreamData(n(f["streamId"]), n(f["offset"]), base64.b64decode(f["data"]))
    if t == 21:
        return sp.StreamMaxData(n(f["streamId"]), n(f["maxOffset"]))
    if t == 22:
        return sp.StreamDataBlocked(n(f["streamId"]), n(f["maxOffset"]))
    if t == 23:
        return sp.StreamReceipt(n(f["streamId"]), base64.b64decode(f["receipt"]))
    raise AssertionError(f"unknown frame type {t}")


def packet_from_json(p: dict[str, Any]) -> sp.StreamPacket:
    amount = p["amount"] if "amount" in p else p["prepareAmount"]
    frames = tuple(frame_from_json(f) for f in p["frames"])
    return sp.StreamPacket(int(p["sequence"]), sp.PacketType(p["packetType"]), int(amount), frames)


# --- the RFC 29 fixtures ------------------------------------------------------------------------------------


def test_fixture_file_has_all_cases() -> None:
    assert len(FIXTURES) == 53
    types = {f["type"] for case in FIXTURES for f in case["packet"]["frames"]}
    assert types == {1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23}
    assert sum(1 for c in FIXTURES if c.get("decode_only")) == 2


@pytest.mark.parametrize("case", FIXTURES, ids=[c["name"] for c in FIXTURES])
def test_rfc_fixture(case: dict[str, Any]) -> None:
    buffer = base64.b64decode(case["buffer"])
    expected = packet_from_json(case["packet"])
    assert sp.decode_stream_packet(buffer) == expected
    if case.get("decode_only"):
        # The 9-byte VarUInt saturates; our encoder writes the canonical 8-byte form instead.
        assert sp.decode_stream_packet(sp.encode_stream_packet(expected)) == expected
        assert sp.encode_stream_packet(expected) != buffer
    else:
        assert sp.encode_stream_packet(expected) == buffer


# --- interledger-rs vectors ---------------------------------------------------------------------------------


def test_rs_packet_with_every_frame() -> None:
    v = RS["packet_multi_frame"]
    raw = bytes.fromhex(v["hex"])
    expected = packet_from_json(v["decoded"])
    assert len(expected.frames) == 14
    assert sp.decode_stream_packet(raw) == expected
    assert sp.encode_stream_packet(expected) == raw


def test_rs_unknown_frame_is_skipped() -> None:
    v = RS["packet_unknown_frame"]
    decoded = sp.decode_stream_packet(bytes.fromhex(v["hex"]))
    assert decoded == sp.StreamPacket(1, sp.PacketType.PREPARE, 99, ())


def test_rs_saturating_varuint() -> None:
    contents = bytes.fromhex(RS["saturating_varuint"]["stream_max_money_contents_hex"])
    for kind in (sp.FrameType.STREAM_MAX_MONEY, sp.FrameType.STREAM_MONEY_BLOCKED):
        raw = bytes((1, 12, 1, 0, 1, 0, 1, 1, kind, len(contents))) + contents
        (frame,) = sp.decode_stream_packet(raw).frames
        assert frame in (sp.StreamMaxMoney(123, UINT64_MAX, 123), sp.StreamMoneyBlocked(123, UINT64_MAX, 123))


def test_rs_aes_gcm_envelope() -> None:
    v = RS["aes_gcm"]
    key = crypto.encryption_key(bytes.fromhex(v["shared_secret"]))
    sealed = crypto.encrypt(key, bytes.fromhex(v["plaintext"]), bytes.fromhex(v["nonce"]))
    assert sealed.hex() == v["ciphertext_envelope"]
    assert crypto.decrypt(key, sealed).hex() == v["plaintext"]


def test_rs_fulfillment() -> None:
    v = RS["fulfillment"]
    key = crypto.fulfillment_key(bytes.fromhex(v["shared_secret"]))
    assert crypto.fulfillment(key, bytes.fromhex(v["data"])).hex() == v["fulfillment"]


def test_rs_js_interop_prepare() -> None:
    v = RS["js_interop_prepare"]
    prepare = ilp.decode_prepare(bytes.fromhex(v["prepare_hex"]))
    assert prepare.destination == v["destination"]
    token = prepare.destination.rsplit(".", 1)[1].encode("ascii")
    secret = crypto.shared_secret_from_token(bytes.fromhex(v["server_secret"]), token)
    assert secret.hex() == v["shared_secret"]
    plain = crypto.decrypt(crypto.encryption_key(secret), prepare.data)
    assert plain.hex() == v["decrypted_stream_packet_hex"]
    assert sp.decode_stream_packet(plain) == packet_from_json(v["decrypted"])
    f = crypto.fulfillment(crypto.fulfillment_key(secret), prepare.data)
    assert f.hex() == v["expected_fulfillment_computed"]
    assert crypto.condition(f) == prepare.execution_condition == bytes.fromhex(v["execution_condition"])


# --- ilp-protocol-stream crypto vectors ---------------------------------------------------------------------


def b64(s: str) -> bytes:
    return base64.b64decode(s)


def test_js_encryption_key() -> None:
    v = JSCRYPTO["psk_encryption_key"]
    assert crypto.encryption_key(v["shared_secret_utf8"].encode()) == b64(v["expected"])


def test_js_fulfillment_key() -> None:
    v = JSCRYPTO["fulfillment_key"]
    assert crypto.fulfillment_key(v["shared_secret_utf8"].encode()) == b64(v["expected"])


def test_js_fulfillment() -> None:
    v = JSCRYPTO["fulfillment"]
    assert crypto.fulfillment(b64(v["key"]), v["data_utf8"].encode()) == b64(v["expected"])


def test_js_condition() -> None:
    v = JSCRYPTO["condition_of_zero_fulfillment"]
    assert crypto.condition(b64(v["fulfillment"])) == b64(v["expected"])


def test_js_decrypt_known() -> None:
    v = JSCRYPTO["decrypt_known"]
    assert crypto.decrypt(b64(v["key"]), b64(v["envelope"])) == v["plaintext_utf8"].encode()


def test_js_constants() -> None:
    c = JSCRYPTO["other_constants"]
    assert c["token_nonce_len"] == crypto.TOKEN_NONCE_LENGTH
    assert c["encryption_overhead"] == crypto.ENCRYPTION_OVERHEAD
    secret = b"\x01" * 32
    expected = crypto.hmac_sha256(secret, b"ilp_stream_packet_id" + (7).to_bytes(8, "big"))
    assert crypto.packet_id(secret, 7) == expected


# --- receipts -------------------------------------------------------------------------------------------------


def test_receipt_valid() -> None:
    (v,) = RECEIPTS["valid"]
    made = crypto.create_receipt(bytes.fromhex(v["nonce"]), v["stream_id"], int(v["total_received"]),
                                 bytes.fromhex(v["secret"]))
    assert made.hex() == v["receipt_hex"]
    r = crypto.verify_receipt(made, bytes.fromhex(v["secret"]))
    assert (r.stream_id, r.total_received) == (1, 500)
    fixture = next(c for c in FIXTURES if c["name"] == "frame:stream_receipt")
    assert base64.b64decode(fixture["packet"]["frames"][0]["receipt"]) == made


@pytest.mark.parametrize("case", [c for c in RECEIPTS["invalid"] if "hex" in c], ids=lambda c: c["expect"])
def test_receipt_invalid(case: dict[str, str]) -> None:
    with pytest.raises(CodecError):
        crypto.verify_receipt(bytes.fromhex(case["hex"]), b"\0" * 32)


def test_receipt_wrong_secret() -> None:
    (v,) = RECEIPTS["valid"]
    with pytest.raises(CodecError, match="HMAC"):
        crypto.verify_receipt(bytes.fromhex(v["receipt_hex"]), b"\x07" * 32)


# --- tokens as the JS server makes them ---------------------------------------------------------------------


def test_token_round_trip() -> None:
    server_secret = bytes(range(32))
    token = crypto.make_token(server_secret, "tag1", b"n" * 16, b"s" * 32)
    contents = crypto.open_token(server_secret, token)
    assert contents == crypto.TokenContents("tag1", b"n" * 16, b"s" * 32)
    assert crypto.base64_lenient(crypto.base64url(token)) == token
    plain = crypto.open_token(server_secret, crypto.make_token(server_secret))
    assert plain == crypto.TokenContents(None, None, None)
    with pytest.raises(CodecError):
        crypto.open_token(b"\x09" * 32, token)


# --- hostile and odd input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x02\x0c\x01\x00\x01\x00\x01\x00",  # version 2
        b"\x01\x0b\x01\x00\x01\x00\x01\x00",  # packet type 11
        b"\x01\x0c\x01\x00\x01\x00\x01\x05",  # five frames announced, none there
        b"\x01\x0c\x01\x00\x01\x00\x08\x7f\xff\xff\xff\xff\xff\xff\xff",  # absurd frame count
        b"\x01\x0c\x09\x01\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x01\x00",  # 9-byte sequence
        b"\x01\x0c\x01\x00\x01\x00\x01\x01\x11\x02\x01\x01",  # StreamMoney missing shares
        b"\x01\x0c\x01\x00\x01\x00\x01\x01\x11\x09\x01",  # frame body longer than the packet
    ],
)
def test_bad_packets_raise_codec_error(raw: bytes) -> None:
    with pytest.raises(CodecError):
        sp.decode_stream_packet(raw)


def test_trailing_padding_and_frame_extensions_are_ignored() -> None:
    base = sp.StreamPacket(3, sp.PacketType.FULFILL, 5, (sp.StreamMaxData(1, 10),))
    raw = sp.encode_stream_packet(base)
    assert sp.decode_stream_packet(raw + b"\0" * 64) == base
    # A StreamMaxData whose contents carry one extra future field.
    extended = raw[:-6] + bytes((sp.FrameType.STREAM_MAX_DATA, 5, 1, 1, 1, 10, 0xAA))
    assert sp.decode_stream_packet(extended) == base


def test_decrypt_rejects_garbage() -> None:
    key = crypto.encryption_key(b"k")
    sealed = crypto.encrypt(key, b"hello")
    for bad in (b"", sealed[:20], sealed[:-1] + bytes((sealed[-1] ^ 1,)), crypto.encrypt(b"\1" * 32, b"hello")):
        with pytest.raises(crypto.DecryptError):
            crypto.decrypt(key, bad)


def test_encoder_refuses_out_of_range() -> None:
    for bad in (sp.StreamMoney(1, UINT64_MAX + 1), sp.ConnectionClose(256, ""), sp.StreamMaxData(-1, 0)):
        with pytest.raises(CodecError):
            sp.encode_frame(bad)


# --- properties -------------------------------------------------------------------------------------------------

u64 = st.integers(0, UINT64_MAX)
u8 = st.integers(0, 255)
text = st.text(max_size=20)
frames = st.one_of(
    st.builds(sp.ConnectionClose, u8, text),
    st.builds(sp.ConnectionNewAddress, text),
    st.builds(sp.ConnectionMaxData, u64),
    st.builds(sp.ConnectionDataBlocked, u64),
    st.builds(sp.ConnectionMaxStreamId, u64),
    st.builds(sp.ConnectionStreamIdBlocked, u64),
    st.builds(sp.ConnectionAssetDetails, text, u8),
    st.builds(sp.StreamClose, u64, u8, text),
    st.builds(sp.StreamMoney, u64, u64),
    st.builds(sp.StreamMaxMoney, u64, u64, u64),
    st.builds(sp.StreamMoneyBlocked, u64, u64, u64),
    st.builds(sp.StreamData, u64, u64, st.binary(max_size=300)),
    st.builds(sp.StreamMaxData, u64, u64),
    st.builds(sp.StreamDataBlocked, u64, u64),
    st.builds(sp.StreamReceipt, u64, st.binary(max_size=80)),
)
packets = st.builds(
    sp.StreamPacket, u64, st.sampled_from(list(sp.PacketType)), u64, st.lists(frames, max_size=8).map(tuple)
)


@given(packets)
def test_round_trip(packet: sp.StreamPacket) -> None:
    assert sp.decode_stream_packet(sp.encode_stream_packet(packet)) == packet


@given(packets, st.binary(min_size=0, max_size=32))
def test_encrypted_round_trip(packet: sp.StreamPacket, secret: bytes) -> None:
    key = crypto.encryption_key(secret)
    assert sp.decode_stream_packet(crypto.decrypt(key, crypto.encrypt(key, sp.encode_stream_packet(packet)))) == packet


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash(raw: bytes) -> None:
    with contextlib.suppress(CodecError):
        sp.decode_stream_packet(raw)


@given(packets, st.data())
def test_truncation_is_a_codec_error_or_a_prefix(packet: sp.StreamPacket, data: st.DataObject) -> None:
    raw = sp.encode_stream_packet(packet)
    cut = data.draw(st.integers(0, len(raw)))
    with contextlib.suppress(CodecError):
        sp.decode_stream_packet(raw[:cut])
    assert Reader(raw).read_uint8() == 1
