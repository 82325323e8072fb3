"""``moneyd pay RECEIVER AMOUNT``: resolve the receiver by SPSP and stream the money with STREAM through moneyd.

The payment ends in one summary whatever stops it: everything delivered, an error, ``--timeout`` seconds with no
progress, Ctrl-C or SIGTERM (exit 130 / 143), or the moneyd underneath going away. With ``--json`` that summary is
one JSON object on stdout, early errors included.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import typer

from ..amounts import AmountError, AmountText, parse_amount

# asyncio and the STREAM modules are imported by the functions that use them: `moneyd --help` loads this module.
if TYPE_CHECKING:
    import asyncio
    from fractions import Fraction

    from ..localapp import LocalApp
    from ..stream.aio import PaymentResult, StreamClient

UINT64_MAX = 2**64 - 1
TICK = 0.1  # how often progress, the link and the no-progress timer are looked at
EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}


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


@dataclass
class Outcome:
    """How the payment went, for the summary line or the JSON object."""

    result: PaymentResult | None = None
    info: dict[str, Any] | None = None
    signal: int | None = None


def _say(opts: PayOptions, line: str) -> None:
    if not opts.as_json:
        typer.echo(line, err=True)


async def pay(opts: PayOptions, outcome: Outcome | None = None, stop: asyncio.Event | None = None) -> tuple[PaymentResult, dict[str, Any]]:
    import asyncio

    from ..handlers import answering
    from ..localapp import LocalApp, LocalAppError
    from ..spsp import SpspError, query
    from ..stream.aio import StreamClient
    from ..stream.connection import ConnectionConfig

    outcome = outcome or Outcome()
    stop = stop or asyncio.Event()
    try:
        spsp = await query(opts.receiver)
    except SpspError as e:
        raise PayFailed(str(e)) from None
    outcome.info = {"receiver": opts.receiver, "destination_account": spsp.destination_account}
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
        outcome.info["source_asset"] = {"code": app.asset_code, "scale": app.asset_scale}
        _say(opts, f"paying {opts.amount.describe(amount, app.asset_code, app.asset_scale)} to {spsp.destination_account}")
        client = StreamClient(app.send_prepare, spsp.destination_account, spsp.shared_secret,
                              source_account=app.address, asset_code=app.asset_code, asset_scale=app.asset_scale,
                              config=ConnectionConfig(slippage=opts.slippage,
                                            max_packet_amount=opts.max_packet_amount or UINT64_MAX))
        app.handler = answering(client.handle_prepare)
        link_ok = True
        try:
            connecting = asyncio.ensure_future(client.connect())
            reason = await _watch(connecting, client, app, opts, stop, lambda: 0)
            if reason is not None:
                link_ok = reason != LINK_LOST
                if reason == "interrupted":
                    raise PayFailed("interrupted before the payment started; nothing was sent")
                raise PayFailed(f"cannot reach the receiver: {reason}")
            try:
                rate = connecting.result()
            except (ConnectionError, TimeoutError) as e:
                raise PayFailed(str(e) if str(e).startswith("cannot reach the receiver") else
                                f"cannot reach the receiver: {e or 'no answer'}") from None
            _say(opts, f"exchange rate {float(rate):.9g} destination units per source unit (path probed)")
            result, link_ok = await _send(client, app, amount, opts, stop)
        finally:
            outcome.info["destination_asset"] = (
                None if client.connection.remote_asset_code is None else
                {"code": client.connection.remote_asset_code, "scale": client.connection.remote_asset_scale})
            if not link_ok:
                await client.aclose()
            elif not client.closed:
                await client.close(timeout=5)
        return result, outcome.info
    finally:
        await app.close()


LINK_LOST = "the connection to moneyd closed (did moneyd stop?)"


async def _watch(task: asyncio.Future[Any], client: StreamClient, app: LocalApp, opts: PayOptions,
                 stop: asyncio.Event, on_tick: Any) -> str | None:
    """Wait for ``task``; stop it early (and say why) on a signal, a lost link to moneyd, or ``opts.timeout``
    seconds in which nothing more was sent or delivered."""
    import asyncio

    conn = client.connection
    loop = asyncio.get_running_loop()
    # Progress is money moving: packets that keep being rejected are not progress.
    seen = (conn.total_sent, conn.total_delivered)
    last_progress = loop.time()
    reason: str | None = None
    while not task.done():
        await asyncio.wait((task,), timeout=TICK)
        on_tick()
        now = loop.time()
        current = (conn.total_sent, conn.total_delivered)
        if current != seen:
            seen, last_progress = current, now
        if task.done():
            break
        if stop.is_set():
            reason = "interrupted"
        elif app.reader.done():
            reason = LINK_LOST
        elif now - last_progress > opts.timeout:
            reason = f"no progress for {opts.timeout:g}s (--timeout)"
        else:
            continue
        await _cancel(task)
        break
    return reason


async def _cancel(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` and wait until it has ended. Once is not always enough: Python 3.11's asyncio.wait_for
    (which the STREAM sender waits with) loses a cancellation that arrives as its inner wait completes
    (gh-86296), and the payment would go on; so cancel again until the task is done."""
    import asyncio

    while not task.done():
        task.cancel()
        await asyncio.wait((task,), timeout=TICK)
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()


async def _send(client: StreamClient, app: LocalApp, amount: int, opts: PayOptions,
                stop: asyncio.Event) -> tuple[PaymentResult, bool]:
    """Send ``amount``; the result, and whether the link to moneyd is still there."""
    import asyncio

    from ..stream.aio import PaymentResult

    conn = client.connection
    sent0, delivered0, packets0 = conn.total_sent, conn.total_delivered, conn.packets_sent
    start = time.monotonic()
    sending = asyncio.ensure_future(client.send_money(amount))
    progress = None
    if not opts.as_json and sys.stderr.isatty():
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        progress = Progress(TextColumn("[bold]paying"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,} sent"),
                            TextColumn("{task.fields[delivered]:,} delivered"), TextColumn("{task.fields[rate]}"),
                            TimeElapsedColumn(), transient=False)
        bar = progress.add_task("pay", total=amount, delivered=0, rate="")
        progress.start()

    def tick() -> None:
        if progress is not None:
            elapsed = max(time.monotonic() - start, 1e-6)
            progress.update(bar, completed=conn.total_sent - sent0, delivered=conn.total_delivered - delivered0,
                            rate=f"{(conn.packets_sent - packets0) / elapsed:,.0f} packets/s")

    try:
        reason = await _watch(sending, client, app, opts, stop, tick)
    finally:
        if progress is not None:
            tick()
            progress.stop()
    if reason is None:
        return sending.result(), True
    # Stop now, letting what is in flight land (briefly, for a person waiting on Ctrl-C) so the summary counts it.
    if reason == LINK_LOST:
        await client.aclose()
    else:
        await client.close(timeout=1.0 if reason == "interrupted" else 5.0)
    result = PaymentResult(amount, conn.total_sent - sent0, conn.total_delivered - delivered0,
                           conn.packets_sent - packets0, conn.exchange_rate, time.monotonic() - start, reason)
    return result, reason != LINK_LOST


def _json_line(outcome: Outcome, receiver: str | None, error: str | None) -> str:
    r = outcome.result
    doc: dict[str, Any] = {
        "receiver": receiver, "destination_account": None, "source_asset": None, "destination_asset": None,
        **(outcome.info or {}),
    }
    if r is None:
        doc.update(ok=False, source_amount=None, sent=0, delivered=0, packets=0, seconds=0.0, exchange_rate=None,
                   error=error)
    else:
        doc.update(ok=r.error is None and r.sent >= r.amount, source_amount=r.amount, sent=r.sent,
                   delivered=r.delivered, packets=r.packets, seconds=round(r.seconds, 3),
                   exchange_rate=None if r.exchange_rate is None else str(r.exchange_rate), error=r.error)
    return json.dumps(doc)


def register(app: typer.Typer) -> None:
    # Unknown options are taken as arguments, so that `pay … -5` is an amount we can refuse in words.
    @app.command("pay", context_settings={"ignore_unknown_options": True})
    def pay_command(
        receiver: str | None = typer.Argument(None, help="Payment pointer ($example.com/bob) or SPSP URL (https://…).", show_default=False, metavar="RECEIVER"),
        amount: str | None = typer.Argument(None, help="Base units (1000) or an amount with asset code (1.5XRP).", show_default=False, metavar="AMOUNT"),
        via: str | None = typer.Option(None, "--via", help="moneyd to pay through (default btp+ws://localhost:7768)."),
        max_slippage: float = typer.Option(0.01, "--max-slippage", min=0.0, max=1.0,
                                           help="Refuse a rate more than this fraction below the probed one."),
        timeout: float = typer.Option(60.0, "--timeout", min=0.1, help="Give up after this many seconds without progress."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object with the result (also on errors)."),
        max_packet_amount: int | None = typer.Option(None, "--max-packet-amount", min=1,
                                                     help="Never send more than this many base units in one packet."),
    ) -> None:
        """Pay RECEIVER: resolve it by SPSP, then stream AMOUNT with STREAM through the running moneyd."""
        from fractions import Fraction

        outcome = Outcome()

        def give_up(message: str, code: int = 1) -> typer.Exit:
            if as_json:
                typer.echo(_json_line(outcome, receiver, message))
            typer.echo(f"moneyd: error: {message}", err=True)
            return typer.Exit(code)

        if receiver is None or amount is None:
            raise give_up("give the receiver and the amount: moneyd pay RECEIVER AMOUNT (e.g. moneyd pay "
                          "$example.com/bob 1000)", 2)
        if receiver.startswith("-"):
            raise give_up(f"no such option {receiver!r}; see moneyd pay --help", 2)
        if amount.startswith("-") and not amount.lstrip("-").replace(".", "", 1).isdigit():
            raise give_up(f"no such option {amount!r}; see moneyd pay --help", 2)
        try:
            parsed = parse_amount(amount)
        except AmountError as e:
            raise give_up(f"AMOUNT: {e}", 2) from None
        if not (receiver.startswith("$") or receiver.startswith(("http://", "https://"))):
            raise give_up(f"RECEIVER {receiver!r}: give a payment pointer ($host/path) or an https URL", 2)
        opts = PayOptions(receiver, parsed, via, Fraction(max_slippage).limit_denominator(10**9), timeout, as_json,
                          max_packet_amount)
        from .. import evloop

        try:
            evloop.run(_main(opts, outcome))
        except PayFailed as e:
            raise give_up(str(e), EXIT_SIGNAL.get(signal.Signals(outcome.signal), 1) if outcome.signal else 1) from None
        result = outcome.result
        assert result is not None
        ok = result.error is None and result.sent >= result.amount
        if as_json:
            typer.echo(_json_line(outcome, receiver, None))
        else:
            per_s = result.packets / result.seconds if result.seconds > 0 else 0.0
            line = (f"sent {result.sent:,} of {result.amount:,} (source units), delivered {result.delivered:,} "
                    f"(destination units), {result.packets:,} packets in {result.seconds:.2f}s ({per_s:,.0f}/s)")
            typer.echo(line)
            if not ok:
                typer.echo(f"moneyd: error: payment incomplete: {result.error or 'not everything was sent'}", err=True)
        if outcome.signal is not None:
            raise typer.Exit(EXIT_SIGNAL.get(signal.Signals(outcome.signal), 1))
        raise typer.Exit(0 if ok else 1)


async def _main(opts: PayOptions, outcome: Outcome) -> None:
    import asyncio
    import logging

    # A link that died mid-write makes asyncio warn once per write ("socket.send() raised exception"); the
    # payment's own summary says what happened.
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(sig: int) -> None:
        outcome.signal = sig
        stop.set()

    # Installed even when the shell started us with SIGINT ignored (`moneyd pay … &`).
    for sig in EXIT_SIGNAL:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal, sig)
    work = asyncio.ensure_future(pay(opts, outcome, stop))
    halted = asyncio.ensure_future(stop.wait())
    try:
        # Before the STREAM connection exists (SPSP, connecting to moneyd) a signal ends things at once.
        await asyncio.wait((work, halted), return_when=asyncio.FIRST_COMPLETED)
        if not work.done() and "source_asset" not in (outcome.info or {}) and stop.is_set():
            await _cancel(work)
            raise PayFailed("interrupted before the payment started; nothing was sent")
        result, _info = await work
        outcome.result = result
    finally:
        halted.cancel()
