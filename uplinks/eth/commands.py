"""``moneyd eth:configure | eth:start | eth:info | eth:topup | eth:cleanup``.

web3 and eth-account are imported inside the command bodies: they are heavy, and the CLI loads every plugin at
startup. The private key never goes to the config file: it lives in the OS keyring (moneyd.secrets, as
``eth:<address>``), and ``MONEYD_ETH_PRIVATE_KEY`` overrides it.

Amounts people type: ``0.1ETH`` (ether), ``5000000gwei``, ``123wei``, or a plain number, which is gwei (the
uplink's base unit at scale 9). Every command says which reading it used.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import typer

from moneyd.amounts import AmountError, parse_amount
from moneyd.config import Config, ConfigError
from moneyd.errors import MoneydError
from moneyd.uplink_cli import (
    WAIT_FOR_PARENT,
    RouterOptions,
    ask,
    configured,
    fail,
    format_amount,
    load_config,
    load_secret,
    read_secret_file,
    router_command,
    serve,
)

# asyncio, the keyring and the chain libraries are imported by the commands that use them: `moneyd --help` loads
# this module.
if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from moneyd.store import Store

    from .chain import EthChain
    from .uplink import UplinkState

KEY_ENV = "MONEYD_ETH_PRIVATE_KEY"
SECTION = "eth"
DEFAULT_CHANNEL_WEI = 5 * 10**16  # 0.05 ETH, as the JS plugin's default outgoing channel
GWEI = 10**9
FEE_ALLOWANCE = 3  # opening fees' worth kept aside for a deposit and the claims at the end


class CommandError(Exception):
    """The command stops here; the message is the line the user sees."""


def eth(wei: int) -> str:
    return format_amount(wei, 18, "ETH")


def parse_wei(text: str, what: str) -> int:
    """``0.1ETH``, ``5000gwei``, ``7wei`` or plain gwei, to wei."""
    try:
        amount = parse_amount(text)
        if amount.code is None:
            return amount.to_base_units("ETH", 9) * GWEI
        code = amount.code.upper()
        if code == "GWEI":
            return amount.to_base_units("GWEI", 0) * GWEI
        if code == "WEI":
            return amount.to_base_units("WEI", 0)
        if code != "ETH":
            raise AmountError(f"{text!r} is in {amount.code}")
        return amount.to_base_units("ETH", 18)
    except AmountError as e:
        raise typer.BadParameter(f"{e} (ETH, gwei or wei; a plain number is gwei)", param_hint=what) from None


def account_for(key: str) -> LocalAccount:
    from .claims import as_account
    text = key.strip()
    if len(text) == 64 and not text.lower().startswith("0x"):
        text = "0x" + text
    try:
        return as_account(text)
    except ConfigError:
        raise CommandError("that is not an Ethereum private key (64 hex digits, 0x optional)") from None


def key_hex(account: LocalAccount) -> str:
    return "0x" + bytes(account.key).hex()


def check_provider(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise typer.BadParameter("must be an http:// or https:// JSON-RPC URL", param_hint="--provider")
    return url


@dataclass
class Section:
    """The ``eth`` section of the config file."""

    parent: str
    provider: str
    contract: str
    chain_id: int
    name: str
    address: str
    channel_amount: int

    @classmethod
    def load(cls, cfg: Config, testnet: bool = False) -> Section:
        s = configured(cfg, SECTION, testnet)
        try:
            return cls(str(s["parent"]), str(s["provider"]), str(s["contract"]), int(s["chain_id"]), str(s["name"]),
                       str(s["address"]), int(s["channel_amount"]))
        except (KeyError, TypeError, ValueError) as e:
            raise fail(f"{cfg.path}: the eth section is incomplete or damaged ({e!r}); run `moneyd eth:configure --force`") from None

    def to_json(self) -> dict[str, Any]:
        return {"parent": self.parent, "provider": self.provider, "contract": self.contract, "chain_id": self.chain_id,
                "name": self.name, "address": self.address, "channel_amount": self.channel_amount}


def load_key(section: Section, testnet: bool) -> LocalAccount:
    key = load_secret(f"eth:{section.address}", testnet, KEY_ENV)
    if key is None:
        raise fail(f"no private key for {section.address}: run `moneyd eth:configure --force` or set {KEY_ENV}")
    try:
        account = account_for(key)
    except CommandError as e:
        raise fail(str(e)) from None
    if account.address.lower() != section.address.lower():
        raise fail(f"the private key is for {account.address}, but the eth uplink is configured for {section.address}")
    return account


async def _connect(section: Section, key: LocalAccount | bytes) -> EthChain:
    from .chain import EthChain

    try:
        chain = await EthChain.connect(section.provider, key, section.contract)
    except MoneydError as e:
        raise CommandError(str(e)) from None
    if chain.chain_id != section.chain_id:
        await chain.close()
        raise CommandError(f"{section.provider} is chain {chain.chain_id}, but the eth uplink was configured on chain "
                           f"{section.chain_id}; run `moneyd eth:configure --force` to switch")
    return chain


def _load_state(store: Store, chain: EthChain, account: LocalAccount, section: Section) -> tuple[str, UplinkState | None]:
    from .errors import ProtocolError
    from .uplink import NAMESPACE, UplinkState, state_key

    key = state_key(chain.chain_id, chain.contract_address, section.address)
    if store.get(NAMESPACE, key) is None:
        return key, None
    try:
        return key, UplinkState.load(store, key, account, chain.contract_address)
    except ProtocolError as e:
        raise CommandError(str(e)) from None


def register(app: typer.Typer) -> None:
    @app.command("eth:configure")
    def configure(
        ctx: typer.Context,
        parent: str | None = typer.Option(None, "--parent", help="The parent: host[:port] (BTP over wss), or btp+wss://host[:port]."),
        provider: str | None = typer.Option(None, "--provider", help="Ethereum JSON-RPC URL (http[s]://)."),
        contract: str | None = typer.Option(None, "--contract", help="Unidirectional contract address (needed on chains ilp-plugin-ethereum does not know)."),
        name: str | None = typer.Option(None, "--name", help="Your account name at the parent (default: random)."),
        channel_amount: str | None = typer.Option(None, "--channel-amount", help="Channel size: 0.05ETH, 50000000gwei, or plain gwei. Default 0.05 ETH."),
        key_file: Path | None = typer.Option(None, "--key-file", help=f"Read the private key from this file (else ${KEY_ENV} or a prompt)."),
        force: bool = typer.Option(False, "--force", "-f", help="Replace an existing eth configuration."),
        advanced: bool = typer.Option(False, "--advanced", help="Also ask for the contract, account name and channel size (flags still win)."),
    ) -> None:
        """Set up the ETH uplink: check the account can fund a channel, keep the key in the OS keyring."""
        configure_command(ctx, parent, provider, contract, name, channel_amount, key_file, force, advanced)

    @router_command(app, "eth:start")
    def start(
        ctx: typer.Context,
        claim_on_close: bool = typer.Option(False, "--claim-on-close", help="Claim what the parent owes us on chain when stopping."),
        wait_for_parent: float | None = WAIT_FOR_PARENT,
        *,
        router: RouterOptions,
    ) -> None:
        """Run moneyd with the ETH uplink (opens a channel to the parent if there is none)."""
        start_command(ctx, claim_on_close, router, wait_for_parent)

    @app.command("eth:info")
    def info(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print JSON (amounts in wei, as strings).")) -> None:
        """Your Ethereum account: balance, your channel to the parent and theirs to you, what can be claimed."""
        info_command(ctx, as_json)

    @app.command("eth:topup")
    def topup(
        ctx: typer.Context,
        amount: str = typer.Option(..., "--amount", help="How much to add to your channel: 0.1ETH, 100000000gwei, or plain gwei."),
    ) -> None:
        """Deposit more into your channel to the parent."""
        topup_command(ctx, amount)

    @app.command("eth:cleanup")
    def cleanup(
        ctx: typer.Context,
        no_request: bool = typer.Option(False, "--no-request", help="Do not ask the parent to claim our channel; start the dispute period at once."),
        wait: float = typer.Option(15.0, "--wait", help="Seconds to wait for the parent to claim our channel."),
    ) -> None:
        """Claim what the parent owes you, and close your channel (the parent claims it, or it settles)."""
        cleanup_command(ctx, no_request, wait)


def configure_command(
    ctx: typer.Context, parent: str | None, provider: str | None, contract: str | None, name: str | None,
    channel_amount: str | None, key_file: Path | None, force: bool, advanced: bool
) -> None:
    from moneyd.btp.parent import ParentError, check_name, split_parent

    testnet: bool = ctx.obj.testnet
    cfg = load_config(ctx.obj.config_path)
    try:
        existing = cfg.section(SECTION)
    except ConfigError as e:
        raise fail(str(e)) from None
    if existing is not None and not force:
        raise fail(f"{cfg.path} already has an eth uplink; use --force to replace it")
    if advanced and sys.stdin.isatty():
        # As the JS moneyd's --advanced: ask for what otherwise takes its default (an empty answer keeps it).
        contract = contract or typer.prompt("Unidirectional contract address (empty: the known one for the chain)",
                                            default="", show_default=False) or None
        name = name or typer.prompt("Account name at the parent", default=os.urandom(8).hex())
        channel_amount = channel_amount or typer.prompt("Channel size (ETH with a unit, or gwei)", default="0.05ETH")
    amount = parse_wei(channel_amount, "--channel-amount") if channel_amount else DEFAULT_CHANNEL_WEI
    parent = ask(parent, "--parent", "Parent host (e.g. parent.example.com)")
    try:
        split_parent(parent)
    except ParentError as e:
        raise typer.BadParameter(str(e), param_hint="--parent") from None
    account_name = name if name is not None else os.urandom(8).hex()
    try:
        check_name(account_name)
    except ParentError as e:
        raise typer.BadParameter(str(e), param_hint="--name") from None
    provider = check_provider(ask(provider, "--provider", "Ethereum JSON-RPC URL"))
    if contract is not None:
        from .claims import parse_address

        try:
            contract = parse_address(contract, "contract")
        except ConfigError as e:
            raise typer.BadParameter(str(e), param_hint="--contract") from None
    # Only now what is slow to load: every option above was checked without it.
    import asyncio

    from moneyd.secrets import SecretError, SecretStore

    try:
        if key_file is not None:
            key = read_secret_file(key_file, "--key-file")
        else:
            key = os.environ.get(KEY_ENV) or ask(None, "--key-file", "Ethereum private key", hide=True)
        account = account_for(key)
        typer.echo(f"checking {account.address} on {provider} …", err=True)
        chain_id, resolved, balance, needed = asyncio.run(_check_funds(provider, account, contract, amount))
        store = SecretStore(testnet=testnet)
        store.set(f"eth:{account.address}", key_hex(account))
    except (CommandError, SecretError) as e:
        raise fail(str(e)) from None
    section = Section(parent.strip(), provider, resolved, chain_id, account_name, account.address, amount)
    cfg.set_section(SECTION, section.to_json())
    cfg.save()
    typer.echo(f"saved the eth uplink to {cfg.path}; the key is in {store.where}")
    typer.echo(f"account {account.address} on chain {chain_id}: {eth(balance)}, {eth(needed)} needed for the "
               f"channel ({eth(amount)}) and fees")


def start_command(ctx: typer.Context, claim_on_close: bool, router: RouterOptions,
                  wait_for_parent: float | None = None) -> None:
    cfg = load_config(ctx.obj.config_path)
    section = Section.load(cfg, ctx.obj.testnet)
    settings = router.settings(cfg)
    account = load_key(section, ctx.obj.testnet)
    from moneyd.btp.parent import ParentError, parent_url

    from .uplink import EthSettings, EthUplink

    try:
        url = parent_url(section.parent, section.name, key_hex(account))
    except ParentError as e:
        raise fail(str(e)) from None
    eth_settings = EthSettings(url, section.provider, account, contract=section.contract,
                               channel_amount=section.channel_amount, claim_on_close=claim_on_close,
                               startup_wait=wait_for_parent)
    raise serve(settings, ctx.obj.testnet, router.quiet, lambda store: EthUplink(eth_settings, store))


def info_command(ctx: typer.Context, as_json: bool) -> None:
    import asyncio

    cfg = load_config(ctx.obj.config_path)
    section = Section.load(cfg, ctx.obj.testnet)
    from moneyd.store import Store

    store = Store.open_default(ctx.obj.testnet)
    try:
        report = asyncio.run(_info(section, store))
    except CommandError as e:
        raise fail(str(e)) from None
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(report))
        return
    _print_info(report)


def topup_command(ctx: typer.Context, amount: str) -> None:
    import asyncio

    wei = parse_wei(amount, "--amount")
    cfg = load_config(ctx.obj.config_path)
    section = Section.load(cfg, ctx.obj.testnet)
    account = load_key(section, ctx.obj.testnet)
    typer.echo(f"amount: {eth(wei)} (= {wei // GWEI if wei % GWEI == 0 else Decimal(wei) / GWEI} gwei)")
    from moneyd.store import Store

    store = Store.open_default(ctx.obj.testnet)
    try:
        asyncio.run(_topup(section, account, store, wei, typer.echo))
    except CommandError as e:
        raise fail(str(e)) from None
    finally:
        store.close()


def cleanup_command(ctx: typer.Context, no_request: bool, wait: float) -> None:
    import asyncio

    cfg = load_config(ctx.obj.config_path)
    section = Section.load(cfg, ctx.obj.testnet)
    account = load_key(section, ctx.obj.testnet)
    from moneyd.store import Store

    store = Store.open_default(ctx.obj.testnet)
    try:
        asyncio.run(_cleanup(section, account, store, not no_request, wait, typer.echo))
    except CommandError as e:
        raise fail(str(e)) from None
    finally:
        store.close()


# -- bodies ----------------------------------------------------------------------------------------------------


async def _check_funds(provider: str, account: LocalAccount, contract: str | None, amount: int) -> tuple[int, str, int, int]:
    """(chain id, contract, balance, needed); CommandError when the account cannot open the channel."""
    from .chain import EthChain

    try:
        chain = await EthChain.connect(provider, account, contract)
    except MoneydError as e:
        raise CommandError(str(e)) from None
    try:
        balance = await chain.balance()
        if balance < amount:
            raise CommandError(f"the account {account.address} holds {eth(balance)}; a channel of {eth(amount)} needs more "
                               "(plus fees)")
        fee = await chain.open_fee(account.address, amount)
        needed = amount + FEE_ALLOWANCE * fee
        if balance < needed:
            raise CommandError(f"the account {account.address} holds {eth(balance)}; it needs {eth(needed)} (channel "
                               f"{eth(amount)} + fees {eth(FEE_ALLOWANCE * fee)})")
        return chain.chain_id, chain.contract_address, balance, needed
    except MoneydError as e:
        raise CommandError(str(e)) from None
    finally:
        await chain.close()


def _channel_view(ch: Any, block: int) -> dict[str, Any]:
    return {
        "exists": ch.exists,
        "sender": ch.sender if ch.exists else None,
        "receiver": ch.receiver if ch.exists else None,
        "value": str(ch.value),
        "dispute_period": ch.settling_period,
        "settling": ch.is_settling,
        "settling_until": ch.settling_until or None,
        "can_settle": ch.is_settling and block + 1 >= ch.settling_until,
    }


async def _info(section: Section, store: Store) -> dict[str, Any]:
    from .claims import channel_id_hex, parse_channel_id
    from .uplink import NAMESPACE, state_key

    chain = await _connect(section, os.urandom(32))  # reads only: no need for the key
    try:
        block = await chain.block_number()
        report: dict[str, Any] = {
            "address": section.address, "provider": section.provider, "chain_id": chain.chain_id,
            "contract": chain.contract_address, "parent": section.parent, "name": section.name,
            "balance": str(await chain.balance(section.address)), "block": block,
            "parent_address": None, "ours": None, "theirs": None, "retired": [],
        }
        data = store.get(NAMESPACE, state_key(chain.chain_id, chain.contract_address, section.address))
        if not isinstance(data, dict) or not isinstance(data.get("book"), dict):
            return report
        book = data["book"]
        report["parent_address"] = data.get("parentAddress")
        out = book.get("outgoing")
        if isinstance(out, dict):
            cid = parse_channel_id(out["channelId"])
            ch = await chain.channel(cid)
            report["ours"] = {"id": channel_id_hex(cid), "spent": str(out["spent"]), **_channel_view(ch, block),
                              "remaining": str(max(0, ch.value - int(out["spent"]))) if ch.exists else "0"}
        inc = book.get("incomingChannel")
        if isinstance(inc, str):
            cid = parse_channel_id(inc)
            ch = await chain.channel(cid)
            best = book.get("bestIncoming") or {}
            claimable = min(int(best.get("value", 0)), ch.value) if ch.exists else 0
            report["theirs"] = {"id": inc, "best_claim": str(best.get("value", "0")), "claimable": str(claimable),
                                **_channel_view(ch, block)}
        for rid in data.get("retired") or []:
            ch = await chain.channel(parse_channel_id(rid))
            report["retired"].append({"id": rid, **_channel_view(ch, block)})
        return report
    except (MoneydError, KeyError, TypeError, ValueError) as e:
        raise CommandError(f"cannot read the channels: {e}") from None
    finally:
        await chain.close()


def _print_info(r: dict[str, Any]) -> None:
    lines = [
        f"account   {r['address']}  (chain {r['chain_id']}, {r['provider']})",
        f"balance   {eth(int(r['balance']))}",
        f"contract  {r['contract']}",
        f"parent    {r['parent']} as {r['name']}" + (f", Ethereum address {r['parent_address']}" if r["parent_address"] else ""),
    ]

    def status(c: dict[str, Any]) -> str:
        if not c["exists"]:
            return "closed"
        if c["settling"]:
            return f"settling until block {c['settling_until']} (now {r['block']})" + (": can be settled" if c["can_settle"] else "")
        return f"open, dispute period {c['dispute_period']} blocks"

    ours = r["ours"]
    if ours is None:
        lines.append("our channel    none yet (eth:start opens one)")
    else:
        lines.append(f"our channel    {ours['id']}: {status(ours)}")
        if ours["exists"]:
            lines.append(f"               holds {eth(int(ours['value']))}, promised to the parent {eth(int(ours['spent']))}, "
                         f"left {eth(int(ours['remaining']))}")
    theirs = r["theirs"]
    if theirs is None:
        lines.append("their channel  none linked yet")
    else:
        lines.append(f"their channel  {theirs['id']}: {status(theirs)}")
        lines.append(f"               holds {eth(int(theirs['value']))}, best claim {eth(int(theirs['best_claim']))}, "
                     f"claimable {eth(int(theirs['claimable']))}")
    for old in r["retired"]:
        lines.append(f"old channel    {old['id']}: {status(old)}")
    for line in lines:
        typer.echo(line)


async def _topup(section: Section, account: LocalAccount, store: Store, wei: int, say: Callable[[str], None]) -> None:
    from .claims import channel_id_hex

    chain = await _connect(section, account)
    try:
        key, state = _load_state(store, chain, account, section)
        out = state.book.outgoing if state is not None else None
        if state is None or out is None:
            raise CommandError("there is no channel to the parent yet: `moneyd eth:start` opens one")
        balance = await chain.balance()
        if balance <= wei:
            raise CommandError(f"the account holds {eth(balance)}: not enough to deposit {eth(wei)} plus the fee")
        say(f"depositing {eth(wei)} into channel {channel_id_hex(out.channel_id)} …")
        tx = await chain.deposit(out.channel_id, wei)
        ch = await chain.channel(out.channel_id)
        if state.book.outgoing is not None and ch.value > state.book.outgoing.value:
            state.book.deposited(ch.value)
            state.save(store, key)
        say(f"confirmed in block {tx.block_number} (fee {eth(tx.fee)}): the channel holds {eth(ch.value)}")
        say("a running moneyd sees the new value the next time it needs it")
    except MoneydError as e:
        raise CommandError(str(e)) from None
    finally:
        await chain.close()


async def _ask_parent_to_close(section: Section, account: LocalAccount, wait: float, say: Callable[[str], None]) -> bool:
    """Connect to the parent as our account and send ``requestClose``; True once it answered."""
    from moneyd.btp.connection import BtpPeerError, ConnectionClosed, RequestRefused, connect
    from moneyd.btp.parent import parent_url
    from moneyd.wire import btp
    from moneyd.wire.btp import ProtocolData

    from . import messages

    async def on_request(frame: btp.Message | btp.Transfer) -> Sequence[ProtocolData]:
        if isinstance(frame, btp.Message) and messages.kind(frame.protocol_data) == messages.INFO:
            return (messages.info(account.address),)
        if isinstance(frame, btp.Message) and messages.kind(frame.protocol_data) == messages.MACHINOMY:
            return ()  # the parent's claims are for the running uplink; cleanup claims what is stored
        raise RequestRefused("F00", "NotAcceptedError", "moneyd eth:cleanup only closes channels")

    url = parent_url(section.parent, section.name, key_hex(account))
    say(f"asking the parent at {section.parent} to claim our channel …")
    try:
        conn, reader = await connect(url, on_request, timeout=10.0, label="parent")
    except (OSError, TimeoutError, BtpPeerError) as e:
        say(f"cannot reach the parent ({e or type(e).__name__})")
        return False
    try:
        await conn.request([messages.info(account.address)], timeout=10.0)
        await conn.request([messages.request_close()], timeout=max(wait, 10.0))
        return True
    except (ConnectionClosed, BtpPeerError, TimeoutError) as e:
        say(f"the parent did not answer ({e or type(e).__name__})")
        return False
    finally:
        await conn.close()
        reader.cancel()


async def _cleanup(section: Section, account: LocalAccount, store: Store, ask_parent: bool, wait: float,
                   say: Callable[[str], None]) -> None:
    import asyncio

    from .claims import channel_id_hex, parse_channel_id

    chain = await _connect(section, account)
    try:
        key, state = _load_state(store, chain, account, section)
        if state is None:
            say("nothing to clean up: no channels were opened with this account")
            return
        book = state.book
        # 1. What the parent owes us.
        best = book.claimable()
        if best is None:
            say("nothing to claim from the parent")
        else:
            ch = await chain.channel(best.channel_id)
            if not ch.exists:
                say(f"the parent's channel {channel_id_hex(best.channel_id)} is already closed")
                book.incoming_claimed()
                state.save(store, key)
            else:
                fee = await chain.claim_fee(best)
                if not book.should_claim(fee, ch, force=True):
                    say(f"not claiming {eth(best.value)}: the fee ({eth(fee)}) would eat it")
                else:
                    say(f"claiming {eth(min(best.value, ch.value))} from the parent's channel {channel_id_hex(best.channel_id)} …")
                    tx = await chain.claim(best)
                    book.incoming_claimed()
                    state.save(store, key)
                    say(f"claimed in block {tx.block_number} (fee {eth(tx.fee)})")
        # 2. Our channel(s): the parent claims them on request; otherwise the dispute period starts.
        ours = [book.outgoing.channel_id] if book.outgoing is not None else []
        ours += [parse_channel_id(r) for r in state.retired]
        if not ours:
            say("no channel of ours to close")
        for cid in ours:
            ch = await chain.channel(cid)
            current = book.outgoing is not None and book.outgoing.channel_id == cid
            asked = ch.exists and not ch.is_settling and current and ask_parent
            if asked and await _ask_parent_to_close(section, account, wait, say):
                deadline = asyncio.get_running_loop().time() + wait
                while ch.exists and asyncio.get_running_loop().time() < deadline:
                    await asyncio.sleep(0.5)
                    ch = await chain.channel(cid)
            if not ch.exists:
                say(f"our channel {channel_id_hex(cid)} is closed: what the parent did not claim is back in the account")
            elif not ch.is_settling:
                say(f"starting the dispute period of our channel {channel_id_hex(cid)} ({ch.settling_period} blocks) …")
                tx = await chain.start_settling(cid)
                ch = await chain.channel(cid)
                say(f"settling started in block {tx.block_number}: run `moneyd eth:cleanup` again from block "
                    f"{ch.settling_until} to get the rest back")
            elif await chain.block_number() + 1 >= ch.settling_until:
                say(f"settling our channel {channel_id_hex(cid)} …")
                tx = await chain.settle(cid)
                ch = await chain.channel(cid)
                say(f"settled in block {tx.block_number} (fee {eth(tx.fee)}): the rest is back in the account")
            else:
                say(f"our channel {channel_id_hex(cid)} is settling until block {ch.settling_until} "
                    f"(now {await chain.block_number()}): run `moneyd eth:cleanup` again then")
            if current and (not ch.exists or ch.is_settling):
                book.outgoing_closed()
                if ch.exists:
                    state.retired.append(channel_id_hex(cid))
            elif not current and not ch.exists:
                state.retired = [r for r in state.retired if r != channel_id_hex(cid)]
            state.save(store, key)
        say(f"balance: {eth(await chain.balance())}")
    except MoneydError as e:
        raise CommandError(str(e)) from None
    finally:
        await chain.close()
