"""Two STREAM Connections wired back to back in memory, through a simulated ILP path (no sockets, fake clock).

The path behaves like a connector: it may refuse packets above a maximum amount (F08 with the amounts), apply an
exchange rate, run out of liquidity (T04), lose packets (no reply), and it checks fulfillments as a connector does.
Replies are delivered in a shuffled order so the sender's window of packets in flight is exercised.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from fractions import Fraction

from moneyd.stream.connection import Connection, ConnectionConfig, Event, OutgoingPrepare
from moneyd.wire import ilp
from moneyd.wire.ilp import AmountTooLargeData, Fulfill, Prepare, Reject, Reply, encode_amount_too_large

SECRET = bytes(range(32))
CLIENT_ADDRESS = "test.alice"
SERVER_ADDRESS = "test.bob.conn1"


@dataclass
class Path:
    rate: Fraction = Fraction(1)
    max_packet: int | None = None
    liquidity: int | None = None  # a packet above this gets T04
    t04_chance: float = 0.0
    loss: float = 0.0
    seed: int = 1
    rng: random.Random = field(init=False)
    forwarded: int = 0
    max_seen_in_flight: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def forward(self, prepare: Prepare, deliver: Callable[[Prepare], Reply]) -> Reply | None:
        if self.rng.random() < self.loss:
            return None
        if self.max_packet is not None and prepare.amount > self.max_packet:
            data = encode_amount_too_large(AmountTooLargeData(prepare.amount, self.max_packet))
            return Reject("F08", "test.connector", "too large", data)
        if (self.liquidity is not None and prepare.amount > self.liquidity) or self.rng.random() < self.t04_chance:
            return Reject("T04", "test.connector", "insufficient liquidity")
        self.forwarded += 1
        out = replace(prepare, amount=prepare.amount * self.rate.numerator // self.rate.denominator)
        reply = deliver(out)
        if isinstance(reply, Fulfill) and not ilp.fulfillment_matches(reply.fulfillment, prepare.execution_condition):
            return Reject("F05", "test.connector", "wrong fulfillment")
        return reply


@dataclass
class Pair:
    client: Connection
    server: Connection
    path: Path
    back_path: Path
    now: float = 0.0
    client_events: list[Event] = field(default_factory=list)
    server_events: list[Event] = field(default_factory=list)

    def drain(self) -> None:
        for conn, sink in ((self.client, self.client_events), (self.server, self.server_events)):
            while (e := conn.next_event()) is not None:
                sink.append(e)

    def _deliver_to(self, dst: Connection) -> Callable[[Prepare], Reply]:
        return lambda p: dst.handle_prepare(p, self.now)

    def step(self) -> bool:
        """One round: both sides send what they can, replies come back shuffled. True if anything moved."""
        moved = False
        batches: list[tuple[Connection, OutgoingPrepare, Reply | None]] = []
        for src, dst, path in ((self.client, self.server, self.path), (self.server, self.client, self.back_path)):
            outs = src.poll(self.now)
            path.max_seen_in_flight = max(path.max_seen_in_flight, src.in_flight)
            for out in outs:
                moved = True
                reply = path.forward(out.prepare, self._deliver_to(dst))
                batches.append((src, out, reply))
        self.path.rng.shuffle(batches)
        for src, out, reply in batches:
            if reply is None:
                src.handle_send_failure(out.id, self.now)
            else:
                src.handle_reply(out.id, reply, self.now)
        self.drain()
        return moved

    def run(self, until: Callable[[], bool] | None = None, max_steps: int = 100_000) -> None:
        for _ in range(max_steps):
            if until is not None and until():
                return
            if not self.step():
                deadlines = [d for d in (self.client.next_deadline(), self.server.next_deadline()) if d]
                if until is None and not any(c.in_flight for c in (self.client, self.server)):
                    # Quiet: jump to the next backoff deadline if one is pending before the idle timeout.
                    pending = [d for d in deadlines if d < self.now + 30]
                    if not pending:
                        return
                self.now = max(self.now + 0.01, min(deadlines) if deadlines else self.now + 0.01)
                for c in (self.client, self.server):
                    c.handle_timer(self.now)
            else:
                self.now += 0.001
        raise AssertionError("the connections did not settle")


def make_pair(
    path: Path | None = None,
    client_config: ConnectionConfig | None = None,
    server_config: ConnectionConfig | None = None,
    back_path: Path | None = None,
) -> Pair:
    server_config = server_config or ConnectionConfig(default_receive_max=2**64 - 1)
    client = Connection(SECRET, is_server=False, now=0.0, source_account=CLIENT_ADDRESS,
                        destination_account=SERVER_ADDRESS, asset_code="XRP", asset_scale=9, config=client_config)
    server = Connection(SECRET, is_server=True, now=0.0, source_account=SERVER_ADDRESS, asset_code="USD",
                        asset_scale=2, config=server_config)
    return Pair(client, server, path or Path(), back_path or Path(seed=2))
