"""SPSP client against small aiohttp servers (redirects, caching, bad answers), and our SPSP server."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from moneyd.spsp import SpspClient, SpspError, SpspServer, decode_secret, receiver_url

SECRET = bytes(range(32))
GOOD = {"destination_account": "test.bob.abc", "shared_secret": base64.b64encode(SECRET).decode()}


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[web.Application], Any]]:
    runners: list[web.AppRunner] = []

    async def start(app: web.Application) -> str:
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    yield start
    for r in runners:
        await r.cleanup()


def app_with(handler: Callable[[web.Request], Any]) -> web.Application:
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handler)
    return app


async def test_query_sends_accept_and_parses(serve: Any) -> None:
    seen: list[str] = []

    async def h(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Accept", ""))
        return web.json_response(GOOD, content_type="application/spsp4+json")

    base = await serve(app_with(h))
    r = await SpspClient().query(base + "/bob")
    assert (r.destination_account, r.shared_secret) == ("test.bob.abc", SECRET)
    assert seen == ["application/spsp4+json, application/spsp+json"]


@pytest.mark.parametrize("encode", [base64.b64encode, base64.urlsafe_b64encode,
                                    lambda b: base64.urlsafe_b64encode(b).rstrip(b"=")])
def test_secrets_in_base64_and_base64url(encode: Callable[[bytes], bytes]) -> None:
    secret = bytes([0xFB, 0xFF] * 16)
    assert decode_secret(encode(secret).decode()) == secret
    assert decode_secret("not base64 at all!") is None


async def test_bad_answers_are_clear_errors(serve: Any) -> None:
    answers: dict[str, Callable[[], web.Response]] = {
        "/404": lambda: web.Response(status=404, text="nope"),
        "/500": lambda: web.Response(status=500),
        "/html": lambda: web.Response(text="<html>", content_type="text/html"),
        "/notjson": lambda: web.Response(text="{{{", content_type="application/json"),
        "/array": lambda: web.json_response([1, 2]),
        "/nodest": lambda: web.json_response({"shared_secret": GOOD["shared_secret"]}),
        "/baddest": lambda: web.json_response({**GOOD, "destination_account": "not an address"}),
        "/shortsecret": lambda: web.json_response({**GOOD, "shared_secret": base64.b64encode(b"x" * 16).decode()}),
        "/deep": lambda: web.Response(text="[" * 60000, content_type="application/json"),
        "/huge": lambda: web.Response(text=json.dumps({**GOOD, "pad": "x" * 100_000}), content_type="application/json"),
    }

    async def h(request: web.Request) -> web.Response:
        return answers[request.path]()

    base = await serve(app_with(h))
    expected = {"/404": "404", "/500": "500", "/html": "text/html", "/notjson": "JSON", "/array": "not an object",
                "/nodest": "destination_account", "/baddest": "destination_account", "/shortsecret": "32 bytes",
                "/deep": "JSON", "/huge": "more than"}
    for path, words in expected.items():
        with pytest.raises(SpspError, match=words):
            await SpspClient().query(base + path)


async def test_redirects_only_to_https_or_this_machine(serve: Any) -> None:
    async def h(request: web.Request) -> web.Response:
        if request.path == "/to-http":
            raise web.HTTPFound("http://example.com/bob")
        if request.path == "/to-local":
            raise web.HTTPFound("/final")
        if request.path == "/loop":
            raise web.HTTPFound("/loop")
        return web.json_response(GOOD)

    base = await serve(app_with(h))
    with pytest.raises(SpspError, match="not https"):
        await SpspClient().query(base + "/to-http")
    assert (await SpspClient().query(base + "/to-local")).destination_account == "test.bob.abc"
    with pytest.raises(SpspError, match="redirects"):
        await SpspClient().query(base + "/loop")


async def test_cache_control_is_honoured(serve: Any) -> None:
    hits = {"cached": 0, "fresh": 0}

    async def h(request: web.Request) -> web.Response:
        name = request.path.strip("/")
        hits[name] += 1
        cc = "public, max-age=60" if name == "cached" else "no-store"
        return web.json_response(GOOD, headers={"Cache-Control": cc})

    base = await serve(app_with(h))
    now = [0.0]
    client = SpspClient(clock=lambda: now[0])
    for _ in range(3):
        await client.query(base + "/cached")
        await client.query(base + "/fresh")
    assert hits == {"cached": 1, "fresh": 3}
    now[0] = 61.0
    await client.query(base + "/cached")
    assert hits["cached"] == 2


def test_receiver_urls() -> None:
    assert receiver_url("$example.com/bob") == "https://example.com/bob"
    assert receiver_url("$example.com") == "https://example.com/.well-known/pay"
    assert receiver_url("http://localhost:8787/") == "http://localhost:8787/"
    for bad, words in [("http://example.com/bob", "only allowed for this machine"), ("ftp://x/y", "neither"),
                       ("$example.com:8080/x", "port"), ("bob", "neither")]:
        with pytest.raises(SpspError, match=words):
            receiver_url(bad)


async def test_unreachable_receiver() -> None:
    from tests.support.jsnode import free_port

    with pytest.raises(SpspError, match="cannot query"):
        await SpspClient(timeout=5).query(f"http://127.0.0.1:{free_port()}/")


async def test_our_server_fresh_secret_per_query_with_cors() -> None:
    issued: list[tuple[str, bytes]] = []

    def issue() -> tuple[str, bytes]:
        pair = (f"test.me.c{len(issued)}", bytes([len(issued)]) * 32)
        issued.append(pair)
        return pair

    server = SpspServer(issue, asset_code="XRP", asset_scale=9)
    await server.start("127.0.0.1", 0)
    try:
        url = f"http://127.0.0.1:{server.port}/"
        a = await SpspClient().query(url)
        b = await SpspClient().query(url)
        assert (a.destination_account, a.shared_secret) == issued[0]
        assert (b.destination_account, b.shared_secret) == issued[1]
        assert (a.asset_code, a.asset_scale) == ("XRP", 9)
        async with aiohttp.ClientSession() as s:
            async with s.get(url) as r:
                assert r.headers["Content-Type"] == "application/spsp4+json"
                assert r.headers["Access-Control-Allow-Origin"] == "*"
                assert r.headers["Cache-Control"] == "no-store"
            async with s.options(url) as r:
                assert r.status == 204 and r.headers["Access-Control-Allow-Origin"] == "*"
    finally:
        await server.stop()
