"""Property tests: every packet survives encode → decode, and random bytes only ever raise CodecError."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from moneyd import pointer
from moneyd.wire import btp, ildcp, ilp, oer
from moneyd.wire.errors import CodecError
from tests.support.strategies import (
    ADDRESSES,
    FRAMES,
    FULFILLS,
    PREPARES,
    REJECTS,
    U64,
)


@given(st.one_of(PREPARES, FULFILLS, REJECTS))
def test_ilp_round_trip(packet: ilp.Packet) -> None:
    assert ilp.decode_packet(ilp.encode_packet(packet)) == packet


@given(FRAMES)
def test_btp_round_trip(frame: btp.Frame) -> None:
    assert btp.decode_frame(btp.encode_frame(frame)) == frame


@given(st.builds(ildcp.IldcpResponse, ADDRESSES, st.integers(0, 255), st.text(max_size=10)))
def test_ildcp_round_trip(resp: ildcp.IldcpResponse) -> None:
    assert ildcp.parse_fulfill(ildcp.response(resp)) == resp


@given(U64, U64)
def test_f08_round_trip(received: int, maximum: int) -> None:
    d = ilp.AmountTooLargeData(received, maximum)
    assert ilp.decode_amount_too_large(ilp.encode_amount_too_large(d)) == d


@given(st.integers(min_value=0, max_value=2**200))
def test_var_uint_round_trip(value: int) -> None:
    raw = oer.encode_var_uint(value)
    assert oer.Reader(raw).read_var_uint_saturating() == min(value, 2**64 - 1)
    if value < 2**64:
        assert oer.Reader(raw).read_var_uint() == value


@settings(max_examples=400)
@given(st.binary(max_size=200))
def test_random_bytes_only_raise_codec_error(raw: bytes) -> None:
    for decode in (ilp.decode_packet, ilp.decode_prepare, ilp.decode_reply, btp.decode_frame, ildcp.decode_response,
                   ilp.decode_amount_too_large):
        with contextlib.suppress(CodecError):
            decode(raw)


@settings(max_examples=300)
@given(st.one_of(PREPARES, FULFILLS, REJECTS), st.data())
def test_corrupted_packets_only_raise_codec_error(packet: ilp.Packet, data: st.DataObject) -> None:
    raw = bytearray(ilp.encode_packet(packet))
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    for candidate in (bytes(raw), bytes(raw[:cut])):
        with contextlib.suppress(CodecError):
            ilp.decode_packet(candidate)


@settings(max_examples=300)
@given(FRAMES, st.data())
def test_corrupted_frames_only_raise_codec_error(frame: btp.Frame, data: st.DataObject) -> None:
    raw = bytearray(btp.encode_frame(frame))
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] = data.draw(st.integers(0, 255))
    with contextlib.suppress(CodecError):
        btp.decode_frame(bytes(raw[: data.draw(st.integers(0, len(raw)))]))


@given(st.text(max_size=60))
def test_pointer_resolve_only_raises_codec_error(text: str) -> None:
    try:
        url = pointer.resolve(text)
    except CodecError:
        return
    assert url.startswith("https://") and "?" not in url and "#" not in url
