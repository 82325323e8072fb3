"""Hypothesis strategies for the wire's packets and frames (ILP, BTP), shared by the codecs' property tests and the
ILP-over-BTP tests."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import strategies as st

from moneyd.wire import address, btp, ilp

SEGMENT = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_~", min_size=1, max_size=20)
ADDRESSES = st.builds(
    lambda scheme, segs: ".".join([scheme, *segs]),
    st.sampled_from(sorted(address.SCHEMES)),
    st.lists(SEGMENT, min_size=1, max_size=6),
)
TIMES = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)).map(
    lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)
)
U64 = st.integers(min_value=0, max_value=2**64 - 1)
BLOBS = st.binary(max_size=300)
B32 = st.binary(min_size=32, max_size=32)
CODES = st.sampled_from(sorted(ilp.ERROR_NAMES))

PREPARES = st.builds(ilp.Prepare, U64, TIMES, B32, ADDRESSES, BLOBS)
FULFILLS = st.builds(ilp.Fulfill, B32, BLOBS)
REJECTS = st.builds(ilp.Reject, CODES, st.one_of(st.just(""), ADDRESSES), st.text(max_size=100), BLOBS)

PROTOCOL_DATA = st.lists(
    st.builds(btp.ProtocolData, st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", max_size=20), st.integers(0, 255), BLOBS),
    max_size=5,
).map(tuple)
REQUEST_IDS = st.integers(min_value=0, max_value=2**32 - 1)
FRAMES = st.one_of(
    st.builds(btp.Message, REQUEST_IDS, PROTOCOL_DATA),
    st.builds(btp.Response, REQUEST_IDS, PROTOCOL_DATA),
    st.builds(btp.Transfer, REQUEST_IDS, U64, PROTOCOL_DATA),
    st.builds(
        btp.Error,
        REQUEST_IDS,
        st.sampled_from(["F00", "F01", "T00", "T01"]),
        st.text(alphabet="abcdefghijklmnopqrstuvwxyzA", max_size=30),
        TIMES,
        BLOBS,
        PROTOCOL_DATA,
    ),
)
