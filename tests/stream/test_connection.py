"""The sans-I/O STREAM Connection: two of them back to back over a simulated path, and hostile peers."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moneyd.stream import crypto
from moneyd.stream import packet as sp
from moneyd.stream.connection import (
    MAX_SEQUENCE,
    Connected,
    Connection,
    ConnectionConfig,
    ConnectionTerminated,
    MoneyReceived,
    RemoteAddress,
    RemoteAssetDetails,
    StreamClosed,
    StreamError,
    StreamOpened,
)
from moneyd.wire.ilp import Fulfill, Prepare, Reject, Reply
from moneyd.wire.oer import UINT64_MAX
from tests.support.stream_harness import CLIENT_ADDRESS, SECRET, SERVER_ADDRESS, Pair, Path, make_pair


def closed(events: Sequence[object]) -> ConnectionTerminated | None:
    return next((e for e in events if isinstance(e, ConnectionTerminated)), None)


def send(pair: Pair, amount: int) -> int:
    sid = pair.client.open_stream()
    pair.client.set_send_max(sid, amount)
    pair.run(until=lambda: pair.client.closed or pair.client.stream_totals(sid)[1] >= amount)
    return sid


def received(pair: Pair) -> int:
    return sum(e.amount for e in pair.server_events if isinstance(e, MoneyReceived))


# --- money ----------------------------------------------------------------------------------------------------


def test_money_arrives_exactly_and_handshake_events() -> None:
    pair = make_pair()
    sid = send(pair, 1000)
    assert pair.client.stream_totals(sid)[1] == 1000
    assert pair.client.total_sent == 1000 == pair.client.total_delivered == pair.server.total_received
    assert received(pair) == 1000
    assert Connected(Fraction(1)) in pair.client_events
    assert RemoteAddress(CLIENT_ADDRESS) in pair.server_events
    assert RemoteAssetDetails("XRP", 9) in pair.server_events
    assert RemoteAssetDetails("USD", 2) in pair.client_events
    assert StreamOpened(1) in pair.server_events


def test_exchange_rate_is_probed_and_max_packet_amount_learned_from_f08() -> None:
    pair = make_pair(Path(rate=Fraction(5, 2), max_packet=37))
    send(pair, 10_000)
    assert pair.client.exchange_rate == Fraction(92, 37)  # 37 units arrive as floor(92.5)
    assert pair.client.total_sent == 10_000
    assert pair.client.total_delivered == pair.server.total_received == received(pair)
    assert pair.server.total_received >= 24_750  # every packet rounds down at most half a unit
    assert pair.client.packets_sent >= 10_000 // 37
    assert pair.path.max_seen_in_flight > 1  # a window, not one packet at a time


def test_small_max_packet_amount_still_connects() -> None:
    # ilp-protocol-stream needs 3 digits of precision and gives up here; we take the best the path allows.
    pair = make_pair(Path(max_packet=5))
    send(pair, 200)
    assert pair.server.total_received == 200
    assert pair.client.packets_sent == 40


def test_t04_liquidity_backs_off_and_completes() -> None:
    pair = make_pair(Path(liquidity=50, t04_chance=0.1))
    send(pair, 5000)
    assert pair.client.total_sent == 5000 == pair.server.total_received
    assert pair.now > 0.1  # it waited


def test_lost_packets_are_retried() -> None:
    pair = make_pair(Path(max_packet=100, loss=0.2))
    send(pair, 3000)
    assert pair.client.total_sent == 3000 == pair.server.total_received


def test_money_split_across_streams() -> None:
    pair = make_pair(Path(max_packet=1000))
    a, b = pair.client.open_stream(), pair.client.open_stream()
    pair.client.set_send_max(a, 700)
    pair.client.set_send_max(b, 300)
    pair.run(until=lambda: pair.client.total_sent >= 1000)
    got = {sid: sum(e.amount for e in pair.server_events if isinstance(e, MoneyReceived) and e.stream_id == sid)
           for sid in (a, b)}
    assert got == {a: 700, b: 300}


def test_receiver_limit_is_respected() -> None:
    pair = make_pair(server_config=ConnectionConfig(default_receive_max=0))
    sid = pair.client.open_stream()
    pair.client.set_send_max(sid, 500)
    pair.run(until=lambda: any(isinstance(e, StreamOpened) for e in pair.server_events))
    pair.server.set_receive_max(sid, 300)
    pair.run(until=lambda: pair.server.total_received >= 300, max_steps=2000)
    for _ in range(50):
        pair.step()
        pair.now += 0.5
    assert pair.server.total_received == 300
    assert pair.client.stream_totals(sid)[1] == 300
    pair.server.set_receive_max(sid, 500)
    pair.run(until=lambda: pair.client.stream_totals(sid)[1] >= 500)
    assert pair.server.total_received == 500


def test_server_sends_money_back() -> None:
    pair = make_pair(client_config=ConnectionConfig(default_receive_max=UINT64_MAX))
    pair.client.connect()
    pair.run(until=lambda: pair.server.destination_account is not None)
    sid = pair.server.open_stream()
    assert sid % 2 == 0
    pair.server.set_send_max(sid, 777)
    pair.run(until=lambda: pair.server.total_sent >= 777)
    assert pair.client.total_received == 777


# --- slippage ---------------------------------------------------------------------------------------------------


def test_rate_drop_beyond_slippage_stops_the_payment() -> None:
    pair = make_pair(Path(max_packet=100))
    sid = pair.client.open_stream()
    pair.client.set_send_max(sid, 10_000)
    pair.run(until=lambda: pair.client.total_sent >= 1000)
    pair.path.rate = Fraction(9, 10)  # worse than the 1% the sender allows
    pair.run(until=lambda: pair.client.closed)
    event = closed(pair.client_events)
    assert event is not None and not event.ok
    assert "exchange rate fell below the minimum" in event.message
    assert pair.client.total_sent < 10_000
    assert pair.server.total_received == pair.client.total_delivered
    # Nothing was paid at the worse rate: the receiver refused every such packet.
    assert pair.client.total_delivered == pair.client.total_sent


def test_min_exchange_rate_refuses_a_bad_path() -> None:
    pair = make_pair(Path(rate=Fraction(1, 2)), client_config=ConnectionConfig(min_exchange_rate=Fraction(3, 4)))
    sid = pair.client.open_stream()
    pair.client.set_send_max(sid, 100)
    pair.run(until=lambda: pair.client.closed)
    event = closed(pair.client_events)
    assert event is not None and "below the minimum acceptable" in event.message
    assert pair.client.total_sent == 0 == pair.server.total_received


def test_min_exchange_rate_is_enforced_per_packet() -> None:
    pair = make_pair(Path(max_packet=100), client_config=ConnectionConfig(min_exchange_rate=Fraction(1), slippage=Fraction(1, 2)))
    sid = pair.client.open_stream()
    pair.client.set_send_max(sid, 5000)
    pair.run(until=lambda: pair.client.total_sent >= 500)
    pair.path.rate = Fraction(99, 100)
    pair.run(until=lambda: pair.client.closed)
    assert pair.server.total_received == pair.client.total_sent  # nothing below rate 1 was accepted


# --- data --------------------------------------------------------------------------------------------------------


def test_data_both_ways_in_order_with_flow_control() -> None:
    pair = make_pair(Path(loss=0.1, seed=7))
    blob = os.urandom(200_000)
    sid = pair.client.open_stream()
    pair.client.write(sid, blob)
    got = bytearray()
    for _ in range(20_000):
        pair.step()
        pair.now += 0.01
        got += pair.server.read(sid, 5000)  # a slow reader: the sender must wait for window updates
        if len(got) == len(blob):
            break
    assert bytes(got) == blob
    pair.server.write(sid, b"pong" * 10_000)
    back = bytearray()
    for _ in range(5000):
        pair.step()
        pair.now += 0.01
        back += pair.client.read(sid)
        if len(back) == 40_000:
            break
    assert bytes(back) == b"pong" * 10_000


def test_stream_close_both_ways() -> None:
    pair = make_pair()
    sid = send(pair, 10)
    pair.client.write(sid, b"bye")
    pair.client.close_stream(sid)
    pair.run(until=lambda: any(isinstance(e, StreamClosed) for e in pair.server_events))
    assert pair.server.read(sid) == b"bye"  # still readable after the close
    assert StreamClosed(sid, sp.ErrorCode.NO_ERROR, "", True) in pair.server_events
    # Server closes its own stream: the client learns it in a reply.
    s2 = pair.server.open_stream()
    pair.server.write(s2, b"x")
    pair.run(until=lambda: any(isinstance(e, StreamOpened) and e.stream_id == s2 for e in pair.client_events))
    pair.server.close_stream(s2, sp.ErrorCode.APPLICATION_ERROR, "done here")
    pair.run(until=lambda: any(isinstance(e, StreamClosed) and e.stream_id == s2 for e in pair.client_events))
    assert StreamClosed(s2, sp.ErrorCode.APPLICATION_ERROR, "done here", True) in pair.client_events


def test_connection_close_from_client_and_from_server() -> None:
    pair = make_pair()
    send(pair, 10)
    pair.client.close()
    pair.run(until=lambda: pair.client.closed and pair.server.closed)
    c, s = closed(pair.client_events), closed(pair.server_events)
    assert c is not None and c.ok and not c.by_remote and c.total_sent == 10
    assert s is not None and s.ok and s.by_remote and s.total_received == 10

    pair = make_pair()
    send(pair, 10)
    pair.server.close(sp.ErrorCode.APPLICATION_ERROR, "server going away")
    pair.run(until=lambda: pair.client.closed)
    c = closed(pair.client_events)
    assert c is not None and c.by_remote and c.message == "server going away"


def test_closed_connection_answers_with_connection_close() -> None:
    pair = make_pair()
    sid = send(pair, 10)
    pair.server._finish(sp.ErrorCode.NO_ERROR, "", False)  # white-box: closed without telling the client
    pair.client.set_send_max(sid, 20)
    pair.run(until=lambda: pair.client.closed)
    c = closed(pair.client_events)
    assert c is not None and c.by_remote and c.ok
    assert pair.server.total_received == 10 and pair.client.total_sent == 10


def test_idle_timeout() -> None:
    pair = make_pair()
    send(pair, 10)
    pair.now += 61
    pair.client.handle_timer(pair.now)
    pair.drain()
    c = closed(pair.client_events)
    assert c is not None and "inactivity" in c.message
    # It tells the peer.
    assert pair.client.poll(pair.now)[0].prepare.amount == 0


def test_packet_sequence_limit() -> None:
    pair = make_pair()
    pair.client._next_sequence = MAX_SEQUENCE - 1  # white-box: skip two billion packets
    sid = pair.client.open_stream()
    pair.client.set_send_max(sid, 10)
    pair.run(until=lambda: pair.client.closed)
    c = closed(pair.client_events)
    assert c is not None and "maximum number of packets" in c.message


def test_stream_limits() -> None:
    pair = make_pair()
    pair.client.connect()
    pair.run(until=lambda: pair.client.exchange_rate is not None)
    for _ in range(10):
        pair.client.open_stream()
    with pytest.raises(StreamError):
        pair.client.open_stream()
    with pytest.raises(StreamError):
        pair.client.set_send_max(99, 1)


# --- hostile peers ------------------------------------------------------------------------------------------------


def prepare_to(conn_secret: bytes, packet: sp.StreamPacket, amount: int = 0, fulfillable: bool = True) -> Prepare:
    sealed = crypto.encrypt(crypto.encryption_key(conn_secret), sp.encode_stream_packet(packet))
    f = crypto.fulfillment(crypto.fulfillment_key(conn_secret), sealed)
    cond = crypto.condition(f) if fulfillable else os.urandom(32)
    return Prepare(amount, datetime(2030, 1, 1, tzinfo=UTC), cond, SERVER_ADDRESS, sealed)


def fresh_server() -> Connection:
    return Connection(SECRET, is_server=True, now=0, source_account=SERVER_ADDRESS,
                      config=ConnectionConfig(default_receive_max=1000))


def test_undecryptable_and_wrong_type_prepares_get_f06() -> None:
    server = fresh_server()
    bad = Prepare(5, datetime(2030, 1, 1, tzinfo=UTC), b"\0" * 32, SERVER_ADDRESS, b"garbage" * 9)
    assert isinstance(r := server.handle_prepare(bad, 0), Reject) and r.code == "F06"
    wrong = prepare_to(SECRET, sp.StreamPacket(1, sp.PacketType.FULFILL, 0, ()))
    assert isinstance(r := server.handle_prepare(wrong, 0), Reject) and r.code == "F06"
    assert not server.closed


def test_unfulfillable_prepare_gets_f99_with_amount() -> None:
    server = fresh_server()
    reply = server.handle_prepare(prepare_to(SECRET, sp.StreamPacket(1, sp.PacketType.PREPARE, 0, ()), 1234, False), 0)
    assert isinstance(reply, Reject) and reply.code == "F99"
    answer = sp.decode_stream_packet(crypto.decrypt(crypto.encryption_key(SECRET), reply.data))
    assert (answer.sequence, answer.packet_type, answer.prepare_amount) == (1, sp.PacketType.REJECT, 1234)


def test_wrong_stream_parity_and_too_many_streams_close_the_connection() -> None:
    server = fresh_server()
    reply = server.handle_prepare(prepare_to(SECRET, sp.StreamPacket(1, sp.PacketType.PREPARE, 0,
                                                                       (sp.StreamMoney(2, 1),)), 10), 0)
    assert isinstance(reply, Reject) and reply.code == "F99"
    frames = sp.decode_stream_packet(crypto.decrypt(crypto.encryption_key(SECRET), reply.data)).frames
    assert any(isinstance(f, sp.ConnectionClose) and f.error_code == sp.ErrorCode.PROTOCOL_VIOLATION for f in frames)
    assert server.closed
    server = fresh_server()
    reply = server.handle_prepare(prepare_to(SECRET, sp.StreamPacket(1, sp.PacketType.PREPARE, 0,
                                                                       (sp.StreamMoney(999, 1),)), 10), 0)
    assert isinstance(reply, Reject) and server.closed


def test_absurd_numbers_from_a_sender_do_not_crash_the_receiver() -> None:
    server = fresh_server()
    frames = (sp.StreamMoney(1, UINT64_MAX), sp.StreamMoney(3, UINT64_MAX), sp.StreamMaxMoney(1, UINT64_MAX, UINT64_MAX),
              sp.StreamData(1, UINT64_MAX - 1, b"x"), sp.ConnectionMaxStreamId(UINT64_MAX),
              sp.ConnectionNewAddress("not an address!"))
    reply = server.handle_prepare(prepare_to(SECRET, sp.StreamPacket(1, sp.PacketType.PREPARE, UINT64_MAX, frames),
                                             UINT64_MAX), 0)
    assert isinstance(reply, Reject)
    assert server.total_received == 0


def test_data_beyond_the_window_is_a_flow_control_error() -> None:
    server = fresh_server()
    reply = server.handle_prepare(prepare_to(SECRET, sp.StreamPacket(1, sp.PacketType.PREPARE, 0,
                                                                       (sp.StreamData(1, 20_000, b"x"),))), 0)
    assert isinstance(reply, Reject) and server.closed
    assert server.close_event is not None and server.close_event.error_code == sp.ErrorCode.FLOW_CONTROL_ERROR


class Liar:
    """A receiver that knows the secret but answers however the test likes."""

    def __init__(self, answer: str) -> None:
        self.answer = answer
        self.key = crypto.encryption_key(SECRET)
        self.fkey = crypto.fulfillment_key(SECRET)

    def reply(self, p: Prepare) -> Reply:
        request = sp.decode_stream_packet(crypto.decrypt(self.key, p.data))
        f = crypto.fulfillment(self.fkey, p.data)

        def seal(pkt: sp.StreamPacket) -> bytes:
            return crypto.encrypt(self.key, sp.encode_stream_packet(pkt))

        if crypto.condition(f) != p.execution_condition:  # a probe: answer honestly so money starts flowing
            return Reject("F99", SERVER_ADDRESS, "", seal(sp.StreamPacket(request.sequence, sp.PacketType.REJECT,
                                                                           p.amount, ())))
        match self.answer:
            case "garbage":
                return Fulfill(f, b"\x01" * 40)
            case "wrong_type":
                return Fulfill(f, seal(sp.StreamPacket(request.sequence, sp.PacketType.REJECT, p.amount, ())))
            case "wrong_sequence":
                return Fulfill(f, seal(sp.StreamPacket(request.sequence + 7, sp.PacketType.FULFILL, p.amount, ())))
            case "absurd":
                frames: tuple[sp.Frame, ...] = (sp.StreamMaxMoney(1, UINT64_MAX, UINT64_MAX), sp.ConnectionMaxData(UINT64_MAX),
                          sp.StreamMaxData(1, UINT64_MAX), sp.ConnectionMaxStreamId(UINT64_MAX))
                return Fulfill(f, seal(sp.StreamPacket(request.sequence, sp.PacketType.FULFILL, UINT64_MAX, frames)))
            case "raise_limit":
                return Fulfill(f, seal(sp.StreamPacket(request.sequence, sp.PacketType.FULFILL, p.amount,
                                                       (sp.StreamMaxMoney(1, UINT64_MAX, 0),))))
            case "wrong_fulfillment":
                return Fulfill(os.urandom(32), b"")
            case "f99_garbage":
                return Reject("F99", SERVER_ADDRESS, "", b"\x07" * 50)
            case "f99_forever":
                return Reject("F99", SERVER_ADDRESS, "", seal(sp.StreamPacket(request.sequence, sp.PacketType.REJECT,
                                                                              p.amount, ())))
        raise AssertionError(self.answer)


@pytest.mark.parametrize("answer", ["garbage", "wrong_type", "wrong_sequence", "absurd", "raise_limit",
                                    "wrong_fulfillment", "f99_garbage", "f99_forever"])
def test_lying_receiver_never_gets_more_than_allowed(answer: str) -> None:
    liar = Liar(answer)
    client = Connection(SECRET, is_server=False, now=0, source_account=CLIENT_ADDRESS,
                        destination_account=SERVER_ADDRESS, config=ConnectionConfig(max_packet_amount=40))
    sid = client.open_stream()
    client.set_send_max(sid, 100)
    paid = 0
    now = 0.0
    for _ in range(2000):
        for out in client.poll(now):
            reply = liar.reply(out.prepare)
            if isinstance(reply, Fulfill):
                paid += out.prepare.amount
            client.handle_reply(out.id, reply, now)
        assert client.total_sent + client.stream_in_flight(sid) <= 100 if client.stream_is_open(sid) else True
        if client.closed:
            break
        now += 1.0
        client.handle_timer(now)
    assert paid <= 100
    assert client.total_sent == paid
    if answer in ("absurd", "raise_limit"):
        assert paid == 100
    else:
        assert client.closed
        event = client.close_event
        assert event is not None and not event.ok and event.message


def test_a_reply_for_an_unknown_id_is_ignored() -> None:
    client = Connection(SECRET, is_server=False, now=0, source_account=CLIENT_ADDRESS,
                        destination_account=SERVER_ADDRESS)
    client.handle_reply(12345, Fulfill(b"\0" * 32, b""), 0)
    assert client.total_sent == 0 and not client.closed


def test_final_reject_ends_the_payment_with_a_clear_reason() -> None:
    client = Connection(SECRET, is_server=False, now=0, source_account=CLIENT_ADDRESS,
                        destination_account=SERVER_ADDRESS, config=ConnectionConfig(exchange_rate=Fraction(1)))
    sid = client.open_stream()
    client.set_send_max(sid, 100)
    (out,) = client.poll(0)
    client.handle_reply(out.id, Reject("F02", "test.connector", "no route to test.bob"), 0)
    event = client.close_event
    assert event is not None and "F02 from test.connector: no route to test.bob" in event.message
    assert event.total_sent == 0 and client.stream_totals(sid)[1] == 0 if client.stream_is_open(sid) else True


def test_unreachable_receiver_fails_probing_clearly() -> None:
    client = Connection(SECRET, is_server=False, now=0, source_account=CLIENT_ADDRESS,
                        destination_account=SERVER_ADDRESS)
    client.connect()
    for out in client.poll(0):
        client.handle_reply(out.id, Reject("F02", "test.connector", "unreachable"), 0)
    assert client.closed and client.close_event is not None
    assert "cannot reach the receiver: F02" in client.close_event.message


def test_config_defaults_are_sane() -> None:
    c = ConnectionConfig()
    assert replace(c, max_window=8).max_window == 8
    with pytest.raises(ValueError):
        Connection(b"short", is_server=False, now=0)


def test_new_address_is_announced_and_followed() -> None:
    pair = make_pair()
    send(pair, 10)
    pair.client.set_source_account("test.alice2")
    sid = pair.client.stream_ids()[0]
    pair.client.set_send_max(sid, 20)
    pair.run(until=lambda: pair.client.total_sent >= 20)
    assert RemoteAddress("test.alice2") in pair.server_events
    assert pair.server.destination_account == "test.alice2"


def test_receipts_are_attached_and_verify() -> None:
    nonce, secret = b"n" * 16, b"s" * 32
    pair = make_pair(server_config=ConnectionConfig(default_receive_max=UINT64_MAX, receipt_nonce=nonce, receipt_secret=secret))
    receipts: list[bytes] = []
    original = pair.client._handle_control_frames

    def spy(frames: tuple[sp.Frame, ...], now: float) -> None:
        receipts.extend(f.receipt for f in frames if isinstance(f, sp.StreamReceipt))
        original(frames, now)

    pair.client._handle_control_frames = spy  # type: ignore[method-assign]
    send(pair, 300)
    assert receipts
    last = max((crypto.verify_receipt(r, secret) for r in receipts), key=lambda r: r.total_received)
    assert (last.nonce, last.stream_id, last.total_received) == (nonce, 1, 300)


@settings(max_examples=40, deadline=None)
@given(
    rate=st.fractions(min_value=Fraction(1, 50), max_value=50).filter(lambda r: r > 0),
    max_packet=st.one_of(st.none(), st.integers(1, 5000)),
    t04=st.sampled_from([0.0, 0.05, 0.2]),
    loss=st.sampled_from([0.0, 0.1]),
    amount=st.integers(1, 20_000),
    seed=st.integers(0, 1000),
)
def test_property_money_is_never_lost_or_overspent(rate: Fraction, max_packet: int | None, t04: float, loss: float,
                                                   amount: int, seed: int) -> None:
    pair = make_pair(Path(rate=rate, max_packet=max_packet, t04_chance=t04, loss=loss, seed=seed))
    sid = pair.client.open_stream()
    pair.client.set_send_max(sid, amount)
    pair.run(until=lambda: pair.client.closed or pair.client.stream_totals(sid)[1] >= amount)
    # Whatever happened, the books agree on both ends and the sender never exceeded its allowance.
    assert pair.client.total_sent <= amount
    assert pair.client.total_delivered == pair.server.total_received == received(pair)
    if not pair.client.closed:
        assert pair.client.total_sent == amount
    else:
        event = pair.client.close_event
        assert event is not None and event.message  # a failure always says why


def test_closed_connection_fulfills_zero_amount_packets_with_connection_close() -> None:
    server = fresh_server()
    server.close()
    assert server.closed
    reply = server.handle_prepare(prepare_to(SECRET, sp.StreamPacket(5, sp.PacketType.PREPARE, 0,
                                                                       (sp.StreamClose(1, 1, ""),))), 0)
    # The JS sender would otherwise resend its StreamClose for ever.
    assert isinstance(reply, Fulfill)
    answer = sp.decode_stream_packet(crypto.decrypt(crypto.encryption_key(SECRET), reply.data))
    assert answer.packet_type == sp.PacketType.FULFILL and answer.sequence == 5
    assert any(isinstance(f, sp.ConnectionClose) for f in answer.frames)
    paid = server.handle_prepare(prepare_to(SECRET, sp.StreamPacket(6, sp.PacketType.PREPARE, 0, ()), 10), 0)
    assert isinstance(paid, Reject) and paid.code == "F99" and server.total_received == 0
