"""The admin HTTP server on 127.0.0.1: ilp-connector 23's admin API (the JS moneyd's ``--admin-api-port``), plus the
uplink's facts, a Server-Sent Events stream, the dashboard, and the dashboard's pay and receive actions.

Safety the JS lacks: reads are open to loopback clients, anything that changes state needs the bearer token kept in
the data directory; the Host header must name a loopback address (DNS rebinding); a browser Origin other than this
server's own is refused; bodies are capped; every error is a JSON body with a 4xx (or 500), never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from fractions import Fraction
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..router.layers import UPLINK
from . import snapshot
from .files import load_token
from .monitor import Monitor
from .sampler import TICK, Rate, Sampler
from .snapshot import LinkWatch

if TYPE_CHECKING:
    from ..app import Router
    from ..commands.receive import Receiver
    from ..localapp import LocalApp

log = logging.getLogger("moneyd.admin")

MAX_BODY = 16 * 1024
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
_AMOUNT_DIFF = re.compile(r"\A(?:0|-?[1-9][0-9]{0,30})\Z")
_ACCOUNT_ID = re.compile(r"\A[A-Za-z0-9_.\-~]{1,128}\Z")
PROM_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _s(v: int | None, none: str) -> str:
    return none if v is None else str(v)


class AdminServer:
    def __init__(
        self, router: Router, port: int, data_dir: Path, host: str = "127.0.0.1", sampler: Sampler | None = None
    ) -> None:
        """``sampler``: one already running (``gate.AdminGate`` starts it with moneyd); else this server runs its own."""
        self.router = router
        self.monitor: Monitor = router.monitor
        self.host = host
        self.requested_port = port
        self.port = 0
        self.data_dir = data_dir
        self.token = load_token(data_dir) or ""
        self._own_sampler = sampler is None
        self.sampler = sampler if sampler is not None else Sampler(router)
        self.watch: LinkWatch = self.sampler.watch
        self.rate: Rate = self.sampler.rate
        self.routing_table_id = str(uuid.uuid4())
        self._runner: web.AppRunner | None = None
        self._receiver: Receiver | None = None
        self._receiver_app: LocalApp | None = None
        self._receiver_lock = asyncio.Lock()
        self._closing = asyncio.Event()

    # -- lifecycle ----------------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        a = web.Application(client_max_size=MAX_BODY, middlewares=[self._guard])
        r = a.router
        r.add_get("/", self.dashboard)
        r.add_get("/status", self.get_status)
        r.add_get("/routing", self.get_routing)
        r.add_get("/accounts", self.get_accounts)
        r.add_get("/accounts/{id}", self.get_account)
        r.add_post("/accounts/{id}", self.post_account)
        r.add_get("/balance", self.get_balance)
        r.add_post("/balance", self.post_balance)
        r.add_get("/rates", self.get_rates)
        r.add_get("/stats", self.get_stats)
        r.add_get("/alerts", self.get_alerts)
        r.add_delete("/alerts/{id}", self.delete_alert)
        r.add_get("/metrics", self.get_metrics)
        r.add_get("/uplink", self.get_uplink)
        r.add_get("/overview", self.get_overview)
        r.add_get("/events", self.get_events)
        r.add_post("/pay", self.post_pay)
        r.add_get("/receive", self.get_receive)
        r.add_post("/receive", self.post_receive)
        return a

    async def start(self, sock: socket.socket | None = None) -> None:
        """Listen on ``host:port``, or serve on ``sock``, a listening socket bound already."""
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site: web.BaseSite
        if sock is not None:
            site = web.SockSite(self._runner, sock)
        else:
            site = web.TCPSite(self._runner, self.host, self.requested_port)
        try:
            await site.start()
        except BaseException:
            await self._runner.cleanup()
            raise
        sockets = getattr(site._server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self.requested_port
        if self._own_sampler:
            self.sampler.start()

    async def stop(self) -> None:
        self._closing.set()
        if self._own_sampler:
            await self.sampler.stop()
        await self._stop_receiver()
        if self._runner is not None:
            await self._runner.cleanup()

    def sample(self) -> None:
        self.sampler.sample()

    # -- safety -------------------------------------------------------------------------------------------------

    def _loopback_host(self, host: str | None) -> bool:
        if not host:
            return False
        host = host.lower()
        return any(host == n or host == f"{n}:{self.port}" for n in LOOPBACK_NAMES)

    def _own_origins(self) -> set[str]:
        """The dashboard's own origins: only this port (a page on another local port is another origin)."""
        return {f"http://{n}:{self.port}" for n in LOOPBACK_NAMES}

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            if not self._loopback_host(request.headers.get("Host")):
                raise ApiError(403, "the Host header must be 127.0.0.1, localhost or [::1] (DNS rebinding guard)")
            origin = request.headers.get("Origin")
            if origin is not None and origin.lower() not in self._own_origins():
                raise ApiError(403, f"requests from origin {origin[:100]} are not allowed")
            if request.method not in ("GET", "HEAD", "OPTIONS"):
                self._check_token(request)
            return await handler(request)
        except ApiError as e:
            return _error(e.status, str(e))
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"the body is too large (at most {MAX_BODY} bytes)")
        except web.HTTPException as e:
            return _error(e.status, e.reason)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # never a traceback to the client; the log keeps it for us
            log.warning("admin API %s %s failed: %s", request.method, request.path, e, exc_info=log.isEnabledFor(logging.DEBUG))
            return _error(500, f"internal error: {type(e).__name__}")

    def _check_token(self, request: web.Request) -> None:
        auth = request.headers.get("Authorization", "")
        scheme, _, given = auth.partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise ApiError(401, "this changes state: send the admin token as 'Authorization: Bearer TOKEN' "
                           "(`moneyd status --token` shows it)")
        if not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            raise ApiError(401, "wrong admin token (`moneyd status --token` shows the right one)")

    async def _json_body(self, request: web.Request) -> Any:
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise ApiError(413, f"the body is too large (at most {MAX_BODY} bytes)")
        raw = await request.read()
        if not raw:
            raise ApiError(400, "a JSON body is required")
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise ApiError(400, f"the body is not valid JSON: {e}") from None

    # -- ilp-connector's endpoints --------------------------------------------------------------------------------

    def _local_routing_table(self) -> dict[str, dict[str, str]]:
        r = self.router
        table: dict[str, dict[str, str]] = {r.address: {"nextHop": "", "path": ""}}
        if r.uplink is not None:
            table[r.address.split(".", 1)[0]] = {"nextHop": UPLINK, "path": ""}
        for app in snapshot.app_accounts(r):
            table[f"{r.address}.local.{app}"] = {"nextHop": app, "path": ""}
        return table

    def _balance_json(self) -> dict[str, Any]:
        return {"accounts": {a.id: {"balance": str(a.balance), "minimum": _s(a.minimum, "-Infinity"),
                                    "maximum": _s(a.maximum, "Infinity")} for a in snapshot.accounts(self.router)}}

    def _accounts_json(self) -> dict[str, Any]:
        r = self.router
        out: dict[str, Any] = {}
        for a in snapshot.accounts(r):
            info = {"relation": a.relation, "plugin": a.plugin, "assetCode": r.asset_code, "assetScale": r.asset_scale,
                    "balance": {"minimum": _s(a.minimum, "-Infinity"), "maximum": _s(a.maximum, "Infinity"),
                                "settleThreshold": "-Infinity"}}
            out[a.id] = {"info": info, "connected": a.connected, "adminInfo": True}
        return {"address": r.address, "accounts": out}

    async def get_status(self, request: web.Request) -> web.Response:
        accts = snapshot.accounts(self.router)
        return _json({"balances": {a.id: str(a.balance) for a in accts}, "connected": {a.id: a.connected for a in accts},
                      "localRoutingTable": self._local_routing_table()})

    async def get_routing(self, request: web.Request) -> web.Response:
        r = self.router
        peers: dict[str, Any] = {}
        if r.uplink is not None:  # moneyd takes a default route from its parent; no route exchange (CCP)
            peers[UPLINK] = {"send": {"epoch": 0, "mode": "IDLE"},
                             "receive": {"routingTableId": "00000000-0000-0000-0000-000000000000", "epoch": 0}}
        own = {"nextHop": "", "path": r.address}  # our own route, the one entry ilp-connector's log would hold
        return _json({"routingTableId": self.routing_table_id, "currentEpoch": 1,
                      "localRoutingTable": self._local_routing_table(), "forwardingRoutingTable": {r.address: own},
                      "routingLog": [{"prefix": r.address, "route": own, "epoch": 0}], "peers": peers})

    async def get_accounts(self, request: web.Request) -> web.Response:
        return _json(self._accounts_json())

    def _account(self, request: web.Request) -> snapshot.AccountFacts:
        aid = request.match_info["id"]
        if not _ACCOUNT_ID.match(aid):
            raise ApiError(400, "invalid account.")
        a = snapshot.account(self.router, aid)
        if a is None:
            raise ApiError(404, f"account does not exist. account={aid}")
        return a

    async def get_account(self, request: web.Request) -> web.Response:
        a = self._account(request)
        r = self.router
        info: dict[str, Any]
        if a.id == UPLINK:
            info = snapshot.uplink_facts(r, self.watch) or {}
        else:
            acct = r.server.accounts.get(a.id)
            info = {"address": f"{r.address}.local.{a.id}", "connected": a.connected,
                    "connections": len(acct.sockets) if acct else 0, "balance": str(a.balance)}
        return _json({"account": a.id, "plugin": a.plugin, "info": info})

    async def post_account(self, request: web.Request) -> web.Response:
        a = self._account(request)
        body = await self._json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("command"), str):
            raise ApiError(400, 'give a command: {"command": "disconnect"} (apps)')
        command = body["command"]
        if a.id != UPLINK and command == "disconnect":
            acct = self.router.server.accounts.get(a.id)
            n = 0
            for conn in list(acct.sockets if acct else ()):
                await conn.close()
                n += 1
            return _json({"account": a.id, "plugin": a.plugin, "result": {"disconnected": n}})
        raise ApiError(400, f"unknown command {command[:40]!r} for account {a.id}")

    async def get_balance(self, request: web.Request) -> web.Response:
        return _json(self._balance_json())

    async def post_balance(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        if not isinstance(body, dict) or set(body) != {"accountId", "amountDiff"}:
            raise ApiError(400, 'invalid balance update: give exactly {"accountId": ID, "amountDiff": "-12"}')
        aid, diff = body["accountId"], body["amountDiff"]
        if not isinstance(aid, str) or not isinstance(diff, str) or not _AMOUNT_DIFF.match(diff):
            raise ApiError(400, "invalid balance update: accountId is a string, amountDiff an integer in a string")
        if snapshot.account(self.router, aid) is None:
            raise ApiError(404, f"account does not exist. account={aid}")
        try:
            new = snapshot.adjust_balance(self.router, aid, int(diff))
        except PermissionError as e:
            raise ApiError(409, str(e)) from None
        log.warning("balance of %s changed by %s through the admin API (now %d)", aid, diff, new)
        return web.Response(status=204)

    async def get_rates(self, request: web.Request) -> web.Response:
        ids = [a.id for a in snapshot.accounts(self.router)]
        return _json({a: {b: 1 for b in ids if b != a} for a in ids})  # one asset: every rate is one

    def _stats(self) -> list[dict[str, Any]]:
        r, m = self.router, self.monitor

        def labels(account: str, **extra: str) -> dict[str, Any]:
            return {**extra, "account": account, "asset": r.asset_code, "scale": r.asset_scale}

        def metric(name: str, help_: str, kind: str, values: list[dict[str, Any]]) -> dict[str, Any]:
            return {"help": help_, "name": name, "type": kind, "values": values, "aggregator": "sum"}

        incoming = sorted(m.incoming.items())
        outgoing = sorted(m.outgoing({a: (st.received_packets, st.received) for a, st in r.traffic.items()}).items())
        limited = sorted((a, n) for (a, code), n in m.reject_codes.items() if code == "T05")
        return [
            metric("ilp_connector_incoming_ilp_packets", "Total number of incoming ILP packets", "counter",
                   [{"value": c[0], "labels": labels(a, result=res)} for (a, res), c in incoming]),
            metric("ilp_connector_incoming_ilp_packet_value", "Total value of incoming ILP packets", "counter",
                   [{"value": c[1], "labels": labels(a, result=res)} for (a, res), c in incoming if c[1]]),
            metric("ilp_connector_outgoing_ilp_packets", "Total number of outgoing ILP packets", "counter",
                   [{"value": c[0], "labels": labels(a, result="fulfilled")} for a, c in outgoing]),
            metric("ilp_connector_outgoing_ilp_packet_value", "Total value of outgoing ILP packets", "counter",
                   [{"value": c[1], "labels": labels(a, result="fulfilled")} for a, c in outgoing]),
            metric("ilp_connector_incoming_money", "Total of incoming money", "gauge", []),
            metric("ilp_connector_outgoing_money", "Total of outgoing money", "gauge", []),
            metric("ilp_connector_rate_limited_ilp_packets", "Total of rate limited ILP packets", "counter",
                   [{"value": n, "labels": labels(a)} for a, n in limited]),
            metric("ilp_connector_rate_limited_money", "Total of rate limited money requests", "counter", []),
            metric("ilp_connector_balance", "Balances on peer account", "gauge",
                   [{"value": a.balance, "labels": labels(a.id)} for a in snapshot.accounts(r)]),
        ]

    async def get_stats(self, request: web.Request) -> web.Response:
        return _json(self._stats())

    async def get_alerts(self, request: web.Request) -> web.Response:
        return _json({"alerts": self.monitor.alert_list()})

    async def delete_alert(self, request: web.Request) -> web.Response:
        aid = request.match_info["id"]
        if not aid.isdigit() or len(aid) > 20:
            raise ApiError(400, "invalid alert id")
        self.monitor.alerts.pop(int(aid), None)
        return web.Response(status=204)

    async def get_metrics(self, request: web.Request) -> web.Response:
        lines: list[str] = []
        for m in self._stats():
            lines += [f"# HELP {m['name']} {m['help']}", f"# TYPE {m['name']} {m['type']}"]
            for v in m["values"]:
                lab = ",".join(f'{k}="{_prom_escape(str(val))}"' for k, val in v["labels"].items())
                lines.append(f"{m['name']}{{{lab}}} {v['value']}")
            lines.append("")
        for name, help_, kind, value in self._moneyd_metrics():
            lines += [f"# HELP {name} {help_}", f"# TYPE {name} {kind}", f"{name} {value}", ""]
        return web.Response(text="\n".join(lines), headers={"Content-Type": PROM_CONTENT_TYPE})

    def _moneyd_metrics(self) -> list[tuple[str, str, str, str]]:
        r = self.router
        out = [
            ("moneyd_up", "1 while moneyd runs", "gauge", "1"),
            ("moneyd_apps_connected", "Local apps connected now", "gauge", str(len(r.server.accounts))),
            ("moneyd_packets_total", "Prepares answered", "counter", str(self.monitor.packets)),
        ]
        if r.uplink is not None:
            facts = snapshot.uplink_facts(r, self.watch) or {}
            out.append(("moneyd_uplink_connected", "1 while the uplink is connected", "gauge",
                        "1" if facts.get("connected") else "0"))
            for side, ch in (facts.get("channels") or {}).items():
                if ch and ch.get("left") is not None:
                    out.append((f"moneyd_channel_{side}_left", f"Base units left in the {side} payment channel",
                                "gauge", ch["left"]))
        return out

    # -- beyond the JS: the uplink, an overview, live events ------------------------------------------------------

    async def get_uplink(self, request: web.Request) -> web.Response:
        return _json(snapshot.uplink_facts(self.router, self.watch))

    def overview(self) -> dict[str, Any]:
        r, m = self.router, self.monitor
        up = snapshot.uplink_facts(r, self.watch)
        healthy = up is None or bool(up["connected"])
        return {
            # The store says which data directory (and network) this moneyd serves: `moneyd status` checks it.
            "moneyd": {"pid": os.getpid(), "started": m.started, "port": r.server.port, "admin_port": self.port,
                       "store": str(Path(r.store.path).resolve())},
            "healthy": healthy,
            "address": r.address,
            "asset": {"code": r.asset_code, "scale": r.asset_scale},
            "uplink": up,
            "accounts": [{"id": a.id, "relation": a.relation, "connected": a.connected, "balance": str(a.balance)}
                         for a in snapshot.accounts(r)],
            "apps": snapshot.app_accounts(r),
            "packets": {"total": m.packets, "per_second": round(self.rate.per_second, 1)},
            "payments": m.recent_payments(),
            "last_error": m.last_error,
        }

    async def get_overview(self, request: web.Request) -> web.Response:
        return _json(self.overview())

    async def get_events(self, request: web.Request) -> web.StreamResponse:
        """Server-Sent Events: an ``overview`` first, then link/claim/error events, payments as they grow, and a
        ``packets`` tick (counts and rate). Pulled from the monitor on a timer: nothing is pushed per packet."""
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        await resp.prepare(request)
        m = self.monitor
        seq = m.seq
        shown_payments = time.time()

        async def send(kind: str, data: Any) -> None:
            await resp.write(f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode())

        try:
            await send("overview", self.overview())
            while not self._closing.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), TICK)
                for e in m.since(seq):
                    await send(e["type"], e)
                seq = m.seq
                now = time.time()
                for p in m.recent_payments(limit=1000):
                    if p["updated"] > shown_payments:
                        await send("payment", p)
                shown_payments = now
                await send("packets", {"total": m.packets, "per_second": round(self.rate.per_second, 1),
                                           "apps": snapshot.app_accounts(self.router),
                                           "accounts": [{"id": a.id, "connected": a.connected, "balance": str(a.balance)}
                                                        for a in snapshot.accounts(self.router)],
                                 "uplink": snapshot.uplink_facts(self.router, self.watch)})
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return resp

    async def dashboard(self, request: web.Request) -> web.Response:
        page = resources.files("moneyd.admin").joinpath("dashboard.html").read_text(encoding="utf-8")
        return web.Response(text=page, content_type="text/html", headers={
            "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                                       "img-src 'self' data:; frame-ancestors 'none'",
            "X-Frame-Options": "DENY", "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})

    # -- the dashboard's actions ----------------------------------------------------------------------------------

    def _via(self) -> str:
        return f"btp+ws://localhost:{self.router.server.port}"

    async def post_pay(self, request: web.Request) -> web.Response:
        from ..amounts import AmountError, parse_amount
        from ..commands.pay import PayFailed, PayOptions, pay

        body = await self._json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("receiver"), str) or not isinstance(body.get("amount"), str | int):
            raise ApiError(400, 'give {"receiver": "$pointer or https URL", "amount": "1000"}')
        receiver = body["receiver"].strip()
        if not (receiver.startswith("$") or receiver.startswith(("http://", "https://"))):
            raise ApiError(400, "give a payment pointer ($host/path) or an https URL")
        try:
            amount = parse_amount(str(body["amount"]))
        except AmountError as e:
            raise ApiError(400, str(e)) from None
        opts = PayOptions(receiver, amount, self._via(), Fraction(1, 100), 60.0, True)
        try:
            result, info = await pay(opts)
        except PayFailed as e:
            return _json({"ok": False, "error": str(e)})
        return _json({**info, "ok": result.ok, "source_amount": str(result.amount), "sent": str(result.sent),
                      "delivered": str(result.delivered), "packets": result.packets,
                      "seconds": round(result.seconds, 3), "error": result.error})

    def _receive_json(self) -> dict[str, Any]:
        rcv = self._receiver
        if rcv is None:
            return {"running": False}
        return {"running": True, "url": f"http://localhost:{rcv.spsp.port}/", "address": rcv.app.address,
                "total": str(rcv.total),
                "payments": [{"number": p.number, "amount": str(p.total), "packets": p.packets, "done": p.done}
                             for p in sorted(rcv.payments.values(), key=lambda p: -p.number)][:20]}

    async def get_receive(self, request: web.Request) -> web.Response:
        return _json(self._receive_json())

    async def post_receive(self, request: web.Request) -> web.Response:
        """Start (once) an SPSP + STREAM receiver: the same receiver ``moneyd receive`` runs, as a local app."""
        from ..commands.receive import Receiver
        from ..localapp import LocalApp, LocalAppError

        async with self._receiver_lock:
            if self._receiver is not None and self._receiver.app.reader.done():
                await self._stop_receiver()
            if self._receiver is None:
                try:
                    app = await LocalApp.connect(self._via())
                except LocalAppError as e:
                    raise ApiError(503, str(e)) from None
                rcv = Receiver(app, as_json=True)
                rcv.emit = lambda *a, **k: None  # type: ignore[method-assign]  # the page shows it, not stdout
                await rcv.spsp.start("127.0.0.1", 0)
                self._receiver, self._receiver_app = rcv, app
        return _json(self._receive_json())

    async def _stop_receiver(self) -> None:
        rcv, app = self._receiver, self._receiver_app
        self._receiver = self._receiver_app = None
        if rcv is not None:
            with contextlib.suppress(Exception):
                await rcv.spsp.stop()
                await rcv.stream.close()
        if app is not None:
            with contextlib.suppress(Exception):
                await app.close()


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(obj), status=status, content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return _json({"error": {"status": status, "message": message}}, status)


def _prom_escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
