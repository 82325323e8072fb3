"""CPU cost of the sans-I/O STREAM engine alone: two Connections back to back in memory (no sockets, no router),
a payment of many packets from one to the other, with encryption and fulfillments as on the wire.

    python3 bench/stream_engine.py [--packets 20000] [--reps 5]

Prints µs of CPU per packet (sender and receiver together, one process), the median and the best of the reps.
Nothing is asserted: compare two checkouts by running each.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from moneyd.stream.connection import Connection, ConnectionConfig

SECRET = bytes(range(32))


def one_payment(packets: int, per_packet: int) -> tuple[float, int]:
    cfg = ConnectionConfig(max_packet_amount=per_packet, exchange_rate=None)
    client = Connection(SECRET, is_server=False, now=0.0, source_account="test.alice",
                        destination_account="test.bob", asset_code="XRP", asset_scale=9, config=cfg)
    server = Connection(SECRET, is_server=True, now=0.0, source_account="test.bob", asset_code="XRP", asset_scale=9,
                        config=ConnectionConfig(default_receive_max=2**64 - 1))
    sid = client.open_stream()
    total = packets * per_packet
    client.set_send_max(sid, total)
    now, sent = 0.0, 0
    start = time.process_time()
    while client.stream_totals(sid)[1] < total and not client.closed:
        outs = client.poll(now)
        for out in outs:
            reply = server.handle_prepare(out.prepare, now)
            client.handle_reply(out.id, reply, now)
            sent += 1
        while client.next_event() is not None:
            pass
        while server.next_event() is not None:
            pass
        now += 0.0001
    return time.process_time() - start, sent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--packets", type=int, default=20_000)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    per_packet: list[float] = []
    for _ in range(args.reps):
        cpu, sent = one_payment(args.packets, 1000)
        per_packet.append(cpu / sent * 1e6)
    print(f"STREAM engine, {args.packets} packets, sender + receiver in one process: "
          f"median {statistics.median(per_packet):.1f} µs/packet, best {min(per_packet):.1f} µs/packet "
          f"({args.reps} reps)")


if __name__ == "__main__":
    main()
