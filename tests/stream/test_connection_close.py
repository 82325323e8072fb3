"""Both ends of a stream closing at once, through two real Connections (tests/support/stream_harness.py)."""

from __future__ import annotations

from moneyd.stream.events import StreamClosed
from moneyd.stream.packet import ErrorCode
from tests.support.stream_harness import make_pair


def test_each_end_hears_of_a_stream_closed_from_both_sides_at_once() -> None:
    pair = make_pair()
    sid = pair.client.open_stream()
    pair.client.set_send_max(sid, 10)
    pair.run(until=lambda: pair.client.stream_totals(sid)[1] == 10)
    pair.client.close_stream(sid, ErrorCode.NO_ERROR, "client done")
    pair.server.close_stream(sid, ErrorCode.NO_ERROR, "server done")
    # Each side's StreamClose leaves before the other's arrives.
    client_out, server_out = pair.client.poll(pair.now), pair.server.poll(pair.now)
    assert len(client_out) == len(server_out) == 1
    for src, dst, outs in ((pair.server, pair.client, server_out), (pair.client, pair.server, client_out)):
        for out in outs:
            src.handle_reply(out.id, dst.handle_prepare(out.prepare, pair.now), pair.now)
    pair.drain()
    assert not pair.client.stream_is_open(sid) and not pair.server.stream_is_open(sid)
    # Every stream ends with exactly one StreamClosed on each side, so an application waiting on it wakes up.
    assert [e for e in pair.client_events if isinstance(e, StreamClosed)] == [
        StreamClosed(sid, ErrorCode.NO_ERROR, "server done", True)]
    assert [e for e in pair.server_events if isinstance(e, StreamClosed)] == [
        StreamClosed(sid, ErrorCode.NO_ERROR, "server done", False)]
