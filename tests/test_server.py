"""moneyd.server (the mini-accounts server) on its own, with no router behind it: a stand-in handler gets each
app's Prepares under the app's account name; answers go back over the app's sockets in turn; an app that does not
authenticate first gets a BTP error and is closed. JS apps against it: test_server_js.py."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest
from websockets.asyncio.client import connect as ws_connect

from moneyd.btp import connect
from moneyd.server import MiniAccountsServer, OriginPolicy, account_for_token
from moneyd.store import Store
from moneyd.wire import btp, ilp

ADDRESS = "private.moneyd"


def test_the_account_of_a_token_is_what_js_mini_accounts_makes_of_it() -> None:
    # base64url(sha256(token)) without padding; the value the JS moneyd gives "secretA" (test_server_js.py).
    assert account_for_token("secretA") == "QREgkfY7QwvslZdxtZh_PDPKjvUtwucYfqKUawu-qIY"


def test_browser_origins_need_to_be_allowed() -> None:
    default = OriginPolicy()
    assert default.permits(None)  # not a browser
    assert not default.permits("https://evil.example")
    assert not default.permits("chrome-extension://abc")
    allowed = OriginPolicy(re.compile(r"https://wallet\.example"), allow_extensions=True)
    assert allowed.permits("https://wallet.example")
    assert not allowed.permits("https://wallet.example.evil")  # the whole origin must match
    assert allowed.permits("chrome-extension://abc") and allowed.permits("moz-extension://abc")


class Handler:
    """Stands in for the router: records (source account, Prepare) and rejects with a code it can be told."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, ilp.Prepare]] = []

    async def __call__(self, prepare: ilp.Prepare, source: str) -> ilp.Reply:
        self.seen.append((source, prepare))
        return ilp.Reject("F99", ADDRESS, f"seen from {source}", b"")


@pytest.fixture
async def server() -> AsyncIterator[tuple[MiniAccountsServer, Handler, list[str]]]:
    events: list[str] = []
    handler = Handler()
    store = Store(":memory:")
    s = MiniAccountsServer(store, handler, lambda: ADDRESS, on_account_connected=lambda a: events.append(f"+{a}"),
                           on_account_disconnected=lambda a: events.append(f"-{a}"))
    await s.start("127.0.0.1", 0)
    try:
        yield s, handler, events
    finally:
        await s.stop()
        store.close()


def prepare_to(dest: str) -> tuple[ilp.Prepare, bytes]:
    f = os.urandom(32)
    return ilp.Prepare(0, datetime.now(UTC) + timedelta(seconds=10), hashlib.sha256(f).digest(), dest, f), f


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for the server to see what the other end of a socket did (a close crosses the loopback)."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


async def test_an_apps_prepares_reach_the_handler_under_its_account(server) -> None:  # type: ignore[no-untyped-def]
    s, handler, events = server
    by_name, _ = await connect(f"btp+ws://alice:pw@127.0.0.1:{s.port}")
    by_token, _ = await connect(f"btp+ws://:tok@127.0.0.1:{s.port}")
    p, _f = prepare_to("test.elsewhere")
    reply = await by_name.send_prepare(p)
    assert isinstance(reply, ilp.Reject) and reply.message == "seen from alice"
    await by_token.send_prepare(p)
    assert [source for source, _ in handler.seen] == ["alice", account_for_token("tok")]
    assert ilp.encode_prepare(handler.seen[0][1]) == ilp.encode_prepare(p)  # the Prepare as the app sent it
    for c in (by_name, by_token):
        await c.close()
    await until(lambda: len(events) == 4, "both apps gone")
    assert sorted(events) == sorted(["+alice", f"+{account_for_token('tok')}", "-alice", f"-{account_for_token('tok')}"])
    assert not s.accounts


async def test_packets_to_an_account_go_round_its_sockets_then_f02_when_none_is_left(server) -> None:  # type: ignore[no-untyped-def]
    s, _handler, events = server
    served: list[int] = []

    def fulfiller(n: int):  # type: ignore[no-untyped-def]
        async def handle(frame: btp.Message | btp.Transfer) -> list[btp.ProtocolData]:
            served.append(n)
            entry = btp.find(frame.protocol_data, "ilp")
            assert entry is not None
            return [btp.ProtocolData.octets("ilp", ilp.encode_fulfill(ilp.Fulfill(ilp.decode_prepare(entry.data).data)))]
        return handle

    conns = [(await connect(f"btp+ws://bob:pw@127.0.0.1:{s.port}", fulfiller(n)))[0] for n in (0, 1)]
    await until(lambda: "bob" in s.accounts and len(s.accounts["bob"].sockets) == 2, "two sockets")
    for _ in range(4):
        p, f = prepare_to(f"{ADDRESS}.local.bob")
        assert await s.send_to("bob", p) == ilp.Fulfill(f)
    assert sorted(served) == [0, 0, 1, 1] and served[0] != served[1]  # in turn
    assert events == ["+bob", "+bob"]  # told of each socket …
    for c in conns:
        await c.close()
    await until(lambda: "bob" not in s.accounts, "bob gone")
    reply = await s.send_to("bob", prepare_to(f"{ADDRESS}.local.bob")[0])
    assert isinstance(reply, ilp.Reject) and reply.code == "F02" and reply.triggered_by == ADDRESS
    assert reply.message == "no app is connected as bob"
    assert events == ["+bob", "+bob", "-bob"]  # … and once, when the last one has gone


async def test_an_app_must_authenticate_first(server) -> None:  # type: ignore[no-untyped-def]
    s, handler, events = server
    async with ws_connect(f"ws://127.0.0.1:{s.port}") as ws:
        await ws.send(btp.encode_frame(btp.Message(42, (btp.ProtocolData.octets("ilp", b"\x0c\x00"),))))
        answer = btp.decode_frame(await ws.recv())
        assert isinstance(answer, btp.Error)
        assert (answer.request_id, answer.code, answer.name) == (42, "F00", "NotAcceptedError")
        assert answer.data == b"the first protocol data entry must be 'auth'"
        await ws.wait_closed()
        assert ws.close_code == 1008
    async with ws_connect(f"ws://127.0.0.1:{s.port}") as ws:
        auth = (btp.ProtocolData.octets("auth", b""), btp.ProtocolData.octets("auth_username", b"no spaces please"),
                btp.ProtocolData.octets("auth_token", b"t"))
        await ws.send(btp.encode_frame(btp.Message(1, auth)))
        answer = btp.decode_frame(await ws.recv())
        assert isinstance(answer, btp.Error) and answer.data.startswith(b"account name 'no spaces please' may only hold")
    assert not handler.seen and not events and not s.accounts


async def test_a_reserved_account_name_is_refused_at_auth() -> None:
    store = Store(":memory:")
    handler, events = Handler(), list[str]()
    s = MiniAccountsServer(store, handler, lambda: ADDRESS, on_account_connected=events.append,
                           reserved={"uplink": "moneyd's parent connector"})
    await s.start("127.0.0.1", 0)
    try:
        async with ws_connect(f"ws://127.0.0.1:{s.port}") as ws:
            auth = (btp.ProtocolData.octets("auth", b""), btp.ProtocolData.octets("auth_username", b"uplink"),
                    btp.ProtocolData.octets("auth_token", b"t"))
            await ws.send(btp.encode_frame(btp.Message(7, auth)))
            answer = btp.decode_frame(await ws.recv())
            assert isinstance(answer, btp.Error) and (answer.request_id, answer.code) == (7, "F00")
            assert answer.data == b"account name 'uplink' is reserved for moneyd's parent connector: connect under another name"
            await ws.wait_closed()
            assert ws.close_code == 1008
        assert not s.accounts and not events and store.bound_token("uplink") is None  # nothing registered
        app, _ = await connect(f"btp+ws://Uplink:t@127.0.0.1:{s.port}")  # names are exact: this one is not reserved
        await until(lambda: events == ["Uplink"], "the app under another name")
        await app.close()
    finally:
        await s.stop()
        store.close()
