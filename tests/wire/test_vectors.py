"""Every case of the conformance vectors in tests/vectors (see SOURCES.md there)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from moneyd import pointer
from moneyd.wire import address, btp, ildcp, ilp, timestamps
from moneyd.wire.errors import CodecError
from moneyd.wire.oer import Reader, encode_length, encode_uint, encode_var_octets, encode_var_uint
from tests.support.vectors import load

OER = load("extracted/interledger-rs_oer.json")
RFC30 = load("extracted/rfc0030_oer_examples.json")
ADDR = load("extracted/interledger-rs_address.json")
RS_ILP = load("extracted/interledger-rs_ilp-packet.json")
ILP_ERRORS = load("extracted/ilp-packet_errors.json")
BTP = load("extracted/btp-packet.json")
ILDCP = load("extracted/ilp-protocol-ildcp.json")
POINTERS = load("extracted/payment_pointers.json")


def iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- OER ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", OER["var_uint_valid"], ids=lambda c: c["hex"])
def test_var_uint_valid(case: dict[str, str]) -> None:
    raw = bytes.fromhex(case["hex"])
    r = Reader(raw)
    assert r.read_var_uint() == int(case["value"])
    assert r.at_end()
    assert encode_var_uint(int(case["value"])) == raw


@pytest.mark.parametrize("case", OER["var_uint_invalid"], ids=lambda c: c["why"])
def test_var_uint_invalid(case: dict[str, str]) -> None:
    with pytest.raises(CodecError):
        Reader(bytes.fromhex(case["hex"])).read_var_uint()


def test_var_uint_saturates_where_stream_asks() -> None:
    raw = bytes.fromhex(OER["var_uint_invalid"][3]["hex"])
    assert Reader(raw).read_var_uint_saturating() == 2**64 - 1


@pytest.mark.parametrize("case", OER["var_octet_string"], ids=lambda c: c["value"][:12])
def test_var_octet_string(case: dict[str, str]) -> None:
    if "prefix_hex" in case:
        payload = bytes(5678)
        raw = bytes.fromhex(case["prefix_hex"]) + payload
    else:
        raw = bytes.fromhex(case["hex"])
        value = case["value"]
        payload = bytes(128) if value == "00*128" else bytes.fromhex(value)
    r = Reader(raw)
    assert r.read_var_octets() == payload
    assert r.at_end()
    assert encode_var_octets(payload) == raw


@pytest.mark.parametrize("case", OER["var_octet_string_invalid"], ids=lambda c: c["why"])
def test_var_octet_string_invalid(case: dict[str, str]) -> None:
    with pytest.raises(CodecError):
        Reader(bytes.fromhex(case["hex"])).read_var_octets()


@pytest.mark.parametrize("case", RFC30["uint"], ids=lambda c: c["type"])
def test_fixed_uint(case: dict[str, str]) -> None:
    raw = bytes.fromhex(case["hex"])
    assert Reader(raw).read_uint(len(raw)) == int(case["value"])
    assert encode_uint(int(case["value"]), len(raw)) == raw


@pytest.mark.parametrize("case", RFC30["length_determinant"], ids=lambda c: c["hex"])
def test_length_determinant(case: dict[str, Any]) -> None:
    raw = bytes.fromhex(case["hex"])
    assert encode_length(int(case["value"])) == raw
    if len(raw) <= 7:
        assert Reader(raw).read_length() == int(case["value"])
    else:
        # An 8-byte length is valid OER but no buffer can hold it; we refuse it before allocating.
        with pytest.raises(CodecError, match="too large"):
            Reader(raw).read_length()


# --- timestamps --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text,expected", sorted(RFC30["fixed_timestamp_valid"].items()))
def test_ilp_timestamp_valid(text: str, expected: str) -> None:
    when = timestamps.decode_ilp_timestamp(text.encode())
    assert timestamps.encode_ilp_timestamp(when) == text.encode()
    if "leap second" not in expected:
        assert when == iso(expected)


@pytest.mark.parametrize("text", RFC30["fixed_timestamp_invalid"])
def test_ilp_timestamp_invalid(text: str) -> None:
    with pytest.raises(CodecError):
        timestamps.decode_ilp_timestamp(text.encode())


@pytest.mark.parametrize("when,expected", sorted(RFC30["fixed_timestamp_encode"].items()))
def test_ilp_timestamp_encode(when: str, expected: str) -> None:
    if "T24:" in when:
        moment = iso(when.replace("T24:", "T00:")) + timedelta(days=1)
    else:
        moment = datetime.strptime(when.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z")
    assert timestamps.encode_ilp_timestamp(moment) == expected.split()[0].encode()


def test_ilp_timestamp_binary() -> None:
    case = RFC30["fixed_timestamp_binary"][0]
    assert timestamps.decode_ilp_timestamp(bytes.fromhex(case["hex"])) == timestamps.decode_ilp_timestamp(
        case["value"].encode()
    )


@pytest.mark.parametrize("text,expected", sorted(OER["generalized_time_valid"].items()))
def test_generalized_time_valid(text: str, expected: str) -> None:
    if "leap second" in expected:
        # Python's datetime has no second 60; we refuse it rather than silently shift it.
        with pytest.raises(CodecError):
            timestamps.decode_generalized_time(text)
        return
    assert timestamps.decode_generalized_time(text) == iso(expected)


@pytest.mark.parametrize("text", sorted(set(OER["generalized_time_invalid"]) | set(RFC30["generalized_time_invalid"]) - {"20171224230000.20Z"}))
def test_generalized_time_invalid(text: str) -> None:
    with pytest.raises(CodecError):
        timestamps.decode_generalized_time(text)


def test_generalized_time_written_as_the_js_library_does() -> None:
    # RFC 30 drops trailing zeros; JS btp-packet always writes .fffZ and reads only that, so we write .fffZ.
    for case in RFC30["generalized_time_binary"]:
        raw = bytes.fromhex(case["hex"])
        text = Reader(raw).read_var_ascii("t")
        moment = timestamps.decode_generalized_time(text)
        assert moment == iso(case["value"])
        assert timestamps.encode_generalized_time(moment) == case["value"].replace("-", "").replace(":", "").replace("T", "")


# --- addresses ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ADDR["valid"])
def test_address_valid(value: str) -> None:
    assert address.check_address(value) == value


@pytest.mark.parametrize("name,value", sorted(ADDR["invalid_hex"].items()))
def test_address_invalid(name: str, value: str) -> None:
    text = bytes.fromhex(value).decode("latin-1") if name == "non_ascii_hex" else value
    assert not address.is_valid_address(text)
    with pytest.raises(CodecError):
        address.check_address(text)


def test_address_length_limit() -> None:
    base = "g."
    assert address.is_valid_address(base + "a" * (ADDR["length_rules"]["max_len"] - len(base)))
    with pytest.raises(CodecError, match="longer than 1023"):
        address.check_address(base + "a" * (ADDR["length_rules"]["max_len"] + 1 - len(base)))


def test_address_suffix() -> None:
    ok = ADDR["with_suffix"]["ok"]
    assert address.with_suffix(ok[0], ok[1]) == ok[2]
    for bad in ADDR["with_suffix"]["invalid_suffixes"]:
        with pytest.raises(CodecError):
            address.with_suffix(ok[0], bad)
    assert ADDR["segments_example"]["address"].split(".") == ADDR["segments_example"]["segments"]


def test_rfc30_address_encoding() -> None:
    case = RFC30["address"][0]
    assert Reader(bytes.fromhex(case["hex"])).read_var_ascii("a") == case["value"]


# --- ILP packets -------------------------------------------------------------------------------------------


def b64(text: str) -> bytes:
    return base64.b64decode(text)


def test_js_prepare_example() -> None:
    case = load("ilp-packet/test/data/ilp_prepare/valid/example01.json")
    raw, j = bytes.fromhex(case["binary"]), case["json"]
    expected = ilp.Prepare(int(j["amount"]), iso(j["expiresAt"]), b64(j["executionCondition"]), j["destination"], b64(j["data"]))
    assert ilp.decode_packet(raw) == expected == ilp.decode_prepare(raw)
    assert ilp.encode_packet(expected) == raw


def test_js_fulfill_example() -> None:
    case = load("ilp-packet/test/data/ilp_fulfill/valid/example01.json")
    raw, j = bytes.fromhex(case["binary"]), case["json"]
    expected = ilp.Fulfill(b64(j["fulfillment"]), b64(j["data"]))
    assert ilp.decode_packet(raw) == expected == ilp.decode_reply(raw)
    assert ilp.encode_packet(expected) == raw


def test_js_reject_example() -> None:
    case = load("ilp-packet/test/data/ilp_reject/valid/example01.json")
    raw, j = bytes.fromhex(case["binary"]), case["json"]
    expected = ilp.Reject(j["code"], j["triggeredBy"], j["message"], b64(j["data"]))
    assert ilp.decode_packet(raw) == expected == ilp.decode_reply(raw)
    assert expected.family is ilp.ErrorFamily.FINAL
    assert ilp.encode_packet(expected) == raw


@pytest.mark.parametrize("case", RS_ILP["valid"], ids=lambda c: c["name"])
def test_rs_packets(case: dict[str, Any]) -> None:
    raw, f = bytes.fromhex(case["hex"]), case["fields"]
    expected: ilp.Packet
    if f["type"] == 12:
        expected = ilp.Prepare(int(f["amount"]), iso(f["expiresAtIso"]), bytes.fromhex(f["executionCondition"]), f["destination"], bytes.fromhex(f["data"]))
        assert timestamps.encode_ilp_timestamp(expected.expires_at).decode() == f["expiresAt"]
    elif f["type"] == 13:
        expected = ilp.Fulfill(bytes.fromhex(f["fulfillment"]), bytes.fromhex(f["data"]))
    else:
        expected = ilp.Reject(f["code"], f["triggeredBy"], f["message"], bytes.fromhex(f["data"]))
    assert raw[1:4] == b"\x82\x01\x4b" or raw[1:4] == b"\x82\x01\x24"
    assert ilp.decode_packet(raw) == expected
    assert ilp.encode_packet(expected) == raw


@pytest.mark.parametrize("case", RS_ILP["invalid"], ids=lambda c: c["name"])
def test_rs_invalid_packets(case: dict[str, str]) -> None:
    # We are strict: trailing bytes, a leap second, a wrong type byte are all refused.
    raw = bytes.fromhex(case["hex"])
    with pytest.raises(CodecError):
        if "Prepare" in case["expect"]:
            ilp.decode_prepare(raw)
        else:
            ilp.decode_packet(raw)


def test_prepare_parsed_as_prepare_only() -> None:
    case = RS_ILP["invalid"][-1]
    with pytest.raises(CodecError, match="expected ILP packet type 12, got 13"):
        ilp.decode_prepare(bytes.fromhex(case["hex"]))


def test_decode_reply_refuses_a_prepare() -> None:
    with pytest.raises(CodecError, match="Fulfill or Reject"):
        ilp.decode_reply(bytes.fromhex(RS_ILP["valid"][0]["hex"]))


@pytest.mark.parametrize("case", RS_ILP["f08_amount_too_large_data"] + ILP_ERRORS["f08_amount_too_large"], ids=lambda c: c.get("name", "js"))
def test_f08_data(case: dict[str, str]) -> None:
    raw = bytes.fromhex(case.get("hex") or case["data_hex"])
    d = ilp.decode_amount_too_large(raw)
    assert d == ilp.AmountTooLargeData(int(case["receivedAmount"]), int(case["maximumAmount"]))
    assert ilp.encode_amount_too_large(d) == raw


def test_f08_data_too_short() -> None:
    with pytest.raises(CodecError, match="maximumAmount"):
        ilp.decode_amount_too_large(bytes(12))


def test_prepare_with_invalid_destination_is_refused_both_ways() -> None:
    dest = ILP_ERRORS["prepare_invalid"][0]["destination"]
    p = ilp.Prepare(1, datetime(2020, 1, 1, tzinfo=UTC), bytes(32), dest)
    with pytest.raises(CodecError, match="destination"):
        ilp.encode_prepare(p)
    good = ilp.encode_prepare(ilp.Prepare(1, p.expires_at, bytes(32), "example.alicex"))
    with pytest.raises(CodecError, match="destination"):
        ilp.decode_prepare(good.replace(b"example.alicex", dest.encode()))


def test_every_error_code_has_a_name_and_family() -> None:
    codes = [v for k, v in vars(ilp.ErrorCode).items() if k[:1] in "FTR" and k[1:3].isdigit()]
    assert len(codes) == 21 and set(codes) == set(ilp.ERROR_NAMES)
    for code in codes:
        assert ilp.ErrorFamily.of(code).value == code[0]
    assert ilp.ErrorFamily.of("X01") is ilp.ErrorFamily.FINAL


# --- BTP ---------------------------------------------------------------------------------------------------


def expected_frame(d: dict[str, Any]) -> btp.Frame:
    pd = tuple(btp.ProtocolData(p["protocolName"], p["contentType"], bytes.fromhex(p["data"])) for p in d["protocolData"])
    kind, rid = d["type"], d["requestId"]
    if kind == 1:
        return btp.Response(rid, pd)
    if kind == 6:
        return btp.Message(rid, pd)
    if kind == 7:
        return btp.Transfer(rid, int(d["amount"]), pd)
    return btp.Error(rid, d["code"], d["name"], timestamps.decode_generalized_time(d["triggeredAt"]), d["data"].encode(), pd)


BTP_VALID = [(f"{src}-{k}", c) for src in ("js", "rs") for k, c in BTP[src].items()]


@pytest.mark.parametrize("name,case", BTP_VALID, ids=[n for n, _ in BTP_VALID])
def test_btp_valid(name: str, case: dict[str, Any]) -> None:
    raw = bytes.fromhex(case["hex"])
    assert btp.decode_frame(raw) == expected_frame(case["decoded"])
    assert btp.encode_frame(expected_frame(case["decoded"])) == raw


@pytest.mark.parametrize("case", BTP["rs_invalid"], ids=lambda c: c["why"] + c["hex"][:8])
def test_btp_invalid(case: dict[str, str]) -> None:
    with pytest.raises(CodecError):
        btp.decode_frame(bytes.fromhex(case["hex"]))


@pytest.mark.parametrize("case", BTP["rs_roundtrip"], ids=lambda c: c["hex"])
def test_btp_round_trip(case: dict[str, str]) -> None:
    raw = bytes.fromhex(case["hex"])
    frame = btp.decode_frame(raw)
    assert isinstance(frame, btp.Message) and frame.protocol_data[0].content_type == 253
    assert btp.encode_frame(frame) == raw


def test_btp_find() -> None:
    frame = expected_frame(BTP["js"]["message"]["decoded"])
    found = btp.find(frame.protocol_data, "beep")
    assert found is not None and found.data == b"boop"
    assert btp.find(frame.protocol_data, "nope") is None


# --- ILDCP -------------------------------------------------------------------------------------------------


def test_ildcp_request() -> None:
    now = iso(ILDCP["request"]["now"])
    raw = bytes.fromhex(ILDCP["request"]["hex"])
    assert ilp.encode_prepare(ildcp.request(now)) == raw
    prepare = ilp.decode_prepare(raw)
    assert ildcp.is_request(prepare)
    ildcp.check_request(prepare, now)
    assert ildcp.CONDITION.hex() == ILDCP["fixed"]["condition_hex"]


@pytest.mark.parametrize("case", ILDCP["request_invalid"], ids=lambda c: c["why"])
def test_ildcp_request_invalid(case: dict[str, str]) -> None:
    prepare = ilp.decode_prepare(bytes.fromhex(case["hex"]))
    with pytest.raises(CodecError):
        ildcp.check_request(prepare, iso(ILDCP["request"]["now"]))


def test_ildcp_response() -> None:
    case = ILDCP["response"]
    raw = bytes.fromhex(case["hex"])
    expected = ildcp.IldcpResponse(case["clientAddress"], case["assetScale"], case["assetCode"])
    fulfill = ilp.decode_reply(raw)
    assert isinstance(fulfill, ilp.Fulfill)
    assert ildcp.parse_fulfill(fulfill) == expected
    assert ilp.encode_fulfill(ildcp.response(expected)) == raw


def test_ildcp_response_wrong_fulfillment() -> None:
    fulfill = ilp.decode_reply(bytes.fromhex(ILDCP["response_invalid"][0]["hex"]))
    assert isinstance(fulfill, ilp.Fulfill)
    with pytest.raises(CodecError, match="fulfillment"):
        ildcp.parse_fulfill(fulfill)


@pytest.mark.parametrize("case", ILDCP["serve_reject"], ids=lambda c: c["message"][:20])
def test_ildcp_server_rejects(case: dict[str, str]) -> None:
    raw = bytes.fromhex(case["hex"])
    expected = ilp.Reject(case["code"], case["triggeredBy"], case["message"], b"")
    assert ilp.decode_reply(raw) == expected
    assert ilp.encode_reject(expected) == raw


# --- payment pointers --------------------------------------------------------------------------------------


@pytest.mark.parametrize("text,url", sorted(POINTERS["resolve"].items()))
def test_pointer_resolves(text: str, url: str) -> None:
    assert pointer.resolve(text) == url


@pytest.mark.parametrize("text", POINTERS["invalid"])
def test_pointer_invalid(text: str) -> None:
    given = text.split(" (")[0]
    with pytest.raises(CodecError) as err:
        pointer.resolve(given)
    reason = text.partition(" (")[2]
    if reason:
        word = reason.split()[0]  # port, userinfo, query, fragment: the message names it
        assert {"port": "port", "userinfo": "user info", "query": "query", "fragment": "fragment"}[word] in str(err.value)


def test_generalized_time_with_trailing_zero_is_read_leniently() -> None:
    # RFC 30 calls "20171224230000.20Z" non-canonical; we read what peers write and only write the JS form.
    assert timestamps.decode_generalized_time("20171224230000.20Z") == datetime(2017, 12, 24, 23, 0, 0, 200000, tzinfo=UTC)
