"""moneyd's own commands as local apps: a BTP client of the running moneyd, with its address from ILDCP.

``moneyd pay`` and ``moneyd receive`` connect to 127.0.0.1:7768 exactly as any other app (ilp-plugin-btp) does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from .btp import ilplink
from .btp.connection import BtpConnection, BtpPeerError, connect, parse_btp_url
from .handlers import OutgoingHandler
from .wire import btp, ildcp, ilp
from .wire.btp import ProtocolData
from .wire.errors import CodecError
from .wire.ilp import ErrorCode, Prepare, Reject, Reply

DEFAULT_URL = "btp+ws://localhost:7768"


class LocalAppError(Exception):
    """Cannot reach or use the local moneyd; the message says what to do."""


def app_url(via: str | None) -> str:
    """The BTP URL to use: ``via`` as given, else the local moneyd with a fresh random token (a new account)."""
    url = via or DEFAULT_URL
    try:
        target = parse_btp_url(url)
    except ValueError as e:
        raise LocalAppError(str(e)) from None
    if target.token:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://:{os.urandom(16).hex()}@{rest}"


@dataclass
class LocalApp:
    conn: BtpConnection
    reader: asyncio.Task[None]
    address: str
    asset_code: str
    asset_scale: int
    handler: OutgoingHandler | None = field(default=None)  # where Prepares sent to us go

    @classmethod
    async def connect(cls, via: str | None = None, timeout: float = 10.0) -> LocalApp:
        url = app_url(via)
        holder: list[LocalApp] = []

        async def on_request(frame: btp.Message | btp.Transfer) -> Sequence[ProtocolData]:
            if isinstance(frame, btp.Transfer):
                return ()
            prepare = ilplink.unwrap_prepare(frame.protocol_data)
            if not holder:  # before ILDCP told us our address
                return ilplink.wrap_reply(Reject(ErrorCode.F02_UNREACHABLE, "", "nothing receives here"), "")
            return ilplink.wrap_reply(await holder[0]._incoming(prepare), holder[0].address)

        shown = url.split("@")[-1]
        try:
            conn, reader = await connect(url, on_request, timeout=timeout, label="moneyd")
        except (OSError, TimeoutError) as e:
            raise LocalAppError(
                f"no moneyd answers at {shown} ({e or type(e).__name__}); start one with `moneyd local` "
                "or `moneyd xrp:start`, or name another with --via"
            ) from None
        except BtpPeerError as e:
            raise LocalAppError(f"moneyd at {shown} refused us: {e}") from None
        try:
            reply = await ilplink.request_prepare(conn, ildcp.request(), "", peer="moneyd")
            if not isinstance(reply, ilp.Fulfill):
                raise LocalAppError(f"moneyd at {shown} refused ILDCP: {reply.code} {reply.message}")
            info = ildcp.parse_fulfill(reply)
        except (ilplink.LinkFailure, ilplink.LinkExpired, CodecError) as e:
            await conn.close()
            raise LocalAppError(f"moneyd at {shown} did not tell us our address: {e}") from None
        app = cls(conn, reader, info.client_address, info.asset_code, info.asset_scale)
        holder.append(app)
        ilplink.serve_ilp(conn, app._incoming, lambda: app.address)
        return app

    async def _incoming(self, prepare: Prepare) -> Reply:
        if self.handler is None:
            return Reject(ErrorCode.F02_UNREACHABLE, self.address, "nothing receives here")
        return await self.handler(prepare)

    async def send_prepare(self, prepare: Prepare) -> Reply:
        """An OutgoingHandler: never raises; a link failure is a Reject (an expiry, R00)."""
        return await ilplink.send_prepare(self.conn, prepare, self.address, peer="moneyd")

    async def close(self) -> None:
        await self.conn.close()
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.reader
