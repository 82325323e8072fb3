"""moneyd.app (the Router and its lifecycle) with an in-memory uplink: the parent's ILDCP answer sets our address,
packets flow out to the uplink and in from it, each balance has its owner, and every way moneyd cannot start or
must stop is one StartupError line."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from moneyd.app import Router, RouterSettings, StartupError
from moneyd.btp import connect
from moneyd.runtime import serve_until_signalled
from moneyd.store import Store
from moneyd.uplink import Uplink, UplinkBalance
from moneyd.wire import btp, ildcp, ilp
from moneyd.wire.ildcp import IldcpResponse

PARENT_GIVES = IldcpResponse("test.parent.child", 6, "ABC")


class MemoryUplink(Uplink):
    """An uplink whose parent fulfils whatever it is sent (the preimage rides in the Prepare's data)."""

    def __init__(self, fail_connect: str | None = None) -> None:
        super().__init__()
        self.fail_connect = fail_connect
        self.sent: list[ilp.Prepare] = []
        self.closed = 0

    async def connect(self) -> None:
        if self.fail_connect:
            raise ConnectionError(self.fail_connect)

    async def ildcp_info(self) -> IldcpResponse:
        return PARENT_GIVES

    async def send_prepare(self, prepare: ilp.Prepare) -> ilp.Reply:
        self.sent.append(prepare)
        return ilp.Fulfill(prepare.data[:32])

    def balance(self) -> UplinkBalance | None:
        return UplinkBalance(balance=-5, minimum=-100, details={"claims": 3})

    async def close(self) -> None:
        self.closed += 1


def prepare_to(dest: str, amount: int = 10) -> tuple[ilp.Prepare, bytes]:
    f = os.urandom(32)
    return ilp.Prepare(amount, datetime.now(UTC) + timedelta(seconds=10), hashlib.sha256(f).digest(), dest, f), f


async def fulfil(frame: btp.Message | btp.Transfer) -> list[btp.ProtocolData]:
    entry = btp.find(frame.protocol_data, "ilp")
    assert entry is not None
    return [btp.ProtocolData.octets("ilp", ilp.encode_fulfill(ilp.Fulfill(ilp.decode_prepare(entry.data).data[:32])))]


@pytest.fixture
async def started(tmp_path: Path) -> AsyncIterator[tuple[Router, MemoryUplink]]:
    uplink = MemoryUplink()
    router = Router(RouterSettings(port=0), Store(tmp_path / "moneyd.sqlite"), uplink)
    await router.start()
    try:
        yield router, uplink
    finally:
        await router.stop()
        router.store.close()


async def test_the_parent_sets_our_address_and_packets_flow_both_ways(started) -> None:  # type: ignore[no-untyped-def]
    router, uplink = started
    assert (router.address, router.asset_code, router.asset_scale) == ("test.parent.child", "ABC", 6)
    app, _ = await connect(f"btp+ws://alice:pw@127.0.0.1:{router.server.port}", fulfil)
    reply = await app.send_prepare(ildcp.request())
    assert isinstance(reply, ilp.Fulfill)
    info = ildcp.parse_fulfill(reply)
    assert (info.client_address, info.asset_code, info.asset_scale) == ("test.parent.child.local.alice", "ABC", 6)

    out, f = prepare_to("test.somewhere.else")
    assert await app.send_prepare(out) == ilp.Fulfill(f)  # anything not ours goes to the uplink
    assert [p.destination for p in uplink.sent] == ["test.somewhere.else"]

    incoming, f_in = prepare_to("test.parent.child.local.alice", amount=4)
    assert await uplink.handle_incoming(incoming) == ilp.Fulfill(f_in)
    stray = await uplink.handle_incoming(prepare_to("test.other.bob")[0])  # not one of our addresses
    assert isinstance(stray, ilp.Reject) and stray.code == "F02" and stray.triggered_by == "test.parent.child"

    views = {v.name: v for v in router.accounts()}
    assert list(views) == ["uplink", "alice"]  # the uplink first
    assert views["uplink"].balance == -5 and views["uplink"].uplink == uplink.balance()  # its own book's figure
    assert (views["alice"].sent, views["alice"].received, views["alice"].balance) == (10, 4, 6)
    assert views["alice"].address == "test.parent.child.local.alice" and views["alice"].connections == 1
    await app.close()


async def test_after_stop_packets_are_refused_and_the_uplink_is_closed(started) -> None:  # type: ignore[no-untyped-def]
    router, uplink = started
    await router.stop()
    reply = await router.handle_prepare(prepare_to("test.somewhere.else")[0], "alice")
    assert isinstance(reply, ilp.Reject) and reply.code == "T01" and reply.message == "moneyd is shutting down"
    assert uplink.closed >= 1 and not uplink.sent


async def test_an_uplink_that_cannot_connect_is_one_startup_error(tmp_path: Path) -> None:
    store = Store(tmp_path / "moneyd.sqlite")
    router = Router(RouterSettings(port=0), store, MemoryUplink(fail_connect="parent.example refused us"))
    with pytest.raises(StartupError, match=r"^the uplink did not start: parent.example refused us$"):
        await router.start()
    store.close()


async def test_a_busy_port_is_one_startup_error_and_the_uplink_is_closed(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        uplink = MemoryUplink()
        store = Store(tmp_path / "moneyd.sqlite")
        router = Router(RouterSettings(port=port), store, uplink)
        with pytest.raises(StartupError, match=rf"^cannot listen on 127\.0\.0\.1:{port}: "):
            await router.start()
        assert uplink.closed == 1
        store.close()


async def test_when_the_uplink_fails_moneyd_says_why_and_stops(tmp_path: Path) -> None:
    uplink = MemoryUplink()
    store = Store(tmp_path / "moneyd.sqlite")
    router = Router(RouterSettings(port=0), store, uplink)
    lines: list[str] = []
    serving = asyncio.create_task(serve_until_signalled(router, lines.append))
    for _ in range(500):
        if lines:
            break
        await asyncio.sleep(0.01)
    assert lines == [f"moneyd ready: ILP address test.parent.child (ABC, scale 6); apps connect to "
                     f"btp+ws://:TOKEN@localhost:{router.server.port}"]
    uplink.fail("the parent closed our channel")
    with pytest.raises(StartupError, match=r"^the parent closed our channel$"):
        await asyncio.wait_for(serving, 10)
    assert lines[1:] == ["moneyd: the uplink stopped: the parent closed our channel; shutting down"]
    assert uplink.closed >= 1 and not router.accepting
    store.close()
