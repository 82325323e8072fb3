"""Local apps on a router, over BTP: connect one (and learn its address by IL-DCP), make a Prepare with its
fulfillment, fulfil every Prepare. Shared by the router's hostile-input tests and the accounts' tests."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta

from moneyd.app import Router
from moneyd.btp import connect
from moneyd.wire import btp, ildcp, ilp


def url(router: Router, user: str, token: str) -> str:
    return f"btp+ws://{user}:{token}@127.0.0.1:{router.server.port}"


async def app(router: Router, user: str, token: str, handler=None):  # type: ignore[no-untyped-def]
    conn, reader = await connect(url(router, user, token), handler)
    info = await conn.send_prepare(ildcp.request())
    assert isinstance(info, ilp.Fulfill)
    return conn, reader, ildcp.parse_fulfill(info).client_address


def prepare_for(dest: str, seconds: float = 10, amount: int = 1) -> tuple[ilp.Prepare, bytes]:
    f = os.urandom(32)
    return ilp.Prepare(amount, datetime.now(UTC) + timedelta(seconds=seconds), hashlib.sha256(f).digest(), dest, f), f


async def fulfiller(frame: btp.Message | btp.Transfer) -> list[btp.ProtocolData]:
    entry = btp.find(frame.protocol_data, "ilp")
    assert entry is not None
    p = ilp.decode_prepare(entry.data)
    return [btp.ProtocolData.octets("ilp", ilp.encode_fulfill(ilp.Fulfill(p.data)))]
