"""A STREAM connection (RFC 29) as a pure state machine: no sockets, no asyncio, the clock is passed in.

The owner drives it, as with aioquic or h11:

- ``poll(now)`` returns the ILP Prepares to send now (each tagged with an id, the STREAM sequence);
- ``handle_reply(id, reply, now)`` takes the Fulfill/Reject that came back (``handle_send_failure`` when none did);
- ``handle_prepare(prepare, now)`` answers an incoming Prepare with the Fulfill or Reject to send back;
- ``next_deadline()``/``handle_timer(now)`` for backoff and the idle timeout;
- ``next_event()`` hands out what happened (money or data arrived, streams or the connection closed).

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
from ..wire.ilp import ErrorFamily, Fulfill, Prepare, Reject, Reply, decode_amount_too_large
from ..wire.oer import UINT64_MAX
from . import crypto
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
    error_code_name,
)

MAX_SEQUENCE: Final = 2**31  # RFC 29 §4.7: a connection must not send more packets than this
PROBE_AMOUNTS: Final = (1, 10**3, 10**6, 10**9, 10**12)
# Room left in a packet's data for the frame headers we add after measuring.
FRAME_SLACK: Final = 64


# --- configuration, outputs and events ------------------------------------------------------------------------


@dataclass
class Config:
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


@dataclass(frozen=True, slots=True)
class OutgoingPrepare:
    id: int
    prepare: Prepare


@dataclass(frozen=True, slots=True)
class Connected:
    """The exchange rate is known (probed, or given), so money can flow."""

    exchange_rate: Fraction


@dataclass(frozen=True, slots=True)
class RemoteAddress:
    address: str


@dataclass(frozen=True, slots=True)
class RemoteAssetDetails:
    asset_code: str
    asset_scale: int


@dataclass(frozen=True, slots=True)
class StreamOpened:
    stream_id: int


@dataclass(frozen=True, slots=True)
class MoneyReceived:
    stream_id: int
    amount: int


@dataclass(frozen=True, slots=True)
class MoneySent:
    stream_id: int
    amount: int


@dataclass(frozen=True, slots=True)
class DataReceived:
    stream_id: int


@dataclass(frozen=True, slots=True)
class DataSent:
    """Outgoing bytes were acknowledged; writers waiting for room may continue."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class StreamClosed:
    stream_id: int
    error_code: int
    message: str
    by_remote: bool


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    error_code: int
    message: str
    by_remote: bool
    total_sent: int
    total_delivered: int
    total_received: int

    @property
    def ok(self) -> bool:
        return self.error_code == ErrorCode.NO_ERROR


Event = (
    Connected
    | RemoteAddress
    | RemoteAssetDetails
    | StreamOpened
    | MoneyReceived
    | MoneySent
    | DataReceived
    | DataSent
    | StreamClosed
    | ConnectionClosed
)


class StreamError(Exception):
    """A stream operation the connection cannot do (unknown or closed stream, too many streams...)."""


# --- internal state -------------------------------------------------------------------------------------------


@dataclass
class _Stream:
    id: int
    receive_max: int = 0
    send_max: int = 0
    total_sent: int = 0
    total_received: int = 0
    held: int = 0
    remote_receive_max: int = UINT64_MAX
    remote_received: int = 0
    # outgoing bytes: everything from send_offset on is in out_buf, never sent yet
    out_buf: bytearray = field(default_factory=bytearray)
    send_offset: int = 0
    retransmit: deque[tuple[int, bytes]] = field(default_factory=deque)
    unacked: int = 0
    remote_max_offset: int = 16384
    # incoming bytes
    pending: dict[int, bytes] = field(default_factory=dict)
    recv_buf: bytearray = field(default_factory=bytearray)
    next_offset: int = 0  # end of the contiguous bytes received
    consumed: int = 0  # what the application has read
    # what we last told the peer (None: tell again)
    adv_receive_max: int | None = None
    adv_max_offset: int | None = None
    told_money_blocked: tuple[int, int] | None = None
    told_data_blocked: int | None = None
    # closing
    closing: bool = False
    close_code: int = ErrorCode.NO_ERROR
    close_message: str = ""
    sent_end: bool = False
    remote_closed: bool = False

    @property
    def available(self) -> int:
        return 0 if self.closing or self.sent_end else max(0, self.send_max - self.total_sent - self.held)

    buffer: int = 16384
    close_in_reply: bool = False

    @property
    def max_acceptable_offset(self) -> int:
        return self.consumed + self.buffer

    def has_data_to_send(self) -> bool:
        return bool(self.retransmit) or bool(self.out_buf)


class _Kind(Enum):
    PROBE = "probe"
    MONEY = "money"
    DATA = "data"


@dataclass
class _InFlight:
    kind: _Kind
    sequence: int
    source_amount: int
    min_destination: int
    condition: bytes
    fulfillable: bool
    money: dict[int, int]  # stream id -> source amount held
    data: list[tuple[int, int, bytes]]  # stream id, offset, bytes
    closes: list[StreamClose]
    adverts: list[int]  # stream ids whose MaxMoney/MaxData this packet carried
    control: list[Frame]  # queued control frames to requeue on loss


class State(Enum):
    OPEN = "open"
    CLOSING = "closing"  # the application asked to close; flushing streams
    CLOSED = "closed"


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
        config: Config | None = None,
    ) -> None:
        if len(shared_secret) != 32:
            raise ValueError("a STREAM shared secret is 32 bytes")
        self.config = cfg = config or Config()
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
        self.close_event: ConnectionClosed | None = None
        self.exchange_rate: Fraction | None = cfg.exchange_rate
        self.total_sent = 0
        self.total_delivered = 0
        self.total_received = 0
        self.packets_sent = 0  # fulfilled money packets
        self._events: deque[Event] = deque()
        self._streams: dict[int, _Stream] = {}
        self._closed_streams: set[int] = set()
        self._leftover: dict[int, _Stream] = {}
        self._next_stream_id = 2 if is_server else 1
        self._max_stream_id = 2 * cfg.max_remote_streams  # what we allow the peer
        self._remote_max_stream_id = 2 * cfg.max_remote_streams
        self._remote_max_offset = cfg.connection_buffer
        self._next_sequence = 1
        self._in_flight: dict[int, _InFlight] = {}
        self._queued: list[Frame] = []
        self._remote_knows_our_account = is_server
        self._last_active = now
        # congestion: packet amount (as ilp-protocol-stream) and a window of packets in flight
        self._max_packet_amount = cfg.max_packet_amount
        self._test_packet_amount = cfg.max_packet_amount
        self._window = float(cfg.initial_window)
        self._ssthresh = float(cfg.max_window)
        self._recovery_until = 0  # no further decrease for packets sent before this sequence
        self._retry_delay = cfg.retry_delay_start
        self._resume_at = 0.0
        self._receiver_rejects = 0
        self._slippage_rejects = 0
        # probing
        self._want_rate = False
        self._probe_round: dict[int, int] = {}  # sequence -> amount
        self._probe_results: list[tuple[int, Reject | StreamPacket | None]] = []
        self._probe_next: list[int] = list(PROBE_AMOUNTS)
        self._probe_attempts = 0
        self._probe_best: tuple[int, int] | None = None  # (source, delivered)
        self._probe_max_ok = 0
        self._probe_saw_temporary = False
        self._told_conn_blocked: int | None = None
        self._close_requested = False
        self._close_code = int(ErrorCode.NO_ERROR)
        self._close_message = ""
        self._close_sent = False

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
        return max(1, int(self._window))

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
        sid = self._next_stream_id
        if sid > self._remote_max_stream_id:
            self._queued.append(ConnectionStreamIdBlocked(sid))
            raise StreamError(f"opening stream {sid} would exceed the peer's limit of {self._remote_max_stream_id}")
        self._next_stream_id += 2
        self._streams[sid] = _Stream(sid, buffer=self.config.stream_buffer)
        return sid

    def _stream(self, sid: int) -> _Stream:
        s = self._streams.get(sid)
        if s is None:
            raise StreamError(f"stream {sid} is {'closed' if sid in self._closed_streams else 'unknown'}")
        return s

    def stream_ids(self) -> list[int]:
        return list(self._streams)

    def set_send_max(self, sid: int, amount: int) -> None:
        s = self._stream(sid)
        if s.closing or s.sent_end:
            raise StreamError(f"stream {sid} is closing")
        if not 0 <= amount <= UINT64_MAX:
            raise StreamError("send max must be a uint64")
        if amount < s.total_sent + s.held:
            raise StreamError(f"cannot set send max {amount} below what was sent ({s.total_sent + s.held})")
        s.send_max = amount
        self._want_rate = self._want_rate or amount > s.total_sent

    def set_receive_max(self, sid: int, amount: int) -> None:
        s = self._stream(sid)
        amount = min(amount, UINT64_MAX)
        if amount < s.receive_max:
            raise StreamError("cannot decrease the receive max")
        s.receive_max = amount

    def stream_totals(self, sid: int) -> tuple[int, int, int, int]:
        """(send_max, total_sent, receive_max, total_received) of a stream."""
        s = self._stream(sid)
        return s.send_max, s.total_sent, s.receive_max, s.total_received

    def stream_in_flight(self, sid: int) -> int:
        return self._stream(sid).held

    def stream_blocked(self, sid: int) -> int | None:
        """If the receiver's limit stops this stream's money (nothing in flight), the destination amount it
        says it has received; otherwise None."""
        s = self._streams.get(sid)
        rate = self.exchange_rate
        if s is None or rate is None or s.held or s.available <= 0 or self._dest_room_in_source(s, rate) > 0:
            return None
        return s.remote_received

    def write(self, sid: int, data: bytes) -> None:
        s = self._stream(sid)
        if s.closing or s.sent_end:
            raise StreamError(f"stream {sid} is closed for writing")
        s.out_buf += data

    def unsent_bytes(self, sid: int) -> int:
        s = self._streams.get(sid)
        if s is None:
            return 0
        return len(s.out_buf) + sum(len(d) for _, d in s.retransmit) + s.unacked

    def read(self, sid: int, max_bytes: int = -1) -> bytes:
        s = self._streams.get(sid) or self._leftover.get(sid)
        if s is None:
            return b""
        n = len(s.recv_buf) if max_bytes < 0 else min(max_bytes, len(s.recv_buf))
        out = bytes(s.recv_buf[:n])
        del s.recv_buf[:n]
        s.consumed += n
        return out

    def readable(self, sid: int) -> int:
        s = self._streams.get(sid) or self._leftover.get(sid)
        return len(s.recv_buf) if s else 0

    def _retire(self, sid: int) -> None:
        s = self._streams.pop(sid, None)
        self._closed_streams.add(sid)
        if s is not None and s.recv_buf:
            self._leftover[sid] = s  # bytes that arrived before the close stay readable

    def stream_is_open(self, sid: int) -> bool:
        return sid in self._streams

    def close_stream(self, sid: int, error_code: int = ErrorCode.NO_ERROR, message: str = "") -> None:
        """Close our side: pending bytes and money in flight finish first, no new money is sent."""
        s = self._streams.get(sid)
        if s is None or s.closing:
            return
        s.closing = True
        s.close_code, s.close_message = error_code, message
        if error_code != ErrorCode.NO_ERROR:
            s.out_buf.clear()
            s.retransmit.clear()

    def close(self, error_code: int = ErrorCode.NO_ERROR, message: str = "") -> None:
        """Close gracefully: flush streams, then tell the peer with a ConnectionClose frame."""
        if self.state is not State.OPEN:
            return
        self.state = State.CLOSING
        self._close_requested = True
        self._close_code, self._close_message = error_code, message
        for sid in list(self._streams):
            self.close_stream(sid, error_code, message)
        if self.destination_account is None:
            # The peer never told us its address, so there is nobody to tell.
            self._finish(error_code, message, False)

    # --- timers -------------------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        if self.closed:
            return None
        deadline = self._last_active + self.config.idle_timeout
        if self._resume_at > 0:
            deadline = min(deadline, self._resume_at)
        return deadline

    def handle_timer(self, now: float) -> None:
        if self.closed:
            return
        if now - self._last_active >= self.config.idle_timeout:
            self._fail(ErrorCode.INTERNAL_ERROR, "Connection timed out due to inactivity", now)
        if self._resume_at and now >= self._resume_at:
            self._resume_at = 0.0

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
            if self._resume_at > now:
                return out
            out.extend(self._probe(now))
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
            self._want_rate or any(s.available > 0 for s in self._streams.values())
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

    def _probe(self, now: float) -> list[OutgoingPrepare]:
        if not self._needs_rate() or self._probe_round or self.state is not State.OPEN:
            return []
        amounts = sorted({a for a in self._probe_next if 0 < a <= self._max_packet_amount}) or [
            self._max_packet_amount
        ]
        self._probe_attempts += 1
        out = []
        for amount in amounts:
            seq = self._sequence()
            packet = StreamPacket(seq, PacketType.PREPARE, 0, tuple(self._account_frames()))
            cond = crypto.random_condition()
            self._probe_round[seq] = amount
            self._in_flight[seq] = _InFlight(_Kind.PROBE, seq, amount, 0, cond, False, {}, [], [], [], [])
            out.append(OutgoingPrepare(seq, self._prepare(now, amount, self._seal(packet), cond)))
        return out

    def _dest_room_in_source(self, s: _Stream, rate: Fraction) -> int:
        if s.remote_receive_max == UINT64_MAX:
            return UINT64_MAX
        room = s.remote_receive_max - s.remote_received - _floor_mul(s.held, rate)
        if room <= 0:
            return 0
        return UINT64_MAX if rate == 0 else math.floor(room / rate)

    def _adverts(self, force_all: bool) -> tuple[list[Frame], list[int]]:
        frames: list[Frame] = []
        ids: list[int] = []
        for s in self._streams.values():
            if s.sent_end:
                continue
            max_offset = s.max_acceptable_offset
            if force_all or s.adv_receive_max != s.receive_max or s.adv_max_offset != max_offset:
                frames.append(StreamMaxMoney(s.id, s.receive_max, s.total_received))
                frames.append(StreamMaxData(s.id, max_offset))
                s.adv_receive_max, s.adv_max_offset = s.receive_max, max_offset
                ids.append(s.id)
        return frames, ids

    def _build(self, now: float) -> OutgoingPrepare | None:
        if self.state is State.CLOSED:
            return None
        control = self._queued
        self._queued = []
        account = self._account_frames()
        frames: list[Frame] = list(control)
        adverts, advert_ids = self._adverts(force_all=False)
        frames += adverts
        money: dict[int, int] = {}
        data: list[tuple[int, int, bytes]] = []
        closes: list[StreamClose] = []
        amount = 0
        rate = self.exchange_rate
        if rate is not None:
            cap = self._test_packet_amount
            if rate > 1:
                cap = min(cap, math.floor(UINT64_MAX / rate))
            for s in self._streams.values():
                want = s.available
                if want <= 0 or cap <= 0:
                    continue
                take = min(want, cap, self._dest_room_in_source(s, rate))
                if take > 0:
                    money[s.id] = take
                    s.held += take
                    amount += take
                    cap -= take
                left = want - take
                if left > 0 and self._dest_room_in_source(s, rate) <= take:
                    blocked = (s.send_max, s.total_sent)
                    if s.told_money_blocked != blocked:
                        frames.append(StreamMoneyBlocked(s.id, s.send_max, s.total_sent))
                        s.told_money_blocked = blocked
        if amount:
            frames += [StreamMoney(sid, a) for sid, a in money.items()]
        else:
            data = self._take_data(frames)
        for s in self._streams.values():
            flushed = not s.held and not s.has_data_to_send() and not s.unacked
            if s.closing and not s.sent_end and flushed and not any(sid == s.id for sid, _, _ in data):
                close = StreamClose(s.id, s.close_code, s.close_message)
                frames.append(close)
                closes.append(close)
                s.sent_end = True
        if not frames:
            return None
        frames += account
        min_dest = 0
        if amount and rate is not None:
            min_dest = _floor_mul(_floor_mul(amount, rate), 1 - self.config.slippage)
            if self.config.min_exchange_rate is not None:
                min_dest = max(min_dest, math.ceil(amount * self.config.min_exchange_rate))
        seq = self._sequence()
        packet = StreamPacket(seq, PacketType.PREPARE, min_dest, tuple(frames))
        sealed = self._seal(packet)
        fulfillment = crypto.fulfillment(self._fulfillment_key, sealed)
        cond = crypto.condition(fulfillment)
        kind = _Kind.MONEY if amount else _Kind.DATA
        self._in_flight[seq] = _InFlight(kind, seq, amount, min_dest, cond, True, money, data, closes, advert_ids,
                                         list(control))
        return OutgoingPrepare(seq, self._prepare(now, amount, sealed, cond))

    def _take_data(self, frames: list[Frame]) -> list[tuple[int, int, bytes]]:
        budget = MAX_DATA_SIZE - crypto.ENCRYPTION_OVERHEAD - len(encode_stream_packet(
            StreamPacket(MAX_SEQUENCE, PacketType.PREPARE, UINT64_MAX, tuple(frames)))) - FRAME_SLACK
        conn_room = self._remote_max_offset - sum(s.send_offset for s in self._streams.values())
        out: list[tuple[int, int, bytes]] = []
        for s in self._streams.values():
            if budget <= FRAME_SLACK:
                break
            while s.retransmit and budget > FRAME_SLACK:
                offset, chunk = s.retransmit.popleft()
                if len(chunk) > budget:
                    s.retransmit.appendleft((offset + budget, chunk[budget:]))
                    chunk = chunk[:budget]
                out.append((s.id, offset, chunk))
                budget -= len(chunk) + 24
            room = min(budget, s.remote_max_offset - s.send_offset, conn_room)
            if s.out_buf and room > 0:
                chunk = bytes(s.out_buf[:room])
                del s.out_buf[:room]
                out.append((s.id, s.send_offset, chunk))
                s.send_offset += len(chunk)
                conn_room -= len(chunk)
                budget -= len(chunk) + 24
            if s.out_buf and s.remote_max_offset - s.send_offset <= 0:
                want = s.send_offset + len(s.out_buf)
                if s.told_data_blocked != want:
                    frames.append(StreamDataBlocked(s.id, want))
                    s.told_data_blocked = want
        if conn_room <= 0 and any(s.out_buf for s in self._streams.values()):
            want = sum(s.send_offset + len(s.out_buf) for s in self._streams.values())
            if self._told_conn_blocked != want:
                frames.append(ConnectionDataBlocked(want))
                self._told_conn_blocked = want
        for sid, offset, chunk in out:
            self._streams[sid].unacked += len(chunk)
            frames.append(StreamData(sid, offset, chunk))
        return out

    def _maybe_close_packet(self, now: float) -> OutgoingPrepare | None:
        """The final ConnectionClose, once every stream has flushed (or at once on an error)."""
        if not self._close_requested or self._close_sent:
            return None
        if self._close_code == ErrorCode.NO_ERROR and (self._streams or self._in_flight):
            return None
        self._close_sent = True
        seq = self._sequence()
        frames: tuple[Frame, ...] = (ConnectionClose(self._close_code, self._close_message),)
        cond = crypto.random_condition()
        packet = OutgoingPrepare(seq, self._prepare(now, 0, self._seal(StreamPacket(seq, PacketType.PREPARE, 0,
                                                                                      frames)), cond))
        # Closed once said: the reply carries nothing we need (and a JS peer may disconnect before sending it).
        self._finish(self._close_code, self._close_message, False)
        return packet

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
            self._probe_reply(flight, reply, response, now)
            return
        if isinstance(reply, Fulfill):
            self._on_fulfill(flight, reply, response, now)
        else:
            self._on_reject(flight, reply, response, now)

    def _on_fulfill(self, flight: _InFlight, reply: Fulfill, response: StreamPacket | None, now: float) -> None:
        # Paid, whatever else is wrong with the reply: the money leaves the stream's allowance for good.
        for sid, amount in flight.money.items():
            s = self._streams.get(sid)
            if s is not None:
                s.held -= amount
                s.total_sent += amount
                self._events.append(MoneySent(sid, amount))
        self.total_sent += flight.source_amount
        for sid, _offset, chunk in flight.data:
            s = self._streams.get(sid)
            if s is not None:
                s.unacked -= len(chunk)
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
            self._grow(flight.source_amount)
        self._retry_delay = self.config.retry_delay_start
        self._receiver_rejects = 0
        self._slippage_rejects = 0

    def _after_close_acked(self, flight: _InFlight) -> None:
        for close in flight.closes:
            s = self._streams.get(close.stream_id)
            if s is not None:
                self._retire(s.id)
                self._events.append(StreamClosed(s.id, close.error_code, close.error_message, False))

    def _undo(self, flight: _InFlight, processed: bool) -> None:
        for sid, amount in flight.money.items():
            s = self._streams.get(sid)
            if s is not None:
                s.held -= amount
        for sid, offset, chunk in flight.data:
            s = self._streams.get(sid)
            if s is not None:
                s.unacked -= len(chunk)
                if processed:
                    self._events.append(DataSent(sid))
                else:
                    s.retransmit.append((offset, chunk))
        if processed:
            return
        for close in flight.closes:
            s = self._streams.get(close.stream_id)
            if s is not None:
                s.sent_end = False
        for sid in flight.adverts:
            s = self._streams.get(sid)
            if s is not None:
                s.adv_receive_max = s.adv_max_offset = None
        self._queued[:0] = [f for f in flight.control if not isinstance(f, ConnectionNewAddress | ConnectionAssetDetails)]

    def _on_reject(self, flight: _InFlight, reply: Reject, response: StreamPacket | None, now: float) -> None:
        # A STREAM reply means the receiver read the packet: the data and closes it carried were processed (the
        # JS receiver even chokes on data resent below its read offset), and only the money comes back.
        self._undo(flight, processed=response is not None)
        if response is not None:
            self._after_close_acked(flight)
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
                self._backoff(now)
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
            if code == "T04" and flight.sequence >= self._recovery_until:
                smallest = min(flight.source_amount, self._test_packet_amount) or 1
                self._test_packet_amount = max(2, smallest - smallest // 3)
            self._shrink(flight.sequence)
            self._backoff(now)

    def _backoff(self, now: float) -> None:
        self._resume_at = max(self._resume_at, now + self._retry_delay)
        self._retry_delay = min(self._retry_delay * 2, self.config.retry_delay_max)

    def _grow(self, amount: int) -> None:
        if self._window < self._ssthresh:
            self._window += 1
        else:
            self._window += 1 / self._window
        self._window = min(self._window, float(self.config.max_window))
        if amount >= self._test_packet_amount and self._test_packet_amount < self._max_packet_amount:
            if self._max_packet_amount != UINT64_MAX:
                step = max(1, self._max_packet_amount // 10)
                self._test_packet_amount = min(self._test_packet_amount + step, self._max_packet_amount)
            else:
                self._test_packet_amount = min(self._test_packet_amount * 2, UINT64_MAX)

    def _shrink(self, sequence: int) -> None:
        if sequence < self._recovery_until:
            return  # already reacted to this round of losses
        self._window = max(1.0, self._window / 2)
        self._ssthresh = max(2.0, self._window)
        self._recovery_until = self._next_sequence

    def _on_amount_too_large(self, reply: Reject, sent: int, now: float) -> None:
        new_max = max(0, sent - 1)
        try:
            d = decode_amount_too_large(reply.data)
            if d.received_amount > d.maximum_amount:
                new_max = sent * d.maximum_amount // d.received_amount
        except CodecError:
            pass
        self._max_packet_amount = min(self._max_packet_amount, new_max)
        self._test_packet_amount = min(self._test_packet_amount, self._max_packet_amount)
        if self._max_packet_amount == 0:
            self._fail(ErrorCode.APPLICATION_ERROR, "Cannot send: the path's maximum packet amount is 0", now)

    # --- probing --------------------------------------------------------------------------------------------

    def _probe_reply(self, flight: _InFlight, reply: Reply, response: StreamPacket | None, now: float) -> None:
        self._probe_round.pop(flight.sequence, None)
        self._probe_results.append((flight.source_amount, response if response is not None else
                                    (reply if isinstance(reply, Reject) else None)))
        if not self._probe_round and not self.closed:
            self._probe_done(now)

    def _probe_done(self, now: float) -> None:
        results, self._probe_results = self._probe_results, []
        next_amounts: set[int] = set()
        temporary: list[int] = []
        finals: list[Reject] = []
        answered: set[int] = set()
        for amount, result in results:
            if isinstance(result, StreamPacket):
                answered.add(amount)
                self._probe_max_ok = max(self._probe_max_ok, amount)
                delivered = result.prepare_amount
                best = self._probe_best
                if delivered > 0 and (best is None or (len(str(delivered)), amount) > (len(str(best[1])), best[0])):
                    self._probe_best = (amount, delivered)
            elif isinstance(result, Reject) and result.code == "F08":
                before = self._max_packet_amount
                self._on_amount_too_large(result, amount, now)
                if self.closed:
                    return
                if self._max_packet_amount < before:
                    next_amounts.add(self._max_packet_amount)
            elif isinstance(result, Reject) and result.family is ErrorFamily.FINAL:
                finals.append(result)
            else:
                temporary.append(amount)
                self._probe_saw_temporary = True
        best = self._probe_best
        if best is not None and len(str(best[1])) >= self.config.min_rate_precision:
            self._set_rate(Fraction(best[1], best[0]), now)
            return
        if temporary:
            smallest = min(temporary)
            next_amounts.add(max(1, smallest - smallest // 3))
            if self._probe_best is None or smallest <= self._probe_best[0]:
                # Nothing got through: wait. (When only the bigger amounts failed, the amount was the problem.)
                self._backoff(now)
        next_amounts -= answered
        if next_amounts and self._probe_attempts < self.config.probe_max_attempts:
            self._probe_next = sorted(next_amounts)
            return
        if best is not None:
            # The path cannot carry a packet big enough for full precision: the largest that got through gives
            # the best rate anyone can know here (ilp-protocol-stream gives up instead).
            self._set_rate(Fraction(best[1], best[0]), now)
        elif finals:
            r = finals[0]
            detail = f": {r.message}" if r.message else ""
            self._fail(ErrorCode.APPLICATION_ERROR,
                       f"cannot reach the receiver: {r.code} from {r.triggered_by or 'the path'}{detail}", now)
        else:
            self._fail(ErrorCode.APPLICATION_ERROR,
                       "Unable to establish the exchange rate: no test packet made it to the receiver", now)

    def _set_rate(self, rate: Fraction, now: float) -> None:
        minimum = self.config.min_exchange_rate
        if minimum is not None and rate < minimum:
            self._fail(ErrorCode.APPLICATION_ERROR,
                       f"exchange rate {float(rate):.6g} is below the minimum acceptable {float(minimum):.6g}", now)
            return
        self.exchange_rate = rate
        if self._probe_saw_temporary and self._probe_max_ok:
            # Bigger test packets ran out of liquidity: start money at the largest amount that got through.
            self._test_packet_amount = min(self._test_packet_amount, self._probe_max_ok)
        self._events.append(Connected(rate))

    # --- frames from the peer -------------------------------------------------------------------------------

    def _handle_control_frames(self, frames: tuple[Frame, ...], now: float) -> None:
        for frame in frames:
            match frame:
                case ConnectionNewAddress(account):
                    if not is_valid_address(account):
                        continue
                    self._queued += [ConnectionMaxStreamId(self._max_stream_id),
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
                    self._remote_max_offset = max(self._remote_max_offset, offset)
                case ConnectionMaxStreamId(sid):
                    self._remote_max_stream_id = max(self._remote_max_stream_id, sid)
                case StreamClose(sid, code, message):
                    self._remote_stream_close(sid, code, message)
                case StreamMaxMoney(sid, receive_max, total):
                    s = self._streams.get(sid)
                    if s is not None:
                        s.remote_received = max(s.remote_received, total)
                        s.remote_receive_max = (receive_max if s.remote_receive_max == UINT64_MAX
                                                else max(s.remote_receive_max, receive_max))
                case StreamMaxData(sid, offset):
                    s = self._streams.get(sid)
                    if s is not None:
                        s.remote_max_offset = max(s.remote_max_offset, offset)
                case StreamReceipt() | StreamMoneyBlocked() | StreamDataBlocked() | ConnectionDataBlocked():
                    pass
                case ConnectionStreamIdBlocked():
                    pass

    def _remote_stream_close(self, sid: int, code: int, message: str) -> None:
        s = self._streams.get(sid)
        if s is None or s.remote_closed:
            return
        s.remote_closed = True
        already_ended = s.sent_end
        s.sent_end = True
        s.closing = True
        self._retire(sid)
        if not already_ended:
            self._events.append(StreamClosed(sid, code, message, True))
        self._max_stream_id += 2
        self._queued.append(ConnectionMaxStreamId(self._max_stream_id))

    # --- incoming Prepares ------------------------------------------------------------------------------------

    def _reply_packet(self, sequence: int, kind: PacketType, amount: int, frames: list[Frame]) -> bytes:
        return self._seal(StreamPacket(sequence, kind, min(amount, UINT64_MAX), tuple(frames)))

    def handle_prepare(self, prepare: Prepare, now: float) -> Reply:
        """Answer a Prepare sent to this connection (RFC 29 §4.4); never raises."""
        account = self.source_account or ""
        try:
            request = decode_stream_packet(self._cipher.decrypt(prepare.data))
        except CodecError:
            return Reject("F06", account, "", b"")
        if request.packet_type != PacketType.PREPARE:
            return Reject("F06", account, "", b"")
        self._last_active = now
        frames: list[Frame] = [ConnectionMaxData(self._connection_max_acceptable())]

        def reject() -> Reject:
            body = frames + self._queued
            self._queued = []
            data = self._reply_packet(request.sequence, PacketType.REJECT, prepare.amount, body)
            return Reject("F99", account, "", data)

        if self.closed:
            code = self.close_event.error_code if self.close_event else ErrorCode.NO_ERROR
            frames.append(ConnectionClose(code, self.close_event.message if self.close_event else ""))
            fulfillment = crypto.fulfillment(self._fulfillment_key, prepare.data)
            if prepare.amount == 0 and crypto.condition(fulfillment) == prepare.execution_condition:
                # No money, so accepting costs nothing; and ilp-protocol-stream 2.7.1 resends a rejected
                # StreamClose for ever (its end() restarts the send loop on every ConnectionClose it reads).
                data = self._reply_packet(request.sequence, PacketType.FULFILL, 0, frames)
                return Fulfill(fulfillment, data)
            return reject()
        for frame in request.frames:
            if isinstance(frame, StreamMoney | StreamData | StreamMaxMoney | StreamMaxData):
                sid = frame.stream_id
                if sid in self._closed_streams:
                    if isinstance(frame, StreamMoney | StreamData):
                        if not any(isinstance(f, StreamClose) and f.stream_id == sid for f in frames):
                            frames.append(StreamClose(sid, ErrorCode.STREAM_STATE_ERROR, "Stream is already closed"))
                        return reject()
                    continue
                if sid not in self._streams and not self._new_remote_stream(sid, now):
                    return reject()
        self._handle_control_frames(request.frames, now)
        if self.closed:
            return reject()
        for frame in request.frames:
            if isinstance(frame, StreamData):
                self._incoming_data(frame)
        for s in self._streams.values():
            if s.next_offset + sum(len(d) for d in s.pending.values()) > 0 and self._over_limit(s):
                self._fail(ErrorCode.FLOW_CONTROL_ERROR,
                           f"Exceeded flow control limits: stream {s.id} can accept up to offset "
                           f"{s.max_acceptable_offset}", now)
                frames.append(ConnectionClose(ErrorCode.FLOW_CONTROL_ERROR, "Exceeded flow control limits"))
                return reject()
        amount = prepare.amount
        if request.prepare_amount > amount:
            return reject()
        fulfillment = crypto.fulfillment(self._fulfillment_key, prepare.data)
        if crypto.condition(fulfillment) != prepare.execution_condition:
            return reject()
        shares = [(f.stream_id, f.shares) for f in request.frames if isinstance(f, StreamMoney)]
        total_shares = sum(sh for _, sh in shares)
        credits: dict[int, int] = {}
        for sid, sh in shares:
            if total_shares == 0:
                break
            part = amount * sh // total_shares
            credits[sid] = credits.get(sid, 0) + part
        for sid, part in credits.items():
            st = self._streams.get(sid)
            if st is None or st.closing or st.sent_end:
                frames.append(StreamClose(sid, ErrorCode.STREAM_STATE_ERROR, "Stream is already closed"))
                return reject()
            room = max(0, st.receive_max - st.total_received)
            if part > math.ceil(room * Fraction(101, 100)):
                frames.append(StreamMaxMoney(sid, st.receive_max, st.total_received))
                return reject()
        if self.total_received + amount > UINT64_MAX:
            return reject()
        self.total_received += amount
        for sid, part in credits.items():
            target = self._streams[sid]
            target.total_received += part
            if part:
                self._events.append(MoneyReceived(sid, part))
        mentioned = {f.stream_id for f in request.frames if isinstance(f, StreamMoney | StreamData | StreamMaxMoney
                                                                       | StreamMaxData | StreamMoneyBlocked
                                                                       | StreamDataBlocked)}
        for s in self._streams.values():
            if s.closing and not s.sent_end and not s.remote_closed and not s.held and not s.has_data_to_send() \
                    and not s.unacked:
                frames.append(StreamClose(s.id, s.close_code, s.close_message))
                s.sent_end = s.close_in_reply = True
            elif not s.sent_end and (s.id in mentioned or s.adv_receive_max != s.receive_max
                                     or s.adv_max_offset != s.max_acceptable_offset):
                # The limits of the streams this packet used, and of any that changed (JS sends all, every time).
                frames.append(StreamMaxMoney(s.id, s.receive_max, s.total_received))
                frames.append(StreamMaxData(s.id, s.max_acceptable_offset))
                s.adv_receive_max, s.adv_max_offset = s.receive_max, s.max_acceptable_offset
        if self.config.receipt_nonce and self.config.receipt_secret:
            for sid in credits:
                total = self._streams[sid].total_received
                receipt = crypto.create_receipt(self.config.receipt_nonce, sid, total,
                                                self.config.receipt_secret)
                frames.append(StreamReceipt(sid, receipt))
        frames += self._queued
        self._queued = []
        for s in [s for s in self._streams.values() if s.close_in_reply]:
            # We told the peer in this Fulfill; nothing more will flow on it.
            self._retire(s.id)
            self._events.append(StreamClosed(s.id, s.close_code, s.close_message, False))
        return Fulfill(fulfillment, self._reply_packet(request.sequence, PacketType.FULFILL, amount, frames))

    def _connection_max_acceptable(self) -> int:
        consumed = sum(s.consumed for s in self._streams.values())
        return consumed + self.config.connection_buffer

    def _over_limit(self, s: _Stream) -> bool:
        top = max([s.next_offset] + [o + len(d) for o, d in s.pending.items()])
        return top > s.max_acceptable_offset

    def _new_remote_stream(self, sid: int, now: float) -> bool:
        if (sid % 2 == 0) != (not self.is_server):
            who = "Client" if self.is_server else "Server"
            parity = "odd" if self.is_server else "even"
            message = f"Invalid Stream ID: {sid}. {who}-initiated streams must have {parity}-numbered IDs"
            self._queued.append(ConnectionClose(ErrorCode.PROTOCOL_VIOLATION, message))
            self._fail(ErrorCode.PROTOCOL_VIOLATION, message, now, tell=False)
            return False
        if sid > self._max_stream_id:
            message = f"Maximum number of open streams exceeded. Got stream: {sid}, current max stream ID: " \
                      f"{self._max_stream_id}"
            self._queued.append(ConnectionClose(ErrorCode.STREAM_ID_ERROR, message))
            self._fail(ErrorCode.STREAM_ID_ERROR, message, now, tell=False)
            return False
        if self._max_stream_id * 3 < sid * 4:
            self._queued.append(ConnectionMaxStreamId(self._max_stream_id))
        s = _Stream(sid, receive_max=self.config.default_receive_max, buffer=self.config.stream_buffer)
        self._streams[sid] = s
        self._events.append(StreamOpened(sid))
        return True

    def _incoming_data(self, frame: StreamData) -> None:
        s = self._streams.get(frame.stream_id)
        if s is None or s.remote_closed:
            return
        offset, chunk = frame.offset, frame.data
        end = offset + len(chunk)
        if end <= s.next_offset or not chunk:
            return  # a duplicate of bytes we already have
        if offset < s.next_offset:
            chunk, offset = chunk[s.next_offset - offset:], s.next_offset
        if len(chunk) > len(s.pending.get(offset, b"")):
            s.pending[offset] = chunk
        before = s.next_offset
        while s.pending:
            ready = [o for o in s.pending if o <= s.next_offset]
            if not ready:
                break
            for o in ready:
                piece = s.pending.pop(o)
                if o + len(piece) > s.next_offset:
                    s.recv_buf += piece[s.next_offset - o:]
                    s.next_offset = o + len(piece)
        if s.next_offset > before:
            self._events.append(DataReceived(s.id))

    # --- ending -------------------------------------------------------------------------------------------

    def _fail(self, code: int, message: str, now: float, tell: bool = True) -> None:
        """End the connection with an error; if the peer's address is known, tell it in one last packet."""
        if self.closed:
            return
        for flight in list(self._in_flight.values()):
            if flight.kind is _Kind.PROBE:
                self._in_flight.pop(flight.sequence)
        self._probe_round.clear()
        if tell and self.destination_account is not None and not self._close_sent:
            self._close_requested = True
            self._close_code, self._close_message = code, message
        for s in self._streams.values():
            s.closing = True
            s.out_buf.clear()
            s.retransmit.clear()
        self._finish(code, message, False)

    def _finish(self, code: int, message: str, by_remote: bool) -> None:
        if self.closed:
            return
        self.state = State.CLOSED
        if by_remote:
            self._close_sent = True  # the peer already knows
        for sid in list(self._streams):
            self._retire(sid)
            self._events.append(StreamClosed(sid, code, message, by_remote))
        self.close_event = ConnectionClosed(code, message, by_remote, self.total_sent, self.total_delivered,
                                            self.total_received)
        self._events.append(self.close_event)

    def final_packet(self, now: float) -> OutgoingPrepare | None:
        """After a local error, the ConnectionClose to tell the peer (best effort; the reply does not matter)."""
        if not self._close_requested or self._close_sent or self.destination_account is None:
            return None
        self._close_sent = True
        try:
            seq = self._sequence()
        except _SequenceExhausted:
            seq = MAX_SEQUENCE
        frames: tuple[Frame, ...] = (ConnectionClose(self._close_code, self._close_message),)
        sealed = self._seal(StreamPacket(seq, PacketType.PREPARE, 0, frames))
        return OutgoingPrepare(seq, self._prepare(now, 0, sealed, crypto.random_condition()))


class _SequenceExhausted(Exception):
    pass


def describe_close(event: ConnectionClosed) -> str:
    who = "peer" if event.by_remote else "local"
    text = f"{who} closed: {error_code_name(event.error_code)}"
    return text + (f" ({event.message})" if event.message else "")
