"""The admin API: its JSON shapes side by side with a real JS ilp-connector 23 set up as the JS moneyd sets it up
(tests/js/admin-connector.js: a mini-accounts account "local", a BTP uplink "parent", the admin API on), and what
it adds (the uplink's facts, the event stream)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp

from moneyd.admin.api import AdminServer
from moneyd.app import Router
from moneyd.localapp import LocalApp
from tests.support.app_pair import pays, ping
from tests.support.jsnode import NodeRunner, free_port
from tests.support.routerfixture import start_router
from uplinks.btp import BtpUplink

# Objects keyed by account ids, route prefixes or metric labels: compared by the shape of their values.
ID_MAPS = {
    "status": {"balances", "connected", "localRoutingTable"},
    "routing": {"localRoutingTable", "forwardingRoutingTable", "peers"},
    "accounts": {"accounts"},
    "balance": {"accounts"},
    "rates": {"", "*"},
}


def shape(value: Any, maps: set[str], path: str = "") -> Any:
    """The structure of a JSON value: key sets and scalar types; maps keyed by ids collapse to one "*" entry."""
    if isinstance(value, dict):
        if path in maps:
            shapes = {json.dumps(shape(v, maps, "*"), sort_keys=True) for v in value.values()}
            return {"*": sorted(shapes)}
        return {k: shape(v, maps, k) for k, v in value.items()}
    if isinstance(value, list):
        return sorted({json.dumps(shape(v, maps, path), sort_keys=True) for v in value})
    return type(value).__name__


async def get(session: aiohttp.ClientSession, port: int, path: str) -> tuple[int, str, Any]:
    async with session.get(f"http://127.0.0.1:{port}{path}") as r:
        text = await r.text()
        ctype = r.headers.get("Content-Type", "")
        return r.status, ctype, json.loads(text) if ctype.startswith("application/json") else text


async def start_admin(router: Router, tmp_path: Path) -> AdminServer:
    admin = AdminServer(router, free_port(), tmp_path)
    await admin.start()
    return admin


async def test_shapes_match_the_js_connector_side_by_side(node: NodeRunner, tmp_path: Path) -> None:
    pport = free_port()
    parent = node.start("parent-connector.js", str(pport), "test.parent")
    await parent.event("ready", timeout=30)
    jport, jadmin = free_port(), free_port()
    js = node.start("admin-connector.js", str(jport), str(jadmin), f"btp+ws://:js-moneyd@127.0.0.1:{pport}")
    await js.event("ready", timeout=30)
    router = await start_router(tmp_path, BtpUplink(f"btp+ws://:py-moneyd@127.0.0.1:{pport}"))
    admin = await start_admin(router, tmp_path)
    try:
        # The same traffic through each: an app pays an app on the parent, and is paid back.
        for port in (jport, router.server.port):
            await pays(node, f"btp+ws://:a{port}@127.0.0.1:{port}", f"btp+ws://:b{port}@127.0.0.1:{pport}", 100)
            await pays(node, f"btp+ws://:c{port}@127.0.0.1:{pport}", f"btp+ws://:d{port}@127.0.0.1:{port}", 7)
        async with aiohttp.ClientSession() as s:
            for path in ("/status", "/routing", "/accounts", "/balance", "/rates", "/stats", "/alerts"):
                js_status, js_type, js_body = await get(s, jadmin, path)
                our_status, our_type, our_body = await get(s, admin.port, path)
                assert js_status == our_status == 200, path
                assert our_type.startswith("application/json") and js_type.startswith("application/json"), path
                maps = ID_MAPS.get(path.strip("/"), set())
                assert shape(our_body, maps) == shape(js_body, maps), f"{path}\nours: {our_body}\njs:   {js_body}"
            # Values agree too where the traffic was the same: the uplink/parent moved 100 out and 7 in.
            ours = (await get(s, admin.port, "/balance"))[2]["accounts"]
            theirs = (await get(s, jadmin, "/balance"))[2]["accounts"]
            assert ours["uplink"]["balance"] == theirs["parent"]["balance"] == "-93"
            # /metrics: every metric the JS exposes, with the same type, in the Prometheus text format.
            _, js_type, js_metrics = await get(s, jadmin, "/metrics")
            _, our_type, our_metrics = await get(s, admin.port, "/metrics")
            assert our_type == js_type == "text/plain; version=0.0.4; charset=utf-8"
            js_types = {line for line in js_metrics.splitlines() if line.startswith("# TYPE")}
            our_types = {line for line in our_metrics.splitlines() if line.startswith("# TYPE")}
            assert js_types <= our_types, js_types - our_types
            assert 'ilp_connector_balance{account="uplink",asset="XRP",scale="9"} -93' in our_metrics
            assert "moneyd_uplink_connected 1" in our_metrics
            # GET /accounts/ID: {account, plugin, info}; the JS's uplink plugin has no admin info, ours says a lot.
            status, _, body = await get(s, admin.port, "/accounts/uplink")
            assert status == 200 and set(body) == {"account", "plugin", "info"}
            assert body["plugin"] == "btp" and body["info"]["connected"] is True
            assert body["info"]["parent"] == f"btp+ws://:***@127.0.0.1:{pport}"
    finally:
        await admin.stop()
        await router.stop()
        router.store.close()


async def test_writes_change_balances_and_alerts(tmp_path: Path) -> None:
    router = await start_router(tmp_path)
    admin = await start_admin(router, tmp_path)
    auth = {"Authorization": f"Bearer {admin.token}"}
    app = await LocalApp.connect(f"btp+ws://app1:tok@127.0.0.1:{router.server.port}")
    try:
        router.traffic.of("app1").sent = 10  # as if app1 had paid 10 through us
        async with aiohttp.ClientSession() as s:
            url = f"http://127.0.0.1:{admin.port}"
            async with s.post(f"{url}/balance", json={"accountId": "app1", "amountDiff": "-25"}, headers=auth) as r:
                assert r.status == 204
            assert (await get(s, admin.port, "/balance"))[2]["accounts"]["app1"]["balance"] == "-15"
            async with s.post(f"{url}/balance", json={"accountId": "nobody", "amountDiff": "1"}, headers=auth) as r:
                assert r.status == 404 and "account does not exist" in (await r.json())["error"]["message"]
            for bad in ({"accountId": "app1"}, {"accountId": "app1", "amountDiff": "1.5"},
                        {"accountId": "app1", "amountDiff": "01"}, {"accountId": 5, "amountDiff": "1"},
                        {"accountId": "app1", "amountDiff": "1", "extra": 1}, ["app1", "1"]):
                async with s.post(f"{url}/balance", json=bad, headers=auth) as r:
                    assert r.status == 400, bad
                    assert "invalid balance update" in (await r.json())["error"]["message"]
            router.monitor.alert("app1", "private.moneyd", "exceeded maximum balance.")
            router.monitor.alert("app1", "private.moneyd", "exceeded maximum balance.")
            alerts = (await get(s, admin.port, "/alerts"))[2]["alerts"]
            assert len(alerts) == 1 and alerts[0]["count"] == 2
            assert set(alerts[0]) == {"id", "accountId", "triggeredBy", "message", "count", "createdAt", "updatedAt"}
            async with s.delete(f"{url}/alerts/{alerts[0]['id']}", headers=auth) as r:
                assert r.status == 204
            assert (await get(s, admin.port, "/alerts"))[2] == {"alerts": []}
    finally:
        await app.close()
        await admin.stop()
        await router.stop()
        router.store.close()


async def test_event_stream_shows_links_and_payments(node: NodeRunner, tmp_path: Path) -> None:
    router = await start_router(tmp_path)
    admin = await start_admin(router, tmp_path)
    try:
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{admin.port}/events") as r:
            assert r.status == 200 and r.headers["Content-Type"] == "text/event-stream"
            seen: dict[str, list[dict[str, Any]]] = {}

            async def read_until(kind: str, pred: Any) -> dict[str, Any]:
                event = ""
                while True:
                    line = (await asyncio.wait_for(r.content.readline(), 10)).decode().rstrip("\n")
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: "):
                        data = json.loads(line[6:])
                        seen.setdefault(event, []).append(data)
                        if event == kind and pred(data):
                            return data

            first = await read_until("overview", lambda d: True)
            assert first["address"] == "private.moneyd" and first["uplink"] is None
            port = router.server.port
            apps = node.start("app-pair.js", f"btp+ws://:ev-a@127.0.0.1:{port}", f"btp+ws://:ev-b@127.0.0.1:{port}")
            ready = await apps.event("ready", timeout=30)
            assert (await ping(apps, 1234))["ok"] is True
            b_address = ready["b"]["clientAddress"]
            await read_until("link", lambda d: d["up"] is True)
            pay = await read_until("payment", lambda d: d["destination"].startswith(b_address))
            assert pay["amount"] == "1234" and pay["packets"] == 1
            tick = await read_until("packets", lambda d: d["total"] >= 3)  # two ILDCP requests and the ping
            assert len(tick["apps"]) == 2
    finally:
        await admin.stop()
        await router.stop()
        router.store.close()
