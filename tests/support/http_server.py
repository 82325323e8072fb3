"""Small HTTP servers for tests: an aiohttp app on a free port of 127.0.0.1, and an SPSP (RFC 0009) endpoint that
answers with a fixed receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

ZERO_SECRET = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="  # 32 zero bytes, base64


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` until the block ends; yields its base URL (``http://127.0.0.1:<port>``)."""
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def spsp_endpoint(path: str, destination_account: str, shared_secret: str = ZERO_SECRET) -> web.Application:
    """An SPSP server that answers GET ``path`` with these details (any other path is a 404)."""

    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"destination_account": destination_account, "shared_secret": shared_secret})

    app = web.Application()
    app.router.add_get(path, answer)
    return app
