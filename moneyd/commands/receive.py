"""``moneyd receive``: an SPSP + STREAM receiver, as a local app of the running moneyd."""

from __future__ import annotations

import contextlib
import json
import signal
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import typer

# asyncio and the STREAM modules are imported where they are used: `moneyd --help` loads this module.
if TYPE_CHECKING:
    import asyncio

    from ..localapp import LocalApp
    from ..stream.aio import StreamConnection
    from ..wire.ilp import Prepare, Reply

REPORT_EVERY = 1.0
RECONNECT_FIRST, RECONNECT_MAX = 0.25, 5.0  # backoff while moneyd is away (seconds)


@dataclass
class Incoming:
    """What one STREAM connection (one payment, usually) has brought so far."""

    number: int
    total: int = 0
    reported: int = 0
    packets: int = 0
    started: float = field(default_factory=time.monotonic)
    done: bool = False


class Receiver:
    def __init__(self, app: LocalApp, as_json: bool, url: str | None = None) -> None:
        from ..handlers import answering
        from ..spsp import SpspServer
        from ..stream.aio import StreamServer
        from ..stream.connection import ConnectionConfig

        self.app = app
        self.url = url  # with our token: reconnecting with it gets the same account, so the same address
        self.as_json = as_json
        self.stream = StreamServer(app.address, self._send_prepare, asset_code=app.asset_code,
                                   asset_scale=app.asset_scale, config=ConnectionConfig(default_receive_max=2**64 - 1))
        self.stream.on_connection = self._on_connection
        app.handler = answering(self.stream.handle_prepare)
        self.spsp = SpspServer(self.stream.generate_address_and_secret, asset_code=app.asset_code,
                               asset_scale=app.asset_scale)
        self.payments: dict[int, Incoming] = {}
        self.total = 0

    async def _send_prepare(self, prepare: Prepare) -> Reply:
        return await self.app.send_prepare(prepare)  # whichever connection to moneyd is current

    async def reconnect(self, stop: asyncio.Event) -> bool:
        """moneyd went away (restarted, say): connect again with the same token until it answers or we are
        stopped. False when stopped first."""
        import asyncio

        from ..handlers import answering
        from ..localapp import LocalApp, LocalAppError

        old = self.app
        self.emit("disconnected", "moneyd closed the connection; reconnecting (Ctrl-C stops) …")
        await old.close()
        delay = RECONNECT_FIRST
        while not stop.is_set():
            try:
                app = await LocalApp.connect(self.url, timeout=5.0)
            except LocalAppError:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, RECONNECT_MAX)
                continue
            if app.address != old.address:
                await app.close()
                raise LocalAppError(f"moneyd now gives this receiver the address {app.address} (was {old.address}); "
                                    "payments to the old SPSP details cannot arrive: start moneyd receive again")
            app.handler = answering(self.stream.handle_prepare)
            self.app = app
            self.emit("reconnected", f"reconnected to moneyd as {app.address}", address=app.address)
            return True
        return False

    def emit(self, event: str, text: str, **fields: object) -> None:
        if self.as_json:
            typer.echo(json.dumps({"event": event, **fields}))
        else:
            typer.echo(text)

    def _on_connection(self, conn: StreamConnection, tag: str | None) -> None:
        import asyncio

        inc = Incoming(len(self.payments) + 1)
        self.payments[id(conn)] = inc

        def money(stream_id: int, amount: int) -> None:
            inc.total += amount
            inc.packets += 1
            self.total += amount

        conn.on_money = money
        task = asyncio.ensure_future(conn.wait_closed())
        task.add_done_callback(lambda _t: self._closed(inc))

    def _closed(self, inc: Incoming) -> None:
        inc.done = True
        self.report(inc, final=True)

    def report(self, inc: Incoming, final: bool = False) -> None:
        if inc.total == inc.reported and not final:
            return
        inc.reported = inc.total
        seconds = time.monotonic() - inc.started
        asset = f"{self.app.asset_code} base units (scale {self.app.asset_scale})"
        if final:
            self.emit("payment", f"payment #{inc.number}: received {inc.total:,} {asset} in {inc.packets:,} packets, "
                      f"{seconds:.1f}s", payment=inc.number, amount=inc.total, packets=inc.packets,
                      seconds=round(seconds, 3), total=self.total)
        else:
            self.emit("progress", f"payment #{inc.number}: {inc.total:,} so far", payment=inc.number,
                      amount=inc.total, packets=inc.packets, total=self.total)

    async def run(self, host: str, port: int, stop: asyncio.Event) -> None:
        import asyncio

        await self.spsp.start(host, port)
        shown = "localhost" if host in ("127.0.0.1", "::1") else host
        url = f"http://{shown}:{self.spsp.port}/"
        self.emit("ready", f"receiving as {self.app.address} ({self.app.asset_code}, scale {self.app.asset_scale})\n"
                  f"SPSP URL: {url}  (pay it with: moneyd pay {url} AMOUNT)\n"
                  "a $payment-pointer needs https on port 443: put this behind a TLS proxy to use one. Ctrl-C stops.",
                  url=url, address=self.app.address, asset_code=self.app.asset_code, asset_scale=self.app.asset_scale)
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), REPORT_EVERY)
                for inc in self.payments.values():
                    if not inc.done:
                        self.report(inc)
                if self.app.reader.done() and not stop.is_set():
                    if self.url is None:
                        from ..localapp import LocalAppError

                        raise LocalAppError("moneyd closed the connection")
                    await self.reconnect(stop)
        finally:
            await self.spsp.stop()
            await self.stream.close()


def register(app: typer.Typer) -> None:
    @app.command("receive")
    def receive_command(
        host: str = typer.Option("127.0.0.1", "--host", help="Where the SPSP server listens."),
        port: int = typer.Option(8787, "--port", min=0, max=65535, help="SPSP server port (0: any free port)."),
        via: str | None = typer.Option(None, "--via", help="moneyd to receive through (default btp+ws://localhost:7768)."),
        as_json: bool = typer.Option(False, "--json", help="Print events as JSON lines."),
    ) -> None:
        """Receive payments: serve an SPSP endpoint and take STREAM payments through the running moneyd."""
        import asyncio

        async def main() -> None:
            import logging

            from ..localapp import LocalApp, LocalAppError, app_url

            logging.getLogger("asyncio").setLevel(logging.ERROR)  # no "socket.send() raised exception" when moneyd goes
            try:
                url = app_url(via)
                local = await LocalApp.connect(url)
            except LocalAppError as e:
                typer.echo(f"moneyd: error: {e}", err=True)
                raise typer.Exit(1) from None
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError):
                    loop.add_signal_handler(sig, stop.set)
            receiver = Receiver(local, as_json, url)
            try:
                await receiver.run(host, port, stop)
            except OSError as e:
                typer.echo(f"moneyd: error: cannot listen on {host}:{port}: {e.strerror or e}", err=True)
                raise typer.Exit(1) from None
            except LocalAppError as e:
                typer.echo(f"moneyd: error: {e}", err=True)
                raise typer.Exit(1) from None
            finally:
                await receiver.app.close()
            receiver.emit("stopped", f"stopped; received {receiver.total:,} in all", total=receiver.total)

        from .. import evloop

        evloop.run(main())
