"""A STREAM connection (RFC 29) as a pure state machine: no sockets, no asyncio, the clock is passed in.

The owner drives it, as with aioquic or h11:

- ``poll(now)`` returns the ILP Prepares to send now (each tagged with an id, the STREAM sequence);
- ``handle_reply(id, reply, now)`` takes the Fulfill/Reject that came back (``handle_send_failure`` when none did);
- ``handle_prepare(prepare, now)`` answers an incoming Prepare with the Fulfill or Reject to send back;
- ``next_deadline()``/``handle_timer(now)`` for backoff and the idle timeout;
- ``next_event()`` hands out what happened (money or data arrived, streams or the connection closed).

``Connection`` coordinates parts that each live in their own module: ``congestion`` (window of packets in flight,
packet amount, backoff), ``probing`` (the exchange rate), ``streams`` (each stream's state table and its send and
receive halves) and ``events`` (what the owner is told). What stays here is the packet work: building Prepares from
the streams, reading replies, answering Prepares, and ending the connection.

Unlike ilp-protocol-stream 2.x, which waits for each reply before sending the next packet, the sender keeps a
window of Prepares in flight (slow start, then additive increase; halved on T04 and other temporary errors), and
packets that carry money never carry data, so a Reject only ever means "resend this money" or "resend these bytes".

Safety rule: money is taken out of a stream's allowance (``send_max``) when a Prepare is emitted and only returned
when a Reject proves it was not paid; a Fulfill (even a lying one) counts as sent. So whatever the receiver or the
path replies, ``total_sent + held`` never exceeds what the application allowed.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from fractions import Fraction
from typing import Final

from ..wire.address import is_valid_address
from ..wire.errors import CodecError
from ..wire.ilp import ErrorFamily, Fulfill, Prepare, Reject, Reply
from ..wire.oer import UINT64_MAX
from . import crypto
from .congestion import Backoff, CongestionControl
from .events import (
    Connected,
    ConnectionTerminated,
    DataReceived,
    DataSent,
    Event,
    MoneyReceived,
    MoneySent,
    OutgoingPrepare,
    RemoteAddress,
    RemoteAssetDetails,
    StreamClosed,
    StreamError,
    StreamOpened,
    describe_close,
)
from .packet import (
    MAX_DATA_SIZE,
    ConnectionAssetDetails,
    ConnectionClose,
    ConnectionDataBlocked,
    ConnectionMaxData,
    ConnectionMaxStreamId,
    ConnectionNewAddress,
    ConnectionStreamIdBlocked,
    ErrorCode,
    Frame,
    PacketType,
    StreamClose,
    StreamData,
    StreamDataBlocked,
    StreamMaxData,
    StreamMaxMoney,
    StreamMoney,
    StreamMoneyBlocked,
    StreamPacket,
    StreamReceipt,
    decode_stream_packet,
    encode_stream_packet,
)
from .probing import PROBE_AMOUNTS, ProbeOutcome, RateProbe
from .streams import FRAME_SLACK, StreamRecord, StreamState, StreamTable, Trigger, split_money

__all__ = [
    "MAX_SEQUENCE", "PROBE_AMOUNTS", "Connected", "Connection", "ConnectionConfig", "ConnectionTerminated",
    "DataReceived", "DataSent", "Event", "MoneyReceived", "MoneySent", "OutgoingPrepare", "RemoteAddress",
    "RemoteAssetDetails", "State", "StreamClosed", "StreamError", "StreamOpened", "describe_close",
]

MAX_SEQUENCE: Final = 2**31  # RFC 29 §4.7: a connection must not send more packets than this


@dataclass
class ConnectionConfig:
    idle_timeout: float = 60.0
    packet_timeout: float = 30.0
    # The sender insists on at least (1 - slippage) x the probed rate; min_exchange_rate is a hard floor on top.
    slippage: Fraction = Fraction(1, 100)
    min_exchange_rate: Fraction | None = None
    exchange_rate: Fraction | None = None  # known in advance: skip probing
    min_rate_precision: int = 3
    probe_max_attempts: int = 15
    max_remote_streams: int = 10
    connection_buffer: int = 65534
    stream_buffer: int = 16384
    default_receive_max: int = 0  # for streams the peer opens (the JS default is 0 too)
    max_packet_amount: int = UINT64_MAX
    initial_window: int = 4
    max_window: int = 128
    retry_delay_start: float = 0.1
    retry_delay_max: float = 10.0  # stays well under the peer's idle timeout
    max_receiver_rejects: int = 20
    receipt_nonce: bytes | None = None
    receipt_secret: bytes | None = None


class State(Enum):
    OPEN = "open"
    CLOSING = "closing"  # the application asked to close; flushing streams
    CLOSED = "closed"


class _Kind(Enum):
    PROBE = "probe"
    MONEY = "money"
    DATA = "data"


@dataclass
class _InFlight:
    """A Prepare we sent, until its reply: what to settle, resend or requeue depending on that reply."""

    kind: _Kind
    sequence: int
    source_amount: int
    min_destination: int = 0
    condition: bytes = b""
    fulfillable: bool = False
    money: dict[int, int] = field(default_factory=dict)  # stream id -> source amount held
    data: list[tuple[int, int, bytes]] = field(default_factory=list)  # stream id, offset, bytes
    closes: list[StreamClose] = field(default_factory=list)
    adverts: list[int] = field(default_factory=list)  # stream ids whose MaxMoney/MaxData this packet carried
    control: list[Frame] = field(default_factory=list)  # queued control frames to requeue on loss


class _SequenceExhausted(Exception):
    pass


@dataclass
class _Answer:
    """The reply being built for one incoming Prepare: its STREAM request and the frames to answer with."""

    prepare: Prepare
    request: StreamPacket
    account: str
    frames: list[Frame]


def _floor_mul(amount: int, rate: Fraction) -> int:
    return amount * rate.numerator // rate.denominator


class Connection:
    """One end of a STREAM connection. ``is_server`` picks the even (server) or odd (client) stream ids."""

    def __init__(
        self,
        shared_secret: bytes,
        *,
        is_server: bool,
        now: float,
        source_account: str | None = None,
        destination_account: str | None = None,
        asset_code: str = "",
        asset_scale: int = 0,
        config: ConnectionConfig | None = None,
    ) -> None:
        if len(shared_secret) != 32:
            raise ValueError("a STREAM shared secret is 32 bytes")
        self.config = cfg = config or ConnectionConfig()
        self.shared_secret = shared_secret
        self._cipher = crypto.Cipher(crypto.encryption_key(shared_secret))
        self._fulfillment_key = crypto.fulfillment_key(shared_secret)
        self.is_server = is_server
        self.source_account = source_account
        self.destination_account = destination_account
        self.asset_code = asset_code
        self.asset_scale = asset_scale
        self.remote_asset_code: str | None = None
        self.remote_asset_scale: int | None = None
        self.state = State.OPEN
        self.close_event: ConnectionTerminated | None = None
        self.exchange_rate: Fraction | None = cfg.exchange_rate
        self.total_sent = 0
        self.total_delivered = 0
        self.total_received = 0
        self.packets_sent = 0  # fulfilled money packets
        self._events: deque[Event] = deque()
        self._streams = StreamTable(is_server=is_server, max_remote_streams=cfg.max_remote_streams,
                                    stream_buffer=cfg.stream_buffer, connection_buffer=cfg.connection_buffer)
        self._next_sequence = 1
        self._in_flight: dict[int, _InFlight] = {}
        self._queued: list[Frame] = []  # control frames for the next packet (or reply)
        self._remote_knows_our_account = is_server
        self._last_active = now
        self._congestion = CongestionControl(initial_window=cfg.initial_window, max_window=cfg.max_window,
                                             max_packet_amount=cfg.max_packet_amount)
        self._backoff = Backoff(cfg.retry_delay_start, cfg.retry_delay_max)
        self._receiver_rejects = 0  # in a row: the receiver read our packets and still said no
        self._slippage_rejects = 0
        self._want_rate = False
        self._probe = RateProbe(min_rate_precision=cfg.min_rate_precision, max_attempts=cfg.probe_max_attempts,
                                min_exchange_rate=cfg.min_exchange_rate)
        self._close_to_send: tuple[int, str] | None = None  # the ConnectionClose (code, message) we owe the peer
        self._peer_knows_closed = False

    # --- the application's side ---------------------------------------------------------------------------

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    @property
    def closed(self) -> bool:
        return self.state is State.CLOSED

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def window(self) -> int:
        return self._congestion.window

    def connect(self) -> None:
        """Start the handshake (tell our address, probe the rate) even before there is money to send."""
        self._want_rate = True

    def set_source_account(self, address: str) -> None:
        """Our address changed (a new uplink, say): tell the peer with ConnectionNewAddress."""
        if address != self.source_account:
            self.source_account = address
            self._queued.append(ConnectionNewAddress(address))

    def open_stream(self) -> int:
        if self.state is not State.OPEN:
            raise StreamError("connection is closed")
        s = self._streams.open_local()
        if s is None:
            sid, limit = self._streams.next_local_id, self._streams.remote_max_id
            self._queued.append(ConnectionStreamIdBlocked(sid))
            raise StreamError(f"opening stream {sid} would exceed the peer's limit of {limit}")
        return s.id

    def _stream(self, sid: int) -> StreamRecord:
        s = self._streams.get(sid)
        if s is None:
            raise StreamError(f"stream {sid} is {'closed' if self._streams.is_retired(sid) else 'unknown'}")
        return s

    def stream_ids(self) -> list[int]:
        return self._streams.ids()

    def set_send_max(self, sid: int, amount: int) -> None:
        s = self._stream(sid)
        if not s.is_open:
            raise StreamError(f"stream {sid} is closing")
        if not 0 <= amount <= UINT64_MAX:
            raise StreamError("send max must be a uint64")
        if amount < s.send.total_sent + s.send.held:
            raise StreamError(f"cannot set send max {amount} below what was sent ({s.send.total_sent + s.send.held})")
        s.send.send_max = amount
        self._want_rate = self._want_rate or amount > s.send.total_sent

    def set_receive_max(self, sid: int, amount: int) -> None:
        s = self._stream(sid)
        amount = min(amount, UINT64_MAX)
        if amount < s.recv.receive_max:
            raise StreamError("cannot decrease the receive max")
        s.recv.receive_max = amount

    def stream_totals(self, sid: int) -> tuple[int, int, int, int]:
        """(send_max, total_sent, receive_max, total_received) of a stream."""
        s = self._stream(sid)
        return s.send.send_max, s.send.total_sent, s.recv.receive_max, s.recv.total_received

    def stream_in_flight(self, sid: int) -> int:
        return self._stream(sid).send.held

    def stream_blocked(self, sid: int) -> int | None:
        """If the receiver's limit stops this stream's money (nothing in flight), the destination amount it
        says it has received; otherwise None."""
        s = self._streams.get(sid)
        rate = self.exchange_rate
        if s is None or rate is None or s.send.held or s.available <= 0 or s.send.room_in_source(rate) > 0:
            return None
        return s.send.remote_received

    def write(self, sid: int, data: bytes) -> None:
        s = self._stream(sid)
        if not s.is_open:
            raise StreamError(f"stream {sid} is closed for writing")
        s.send.out_buf += data

    def unsent_bytes(self, sid: int) -> int:
        s = self._streams.get(sid)
        return 0 if s is None else s.send.unsent_bytes

    def read(self, sid: int, max_bytes: int = -1) -> bytes:
        s = self._streams.readable(sid)
        return b"" if s is None else s.recv.read(max_bytes)

    def readable(self, sid: int) -> int:
        s = self._streams.readable(sid)
        return len(s.recv.recv_buf) if s else 0

    def stream_is_open(self, sid: int) -> bool:
        return sid in self._streams

    def close_stream(self, sid: int, error_code: int = ErrorCode.NO_ERROR, message: str = "") -> None:
        """Close our side: pending bytes and money in flight finish first, no new money is sent."""
        s = self._streams.get(sid)
        if s is not None and s.is_open:
            s.close(error_code, message)

    def close(self, error_code: int = ErrorCode.NO_ERROR, message: str = "") -> None:
        """Close gracefully: flush streams, then tell the peer with a ConnectionClose frame."""
        if self.state is not State.OPEN:
            return
        self.state = State.CLOSING
        self._close_to_send = (error_code, message)
        for sid in self._streams.ids():
            self.close_stream(sid, error_code, message)
        if self.destination_account is None:
            # The peer never told us its address, so there is nobody to tell.
            self._finish(error_code, message, False)

    def _end_stream(self, s: StreamRecord, trigger: Trigger, event: StreamClosed | None) -> None:
        """Move a stream to CLOSED and forget it (bytes that arrived before the close stay readable)."""
        s.apply(trigger)
        self._streams.retire(s)
        if event is not None:
            self._events.append(event)

    # --- timers -------------------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        if self.closed:
            return None
        deadline = self._last_active + self.config.idle_timeout
        if self._backoff.resume_at > 0:
            deadline = min(deadline, self._backoff.resume_at)
        return deadline

    def handle_timer(self, now: float) -> None:
        if self.closed:
            return
        if now - self._last_active >= self.config.idle_timeout:
            self._fail(ErrorCode.INTERNAL_ERROR, "Connection timed out due to inactivity", now)
        self._backoff.expire(now)

    # --- sending --------------------------------------------------------------------------------------------

    def poll(self, now: float) -> list[OutgoingPrepare]:
        out: list[OutgoingPrepare] = []
        if not self.closed:
            self.handle_timer(now)
        if self.closed:
            final = self.final_packet(now)
            return [final] if final is not None else out
        if self.destination_account is None:
            return out
        try:
            if self._backoff.paused(now):
                return out
            out.extend(self._probe_round(now))
            while len(self._in_flight) < self.window:
                p = self._build(now)
                if p is None:
                    break
                out.append(p)
            close = self._maybe_close_packet(now)
            if close is not None:
                out.append(close)
        except _SequenceExhausted:
            self._fail(ErrorCode.INTERNAL_ERROR, "Connection exceeded maximum number of packets", now)
        return out

    def _sequence(self) -> int:
        seq = self._next_sequence
        if seq >= MAX_SEQUENCE:
            raise _SequenceExhausted
        self._next_sequence += 1
        return seq

    def _needs_rate(self) -> bool:
        return self.exchange_rate is None and (
            self._want_rate or any(s.available > 0 for s in self._streams)
        )

    def _account_frames(self) -> list[Frame]:
        if self._remote_knows_our_account or not self.source_account:
            return []
        return [ConnectionNewAddress(self.source_account), ConnectionAssetDetails(self.asset_code, self.asset_scale)]

    def _seal(self, packet: StreamPacket) -> bytes:
        return self._cipher.encrypt(encode_stream_packet(packet))

    def _prepare(self, now: float, amount: int, data: bytes, condition: bytes) -> Prepare:
        assert self.destination_account is not None
        expires = datetime.fromtimestamp(now + self.config.packet_timeout, UTC)
        return Prepare(amount, expires, condition, self.destination_account, data)

    def _probe_round(self, now: float) -> list[OutgoingPrepare]:
        if not self._needs_rate() or self._probe.in_round or self.state is not State.OPEN:
            return []
        out = []
        for amount in self._probe.start_round(self._congestion.max_packet_amount):
            seq = self._sequence()
            packet = StreamPacket(seq, PacketType.PREPARE, 0, tuple(self._account_frames()))
            cond = crypto.random_condition()
            self._probe.sent(seq, amount)
            self._in_flight[seq] = _InFlight(_Kind.PROBE, seq, amount, condition=cond)
            out.append(OutgoingPrepare(seq, self._prepare(now, amount, self._seal(packet), cond)))
        return out

    def _build(self, now: float) -> OutgoingPrepare | None:
        if self.state is State.CLOSED:
            return None
        control = self._queued
        self._queued = []
        account = self._account_frames()
        frames: list[Frame] = list(control)
        adverts, advert_ids = self._streams.adverts()
        frames += adverts
        rate = self.exchange_rate
        money = {} if rate is None else self._streams.take_money(rate, self._congestion.packet_amount, frames)
        amount = sum(money.values())
        data: list[tuple[int, int, bytes]] = []
        if amount:
            frames += [StreamMoney(sid, a) for sid, a in money.items()]
        else:
            data = self._take_data(frames)
        closes: list[StreamClose] = []
        for s in self._streams:
            if s.end_due and not any(sid == s.id for sid, _, _ in data):
                s.apply(Trigger.END_IN_PREPARE)
                closes.append(s.end_frame())
        frames += closes
        if not frames:
            return None
        frames += account
        min_dest = 0
        if amount and rate is not None:
            min_dest = _floor_mul(_floor_mul(amount, rate), 1 - self.config.slippage)
            if self.config.min_exchange_rate is not None:
                min_dest = max(min_dest, math.ceil(amount * self.config.min_exchange_rate))
        seq = self._sequence()
        sealed = self._seal(StreamPacket(seq, PacketType.PREPARE, min_dest, tuple(frames)))
        cond = crypto.condition(crypto.fulfillment(self._fulfillment_key, sealed))
        kind = _Kind.MONEY if amount else _Kind.DATA
        self._in_flight[seq] = _InFlight(kind, seq, amount, min_dest, cond, True, money, data, closes, advert_ids,
                                         list(control))
        return OutgoingPrepare(seq, self._prepare(now, amount, sealed, cond))

    def _take_data(self, frames: list[Frame]) -> list[tuple[int, int, bytes]]:
        """Bytes for the next packet (one with no money), within its size and the peer's windows."""
        budget = MAX_DATA_SIZE - crypto.ENCRYPTION_OVERHEAD - len(encode_stream_packet(
            StreamPacket(MAX_SEQUENCE, PacketType.PREPARE, UINT64_MAX, tuple(frames)))) - FRAME_SLACK
        return self._streams.take_data(budget, frames)

    def _close_packet(self, now: float, seq: int) -> OutgoingPrepare:
        assert self._close_to_send is not None
        frames: tuple[Frame, ...] = (ConnectionClose(*self._close_to_send),)
        sealed = self._seal(StreamPacket(seq, PacketType.PREPARE, 0, frames))
        return OutgoingPrepare(seq, self._prepare(now, 0, sealed, crypto.random_condition()))

    def _maybe_close_packet(self, now: float) -> OutgoingPrepare | None:
        """The final ConnectionClose, once every stream has flushed (or at once on an error)."""
        if self._close_to_send is None or self._peer_knows_closed:
            return None
        code, message = self._close_to_send
        if code == ErrorCode.NO_ERROR and (self._streams or self._in_flight):
            return None
        self._peer_knows_closed = True
        packet = self._close_packet(now, self._sequence())
        # Closed once said: the reply carries nothing we need (and a JS peer may disconnect before sending it).
        self._finish(code, message, False)
        return packet

    def final_packet(self, now: float) -> OutgoingPrepare | None:
        """After a local error, the ConnectionClose to tell the peer (best effort; the reply does not matter)."""
        if self._close_to_send is None or self._peer_knows_closed or self.destination_account is None:
            return None
        self._peer_knows_closed = True
        try:
            seq = self._sequence()
        except _SequenceExhausted:
            seq = MAX_SEQUENCE
        return self._close_packet(now, seq)

    # --- replies ----------------------------------------------------------------------------------------------

    def handle_send_failure(self, pid: int, now: float, reason: str = "no reply") -> None:
        """The Prepare got no ILP reply at all (timeout, link down): like a temporary error."""
        self.handle_reply(pid, Reject("T00", "", reason), now)

    def _open_reply(self, flight: _InFlight, reply: Reply) -> StreamPacket | None:
        if not reply.data:
            return None
        try:
            packet = decode_stream_packet(self._cipher.decrypt(reply.data))
        except CodecError:
            return None
        want = PacketType.FULFILL if isinstance(reply, Fulfill) else PacketType.REJECT
        if packet.sequence != flight.sequence or packet.packet_type != want:
            return None
        return packet

    def handle_reply(self, pid: int, reply: Reply, now: float) -> None:
        flight = self._in_flight.pop(pid, None)
        if flight is None:
            return  # a duplicate or unknown reply changes nothing
        self._last_active = now
        response = self._open_reply(flight, reply)
        if response is not None:
            self._remote_knows_our_account = True
            self._handle_control_frames(response.frames, now)
        if flight.kind is _Kind.PROBE:
            self._on_probe_reply(flight, reply, response, now)
        elif isinstance(reply, Fulfill):
            self._on_fulfill(flight, reply, response, now)
        else:
            self._on_reject(flight, reply, response, now)

    def _on_fulfill(self, flight: _InFlight, reply: Fulfill, response: StreamPacket | None, now: float) -> None:
        # Paid, whatever else is wrong with the reply: the money leaves the stream's allowance for good.
        for sid, amount in flight.money.items():
            s = self._streams.get(sid)
            if s is not None:
                s.send.money_settled(amount, paid=True)
                self._events.append(MoneySent(sid, amount))
        self.total_sent += flight.source_amount
        for sid, offset, chunk in flight.data:
            s = self._streams.get(sid)
            if s is not None:
                s.send.bytes_settled(offset, chunk, lost=False)
                self._events.append(DataSent(sid))
        self._after_close_acked(flight)
        if not flight.fulfillable or crypto.condition(reply.fulfillment) != flight.condition:
            self._fail(ErrorCode.PROTOCOL_VIOLATION, f"packet {flight.sequence} came back with an invalid fulfillment",
                       now)
            return
        if response is None:
            self._fail(ErrorCode.PROTOCOL_VIOLATION,
                       f"the receiver's Fulfill for packet {flight.sequence} carries no valid STREAM reply", now)
            return
        if flight.source_amount:
            self.packets_sent += 1
            self.total_delivered = min(UINT64_MAX, self.total_delivered + response.prepare_amount)
            self._congestion.on_fulfilled(flight.source_amount)
        self._backoff.reset()
        self._receiver_rejects = 0
        self._slippage_rejects = 0

    def _after_close_acked(self, flight: _InFlight) -> None:
        for close in flight.closes:
            s = self._streams.get(close.stream_id)
            if s is not None:
                self._end_stream(s, Trigger.END_ACKED,
                                 StreamClosed(s.id, close.error_code, close.error_message, False))

    def _undo(self, flight: _InFlight, processed: bool) -> None:
        """A Reject: the money comes back; bytes, closes and adverts go again unless the receiver read them."""
        for sid, amount in flight.money.items():
            s = self._streams.get(sid)
            if s is not None:
                s.send.money_settled(amount, paid=False)
        for sid, offset, chunk in flight.data:
            s = self._streams.get(sid)
            if s is not None:
                s.send.bytes_settled(offset, chunk, lost=not processed)
                if processed:
                    self._events.append(DataSent(sid))
        if processed:
            return
        for close in flight.closes:
            s = self._streams.get(close.stream_id)
            if s is not None:
                s.apply(Trigger.END_LOST)
        for sid in flight.adverts:
            s = self._streams.get(sid)
            if s is not None:
                s.recv.forget_advert()
        self._queued[:0] = [f for f in flight.control if not isinstance(f, ConnectionNewAddress | ConnectionAssetDetails)]

    def _on_reject(self, flight: _InFlight, reply: Reject, response: StreamPacket | None, now: float) -> None:
        # A STREAM reply means the receiver read the packet: the data and closes it carried were processed (the
        # JS receiver even chokes on data resent below its read offset), and only the money comes back.
        self._undo(flight, processed=response is not None)
        if response is not None:
            self._after_close_acked(flight)
            self._on_receiver_reject(flight, response, now)
            return
        code = reply.code
        where = f"{code} from {reply.triggered_by or 'the path'}" + (f": {reply.message}" if reply.message else "")
        if code == "F08":
            self._on_amount_too_large(reply, flight.source_amount, now)
        elif code == "F99":
            self._fail(ErrorCode.APPLICATION_ERROR, f"receiver rejected the packet ({where}) without a STREAM reply",
                       now)
        elif reply.family is ErrorFamily.FINAL:
            self._fail(ErrorCode.APPLICATION_ERROR, f"payment failed: {where}", now)
        else:
            self._congestion.on_temporary_error(flight.sequence, flight.source_amount, self._next_sequence,
                                                liquidity=code == "T04")
            self._backoff.pause(now, flight.sequence, self._next_sequence)

    def _on_receiver_reject(self, flight: _InFlight, response: StreamPacket, now: float) -> None:
        """The receiver read the packet and said no (too little arrived, or it is full): give up if it lasts."""
        if flight.money and response.prepare_amount < flight.min_destination:
            self._slippage_rejects += 1
            if self._slippage_rejects >= 3:
                self._fail(ErrorCode.APPLICATION_ERROR,
                           f"exchange rate fell below the minimum: {flight.source_amount} sent arrived as "
                           f"{response.prepare_amount}, at least {flight.min_destination} required", now)
                return
        self._receiver_rejects += 1
        if self._receiver_rejects >= self.config.max_receiver_rejects:
            self._fail(ErrorCode.APPLICATION_ERROR,
                       f"the receiver rejected {self._receiver_rejects} packets in a row", now)
            return
        if self._receiver_rejects > 1:
            self._backoff.pause(now, flight.sequence, self._next_sequence)

    def _on_amount_too_large(self, reply: Reject, sent: int, now: float) -> None:
        self._congestion.on_amount_too_large(sent, reply.data)
        if self._congestion.max_packet_amount == 0:
            self._fail(ErrorCode.APPLICATION_ERROR, "Cannot send: the path's maximum packet amount is 0", now)

    # --- probing --------------------------------------------------------------------------------------------

    def _on_probe_reply(self, flight: _InFlight, reply: Reply, response: StreamPacket | None, now: float) -> None:
        result = response if response is not None else (reply if isinstance(reply, Reject) else None)
        if self._probe.on_reply(flight.sequence, flight.source_amount, result) and not self.closed:
            outcome = self._probe.finish_round(self._congestion)
            if outcome is not None:
                self._apply_probe_outcome(outcome, now)

    def _apply_probe_outcome(self, outcome: ProbeOutcome, now: float) -> None:
        if outcome.backoff:
            self._backoff.pause(now)
        if outcome.failure is not None:
            self._fail(ErrorCode.APPLICATION_ERROR, outcome.failure, now)
        elif outcome.rate is not None:
            self.exchange_rate = outcome.rate
            start = self._probe.start_amount
            if start is not None:
                self._congestion.limit_packet_amount(start)
            self._events.append(Connected(outcome.rate))

    # --- frames from the peer -------------------------------------------------------------------------------

    def _handle_control_frames(self, frames: tuple[Frame, ...], now: float) -> None:
        for frame in frames:
            match frame:
                case ConnectionNewAddress(account):
                    if not is_valid_address(account):
                        continue
                    self._queued += [ConnectionMaxStreamId(self._streams.max_remote_id),
                                     ConnectionAssetDetails(self.asset_code, self.asset_scale)]
                    if account != self.destination_account:
                        self.destination_account = account
                        self._events.append(RemoteAddress(account))
                case ConnectionAssetDetails(code, scale):
                    if (code, scale) != (self.remote_asset_code, self.remote_asset_scale):
                        self.remote_asset_code, self.remote_asset_scale = code, scale
                        self._events.append(RemoteAssetDetails(code, scale))
                case ConnectionClose(code, message):
                    if not self.closed:
                        self._finish(code, message, True)
                case ConnectionMaxData(offset):
                    self._streams.on_remote_max_data(offset)
                case ConnectionMaxStreamId(sid):
                    self._streams.on_remote_max_id(sid)
                case StreamClose(sid, code, message):
                    self._remote_stream_close(sid, code, message)
                case StreamMaxMoney(sid, receive_max, total):
                    if (s := self._streams.get(sid)) is not None:
                        s.send.on_max_money(receive_max, total)
                case StreamMaxData(sid, offset):
                    if (s := self._streams.get(sid)) is not None:
                        s.send.on_max_data(offset)
                case StreamReceipt() | StreamMoneyBlocked() | StreamDataBlocked() | ConnectionDataBlocked():
                    pass
                case ConnectionStreamIdBlocked():
                    pass

    def _remote_stream_close(self, sid: int, code: int, message: str) -> None:
        s = self._streams.get(sid)
        if s is None:
            return
        # Even with our own StreamClose on its way: the stream is forgotten now, so its ack finds nothing to close.
        self._end_stream(s, Trigger.REMOTE_END, StreamClosed(sid, code, message, True))
        self._queued.append(ConnectionMaxStreamId(self._streams.allow_another_remote()))

    # --- incoming Prepares ------------------------------------------------------------------------------------

    def handle_prepare(self, prepare: Prepare, now: float) -> Reply:
        """Answer a Prepare sent to this connection (RFC 29 §4.4); never raises.

        The steps, each of which may end in a Reject carrying the frames gathered so far: open the STREAM packet;
        if we are closed, say so; admit the streams it names; take its control frames and bytes; check flow
        control, the amount and the condition; split the money among the streams and check their limits; then
        credit it and answer with our limits, closes and receipts."""
        account = self.source_account or ""
        request = self._open_request(prepare)
        if request is None:
            return Reject("F06", account, "", b"")
        self._last_active = now
        answer = _Answer(prepare, request, account, [ConnectionMaxData(self._streams.max_acceptable_offset())])
        if self.closed:
            return self._answer_closed(answer)
        if not self._admit_streams(answer, now):
            return self._reject(answer)
        self._handle_control_frames(request.frames, now)
        if self.closed:
            return self._reject(answer)
        for frame in request.frames:
            if isinstance(frame, StreamData):
                self._incoming_data(frame)
        if not self._within_flow_control(answer, now):
            return self._reject(answer)
        if request.prepare_amount > prepare.amount:
            return self._reject(answer)  # less arrived than the sender requires
        fulfillment = crypto.fulfillment(self._fulfillment_key, prepare.data)
        if crypto.condition(fulfillment) != prepare.execution_condition:
            return self._reject(answer)  # an unfulfillable packet: a rate probe
        credits = split_money(request.frames, prepare.amount)
        refusal = self._streams.refuse_credits(credits)
        if refusal is not None:
            answer.frames.append(refusal)
            return self._reject(answer)
        if self.total_received + prepare.amount > UINT64_MAX:
            return self._reject(answer)
        self._credit(credits, prepare.amount)
        closing = self._reply_stream_frames(answer)
        self._add_receipts(answer, credits)
        answer.frames += self._queued
        self._queued = []
        for s in closing:
            # We told the peer in this Fulfill; nothing more will flow on it.
            self._end_stream(s, Trigger.END_IN_REPLY, StreamClosed(s.id, s.close_code, s.close_message, False))
        return Fulfill(fulfillment, self._reply_packet(request.sequence, PacketType.FULFILL, prepare.amount,
                                                       answer.frames))

    def _open_request(self, prepare: Prepare) -> StreamPacket | None:
        try:
            request = decode_stream_packet(self._cipher.decrypt(prepare.data))
        except CodecError:
            return None
        return request if request.packet_type == PacketType.PREPARE else None

    def _reply_packet(self, sequence: int, kind: PacketType, amount: int, frames: list[Frame]) -> bytes:
        return self._seal(StreamPacket(sequence, kind, min(amount, UINT64_MAX), tuple(frames)))

    def _reject(self, answer: _Answer) -> Reject:
        """F99 with our STREAM reply: the frames gathered so far, and any queued control frames."""
        body = answer.frames + self._queued
        self._queued = []
        data = self._reply_packet(answer.request.sequence, PacketType.REJECT, answer.prepare.amount, body)
        return Reject("F99", answer.account, "", data)

    def _answer_closed(self, answer: _Answer) -> Reply:
        event = self.close_event
        answer.frames.append(ConnectionClose(event.error_code if event else ErrorCode.NO_ERROR,
                                             event.message if event else ""))
        prepare = answer.prepare
        fulfillment = crypto.fulfillment(self._fulfillment_key, prepare.data)
        if prepare.amount == 0 and crypto.condition(fulfillment) == prepare.execution_condition:
            # No money, so accepting costs nothing; and ilp-protocol-stream 2.7.1 resends a rejected
            # StreamClose for ever (its end() restarts the send loop on every ConnectionClose it reads).
            data = self._reply_packet(answer.request.sequence, PacketType.FULFILL, 0, answer.frames)
            return Fulfill(fulfillment, data)
        return self._reject(answer)

    def _admit_streams(self, answer: _Answer, now: float) -> bool:
        """Open the streams the peer starts; False if the packet uses a closed one or breaks the stream limits."""
        for frame in answer.request.frames:
            if not isinstance(frame, StreamMoney | StreamData | StreamMaxMoney | StreamMaxData):
                continue
            sid = frame.stream_id
            if self._streams.is_retired(sid):
                if isinstance(frame, StreamMoney | StreamData):
                    if not any(isinstance(f, StreamClose) and f.stream_id == sid for f in answer.frames):
                        answer.frames.append(StreamClose(sid, ErrorCode.STREAM_STATE_ERROR, "Stream is already closed"))
                    return False
                continue
            if sid not in self._streams and not self._new_remote_stream(sid, now):
                return False
        return True

    def _new_remote_stream(self, sid: int, now: float) -> bool:
        if not self._streams.opened_by_peer(sid):
            who = "Client" if self.is_server else "Server"
            parity = "odd" if self.is_server else "even"
            message = f"Invalid Stream ID: {sid}. {who}-initiated streams must have {parity}-numbered IDs"
            self._queued.append(ConnectionClose(ErrorCode.PROTOCOL_VIOLATION, message))
            self._fail(ErrorCode.PROTOCOL_VIOLATION, message, now, tell=False)
            return False
        limit = self._streams.max_remote_id
        if sid > limit:
            message = f"Maximum number of open streams exceeded. Got stream: {sid}, current max stream ID: {limit}"
            self._queued.append(ConnectionClose(ErrorCode.STREAM_ID_ERROR, message))
            self._fail(ErrorCode.STREAM_ID_ERROR, message, now, tell=False)
            return False
        if limit * 3 < sid * 4:
            self._queued.append(ConnectionMaxStreamId(limit))
        self._streams.add(sid, receive_max=self.config.default_receive_max)
        self._events.append(StreamOpened(sid))
        return True

    def _incoming_data(self, frame: StreamData) -> None:
        s = self._streams.get(frame.stream_id)
        if s is not None and s.recv.receive(frame.offset, frame.data):
            self._events.append(DataReceived(s.id))

    def _within_flow_control(self, answer: _Answer, now: float) -> bool:
        for s in self._streams:
            if s.recv.over_limit():
                self._fail(ErrorCode.FLOW_CONTROL_ERROR,
                           f"Exceeded flow control limits: stream {s.id} can accept up to offset "
                           f"{s.recv.max_acceptable_offset}", now)
                answer.frames.append(ConnectionClose(ErrorCode.FLOW_CONTROL_ERROR, "Exceeded flow control limits"))
                return False
        return True

    def _credit(self, credits: dict[int, int], amount: int) -> None:
        self.total_received += amount
        for sid, part in credits.items():
            self._streams[sid].recv.total_received += part
            if part:
                self._events.append(MoneyReceived(sid, part))

    def _reply_stream_frames(self, answer: _Answer) -> list[StreamRecord]:
        """Our StreamCloses that are due, and the limits of the streams this packet used or that changed (JS
        sends all, every time). Returns the streams closed in this reply."""
        mentioned = {f.stream_id for f in answer.request.frames
                     if isinstance(f, StreamMoney | StreamData | StreamMaxMoney | StreamMaxData | StreamMoneyBlocked
                                   | StreamDataBlocked)}
        closing: list[StreamRecord] = []
        for s in self._streams:
            if s.end_due:
                answer.frames.append(s.end_frame())
                closing.append(s)
            elif s.state is not StreamState.END_SENT and (s.id in mentioned or s.recv.limits_changed):
                answer.frames += s.recv.advertise(s.id)
        return closing

    def _add_receipts(self, answer: _Answer, credits: dict[int, int]) -> None:
        nonce, secret = self.config.receipt_nonce, self.config.receipt_secret
        if nonce and secret:
            for sid in credits:
                total = self._streams[sid].recv.total_received
                answer.frames.append(StreamReceipt(sid, crypto.create_receipt(nonce, sid, total, secret)))

    # --- ending -------------------------------------------------------------------------------------------

    def _fail(self, code: int, message: str, now: float, tell: bool = True) -> None:
        """End the connection with an error; if the peer's address is known, tell it in one last packet."""
        if self.closed:
            return
        for flight in list(self._in_flight.values()):
            if flight.kind is _Kind.PROBE:
                self._in_flight.pop(flight.sequence)
        self._probe.cancel()
        if tell and self.destination_account is not None and not self._peer_knows_closed:
            self._close_to_send = (code, message)
        for s in self._streams:
            s.send.discard()
        self._finish(code, message, False)

    def _finish(self, code: int, message: str, by_remote: bool) -> None:
        if self.closed:
            return
        self.state = State.CLOSED
        if by_remote:
            self._peer_knows_closed = True
        for s in list(self._streams):
            self._end_stream(s, Trigger.FINISH, StreamClosed(s.id, code, message, by_remote))
        self.close_event = ConnectionTerminated(code, message, by_remote, self.total_sent, self.total_delivered,
                                            self.total_received)
        self._events.append(self.close_event)
