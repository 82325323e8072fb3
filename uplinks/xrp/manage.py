"""``moneyd xrp:topup`` and ``moneyd xrp:cleanup``: fund and close the payment channels from our XRP account.

"Our" channels are the PayChannels whose source is the configured account. The parent's XRP address is not in the
config, so ``xrp:topup`` takes the one open channel (preferring channels signed with moneyd's derived channel key),
or ``--channel`` when there are several.

``xrp:cleanup`` finishes what it can in one run: a channel that is open gets PaymentChannelClaim+tfClose (the ledger
sets its Expiration to now + SettleDelay, or deletes it at once when nothing is left in it); a channel whose
Expiration (or CancelAfter) has passed is deleted by that same transaction, which returns amount − balance to us.
"Passed" is judged the way rippled does: against the close time of the last validated ledger (the parent of the
ledger our transaction goes into), never the local clock.

Reading the ledger and asking for confirmation happen before anything is signed; the transactions go out over a
fresh connection afterwards, re-reading each channel first, so a slow answer at the prompt cannot act on stale state.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from moneyd.amounts import AmountError, parse_amount
from moneyd.uplink_cli import configured as configured_section
from moneyd.uplink_cli import fail, load_config, load_secret

from .errors import ProtocolError
from .wallet import SECRET_ENV, SECTION, SERVERS, ConfigureError, wallet_for, xrp

# asyncio, the keyring and xrpl-py are imported by the functions that use them: `moneyd --help` loads this module.
if TYPE_CHECKING:
    from xrpl.wallet import Wallet

    from .claims import PayChannel
    from .ledger import XrpLedger

RIPPLE_EPOCH = 946_684_800  # 2000-01-01T00:00:00Z in Unix seconds
T = TypeVar("T")


# --- amounts ------------------------------------------------------------------------------------------------

_DROPS_RE = re.compile(r"\A\s*([0-9]+)\s*drops?\s*\Z", re.IGNORECASE)


def parse_topup(text: str) -> tuple[int, str]:
    """(drops, how it was read): ``5XRP`` / ``5 XRP`` / ``0.5xrp`` are XRP, a plain number (or ``N drops``) is drops."""
    m = _DROPS_RE.match(text)
    if not m and re.fullmatch(r"\s*[0-9.]+\s*drops?\s*", text, re.IGNORECASE):
        raise typer.BadParameter(f"{text.strip()!r}: drops are whole numbers (1 XRP = 1,000,000 drops)",
                                 param_hint="--amount")
    try:
        if m:
            drops, unit = int(m.group(1)), "drops"
        else:
            amount = parse_amount(text)
            drops = amount.to_base_units("XRP", 6)
            unit = "drops" if amount.code is None else "XRP"
    except AmountError as e:
        raise typer.BadParameter(f"{e} (give drops, e.g. 5000000, or XRP, e.g. 5XRP)", param_hint="--amount") from None
    if drops <= 0:
        raise typer.BadParameter("the amount must be more than 0", param_hint="--amount")
    from .claims import MAX_DROPS  # xrpl-py is loaded only when a command runs

    if drops > MAX_DROPS:
        raise typer.BadParameter(f"{drops:,} drops is more XRP than exists", param_hint="--amount")
    return drops, unit


def describe(drops: int, unit: str) -> str:
    """Say which unit was understood: ``5 XRP (5,000,000 drops)`` or ``5,000,000 drops (5 XRP)``."""
    if unit == "XRP":
        return f"{xrp(drops)} ({drops:,} drops)"
    return f"{drops:,} drops ({xrp(drops)}; a plain number is read as drops)"


# --- times --------------------------------------------------------------------------------------------------


def ripple_iso(t: int) -> str:
    return datetime.fromtimestamp(t + RIPPLE_EPOCH, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def span(seconds: int) -> str:
    seconds = max(0, seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{round(seconds / 60)} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def closes_at(c: PayChannel) -> int | None:
    """When the channel can be deleted by anyone: the earlier of Expiration and CancelAfter."""
    times = [t for t in (c.expiration, c.cancel_after) if t is not None]
    return min(times) if times else None


def is_past(c: PayChannel, now: int) -> bool:
    """rippled's test (PayChan.cpp closeChannel): parent close time ≥ CancelAfter or ≥ Expiration."""
    at = closes_at(c)
    return at is not None and now >= at


def expiry_text(c: PayChannel, now: int) -> str:
    at = closes_at(c)
    if at is None:
        return "open"
    if now >= at:
        return f"expired {ripple_iso(at)}"
    return f"closing, expires {ripple_iso(at)} (in {span(at - now)})"


# --- shared setup -------------------------------------------------------------------------------------------


@dataclass
class Account:
    address: str
    server: str
    testnet: bool


def configured(ctx: typer.Context) -> Account:
    section = configured_section(load_config(ctx.obj.config_path), SECTION, ctx.obj.testnet)
    server = str(section.get("xrp_server") or SERVERS[ctx.obj.testnet])
    return Account(section["address"], server, ctx.obj.testnet)


def load_wallet(acct: Account) -> Wallet:
    secret = load_secret(f"xrp:{acct.address}", acct.testnet, SECRET_ENV)
    if not secret:
        from moneyd.secrets import SecretStore

        raise fail(f"no secret for {acct.address} in {SecretStore(testnet=acct.testnet).where} (nor ${SECRET_ENV}); "
                   "run `moneyd xrp:configure --force` again")
    try:
        wallet = wallet_for(secret)
    except ConfigureError as e:
        raise fail(str(e)) from None
    if wallet.address != acct.address:
        raise fail(f"the secret found is for {wallet.address}, but the configured account is {acct.address}")
    return wallet


def made_by_moneyd(c: PayChannel, secret: str | None) -> bool:
    """Whether the channel's PublicKey is the key moneyd (or the JS asym client) derives for its destination."""
    if not secret:
        return False
    from .keys import ChannelKey

    return ChannelKey.derive(secret, c.destination).ledger_public_key == c.public_key.upper()


def secret_quietly(acct: Account) -> str | None:
    """The secret if it can be had without a prompt (env, keyring, or the encrypted file with its passphrase set)."""
    import os

    from moneyd.secrets import PASSPHRASE_ENV, SecretError, SecretStore

    if os.environ.get(SECRET_ENV):
        return os.environ[SECRET_ENV].strip()
    store = SecretStore(testnet=acct.testnet)
    if not store.use_keyring and not os.environ.get(PASSPHRASE_ENV):
        return None
    try:
        secret = store.get(f"xrp:{acct.address}")
    except SecretError:
        return None
    return secret.strip() if secret else None


def sayer(as_json: bool) -> Callable[[str], None]:
    """Where the human-readable lines go: stdout, or stderr when stdout carries the JSON."""

    def say(message: str) -> None:
        typer.echo(message, err=as_json)

    return say


def confirm(question: str, yes: bool, what: str) -> bool:
    """True to go ahead. ``--yes`` skips the question; with no terminal to ask on and no --yes, refuse."""
    if yes:
        return True
    if not sys.stdin.isatty():
        raise typer.BadParameter(f"no terminal to confirm on: give --yes to {what} without asking", param_hint="--yes")
    return bool(typer.confirm(question, default=False, err=True))


def pick_channel(text: str, channels: list[PayChannel], address: str) -> PayChannel:
    from .claims import check_channel_id

    try:
        cid = check_channel_id(text.strip())
    except ProtocolError as e:
        raise typer.BadParameter(str(e), param_hint="--channel") from None
    for c in channels:
        if c.channel_id == cid:
            return c
    ours = ", ".join(c.channel_id for c in channels) or "none"
    raise fail(f"channel {cid} is not a payment channel from {address} (its channels: {ours})")


async def ledger_now(ledger: XrpLedger) -> int:
    """The close time of the last validated ledger, in seconds since the Ripple epoch: the ledger's own clock."""
    return await ledger.close_time()


async def with_progress(work: Awaitable[T], label: str, quiet: bool = False) -> T:
    """Await ``work`` (a transaction being validated), keeping one progress line on stderr meanwhile."""
    import asyncio

    tty = sys.stderr.isatty() and not quiet
    start = time.monotonic()
    task = asyncio.ensure_future(work)
    if not tty:
        print(f"{label}: waiting for a validated ledger", file=sys.stderr, flush=True)
    try:
        while not task.done():
            if tty:
                print(f"\r{label}: waiting for a validated ledger ({time.monotonic() - start:.0f} s)",
                      end="", file=sys.stderr, flush=True)
            await asyncio.wait({task}, timeout=0.5)
        result = task.result()
    except BaseException:
        if tty:
            print(file=sys.stderr)
        task.cancel()
        raise
    line = f"{label}: validated in {time.monotonic() - start:.1f} s"
    print(f"\r{line}" if tty else line, file=sys.stderr, flush=True)
    return result


def run(coro: Callable[[], Awaitable[T]]) -> T:
    import asyncio

    from .ledger import LedgerError

    async def main() -> T:
        return await coro()

    try:
        return asyncio.run(main())
    except LedgerError as e:
        raise fail(str(e)) from None


# --- topup --------------------------------------------------------------------------------------------------


@dataclass
class TopupPlan:
    channel: PayChannel
    balance: int
    reserve: int
    fee: int

    @property
    def available(self) -> int:
        return max(0, self.balance - self.reserve - self.fee)


async def plan_topup(acct: Account, channel_text: str | None, secret: str | None) -> TopupPlan:
    from .ledger import XrpLedger

    async with await XrpLedger.connect(acct.server) as ledger:
        account = await ledger.account(acct.address)
        if account is None:
            raise fail(f"the account {acct.address} does not exist on {acct.server}")
        channels = await ledger.channels(acct.address)
        now = await ledger_now(ledger)
        base, inc = await ledger.reserves()
        fee = await ledger.fee()
    if channel_text is not None:
        chosen = pick_channel(channel_text, channels, acct.address)
        if closes_at(chosen) is not None:
            raise fail(f"channel {chosen.channel_id} is {expiry_text(chosen, now)}: adding XRP to it would only "
                       "come back when it closes; `moneyd xrp:start` opens a new channel")
    else:
        open_ = [c for c in channels if closes_at(c) is None]
        mine = [c for c in open_ if made_by_moneyd(c, secret)]
        candidates = mine or open_
        if not candidates:
            closing = f" ({len(channels)} closing)" if channels else ""
            raise fail(f"{acct.address} has no open payment channel{closing}; `moneyd xrp:start` opens one")
        if len(candidates) > 1:
            listing = "; ".join(f"{c.channel_id} to {c.destination} ({xrp(c.amount)})" for c in candidates)
            raise fail(f"{acct.address} has {len(candidates)} open channels; choose one with --channel: {listing}")
        chosen = candidates[0]
    return TopupPlan(chosen, account.balance, base + inc * account.owner_count, fee)


async def do_topup(acct: Account, wallet: Wallet, channel: str, drops: int, quiet: bool) -> tuple[PayChannel, int]:
    from .ledger import LedgerError, XrpLedger

    async with await XrpLedger.connect(acct.server) as ledger:
        before = await ledger.paychan(channel)
        if before is None:
            raise LedgerError(f"channel {channel} is gone from the ledger; nothing was submitted")
        await with_progress(ledger.fund_channel(wallet, channel, drops), f"adding {xrp(drops)} to {channel[:16]}…",
                            quiet)
        after = await ledger.paychan(channel)
        account = await ledger.account(acct.address)
    if after is None:
        raise LedgerError(f"the channel {channel} was funded but is no longer on the ledger")
    return after, account.balance if account else 0


def topup_command(ctx: typer.Context, amount: str, channel: str | None, yes: bool, as_json: bool) -> None:
    drops, unit = parse_topup(amount)
    acct = configured(ctx)
    plan = run(lambda: plan_topup(acct, channel, secret_quietly(acct)))
    c = plan.channel
    say = sayer(as_json)
    if drops > plan.available:
        raise fail(
            f"cannot add {describe(drops, unit)}: {acct.address} holds {xrp(plan.balance)}, of which "
            f"{xrp(plan.reserve)} is reserve and {xrp(plan.fee)} the fee, so {xrp(plan.available)} "
            f"({plan.available:,} drops) is available; nothing was submitted")
    say(f"adding {describe(drops, unit)} to channel {c.channel_id}")
    say(f"  to {c.destination}: now {xrp(c.amount)}, {xrp(c.balance)} claimed; after: {xrp(c.amount + drops)}")
    if not confirm(f"add {xrp(drops)} to this channel?", yes, "add XRP"):
        raise fail("nothing was submitted")
    wallet = load_wallet(acct)
    after, balance = run(lambda: do_topup(acct, wallet, c.channel_id, drops, as_json))
    if as_json:
        typer.echo(json.dumps({
            "channel": after.channel_id, "destination": after.destination, "added": drops,
            "amount_before": c.amount, "amount": after.amount, "balance": after.balance,
            "remaining": after.amount - after.balance, "account_balance": balance}))
        return
    typer.echo(f"channel {after.channel_id} now holds {xrp(after.amount)} ({after.amount:,} drops), "
               f"{xrp(after.balance)} claimed; account balance {xrp(balance)}")


# --- cleanup ------------------------------------------------------------------------------------------------


def action_for(c: PayChannel, now: int) -> str:
    """What cleanup does: "delete" (past its expiry, or nothing left in it), "close", or "wait" (already closing)."""
    if is_past(c, now) or c.balance == c.amount:
        return "delete"
    if c.expiration is not None and c.expiration <= now + c.settle_delay:
        return "wait"  # tfClose again would not bring the expiration any earlier
    return "close"


def plan_text(c: PayChannel, now: int) -> str:
    left = c.amount - c.balance
    match action_for(c, now):
        case "delete":
            return f"delete now: {xrp(left)} comes back"
        case "wait":
            return f"nothing to do until it expires; run cleanup again after {ripple_iso(closes_at(c) or 0)}"
        case _:
            return f"start closing: {xrp(left)} comes back after the settle delay ({span(c.settle_delay)})"


async def read_channels(acct: Account) -> tuple[list[PayChannel], int, bool]:
    from .ledger import XrpLedger

    async with await XrpLedger.connect(acct.server) as ledger:
        account = await ledger.account(acct.address)
        channels = await ledger.channels(acct.address) if account else []
        now = await ledger_now(ledger)
    return channels, now, account is not None


async def do_cleanup(acct: Account, wallet: Wallet, ids: list[str], quiet: bool) -> list[dict[str, Any]]:
    """Close each channel, re-reading it first; one failure is reported and the rest still go ahead."""
    from .ledger import LedgerError, XrpLedger

    results: list[dict[str, Any]] = []
    async with await XrpLedger.connect(acct.server) as ledger:
        for cid in ids:
            entry: dict[str, Any] = {"id": cid}
            results.append(entry)
            try:
                c = await ledger.paychan(cid)
                if c is None:
                    entry.update(outcome="gone", message="no longer on the ledger (closed by the other side?)")
                    continue
                now = await ledger_now(ledger)
                entry.update(destination=c.destination, amount=c.amount, balance=c.balance)
                action = action_for(c, now)
                if action == "wait":
                    entry.update(outcome="closing", expiration=closes_at(c), returned=0,
                                 message=f"already closing; expires {ripple_iso(closes_at(c) or 0)} "
                                         f"(in {span((closes_at(c) or now) - now)}): run cleanup again then")
                    continue
                account = await ledger.account(acct.address)
                before = account.balance if account else 0
                verb = "deleting" if action == "delete" else "closing"
                await with_progress(ledger.claim_channel(wallet, cid, close=True), f"{verb} {cid[:16]}…", quiet)
                after_chan = await ledger.paychan(cid)
                account = await ledger.account(acct.address)
                after = account.balance if account else 0
                if after_chan is None:
                    # Past its expiry nobody can claim from it any more, so amount − balance is exactly what returned.
                    returned = c.amount - c.balance
                    entry.update(outcome="deleted", returned=returned, fee=before + returned - after,
                                 account_balance=after,
                                 message=f"deleted; {xrp(returned)} returned to {acct.address}")
                else:
                    at = closes_at(after_chan)
                    entry.update(outcome="closing", expiration=at, returned=0, account_balance=after,
                                 message=f"closing; it expires {ripple_iso(at or 0)} (in {span((at or now) - now)}), "
                                         f"then `moneyd xrp:cleanup` returns {xrp(after_chan.amount - after_chan.balance)}")
            except LedgerError as e:
                entry.update(outcome="failed", message=str(e))
    return results


def cleanup_command(ctx: typer.Context, all_: bool, channel: str | None, yes: bool, as_json: bool) -> None:
    if all_ and channel is not None:
        raise typer.BadParameter("give either --all or --channel, not both", param_hint="--all")
    acct = configured(ctx)
    channels, now, exists = run(lambda: read_channels(acct))
    say = sayer(as_json)
    if channel is not None:
        chosen = [pick_channel(channel, channels, acct.address)]
    elif not channels:
        if not exists:
            say(f"the account {acct.address} does not exist on {acct.server}")
        say(f"no payment channels from {acct.address}: nothing to clean up")
        if as_json:
            typer.echo(json.dumps({"address": acct.address, "channels": []}))
        return
    else:
        chosen = channels
    say(f"payment channels from {acct.address} (ledger time {ripple_iso(now)}):")
    for c in chosen:
        say(f"  {c.channel_id} to {c.destination}")
        say(f"    amount {xrp(c.amount)}, claimed {xrp(c.balance)}, {expiry_text(c, now)}; {plan_text(c, now)}")
    todo = [c for c in chosen if action_for(c, now) != "wait"]
    if todo and channel is None and not all_:
        # Neither --all nor --channel: ask about each channel; without a terminal, refuse.
        if yes:
            raise typer.BadParameter("--yes needs --all or --channel ID to say which channels", param_hint="--yes")
        if not sys.stdin.isatty():
            raise typer.BadParameter("no terminal to ask on: give --all or --channel ID (and --yes)",
                                     param_hint="--all")
        todo = [c for c in todo if typer.confirm(f"close {c.channel_id[:16]}…?", default=False, err=True)]
    elif todo and not confirm(f"close {len(todo)} channel{'s' if len(todo) > 1 else ''}?", yes, "close channels"):
        raise fail("nothing was submitted")
    waiting = {c.channel_id for c in chosen if action_for(c, now) == "wait"}
    wallet = load_wallet(acct) if todo else None
    results = run(lambda: do_cleanup(acct, wallet, [c.channel_id for c in todo], as_json)) if wallet else []
    # Channels only waiting out their expiry are reported without touching the ledger.
    by_id = {r["id"]: r for r in results}
    report: list[dict[str, Any]] = []
    for c in chosen:
        if c.channel_id in by_id:
            report.append(by_id[c.channel_id])
        elif c.channel_id in waiting:
            at = closes_at(c)
            report.append({"id": c.channel_id, "destination": c.destination, "amount": c.amount, "balance": c.balance,
                           "outcome": "closing", "expiration": at, "returned": 0,
                           "message": f"already closing; expires {ripple_iso(at or 0)} (in {span((at or now) - now)}): "
                                      "run cleanup again then"})
        else:
            report.append({"id": c.channel_id, "destination": c.destination, "amount": c.amount, "balance": c.balance,
                           "outcome": "skipped", "returned": 0, "message": "left open"})
    returned = sum(r.get("returned", 0) for r in report)
    failed = [r for r in report if r["outcome"] == "failed"]
    if as_json:
        typer.echo(json.dumps({"address": acct.address, "returned": returned, "channels": report}))
    else:
        for r in report:
            typer.echo(f"{r['id']}: {r['message']}")
        typer.echo(f"returned {xrp(returned)} in all" if returned else "no XRP returned in this run")
    if failed:
        raise typer.Exit(1)


def register_manage(app: typer.Typer) -> None:
    @app.command("xrp:topup")
    def topup(
        ctx: typer.Context,
        amount: str = typer.Option(..., "--amount", help="How much to add: XRP with its unit (5XRP, '5 XRP') or drops (5000000)."),
        channel: str | None = typer.Option(None, "--channel", help="The channel id, when your account has several open channels."),
        yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON (progress goes to stderr)."),
    ) -> None:
        """Add XRP to your payment channel to the parent; waits until the ledger has validated it."""
        topup_command(ctx, amount, channel, yes, as_json)

    @app.command("xrp:cleanup")
    def cleanup(
        ctx: typer.Context,
        all_: bool = typer.Option(False, "--all", help="Close every payment channel from your account."),
        channel: str | None = typer.Option(None, "--channel", help="Close this channel only."),
        yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON (progress goes to stderr)."),
    ) -> None:
        """Close your payment channels and get their XRP back; a channel past its expiry is deleted in the same run."""
        cleanup_command(ctx, all_, channel, yes, as_json)

