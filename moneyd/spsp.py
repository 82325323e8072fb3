"""SPSP (RFC 9): learn a receiver's ILP address and STREAM shared secret over HTTPS, and serve them.

Client: a payment pointer (RFC 26) or an https URL → GET with ``Accept: application/spsp4+json, application/spsp+json``;
redirects are followed to https only; plain http only for this machine (localhost, 127.0.0.1, ::1). Responses are
cached as their Cache-Control allows. The client is the standard library's ``http.client`` in a worker thread: one GET
per payment does not need aiohttp, whose import (about 0.25 s of CPU: it builds TLS contexts) was most of
``moneyd pay``'s start-up. Server (``moneyd receive``; aiohttp, imported when one starts): ``application/spsp4+json``
with a fresh STREAM connection per query and the CORS headers browsers need.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import http.client
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from .pointer import resolve as resolve_pointer
from .wire.address import is_valid_address
from .wire.errors import CodecError

if TYPE_CHECKING:
    from aiohttp import web

ACCEPT = "application/spsp4+json, application/spsp+json"
CONTENT_TYPE = "application/spsp4+json"
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
MAX_REDIRECTS = 5
MAX_BODY = 64 * 1024
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*(\d+)", re.IGNORECASE)


class SpspError(Exception):
    """The receiver could not be resolved; the message says which URL and what went wrong."""


@dataclass(frozen=True, slots=True)
class SpspResponse:
    destination_account: str
    shared_secret: bytes
    url: str
    asset_code: str | None = None
    asset_scale: int | None = None


def receiver_url(receiver: str) -> str:
    """The URL to query for a payment pointer or URL, refusing what moneyd will not fetch."""
    if receiver.startswith("$"):
        try:
            return resolve_pointer(receiver)
        except CodecError as e:
            raise SpspError(str(e)) from None
    check_url(receiver)
    return receiver


def check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname in LOCAL_HOSTS:
        return
    if parts.scheme == "http":
        raise SpspError(f"{url}: plain http is only allowed for this machine (localhost); use https")
    raise SpspError(f"{receiver_hint(url)} is neither a payment pointer ($host/path) nor an https URL")


def receiver_hint(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."


def parse_response(body: bytes, url: str) -> SpspResponse:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        raise SpspError(f"{url} did not answer with JSON") from None
    if not isinstance(doc, dict):
        raise SpspError(f"{url} answered with JSON that is not an object")
    dest = doc.get("destination_account")
    if not isinstance(dest, str) or not is_valid_address(dest):
        raise SpspError(f"{url} gave no valid destination_account ({receiver_hint(repr(dest))})")
    secret_text = doc.get("shared_secret")
    if not isinstance(secret_text, str):
        raise SpspError(f"{url} gave no shared_secret")
    secret = decode_secret(secret_text)
    if secret is None or len(secret) != 32:
        raise SpspError(f"{url} gave a shared_secret that is not 32 bytes of base64")
    code, scale = None, None
    asset = doc.get("asset_info")
    if isinstance(asset, dict):
        if isinstance(asset.get("code"), str):
            code = asset["code"]
        if isinstance(asset.get("scale"), int) and 0 <= asset["scale"] <= 255:
            scale = asset["scale"]
    return SpspResponse(dest, secret, url, code, scale)


def decode_secret(text: str) -> bytes | None:
    """Standard base64 or base64url, padded or not (both are in use)."""
    s = text.strip().replace("-", "+").replace("_", "/")
    if not re.fullmatch(r"[A-Za-z0-9+/]*={0,2}", s):
        return None
    s += "=" * (-len(s) % 4)
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        return None


def _max_age(cache_control: list[str]) -> float:
    cc = ",".join(cache_control)
    if not cc or re.search(r"no-store|no-cache|private", cc, re.IGNORECASE):
        return 0.0
    m = _MAX_AGE.search(cc)
    return float(m.group(1)) if m else 0.0


class SpspClient:
    """Queries receivers; keeps answers for as long as their Cache-Control says (most say not at all)."""

    def __init__(self, *, timeout: float = 15.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        self._clock = clock
        self._cache: dict[str, tuple[float, SpspResponse]] = {}

    async def query(self, receiver: str) -> SpspResponse:
        url = receiver_url(receiver)
        hit = self._cache.get(url)
        if hit is not None and hit[0] > self._clock():
            return hit[1]
        try:
            # The thread's socket times out on its own (each read and connect); wait_for bounds the whole.
            response, max_age = await asyncio.wait_for(asyncio.to_thread(self._get, url), self.timeout)
        except (TimeoutError, http.client.HTTPException, OSError) as e:
            if isinstance(e, TimeoutError):
                raise SpspError(f"{url} did not answer within {self.timeout:g}s") from None
            raise SpspError(f"cannot query {url}: {e or type(e).__name__}") from None
        if max_age > 0:
            self._cache[url] = (self._clock() + max_age, response)
        return response

    def _get(self, url: str) -> tuple[SpspResponse, float]:
        """The GET with its redirects, blocking (run in a worker thread)."""
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            parts = urlsplit(current)
            conn: http.client.HTTPConnection
            if parts.scheme == "https":
                conn = http.client.HTTPSConnection(parts.hostname or "", parts.port, timeout=self.timeout)
            else:
                conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=self.timeout)
            try:
                target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
                conn.request("GET", target, headers={"Accept": ACCEPT})
                r = conn.getresponse()
                if r.status in (301, 302, 303, 307, 308):
                    location = r.getheader("Location")
                    if not location:
                        raise SpspError(f"{current} redirected without a Location")
                    nxt = urljoin(current, location)
                    if urlsplit(nxt).scheme != "https" and not (
                        urlsplit(nxt).scheme == "http" and urlsplit(nxt).hostname in LOCAL_HOSTS
                    ):
                        raise SpspError(f"{current} redirected to {receiver_hint(nxt)}, which is not https")
                    current = nxt
                    continue
                if r.status == 404:
                    raise SpspError(f"{current}: no such receiver (404)")
                if r.status != 200:
                    raise SpspError(f"{current} answered HTTP {r.status} {r.reason or ''}".rstrip())
                ctype = (r.getheader("Content-Type") or "").split(";")[0].strip().lower()
                if ctype and not ctype.endswith("json"):
                    raise SpspError(f"{current} answered {ctype}, not SPSP JSON (is this a payment pointer?)")
                body = r.read(MAX_BODY + 1)
                if len(body) > MAX_BODY:
                    raise SpspError(f"{current} answered with more than {MAX_BODY} bytes")
                return parse_response(body, current), _max_age(r.headers.get_all("Cache-Control") or [])
            finally:
                conn.close()
        raise SpspError(f"{url}: more than {MAX_REDIRECTS} redirects")


async def query(receiver: str, timeout: float = 15.0) -> SpspResponse:
    return await SpspClient(timeout=timeout).query(receiver)


# -- server ----------------------------------------------------------------------------------------------------

CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, OPTIONS",
    "Access-Control-Allow-Headers": "Accept, Web-Monetization-Id",
}


class SpspServer:
    """Answers every GET with a fresh (destination_account, shared_secret) from ``issue``."""

    def __init__(self, issue: Callable[[], tuple[str, bytes]], *, asset_code: str | None = None,
                 asset_scale: int | None = None) -> None:
        self.issue = issue
        self.asset_code, self.asset_scale = asset_code, asset_scale
        self.queries = 0
        self._runner: web.AppRunner | None = None
        self.port = 0

    def app(self) -> web.Application:
        from aiohttp import web

        application = web.Application()
        application.router.add_route("GET", "/{tail:.*}", self._get)
        application.router.add_route("OPTIONS", "/{tail:.*}", self._options)
        return application

    async def _options(self, request: web.Request) -> web.Response:
        from aiohttp import web

        return web.Response(status=204, headers=CORS)

    async def _get(self, request: web.Request) -> web.Response:
        from aiohttp import web

        self.queries += 1
        destination, secret = self.issue()
        doc: dict[str, Any] = {"destination_account": destination, "shared_secret": base64.b64encode(secret).decode()}
        if self.asset_code is not None and self.asset_scale is not None:
            doc["asset_info"] = {"code": self.asset_code, "scale": self.asset_scale}
        return web.Response(body=json.dumps(doc).encode(), content_type=CONTENT_TYPE,
                            headers={**CORS, "Cache-Control": "no-store"})

    async def start(self, host: str, port: int) -> None:
        from aiohttp import web

        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
