"""Per-stream state on its own: the state table, the send and receive halves, the connection's stream table."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moneyd.stream.packet import (
    ConnectionDataBlocked,
    ErrorCode,
    Frame,
    StreamClose,
    StreamData,
    StreamDataBlocked,
    StreamMaxData,
    StreamMaxMoney,
    StreamMoney,
    StreamMoneyBlocked,
)
from moneyd.stream.streams import (
    DATA_FRAME_OVERHEAD,
    TRANSITIONS,
    InvalidTransition,
    ReceiveHalf,
    SendHalf,
    StreamRecord,
    StreamState,
    StreamTable,
    Trigger,
    split_money,
)
from moneyd.wire.oer import UINT64_MAX

# --- the state table ------------------------------------------------------------------------------------------


def test_every_live_state_can_end_and_closed_is_final() -> None:
    for state in StreamState:
        if state is StreamState.CLOSED:
            assert not any(s is state for s, _ in TRANSITIONS)
        else:
            assert TRANSITIONS[state, Trigger.FINISH] is StreamState.CLOSED
            assert TRANSITIONS[state, Trigger.REMOTE_END] is StreamState.CLOSED
    assert set(TRANSITIONS.values()) | {StreamState.OPEN} == set(StreamState)  # every state is reachable


def test_close_flushes_then_ends_in_a_prepare_that_may_be_lost() -> None:
    s = StreamRecord(1)
    path = [Trigger.CLOSE, Trigger.END_IN_PREPARE, Trigger.END_LOST, Trigger.END_IN_PREPARE, Trigger.END_ACKED]
    seen = [s.apply(t) for t in path] + [s.state]
    assert seen == [StreamState.OPEN, StreamState.CLOSING, StreamState.END_SENT, StreamState.CLOSING,
                    StreamState.END_SENT, StreamState.CLOSED]


def test_a_close_in_a_reply_is_final() -> None:
    s = StreamRecord(2)
    s.apply(Trigger.CLOSE)
    assert s.apply(Trigger.END_IN_REPLY) is StreamState.CLOSING and s.state is StreamState.CLOSED


@pytest.mark.parametrize(("state", "trigger"), [
    (StreamState.OPEN, Trigger.END_IN_PREPARE),  # a StreamClose before the application closed
    (StreamState.OPEN, Trigger.END_ACKED),
    (StreamState.CLOSING, Trigger.CLOSE),  # closing twice is the connection's to filter out
    (StreamState.END_SENT, Trigger.END_IN_REPLY),  # our StreamClose twice
    (StreamState.CLOSED, Trigger.FINISH),
])
def test_transitions_the_table_does_not_list_raise(state: StreamState, trigger: Trigger) -> None:
    s = StreamRecord(1, state=state)
    with pytest.raises(InvalidTransition, match=f"stream 1: {trigger.value} while {state.value}"):
        s.apply(trigger)
    assert s.state is state


def test_only_an_open_stream_makes_money_available() -> None:
    s = StreamRecord(1)
    s.send.send_max, s.send.total_sent, s.send.held = 100, 30, 20
    assert s.available == 50
    s.close(ErrorCode.NO_ERROR, "")
    assert s.available == 0 and s.send.allowance == 50


def test_graceful_close_keeps_unsent_bytes_an_error_drops_them() -> None:
    graceful, failed = StreamRecord(1), StreamRecord(3)
    for s in (graceful, failed):
        s.send.out_buf += b"abc"
        s.send.retransmit.append((0, b"xyz"))
    graceful.close(ErrorCode.NO_ERROR, "")
    failed.close(ErrorCode.APPLICATION_ERROR, "gone")
    assert graceful.send.unsent_bytes == 6 and not graceful.end_due
    assert failed.send.unsent_bytes == 0 and failed.end_due
    assert failed.end_frame() == StreamClose(3, ErrorCode.APPLICATION_ERROR, "gone")


def test_end_is_due_only_when_nothing_is_in_flight() -> None:
    s = StreamRecord(1)
    s.close(ErrorCode.NO_ERROR, "")
    assert s.end_due
    s.send.held = 1
    assert not s.end_due
    s.send.held, s.send.unacked = 0, 5
    assert not s.end_due


# --- the send half --------------------------------------------------------------------------------------------


def test_money_settles_paid_or_back_to_the_allowance() -> None:
    h = SendHalf(send_max=100, held=60)
    h.money_settled(40, paid=True)
    h.money_settled(20, paid=False)
    assert (h.total_sent, h.held, h.allowance) == (40, 0, 60)


def test_peer_limits_first_replace_unlimited_then_never_go_down() -> None:
    h = SendHalf()
    h.on_max_money(500, 10)
    assert (h.remote_receive_max, h.remote_received) == (500, 10)
    h.on_max_money(400, 5)
    assert (h.remote_receive_max, h.remote_received) == (500, 10)
    h.on_max_data(100)
    assert h.remote_max_offset == 16384  # never below the default window


def test_room_in_source_counts_money_in_flight_at_the_rate() -> None:
    h = SendHalf(remote_receive_max=1000, remote_received=400, held=100)
    assert h.room_in_source(Fraction(2)) == 200  # 1000 - 400 - 100*2 = 400 destination units = 200 of ours
    assert SendHalf().room_in_source(Fraction(2)) == UINT64_MAX
    h.held = 300
    assert h.room_in_source(Fraction(2)) == 0


def test_money_blocked_is_said_once_per_state() -> None:
    h = SendHalf(send_max=10, total_sent=3)
    assert h.money_blocked(7) == StreamMoneyBlocked(7, 10, 3)
    assert h.money_blocked(7) is None
    h.total_sent = 4
    assert h.money_blocked(7) == StreamMoneyBlocked(7, 10, 4)


def test_take_bytes_resends_lost_chunks_first_and_respects_every_window() -> None:
    h = SendHalf(remote_max_offset=10)
    h.out_buf += b"0123456789abcdef"
    chunks, budget, new = h.take_bytes(budget=1000, conn_room=6)
    assert chunks == [(0, b"012345")] and new == 6 and budget == 1000 - 6 - DATA_FRAME_OVERHEAD
    h.bytes_settled(0, b"012345", lost=True)
    chunks, _, new = h.take_bytes(budget=1000, conn_room=100)
    assert chunks == [(0, b"012345"), (6, b"6789")] and new == 4  # the stream window stops at 10
    assert h.unacked == 10
    assert h.data_blocked(5) == StreamDataBlocked(5, 16)
    assert h.data_blocked(5) is None  # once per offset
    h.bytes_settled(0, b"012345", lost=False)
    h.bytes_settled(6, b"6789", lost=False)
    assert h.unacked == 0 and h.unsent_bytes == 6


def test_take_bytes_splits_a_lost_chunk_that_does_not_fit() -> None:
    h = SendHalf()
    h.retransmit.append((100, b"x" * 200))
    chunks, _, new = h.take_bytes(budget=150, conn_room=0)
    assert chunks == [(100, b"x" * 150)] and new == 0
    assert list(h.retransmit) == [(250, b"x" * 50)]


# --- the receive half -----------------------------------------------------------------------------------------


def test_reassembly_in_order_with_overlaps_and_duplicates() -> None:
    r = ReceiveHalf()
    assert r.receive(5, b"fgh") is False  # a gap before it: nothing readable yet
    assert r.receive(0, b"abc") is True
    assert r.read() == b"abc"
    assert r.receive(0, b"abc") is False  # duplicate
    assert r.receive(2, b"cde") is True  # overlaps what was read, fills the gap
    assert r.read(2) == b"de" and r.read() == b"fgh"
    assert (r.next_offset, r.consumed, r.max_acceptable_offset) == (8, 8, 8 + r.buffer)
    assert r.receive(8, b"") is False


@given(st.binary(min_size=1, max_size=400), st.integers(0, 2**32), st.lists(st.integers(1, 50), min_size=1))
def test_any_chunking_and_order_reassembles_the_same_bytes(data: bytes, seed: int, sizes: list[int]) -> None:
    pieces, offset, i = [], 0, 0
    while offset < len(data):
        size = sizes[i % len(sizes)]
        pieces.append((offset, data[offset:offset + size]))
        offset, i = offset + size, i + 1
    rng = random.Random(seed)
    deliveries = pieces + rng.sample(pieces, k=min(3, len(pieces)))  # some arrive twice
    rng.shuffle(deliveries)
    r = ReceiveHalf(buffer=len(data))
    for off, chunk in deliveries:
        r.receive(off, chunk)
        assert not r.over_limit()
    assert r.read() == data and not r.pending


def test_bytes_beyond_the_window_are_over_the_limit() -> None:
    r = ReceiveHalf(buffer=10)
    assert not r.over_limit()
    r.receive(8, b"ab")
    assert not r.over_limit()
    r.receive(9, b"abc")
    assert r.over_limit()


def test_money_limit_allows_one_percent_of_rounding() -> None:
    r = ReceiveHalf(receive_max=1000, total_received=900)
    assert r.accepts(101) and not r.accepts(102)
    assert ReceiveHalf(receive_max=0).accepts(0) and not ReceiveHalf(receive_max=0).accepts(1)


def test_limits_are_advertised_when_they_change_and_again_when_lost() -> None:
    r = ReceiveHalf(receive_max=50, buffer=100)
    assert r.limits_changed
    assert r.advertise(3) == [StreamMaxMoney(3, 50, 0), StreamMaxData(3, 100)]
    assert not r.limits_changed
    r.receive(0, b"xy")
    r.read()
    assert r.limits_changed  # reading moved the window
    r.advertise(3)
    r.forget_advert()
    assert r.limits_changed


# --- the stream table -----------------------------------------------------------------------------------------


def table(is_server: bool = False, streams: int = 2) -> StreamTable:
    return StreamTable(is_server=is_server, max_remote_streams=streams, stream_buffer=100, connection_buffer=1000)


def test_ids_follow_the_role_and_the_peer_limit() -> None:
    client, server = table(), table(is_server=True)
    assert [client.open_local().id for _ in range(2)] == [1, 3]  # type: ignore[union-attr]
    assert client.open_local() is None and client.next_local_id == 5  # the peer allows up to 4
    client.on_remote_max_id(6)
    assert client.open_local() is not None
    assert server.open_local().id == 2  # type: ignore[union-attr]
    assert client.opened_by_peer(2) and not client.opened_by_peer(1)
    assert server.opened_by_peer(1) and not server.opened_by_peer(2)
    assert client.allow_another_remote() == 6


def test_retired_streams_keep_unread_bytes_readable() -> None:
    t = table(is_server=True)
    a, b = t.add(1, receive_max=0), t.add(3, receive_max=7)
    assert b.recv.receive_max == 7 and b.recv.buffer == 100
    a.recv.receive(0, b"left")
    t.retire(a)
    t.retire(b)
    assert len(t) == 0 and 1 not in t and t.is_retired(1) and t.is_retired(3)
    assert t.readable(1) is a and t.readable(3) is None and t.get(1) is None


def test_connection_window_spans_all_streams() -> None:
    t = table()
    a, b = t.open_local(), t.open_local()
    assert a is not None and b is not None
    a.send.send_offset, b.send.send_offset = 600, 400
    assert t.connection_room() == 0 and t.connection_blocked() is None  # nothing waiting
    b.send.out_buf += b"zz"
    assert t.connection_blocked() == ConnectionDataBlocked(1002)
    assert t.connection_blocked() is None
    t.on_remote_max_data(2000)
    assert t.connection_room() == 1000
    a.recv.consumed = 30
    assert t.max_acceptable_offset() == 1030


def test_money_is_shared_out_in_stream_order_within_the_packet_amount() -> None:
    t = table()
    a, b = t.open_local(), t.open_local()
    assert a is not None and b is not None
    a.send.send_max, b.send.send_max = 70, 50
    frames: list[Frame] = []
    assert t.take_money(Fraction(1), 100, frames) == {1: 70, 3: 30}
    assert (a.send.held, b.send.held, a.available, b.available) == (70, 30, 0, 20)
    assert frames == []
    assert t.take_money(Fraction(1), 100, frames) == {3: 20}


def test_money_stops_at_the_receivers_limit_and_says_so_once() -> None:
    t = table()
    s = t.open_local()
    assert s is not None
    s.send.send_max = 100
    s.send.on_max_money(receive_max=60, total_received=0)
    frames: list[Frame] = []
    assert t.take_money(Fraction(2), 1000, frames) == {1: 30}  # 30 of ours is 60 of theirs
    assert frames == [StreamMoneyBlocked(1, 100, 0)]
    assert t.take_money(Fraction(2), 1000, frames) == {}
    assert frames == [StreamMoneyBlocked(1, 100, 0)]


def test_a_closing_stream_sends_no_new_money() -> None:
    t = table()
    s = t.open_local()
    assert s is not None
    s.send.send_max = 100
    s.close(ErrorCode.NO_ERROR, "")
    assert t.take_money(Fraction(1), 1000, []) == {}


def test_data_fills_the_packet_from_each_stream_and_adds_its_frames() -> None:
    t = table()
    a, b = t.open_local(), t.open_local()
    assert a is not None and b is not None
    a.send.out_buf += b"a" * 700
    b.send.out_buf += b"b" * 700
    frames: list[Frame] = []
    out = t.take_data(budget=10_000, frames=frames)
    # The peer's connection window (1000 here) is shared: the second stream gets what is left, then it is blocked.
    assert [(sid, off, len(chunk)) for sid, off, chunk in out] == [(1, 0, 700), (3, 0, 300)]
    assert frames == [ConnectionDataBlocked(1400), StreamData(1, 0, b"a" * 700), StreamData(3, 0, b"b" * 300)]


def test_adverts_skip_streams_whose_end_is_in_flight() -> None:
    t = table()
    a, b = t.open_local(), t.open_local()
    assert a is not None and b is not None
    b.close(ErrorCode.NO_ERROR, "")
    b.apply(Trigger.END_IN_PREPARE)
    frames, ids = t.adverts()
    assert ids == [1] and frames == [StreamMaxMoney(1, 0, 0), StreamMaxData(1, 100)]
    assert t.adverts() == ([], [])


def test_incoming_money_is_split_by_shares_rounding_down() -> None:
    frames = (StreamMoney(1, 1), StreamMoney(3, 2), StreamMaxData(5, 10), StreamMoney(1, 1))
    assert split_money(frames, 100) == {1: 50, 3: 50}
    assert split_money((StreamMoney(1, 1), StreamMoney(3, 2)), 100) == {1: 33, 3: 66}
    assert split_money((StreamMoney(1, 0),), 100) == {}
    assert split_money((), 100) == {}


def test_credits_are_refused_for_closed_or_full_streams() -> None:
    t = table(is_server=True)
    s = t.add(1, receive_max=100)
    assert t.refuse_credits({1: 101}) is None  # 1% of rounding allowed
    assert t.refuse_credits({1: 102}) == StreamMaxMoney(1, 100, 0)
    assert t.refuse_credits({5: 1}) == StreamClose(5, ErrorCode.STREAM_STATE_ERROR, "Stream is already closed")
    s.close(ErrorCode.NO_ERROR, "")
    assert t.refuse_credits({1: 1}) == StreamClose(1, ErrorCode.STREAM_STATE_ERROR, "Stream is already closed")
