"""Our BTP connection layer against the real JS ilp-plugin-mini-accounts server."""

import asyncio
import base64
import hashlib
import os
from datetime import UTC, datetime, timedelta

import pytest

from moneyd.btp import BtpPeerError, connect, parse_btp_url
from moneyd.wire import btp, ildcp, ilp
from tests.support.jsnode import NodeRunner, free_port


def test_parse_btp_url() -> None:
    u = parse_btp_url("btp+wss://alice:s%3Acret@example.com:8443/path")
    assert (u.ws_url, u.username, u.token) == ("wss://example.com:8443/path", "alice", "s:cret")
    u = parse_btp_url("btp+ws://:tok@127.0.0.1:7768")
    assert (u.ws_url, u.username, u.token) == ("ws://127.0.0.1:7768", "", "tok")
    with pytest.raises(ValueError, match="btp\\+ws"):
        parse_btp_url("ws://x:y@host")


async def test_client_against_js_mini_accounts(node: NodeRunner) -> None:
    port = free_port()
    server = node.start("mini-accounts-server.js", str(port), "test.mini")
    await server.event("ready")

    async def on_request(frame: btp.Message | btp.Transfer) -> list[btp.ProtocolData]:
        entry = btp.find(frame.protocol_data, "ilp")
        assert entry is not None
        prepare = ilp.decode_prepare(entry.data)
        return [btp.ProtocolData.octets("ilp", ilp.encode_fulfill(ilp.Fulfill(prepare.data, b"thanks")))]

    conn, reader = await connect(f"btp+ws://:token-a@127.0.0.1:{port}", on_request)
    try:
        # ILDCP: mini-accounts names us by sha256(token), base64url without padding.
        info = ildcp.parse_fulfill(await conn.send_prepare(ildcp.request()))  # type: ignore[arg-type]
        account = base64.urlsafe_b64encode(hashlib.sha256(b"token-a").digest()).rstrip(b"=").decode()
        assert info.client_address == f"test.mini.{account}"
        assert (info.asset_code, info.asset_scale) == ("XRP", 9)

        preimage = os.urandom(32)
        prepare = ilp.Prepare(5, datetime.now(UTC) + timedelta(seconds=10), hashlib.sha256(preimage).digest(), "test.mini", preimage)
        reply = await conn.send_prepare(prepare)
        assert reply == ilp.Fulfill(preimage, b"ok")
        seen = await server.event("prepare")
        assert (seen["destination"], seen["amount"]) == ("test.mini", "5")

        # The server sends us a Prepare: our handler answers it.
        fulfillment = os.urandom(32)
        server.send({"cmd": "send", "destination": info.client_address, "amount": 7, "fulfillment": fulfillment.hex()})
        got = await server.event("reply")
        assert got["type"] == "ilp_fulfill" and got["fulfillment"] == fulfillment.hex()
        assert bytes.fromhex(got["data"]) == b"thanks"
    finally:
        await conn.close()
        await asyncio.wait_for(reader, 5)


async def test_peer_errors_surface_as_btp_peer_error(node: NodeRunner) -> None:
    port = free_port()
    server = node.start("mini-accounts-server.js", str(port), "test.mini")
    await server.event("ready")
    # Without a store, mini-accounts refuses a non-empty auth_username at auth time...
    with pytest.raises(BtpPeerError, match=r"F00.*auth_username"):
        await connect(f"btp+ws://bob:tok@127.0.0.1:{port}")
    # ...and answers a request that carries no ilp packet with a BTP Error.
    conn, reader = await connect(f"btp+ws://:tok@127.0.0.1:{port}")
    try:
        with pytest.raises(BtpPeerError, match="F00"):
            await conn.request([btp.ProtocolData.text("other", "x")])
    finally:
        await conn.close()
        await asyncio.wait_for(reader, 5)
