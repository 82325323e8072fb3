"""``moneyd pay RECEIVER AMOUNT``: resolve the receiver by SPSP and stream the money with STREAM through moneyd."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import typer

from ..amounts import AmountError, AmountText, parse_amount
from ..handlers import answering
from ..localapp import LocalApp, LocalAppError
from ..spsp import SpspError, SpspResponse, query
from ..stream.aio import PaymentResult, StreamClient
from ..stream.connection import Config
from ..wire.oer import UINT64_MAX


@dataclass
class PayOptions:
    receiver: str
    amount: AmountText
    via: str | None
    slippage: Fraction
    timeout: float
    as_json: bool
    max_packet_amount: int | None = None


class PayFailed(Exception):
    """The payment could not start; one line for the user."""


def _say(opts: PayOptions, line: str) -> None:
    if not opts.as_json:
        typer.echo(line, err=True)


async def pay(opts: PayOptions) -> tuple[PaymentResult, dict[str, Any]]:
    try:
        spsp: SpspResponse = await query(opts.receiver)
    except SpspError as e:
        raise PayFailed(str(e)) from None
    try:
        app = await LocalApp.connect(opts.via)
    except LocalAppError as e:
        raise PayFailed(str(e)) from None
    try:
        try:
            amount = opts.amount.to_base_units(app.asset_code, app.asset_scale)
        except AmountError as e:
            raise PayFailed(str(e)) from None
        if not 0 < amount <= UINT64_MAX:
            raise PayFailed(f"{amount} base units is out of range (1 to {UINT64_MAX})")
        _say(opts, f"paying {opts.amount.describe(amount, app.asset_code, app.asset_scale)} to {spsp.destination_account}")
        client = StreamClient(app.send_prepare, spsp.destination_account, spsp.shared_secret,
                              source_account=app.address, asset_code=app.asset_code, asset_scale=app.asset_scale,
                              config=Config(slippage=opts.slippage,
                                            max_packet_amount=opts.max_packet_amount or UINT64_MAX))
        app.handler = answering(client.handle_prepare)
        try:
            try:
                rate = await client.connect(timeout=opts.timeout)
            except (ConnectionError, TimeoutError) as e:
                raise PayFailed(f"cannot reach the receiver: {e or 'no answer'}") from None
            _say(opts, f"exchange rate {float(rate):.9g} destination units per source unit (path probed)")
            result = await _send_with_progress(client, amount, opts)
        finally:
            await client.close(timeout=5)
        info = {
            "receiver": opts.receiver,
            "destination_account": spsp.destination_account,
            "source_asset": {"code": app.asset_code, "scale": app.asset_scale},
            "destination_asset": None if client.connection.remote_asset_code is None else
            {"code": client.connection.remote_asset_code, "scale": client.connection.remote_asset_scale},
        }
        return result, info
    finally:
        await app.close()


async def _send_with_progress(client: StreamClient, amount: int, opts: PayOptions) -> PaymentResult:
    if opts.as_json or not sys.stderr.isatty():
        return await client.send_money(amount, timeout=opts.timeout)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    conn = client.connection
    sent0, delivered0 = conn.total_sent, conn.total_delivered
    with Progress(TextColumn("[bold]paying"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,} sent"),
                  TextColumn("{task.fields[delivered]:,} delivered"), TextColumn("{task.fields[rate]}"),
                  TimeElapsedColumn(), transient=False) as progress:
        task = progress.add_task("pay", total=amount, delivered=0, rate="")
        sending = asyncio.ensure_future(client.send_money(amount, timeout=opts.timeout))
        loop = asyncio.get_running_loop()
        start = loop.time()
        while not sending.done():
            await asyncio.wait((sending,), timeout=0.1)
            sent = conn.total_sent - sent0
            elapsed = max(loop.time() - start, 1e-6)
            progress.update(task, completed=sent, delivered=conn.total_delivered - delivered0,
                            rate=f"{conn.packets_sent / elapsed:,.0f} packets/s")
        return sending.result()


def register(app: typer.Typer) -> None:
    @app.command("pay")
    def pay_command(
        receiver: str = typer.Argument(..., help="Payment pointer ($example.com/bob) or SPSP URL (https://…)."),
        amount: str = typer.Argument(..., help="Base units (1000) or an amount with asset code (1.5XRP)."),
        via: str | None = typer.Option(None, "--via", help="moneyd to pay through (default btp+ws://localhost:7768)."),
        max_slippage: float = typer.Option(0.01, "--max-slippage", min=0.0, max=1.0,
                                           help="Refuse a rate more than this fraction below the probed one."),
        timeout: float = typer.Option(60.0, "--timeout", min=0.1, help="Seconds to wait for progress before giving up."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object with the result."),
        max_packet_amount: int | None = typer.Option(None, "--max-packet-amount", min=1,
                                                     help="Never send more than this many base units in one packet."),
    ) -> None:
        """Pay RECEIVER: resolve it by SPSP, then stream AMOUNT with STREAM through the running moneyd."""
        try:
            parsed = parse_amount(amount)
        except AmountError as e:
            raise typer.BadParameter(str(e), param_hint="AMOUNT") from None
        if receiver.startswith("$") or receiver.startswith(("http://", "https://")):
            pass
        else:
            raise typer.BadParameter("give a payment pointer ($host/path) or an https URL", param_hint="RECEIVER")
        opts = PayOptions(receiver, parsed, via, Fraction(max_slippage).limit_denominator(10**9), timeout, as_json,
                          max_packet_amount)
        try:
            result, info = asyncio.run(pay(opts))
        except PayFailed as e:
            typer.echo(f"moneyd: error: {e}", err=True)
            raise typer.Exit(1) from None
        ok = result.error is None and result.sent >= result.amount
        if as_json:
            rate = result.exchange_rate
            typer.echo(json.dumps({
                **info, "ok": ok, "source_amount": result.amount, "sent": result.sent, "delivered": result.delivered,
                "packets": result.packets, "seconds": round(result.seconds, 3),
                "exchange_rate": None if rate is None else str(rate), "error": result.error,
            }))
        else:
            per_s = result.packets / result.seconds if result.seconds > 0 else 0.0
            line = (f"sent {result.sent:,} of {result.amount:,} (source units), delivered {result.delivered:,} "
                    f"(destination units), {result.packets:,} packets in {result.seconds:.2f}s ({per_s:,.0f}/s)")
            typer.echo(line)
            if not ok:
                typer.echo(f"moneyd: error: payment incomplete: {result.error or 'not everything was sent'}", err=True)
        raise typer.Exit(0 if ok else 1)
