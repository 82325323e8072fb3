"""The thin WebSocket layer: rippled's request/response framing, subscriptions, and a ledger-closing timer.

The server runs in its own thread with its own event loop, so sync tests, async tests and tests that block on a
subprocess all see ledgers close. Every touch of the Ledger happens on that loop; tests reach it through
``XrplEmulator.call`` (``fund``, ``close_ledger``, ``advance_time`` use it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from .ledger import Ledger, TxRecord
from .rpc import Methods, RpcError, api_version

log = logging.getLogger("xrpl_emulator")
T = TypeVar("T")


@dataclass(eq=False)
class _Subscriber:
    ws: ServerConnection
    outbox: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    streams: set[str] = field(default_factory=set)
    accounts: set[str] = field(default_factory=set)
    version: int = 1  # stream message format: the api_version of the last subscribe

    def send(self, message: dict[str, Any]) -> None:
        self.outbox.put_nowait(json.dumps(message))


class XrplEmulator:
    """A rippled stand-in on ws://127.0.0.1:PORT. ``start()`` / ``stop()`` from any thread."""

    def __init__(self, ledger: Ledger | None = None, *, close_interval: float = 0.2, idle_close_interval: float = 2.0,
                 port: int = 0) -> None:
        self.ledger = ledger or Ledger()
        self.methods = Methods(self.ledger)
        # A transaction waits at most close_interval to be validated; with none waiting, a ledger closes every
        # idle_close_interval. Not every close_interval: clients count time in ledgers. ripple-lib (the JS
        # parent's tx submitter) sets LastLedgerSequence = last ledger it saw + 3; rippled closes a ledger every
        # 3-4 s, so that is ~10 s to get a transaction in. Closing empty ledgers every 0.2 s shrank it to 0.6 s: a
        # JS process stalled that long on a busy machine submitted an already-expired transaction (tefMAX_LEDGER),
        # and its submitter then failed with "Transaction not found".
        self.close_interval = close_interval
        self.idle_close_interval = idle_close_interval
        self.port = port
        self.requests: list[dict[str, Any]] = []  # every request received, for tests that check what clients send
        self._subscribers: set[_Subscriber] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    # -- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> XrplEmulator:
        self._thread = threading.Thread(target=self._run, name="xrpl-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("xrpl emulator did not start")
        if self._error is not None:
            raise RuntimeError(f"xrpl emulator failed to start: {self._error}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(10)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced to start()
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self.methods.started = self.ledger.clock.now()
        server: Server = await serve(self._connection, "127.0.0.1", self.port, max_size=2**22)
        self.port = next(iter(server.sockets)).getsockname()[1]
        closer = asyncio.create_task(self._close_timer())
        self._ready.set()
        await self._stopping.wait()
        closer.cancel()
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 5)

    def call(self, fn: Callable[[], T]) -> T:
        """Run fn on the emulator's loop (where the Ledger lives) and return its result."""
        assert self._loop is not None

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    # -- test helpers -------------------------------------------------------------------------------------

    def fund(self, address: str, drops: int) -> str:
        """Pay drops from genesis to address (a real, signed Payment) and close a ledger so it is validated."""
        txid = self.call(lambda: self.ledger.fund(address, drops))
        self.close_ledger()
        return txid

    def close_ledger(self) -> int:
        """Close the open ledger now (like rippled's ledger_accept) and publish it; returns its index."""
        return self.call(self._close)

    def advance_time(self, seconds: int) -> None:
        """Move the ledger clock forward and close a ledger, so the new time is the parent close time."""
        self.call(lambda: self.ledger.clock.advance(seconds))
        self.close_ledger()

    # -- ledger closing -----------------------------------------------------------------------------------

    async def _close_timer(self) -> None:
        idle = 0.0
        while True:
            await asyncio.sleep(self.close_interval)
            idle += self.close_interval
            if self.ledger.open_txs or idle >= self.idle_close_interval:
                self._close()
                idle = 0.0

    def _close(self) -> int:
        closed, records = self.ledger.close()
        event = self.methods.ledger_closed_event(closed)
        for sub in self._subscribers:
            if "ledger" in sub.streams:
                sub.send(event)
        # rippled publishes the ledger, then each of its transactions (pubLedger → pubValidatedTransaction).
        for rec in records:
            self._publish(rec)
        return closed.index

    def _publish(self, rec: TxRecord) -> None:
        touched = self.methods.affected_accounts(rec)
        for sub in self._subscribers:
            if "transactions" in sub.streams or sub.accounts & touched:
                sub.send(self.methods.transaction_event(rec, sub.version))

    # -- connections --------------------------------------------------------------------------------------

    async def _connection(self, ws: ServerConnection) -> None:
        sub = _Subscriber(ws)
        self._subscribers.add(sub)
        writer = asyncio.create_task(self._writer(sub))
        try:
            async for raw in ws:
                sub.send(self._answer(sub, raw))
        except ConnectionClosed:
            pass
        finally:
            self._subscribers.discard(sub)
            sub.outbox.put_nowait(None)
            with contextlib.suppress(Exception):
                await writer

    async def _writer(self, sub: _Subscriber) -> None:
        while True:
            message = await sub.outbox.get()
            if message is None:
                return
            try:
                await sub.ws.send(message)
            except ConnectionClosed:
                return

    def _answer(self, sub: _Subscriber, raw: str | bytes) -> dict[str, Any]:
        try:
            request = json.loads(raw)
        except ValueError:
            return {"type": "response", "status": "error", "error": "jsonInvalid", "error_code": 40,
                    "error_message": "JSON parse error."}
        if not isinstance(request, dict):
            return {"type": "response", "status": "error", "error": "jsonInvalid", "error_code": 40,
                    "error_message": "JSON is not an object."}
        self.requests.append(request)
        try:
            command = request.get("command")
            if command == "subscribe":
                result = self._subscribe(sub, request)
            elif command == "unsubscribe":
                result = self._unsubscribe(sub, request)
            else:
                result = self.methods.handle(request)
        except RpcError as err:
            return err.response(request)
        except Exception as exc:  # bad input never takes the emulator down
            log.exception("request failed: %r", request)
            return RpcError("internal", f"Internal error: {exc}").response(request)
        out: dict[str, Any] = {"type": "response", "status": "success", "result": result}
        if "id" in request:
            out["id"] = request["id"]
        if "api_version" in request:
            out["api_version"] = request["api_version"]
        return out

    def _lists(self, request: dict[str, Any]) -> tuple[list[str], list[str]]:
        streams = request.get("streams", [])
        accounts = request.get("accounts", [])
        if not isinstance(streams, list) or not isinstance(accounts, list):
            raise RpcError("invalidParams", "Invalid parameters.")
        for s in streams:
            if s not in ("ledger", "transactions", "transactions_proposed", "server", "validations",
                         "consensus", "peer_status", "manifests", "book_changes"):
                raise RpcError("malformedStream", "Stream malformed.")
        for a in accounts:
            self.methods._address({"account": a})
        return streams, accounts

    def _subscribe(self, sub: _Subscriber, request: dict[str, Any]) -> dict[str, Any]:
        streams, accounts = self._lists(request)
        sub.streams.update(streams)
        sub.accounts.update(accounts)
        sub.version = api_version(request)
        if "ledger" in streams:
            return self.methods.ledger_stream_fields(self.ledger.validated)
        return {}

    def _unsubscribe(self, sub: _Subscriber, request: dict[str, Any]) -> dict[str, Any]:
        streams, accounts = self._lists(request)
        sub.streams.difference_update(streams)
        sub.accounts.difference_update(accounts)
        return {}
