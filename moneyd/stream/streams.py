"""One STREAM stream inside a connection: its life as an explicit state table, and its two halves.

A stream's life (what the connection may still do with it) is a ``StreamState``, changed only through
``StreamRecord.apply(trigger)`` and the ``TRANSITIONS`` table below, as h11 writes its states; a trigger the table
does not list for a state is a bug in the caller and raises. The ``SendHalf`` holds the money we send (allowance,
amount held by Prepares in flight, the peer's limits) and the bytes we write (a send buffer, chunks to resend,
bytes not yet acknowledged); the ``ReceiveHalf`` holds the money we accept and the bytes we read (reassembly of
out-of-order chunks, the read buffer, the limits we last advertised).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from fractions import Fraction
from typing import Final

from ..wire.oer import UINT64_MAX
from .packet import (
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

# Room left in a packet's data for the frame headers added after measuring.
FRAME_SLACK: Final = 64
# What a StreamData frame costs on top of its bytes (type, length, stream id, offset), rounded up.
DATA_FRAME_OVERHEAD: Final = 24
# A receiver takes up to 1% over its limit: the sender's rounding of shares and rates is not exact.
RECEIVE_TOLERANCE: Final = Fraction(101, 100)


class StreamState(Enum):
    OPEN = "open"  # money and bytes flow both ways
    CLOSING = "closing"  # we close: money and bytes in flight finish first, no new ones are sent
    END_SENT = "end sent"  # our StreamClose is in a Prepare in flight
    CLOSED = "closed"  # nothing more flows; the connection forgets the stream


class Trigger(Enum):
    CLOSE = "close"  # the application closes the stream (or the connection is failing)
    END_IN_PREPARE = "end in prepare"  # everything flushed: our StreamClose goes out in a Prepare
    END_LOST = "end lost"  # that Prepare was rejected before the peer read it: say it again
    END_ACKED = "end acked"  # the peer read our StreamClose (its Fulfill, or a Reject with a STREAM reply)
    END_IN_REPLY = "end in reply"  # everything flushed: our StreamClose goes out in the Fulfill we answer with
    REMOTE_END = "remote end"  # the peer's StreamClose arrived
    FINISH = "finish"  # the connection ended


S, T = StreamState, Trigger
TRANSITIONS: Final[dict[tuple[StreamState, Trigger], StreamState]] = {
    (S.OPEN, T.CLOSE): S.CLOSING,
    (S.OPEN, T.REMOTE_END): S.CLOSED,
    (S.OPEN, T.FINISH): S.CLOSED,
    (S.CLOSING, T.END_IN_PREPARE): S.END_SENT,
    (S.CLOSING, T.END_IN_REPLY): S.CLOSED,
    (S.CLOSING, T.REMOTE_END): S.CLOSED,
    (S.CLOSING, T.FINISH): S.CLOSED,
    (S.END_SENT, T.END_LOST): S.CLOSING,
    (S.END_SENT, T.END_ACKED): S.CLOSED,
    (S.END_SENT, T.REMOTE_END): S.CLOSED,
    (S.END_SENT, T.FINISH): S.CLOSED,
}
del S, T


class InvalidTransition(Exception):
    """A trigger the state table does not allow: a bug in the connection, never the peer's doing."""


@dataclass
class SendHalf:
    """Money and bytes we send on one stream."""

    send_max: int = 0  # the application's allowance
    total_sent: int = 0  # fulfilled
    held: int = 0  # in Prepares in flight: neither sent nor available until a reply says which
    remote_receive_max: int = UINT64_MAX  # the peer's limit, in its units
    remote_received: int = 0
    # bytes: everything from send_offset on is in out_buf, never sent yet
    out_buf: bytearray = field(default_factory=bytearray)
    send_offset: int = 0
    retransmit: deque[tuple[int, bytes]] = field(default_factory=deque)
    unacked: int = 0
    remote_max_offset: int = 16384
    told_money_blocked: tuple[int, int] | None = None  # what our last StreamMoneyBlocked said
    told_data_blocked: int | None = None

    @property
    def allowance(self) -> int:
        return max(0, self.send_max - self.total_sent - self.held)

    def room_in_source(self, rate: Fraction) -> int:
        """How much more (in our units) the peer's receive max takes, counting what is in flight."""
        if self.remote_receive_max == UINT64_MAX:
            return UINT64_MAX
        room = self.remote_receive_max - self.remote_received - self.held * rate.numerator // rate.denominator
        if room <= 0:
            return 0
        return UINT64_MAX if rate == 0 else math.floor(room / rate)

    def on_max_money(self, receive_max: int, total_received: int) -> None:
        """The peer's StreamMaxMoney. Its first limit replaces "unlimited"; later ones never lower it."""
        self.remote_received = max(self.remote_received, total_received)
        self.remote_receive_max = (receive_max if self.remote_receive_max == UINT64_MAX
                                   else max(self.remote_receive_max, receive_max))

    def on_max_data(self, offset: int) -> None:
        self.remote_max_offset = max(self.remote_max_offset, offset)

    def money_settled(self, amount: int, paid: bool) -> None:
        """A Prepare holding ``amount`` came back: fulfilled (``paid``) or proven unpaid."""
        self.held -= amount
        if paid:
            self.total_sent += amount

    def money_blocked(self, stream_id: int) -> StreamMoneyBlocked | None:
        """The StreamMoneyBlocked to send, unless this very state was said already."""
        blocked = (self.send_max, self.total_sent)
        if self.told_money_blocked == blocked:
            return None
        self.told_money_blocked = blocked
        return StreamMoneyBlocked(stream_id, self.send_max, self.total_sent)

    # --- bytes ------------------------------------------------------------------------------------------------

    def has_data_to_send(self) -> bool:
        return bool(self.retransmit) or bool(self.out_buf)

    @property
    def flushed(self) -> bool:
        """No money in flight and every byte acknowledged: a StreamClose may follow."""
        return not self.held and not self.has_data_to_send() and not self.unacked

    @property
    def unsent_bytes(self) -> int:
        return len(self.out_buf) + sum(len(d) for _, d in self.retransmit) + self.unacked

    def discard(self) -> None:
        """Drop bytes not yet sent (closed with an error)."""
        self.out_buf.clear()
        self.retransmit.clear()

    def take_bytes(self, budget: int, conn_room: int) -> tuple[list[tuple[int, bytes]], int, int]:
        """Chunks (offset, bytes) for one packet: lost chunks first, then new bytes within ``budget`` (bytes of
        packet left), the peer's stream window and ``conn_room`` (its connection window). Returns the chunks, the
        budget left and how many new bytes were taken (they count against the connection window)."""
        out: list[tuple[int, bytes]] = []
        while self.retransmit and budget > FRAME_SLACK:
            offset, chunk = self.retransmit.popleft()
            if len(chunk) > budget:
                self.retransmit.appendleft((offset + budget, chunk[budget:]))
                chunk = chunk[:budget]
            out.append((offset, chunk))
            budget -= len(chunk) + DATA_FRAME_OVERHEAD
        room = min(budget, self.remote_max_offset - self.send_offset, conn_room)
        new = 0
        if self.out_buf and room > 0:
            chunk = bytes(self.out_buf[:room])
            del self.out_buf[:room]
            out.append((self.send_offset, chunk))
            new = len(chunk)
            self.send_offset += new
            budget -= new + DATA_FRAME_OVERHEAD
        self.unacked += sum(len(c) for _, c in out)
        return out, budget, new

    def data_blocked(self, stream_id: int) -> StreamDataBlocked | None:
        """The StreamDataBlocked to send when the peer's stream window stops our bytes (once per offset)."""
        if not self.out_buf or self.remote_max_offset - self.send_offset > 0:
            return None
        want = self.send_offset + len(self.out_buf)
        if self.told_data_blocked == want:
            return None
        self.told_data_blocked = want
        return StreamDataBlocked(stream_id, want)

    def bytes_settled(self, offset: int, chunk: bytes, lost: bool) -> None:
        """A chunk's Prepare came back: read by the peer, or ``lost`` (resend it)."""
        self.unacked -= len(chunk)
        if lost:
            self.retransmit.append((offset, chunk))


@dataclass
class ReceiveHalf:
    """Money and bytes we receive on one stream."""

    receive_max: int = 0
    total_received: int = 0
    buffer: int = 16384  # bytes we accept beyond what the application read
    pending: dict[int, bytes] = field(default_factory=dict)  # out-of-order chunks by offset
    recv_buf: bytearray = field(default_factory=bytearray)  # in order, not yet read
    next_offset: int = 0  # end of the contiguous bytes received
    consumed: int = 0  # what the application has read
    # what we last told the peer (None: tell again)
    adv_receive_max: int | None = None
    adv_max_offset: int | None = None

    @property
    def max_acceptable_offset(self) -> int:
        return self.consumed + self.buffer

    def accepts(self, amount: int) -> bool:
        room = max(0, self.receive_max - self.total_received)
        return amount <= math.ceil(room * RECEIVE_TOLERANCE)

    def receive(self, offset: int, chunk: bytes) -> bool:
        """Take a StreamData chunk (duplicates and overlaps allowed); True if new bytes became readable."""
        end = offset + len(chunk)
        if end <= self.next_offset or not chunk:
            return False  # a duplicate of bytes we already have
        if offset < self.next_offset:
            chunk, offset = chunk[self.next_offset - offset:], self.next_offset
        if len(chunk) > len(self.pending.get(offset, b"")):
            self.pending[offset] = chunk
        before = self.next_offset
        while self.pending:
            ready = [o for o in self.pending if o <= self.next_offset]
            if not ready:
                break
            for o in ready:
                piece = self.pending.pop(o)
                if o + len(piece) > self.next_offset:
                    self.recv_buf += piece[self.next_offset - o:]
                    self.next_offset = o + len(piece)
        return self.next_offset > before

    def over_limit(self) -> bool:
        """The peer sent bytes beyond the window we gave it."""
        if self.next_offset + sum(len(d) for d in self.pending.values()) == 0:
            return False
        top = max([self.next_offset] + [o + len(d) for o, d in self.pending.items()])
        return top > self.max_acceptable_offset

    def read(self, max_bytes: int = -1) -> bytes:
        n = len(self.recv_buf) if max_bytes < 0 else min(max_bytes, len(self.recv_buf))
        out = bytes(self.recv_buf[:n])
        del self.recv_buf[:n]
        self.consumed += n
        return out

    @property
    def limits_changed(self) -> bool:
        return self.adv_receive_max != self.receive_max or self.adv_max_offset != self.max_acceptable_offset

    def advertise(self, stream_id: int) -> list[StreamMaxMoney | StreamMaxData]:
        """Our limits as frames, remembered as told."""
        self.adv_receive_max, self.adv_max_offset = self.receive_max, self.max_acceptable_offset
        return [StreamMaxMoney(stream_id, self.receive_max, self.total_received),
                StreamMaxData(stream_id, self.adv_max_offset)]

    def forget_advert(self) -> None:
        """The packet that carried our limits was lost: tell them again."""
        self.adv_receive_max = self.adv_max_offset = None


@dataclass
class StreamRecord:
    """One stream as the connection keeps it: id, life and both halves."""

    id: int
    state: StreamState = StreamState.OPEN
    send: SendHalf = field(default_factory=SendHalf)
    recv: ReceiveHalf = field(default_factory=ReceiveHalf)
    close_code: int = ErrorCode.NO_ERROR
    close_message: str = ""

    def apply(self, trigger: Trigger) -> StreamState:
        """Move along the state table; returns the state it left."""
        before = self.state
        after = TRANSITIONS.get((before, trigger))
        if after is None:
            raise InvalidTransition(f"stream {self.id}: {trigger.value} while {before.value}")
        self.state = after
        return before

    @property
    def is_open(self) -> bool:
        return self.state is StreamState.OPEN

    @property
    def available(self) -> int:
        """Money the application allowed that may go out in new Prepares."""
        return self.send.allowance if self.is_open else 0

    @property
    def end_due(self) -> bool:
        """Closing and flushed: our StreamClose is due now."""
        return self.state is StreamState.CLOSING and self.send.flushed

    def close(self, code: int, message: str) -> None:
        self.apply(Trigger.CLOSE)
        self.close_code, self.close_message = code, message
        if code != ErrorCode.NO_ERROR:
            self.send.discard()

    def end_frame(self) -> StreamClose:
        return StreamClose(self.id, self.close_code, self.close_message)


class StreamTable:
    """A connection's streams: the open ones by id, the ids retired, retired ones whose bytes are still unread,
    and the connection-wide limits both ways (ConnectionMaxStreamId, ConnectionMaxData). Clients open odd ids,
    servers even ones."""

    def __init__(self, *, is_server: bool, max_remote_streams: int, stream_buffer: int,
                 connection_buffer: int) -> None:
        self.is_server = is_server
        self.stream_buffer = stream_buffer
        self.connection_buffer = connection_buffer
        self.remote_max_offset = connection_buffer  # the peer's connection window, until it says otherwise
        self._told_blocked: int | None = None
        self._open: dict[int, StreamRecord] = {}
        self._closed: set[int] = set()
        self._leftover: dict[int, StreamRecord] = {}
        self.next_local_id = 2 if is_server else 1
        self.max_remote_id = 2 * max_remote_streams  # the highest id the peer may open: we tell it
        self.remote_max_id = 2 * max_remote_streams  # the highest id we may open: the peer tells us

    def __iter__(self) -> Iterator[StreamRecord]:
        return iter(self._open.values())

    def __len__(self) -> int:
        return len(self._open)

    def __contains__(self, sid: int) -> bool:
        return sid in self._open

    def __getitem__(self, sid: int) -> StreamRecord:
        return self._open[sid]

    def ids(self) -> list[int]:
        return list(self._open)

    def get(self, sid: int) -> StreamRecord | None:
        return self._open.get(sid)

    def readable(self, sid: int) -> StreamRecord | None:
        """An open stream, or a retired one with bytes left to read."""
        return self._open.get(sid) or self._leftover.get(sid)

    def is_retired(self, sid: int) -> bool:
        return sid in self._closed

    def open_local(self) -> StreamRecord | None:
        """A new stream of ours, or None when the peer's limit does not allow one (then ``next_local_id`` is the
        id we are blocked on)."""
        sid = self.next_local_id
        if sid > self.remote_max_id:
            return None
        self.next_local_id += 2
        return self.add(sid, receive_max=0)

    def opened_by_peer(self, sid: int) -> bool:
        """The id has the peer's parity (even when we are the client)."""
        return (sid % 2 == 0) != self.is_server

    def add(self, sid: int, receive_max: int) -> StreamRecord:
        s = StreamRecord(sid)
        s.recv.receive_max, s.recv.buffer = receive_max, self.stream_buffer
        self._open[sid] = s
        return s

    def retire(self, s: StreamRecord) -> None:
        """Forget a closed stream, keeping bytes that arrived before the close readable."""
        self._open.pop(s.id, None)
        self._closed.add(s.id)
        if s.recv.recv_buf:
            self._leftover[s.id] = s

    def on_remote_max_id(self, sid: int) -> None:
        self.remote_max_id = max(self.remote_max_id, sid)

    def allow_another_remote(self) -> int:
        """A peer's stream ended: it may open one more. Returns the new limit to tell it."""
        self.max_remote_id += 2
        return self.max_remote_id

    # --- what goes in the next packet ----------------------------------------------------------------------------

    def adverts(self) -> tuple[list[StreamMaxMoney | StreamMaxData], list[int]]:
        """Our limits on the streams where they changed since we last told them, and those streams' ids."""
        frames: list[StreamMaxMoney | StreamMaxData] = []
        ids: list[int] = []
        for s in self:
            if s.state is not StreamState.END_SENT and s.recv.limits_changed:
                frames += s.recv.advertise(s.id)
                ids.append(s.id)
        return frames, ids

    def take_money(self, rate: Fraction, packet_amount: int, frames: list[Frame]) -> dict[int, int]:
        """Hold each stream's part of the next money packet (stream id -> amount), within ``packet_amount`` and
        the receivers' limits at ``rate``; a StreamMoneyBlocked goes in ``frames`` for a stream the limit stops."""
        money: dict[int, int] = {}
        cap = packet_amount
        if rate > 1:
            cap = min(cap, math.floor(UINT64_MAX / rate))  # the destination amount must fit a uint64
        for s in self:
            want = s.available
            if want <= 0 or cap <= 0:
                continue
            take = min(want, cap, s.send.room_in_source(rate))
            if take > 0:
                money[s.id] = take
                s.send.held += take
                cap -= take
            if want - take > 0 and s.send.room_in_source(rate) <= take:
                blocked = s.send.money_blocked(s.id)
                if blocked is not None:
                    frames.append(blocked)
        return money

    def take_data(self, budget: int, frames: list[Frame]) -> list[tuple[int, int, bytes]]:
        """Bytes for the next packet, (stream id, offset, chunk) each, within ``budget`` bytes of packet and the
        peer's windows; their StreamData frames, and any *DataBlocked, go in ``frames``."""
        conn_room = self.connection_room()
        out: list[tuple[int, int, bytes]] = []
        for s in self:
            if budget <= FRAME_SLACK:
                break
            chunks, budget, new = s.send.take_bytes(budget, conn_room)
            conn_room -= new
            out += [(s.id, offset, chunk) for offset, chunk in chunks]
            blocked = s.send.data_blocked(s.id)
            if blocked is not None:
                frames.append(blocked)
        conn_blocked = self.connection_blocked()
        if conn_blocked is not None:
            frames.append(conn_blocked)
        frames += [StreamData(sid, offset, chunk) for sid, offset, chunk in out]
        return out

    # --- money that arrives -------------------------------------------------------------------------------------

    def refuse_credits(self, credits: dict[int, int]) -> StreamClose | StreamMaxMoney | None:
        """Why the packet cannot be taken (RFC 29: a closed stream, or one over its receive max), or None."""
        for sid, part in credits.items():
            s = self.get(sid)
            if s is None or not s.is_open:
                return StreamClose(sid, ErrorCode.STREAM_STATE_ERROR, "Stream is already closed")
            if not s.recv.accepts(part):
                return StreamMaxMoney(sid, s.recv.receive_max, s.recv.total_received)
        return None

    # --- the connection's data windows --------------------------------------------------------------------------

    def on_remote_max_data(self, offset: int) -> None:
        self.remote_max_offset = max(self.remote_max_offset, offset)

    def connection_room(self) -> int:
        """New bytes the peer's connection window takes, across all streams."""
        return self.remote_max_offset - sum(s.send.send_offset for s in self)

    def connection_blocked(self) -> ConnectionDataBlocked | None:
        """The ConnectionDataBlocked to send when the peer's connection window stops our bytes (once per offset)."""
        if self.connection_room() > 0 or not any(s.send.out_buf for s in self):
            return None
        want = sum(s.send.send_offset + len(s.send.out_buf) for s in self)
        if self._told_blocked == want:
            return None
        self._told_blocked = want
        return ConnectionDataBlocked(want)

    def max_acceptable_offset(self) -> int:
        """Our connection window: what the application read, plus the buffer."""
        return sum(s.recv.consumed for s in self) + self.connection_buffer


def split_money(frames: tuple[Frame, ...], amount: int) -> dict[int, int]:
    """Each stream's part of an incoming ``amount``, by the shares of its StreamMoney frames (rounded down)."""
    shares = [(f.stream_id, f.shares) for f in frames if isinstance(f, StreamMoney)]
    total_shares = sum(sh for _, sh in shares)
    credits: dict[int, int] = {}
    if total_shares == 0:
        return credits
    for sid, sh in shares:
        credits[sid] = credits.get(sid, 0) + amount * sh // total_shares
    return credits
