"""``moneyd xrp:configure`` and ``moneyd xrp:info``.

xrpl-py is imported inside the commands: it is heavy, and the CLI loads every plugin at startup. Secrets never go to the config file: they live
in the OS keyring (moneyd.secrets), and ``MONEYD_XRP_SECRET`` overrides it.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import typer

from moneyd.amounts import AmountError, parse_amount
from moneyd.uplink_cli import (
    WAIT_FOR_PARENT,
    RouterOptions,
    ask,
    configured,
    fail,
    load_config,
    load_secret,
    read_secret_file,
    router_command,
    serve,
)

from .manage import register_manage
from .wallet import SECRET_ENV, SECTION, SERVERS, ConfigureError, wallet_for, wallet_for_quiet, xrp

# asyncio, the keyring and xrpl-py are imported by the commands that use them: `moneyd --help` loads this module.
if TYPE_CHECKING:
    from moneyd.config import Config
    from moneyd.store import Store

DEFAULT_CHANNEL_DROPS = 10_000_000
TESTNET_FAUCET = "https://faucet.altnet.rippletest.net/accounts"
FEE_ALLOWANCE = 20  # transactions' worth of fees kept aside (create, fund, claims, close)


PARENT_EXPLAINED = (
    "The parent is the Interledger connector your moneyd plugs into (an ILSP, Interledger service provider): it "
    "forwards your payments and settles with you over an XRP payment channel. It must run ilp-plugin-xrp-asym-server; "
    "its operator gives you its host (e.g. ilsp.example.com or ilsp.example.com:443). To try moneyd without one, "
    "use `moneyd local`, or run your own parent (ilp-connector with ilp-plugin-xrp-asym-server) and give "
    "--parent btp+ws://127.0.0.1:PORT.")


@dataclass
class Settings:
    parent: str
    xrp_server: str
    name: str
    secret: str
    channel_amount: int


def parse_drops(text: str, what: str) -> int:
    try:
        amount = parse_amount(text)
        return amount.to_base_units("XRP", 6)
    except AmountError as e:
        raise typer.BadParameter(str(e), param_hint=what) from None


def read_js_config(path: Path) -> dict[str, str]:
    """The settings of a JS moneyd config (~/.moneyd.json): version 0 (flat) or version 1 (uplinks.xrp.options)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigureError(f"cannot read the JS moneyd config {path}: {e}") from None
    if not isinstance(data, dict):
        raise ConfigureError(f"{path} is not a JS moneyd config")
    if data.get("version") is None:
        keys = {"secret": "secret", "parent": "parent", "name": "name", "rippled": "xrp_server"}
        return {ours: str(data[theirs]) for theirs, ours in keys.items() if data.get(theirs)}
    options = ((data.get("uplinks") or {}).get("xrp") or {}).get("options")
    if not isinstance(options, dict) or not isinstance(options.get("secret"), str):
        raise ConfigureError(f"{path} has no XRP uplink (uplinks.xrp.options with a secret)")
    found = {"secret": options["secret"]}
    if isinstance(options.get("xrpServer"), str):
        found["xrp_server"] = options["xrpServer"]
    server = options.get("server")
    if isinstance(server, str):
        parts = urlsplit(server)
        if parts.hostname:
            host = parts.hostname + (f":{parts.port}" if parts.port else "")
            # A bare host means btp+wss; a plain btp+ws:// parent (allowed on loopback only) keeps its scheme.
            found["parent"] = f"btp+ws://{host}" if parts.scheme == "btp+ws" else host
            found["name"] = unquote(parts.username or "")
    return found


async def faucet_account(url: str, xrp_server: str, wait: float = 60.0) -> str:
    """A new funded testnet account from an XRPL faucet (its seed), once the account is on the ledger."""
    import asyncio

    import aiohttp

    from .ledger import LedgerError, XrpLedger

    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http, http.post(url, json={}) as r:
            if r.status >= 400:
                raise ConfigureError(f"the faucet {url} answered HTTP {r.status}")
            data = await r.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as e:
        raise ConfigureError(f"cannot get a test account from the faucet {url}: {e or type(e).__name__}") from None
    account = data.get("account") if isinstance(data, dict) else None
    seed = data.get("seed") if isinstance(data, dict) else None
    if not isinstance(seed, str) and isinstance(account, dict):
        seed = account.get("secret")  # the older faucet reply
    if not isinstance(seed, str):
        raise ConfigureError(f"the faucet {url} gave no account secret")
    address = wallet_for(seed).address
    try:
        async with await XrpLedger.connect(xrp_server) as ledger:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + wait
            while await ledger.account(address) is None:
                if loop.time() > deadline:
                    raise ConfigureError(f"the faucet's account {address} did not appear on {xrp_server} in {wait:g}s")
                await asyncio.sleep(1)
    except LedgerError as e:
        raise ConfigureError(str(e)) from None
    typer.echo(f"the faucet funded a new test account {address}", err=True)
    return seed


async def check_funds(s: Settings, address: str) -> tuple[int, int]:
    """(balance, needed) in drops; raises ConfigureError when the account cannot open the channel."""
    from .ledger import LedgerError, XrpLedger

    try:
        async with await XrpLedger.connect(s.xrp_server) as ledger:
            account = await ledger.account(address)
            base, inc = await ledger.reserves()
            fee = await ledger.fee()
    except LedgerError as e:
        raise ConfigureError(str(e)) from None
    if account is None:
        raise ConfigureError(
            f"the account {address} does not exist on {s.xrp_server}: send it at least "
            f"{xrp(base + inc + s.channel_amount + FEE_ALLOWANCE * fee)} first")
    needed = base + inc * (account.owner_count + 1) + s.channel_amount + FEE_ALLOWANCE * fee
    if account.balance < needed:
        raise ConfigureError(
            f"the account {address} holds {xrp(account.balance)}; it needs {xrp(needed)} (reserve "
            f"{xrp(base + inc * (account.owner_count + 1))} + channel {xrp(s.channel_amount)} + fees)")
    return account.balance, needed


def register(app: typer.Typer) -> None:
    @app.command("xrp:configure")
    def configure(
        ctx: typer.Context,
        parent: str | None = typer.Option(None, "--parent", help="The parent: the connector (ILSP) you plug into, running ilp-plugin-xrp-asym-server; its operator gives you host[:port] (or a btp+ws(s):// base URL)."),
        xrp_server: str | None = typer.Option(None, "--xrp-server", help="rippled WebSocket URL (wss://…)."),
        name: str | None = typer.Option(None, "--name", help="Your account name at the parent (default: random)."),
        secret_file: Path | None = typer.Option(None, "--secret-file", help=f"Read the XRP secret from this file (else ${SECRET_ENV} or a prompt)."),
        channel_amount: str | None = typer.Option(None, "--channel-amount", help="Channel size: drops, or with a unit (10XRP). Default 10 XRP."),
        import_js: Path | None = typer.Option(None, "--import-js", help="Take the settings of a JS moneyd config (~/.moneyd.json)."),
        force: bool = typer.Option(False, "--force", "-f", help="Replace an existing xrp configuration."),
        faucet: str = typer.Option(TESTNET_FAUCET, "--faucet", help="With --testnet and no secret: the faucet that makes a funded test account."),
        advanced: bool = typer.Option(False, "--advanced", help="Also ask for the XRPL server, account name and channel size (flags still win)."),
    ) -> None:
        """Set up the XRP uplink: check the account can fund a channel, keep the secret in the OS keyring."""
        configure_command(ctx, parent, xrp_server, name, secret_file, channel_amount, import_js, force, faucet, advanced)

    @router_command(app, "xrp:start")
    def start(ctx: typer.Context, wait_for_parent: float | None = WAIT_FOR_PARENT, *,
              router: RouterOptions) -> None:
        """Run moneyd with the configured parent as its uplink, settling over XRP payment channels."""
        start_command(ctx, router, wait_for_parent)

    @app.command("xrp:info")
    def info(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """Your XRP account: balance, reserve, what is available, and your payment channels."""
        info_command(ctx, as_json)

    register_manage(app)


def check_options(parent: str | None, name: str | None, channel_amount: str | None, xrp_server: str | None) -> None:
    """The settings given as options that are wrong on their face, as usage errors naming the option."""
    from moneyd.btp.parent import ParentError, check_name, split_parent

    for value, check, flag in ((parent, split_parent, "--parent"), (name, check_name, "--name")):
        if value is not None:
            try:
                check(value)
            except ParentError as e:
                raise typer.BadParameter(str(e), param_hint=flag) from None
    if channel_amount:
        parse_drops(channel_amount, "--channel-amount")
    if xrp_server is not None and not xrp_server.startswith(("ws://", "wss://")):
        raise typer.BadParameter("must be a ws:// or wss:// URL", param_hint="--xrp-server")


def configure_command(
    ctx: typer.Context, parent: str | None, xrp_server: str | None, name: str | None, secret_file: Path | None,
    channel_amount: str | None, import_js: Path | None, force: bool, faucet: str, advanced: bool,
    config_path: Path | None = None,
) -> None:
    testnet: bool = ctx.obj.testnet
    cfg = load_config(config_path or ctx.obj.config_path)
    if cfg.section(SECTION) is not None and not force:
        raise fail(f"{cfg.path} already has an xrp uplink; use --force to replace it")
    # What the command line gives is checked before anything slow (xrpl-py's import, the faucet, a prompt): a
    # typo is answered at once. Values from --import-js or prompts are checked below, once they are known.
    check_options(parent, name, channel_amount, xrp_server)

    import asyncio

    from moneyd.btp.parent import ParentError, parent_url
    from moneyd.secrets import SecretError, SecretStore

    try:
        imported = read_js_config(import_js) if import_js else {}
        if secret_file is not None:
            secret = read_secret_file(secret_file, "--secret-file")
        elif os.environ.get(SECRET_ENV) or imported.get("secret") or not testnet:
            secret = os.environ.get(SECRET_ENV) or imported.get("secret") or ask(None, "--secret-file", "XRP secret", hide=True)
        else:
            typer.echo(f"no secret given: asking the testnet faucet {faucet} for a funded test account …", err=True)
            secret = asyncio.run(faucet_account(faucet, xrp_server or SERVERS[True]))
        wallet = wallet_for(secret)
        if advanced:
            xrp_server = ask(xrp_server, "--xrp-server", "XRPL server (rippled WebSocket URL)",
                             imported.get("xrp_server") or SERVERS[testnet])
            name = ask(name, "--name", "Account name at the parent", imported.get("name") or os.urandom(8).hex())
            channel_amount = ask(channel_amount, "--channel-amount", "Channel size (XRP with a unit, or drops)",
                                 "10XRP")
        if not (parent or imported.get("parent")):
            typer.echo(PARENT_EXPLAINED, err=True)
        settings = Settings(
            parent=ask(parent or imported.get("parent"), "--parent", "Parent host (ILSP)"),
            xrp_server=xrp_server or imported.get("xrp_server") or SERVERS[testnet],
            name=name if name is not None else imported.get("name") or os.urandom(8).hex(),
            secret=secret.strip(),
            channel_amount=parse_drops(channel_amount, "--channel-amount") if channel_amount else DEFAULT_CHANNEL_DROPS,
        )
        try:
            parent_url(settings.parent, settings.name, settings.secret)
        except ParentError as e:
            raise typer.BadParameter(str(e), param_hint="--parent/--name") from None
        if not settings.xrp_server.startswith(("ws://", "wss://")):
            raise typer.BadParameter("must be a ws:// or wss:// URL", param_hint="--xrp-server")
        typer.echo(f"checking {wallet.address} on {settings.xrp_server} …", err=True)
        balance, needed = asyncio.run(check_funds(settings, wallet.address))
        store = SecretStore(testnet=testnet)
        store.set(f"xrp:{wallet.address}", settings.secret)
    except (ConfigureError, SecretError) as e:
        raise fail(str(e)) from None
    cfg.set_section(SECTION, {"parent": settings.parent, "xrp_server": settings.xrp_server, "name": settings.name,
                            "address": wallet.address, "channel_amount": settings.channel_amount})
    cfg.save()
    typer.echo(f"saved the xrp uplink to {cfg.path}; the secret is in {store.where}")
    typer.echo(f"account {wallet.address}: {xrp(balance)}, {xrp(needed)} needed for reserve, channel and fees")


def offer_js_import(ctx: typer.Context, cfg: Config) -> Config:
    """A JS moneyd user's first ``xrp:start``: ``cfg`` has no xrp uplink, but the JS moneyd's config (given with -c,
    or at ~/.moneyd.json) has one. On a terminal, offer to import it (as ``xrp:configure --import-js`` does: the
    secret moves to the keyring and the JS file is left as it is) and return the config it was imported into.
    Otherwise ``cfg`` as it is, and ``configured`` names the command that imports it."""
    from moneyd.config import ConfigError, default_path, is_js_config, js_config_path

    testnet: bool = ctx.obj.testnet
    try:
        if cfg.section(SECTION) is not None:
            return cfg
    except ConfigError:
        return cfg  # ``configured`` says what is wrong with it
    given_js = is_js_config(cfg.data)
    js = cfg.path if given_js else js_config_path(testnet)
    try:
        # The JS file itself never gets our settings: they go to this moneyd's own config.
        target = default_path(testnet) if given_js else cfg.path
        if not js.is_file() or target.resolve() == js.resolve():
            return cfg
    except (ConfigError, OSError):
        return cfg  # no home, an unreadable folder: ``configured`` says what to do
    try:
        imported_before = given_js and load_config(target).section(SECTION) is not None
    except ConfigError as e:
        raise fail(str(e)) from None
    if imported_before:
        flags = " --testnet" if testnet else ""
        raise fail(f"{js} is a JS moneyd config; its XRP settings are already imported into {target}: run "
                   f"`moneyd{flags} xrp:start` (without -c)")
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return cfg
    try:
        found = read_js_config(js)
    except ConfigureError:
        return cfg
    where = f" (parent {found['parent']}, account {found.get('name') or '?'})" if found.get("parent") else ""
    typer.echo(f"{js} is a JS moneyd config with an XRP uplink{where}.", err=True)
    if not typer.confirm(f"Import it into {target} now? The secret moves to your keyring; the JS file stays as it "
                         "is", default=True, err=True):
        return cfg
    configure_command(ctx, None, None, None, None, None, js, False, TESTNET_FAUCET, False, config_path=target)
    if given_js:
        flags = " --testnet" if testnet else ""
        typer.echo(f"imported; from now on run `moneyd{flags} xrp:start` (without -c)", err=True)
    return load_config(target)


def start_command(ctx: typer.Context, router: RouterOptions, wait_for_parent: float | None = None) -> None:
    from .uplink import XrpSettings, XrpUplink

    testnet: bool = ctx.obj.testnet
    cfg = offer_js_import(ctx, load_config(ctx.obj.config_path))
    section = configured(cfg, SECTION, testnet)
    settings = router.settings(cfg)
    secret = load_secret(f"xrp:{section['address']}", testnet, SECRET_ENV)
    if secret is None:
        raise fail(f"no secret for {section['address']} in the keyring; run `moneyd xrp:configure --force` "
                   f"or set {SECRET_ENV}")
    if wallet_for_quiet(secret) != section["address"]:
        raise fail(f"the secret does not belong to {section['address']}; run `moneyd xrp:configure --force`")
    # Advanced, hand-edited: seconds between claim submissions and channel checks on the ledger.
    knobs: dict[str, float] = {}
    for knob in ("claim_interval", "watch_interval"):
        value = section.get(knob)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise fail(f"xrp.{knob} in {cfg.path} must be a positive number of seconds, got {value!r}")
            knobs[knob] = float(value)
    xrp_settings = XrpSettings(
        parent=str(section.get("parent")), name=str(section.get("name")), secret=secret.strip(),
        xrp_server=str(section.get("xrp_server") or SERVERS[testnet]),
        channel_drops=int(section.get("channel_amount") or DEFAULT_CHANNEL_DROPS))
    xrp_settings = replace(xrp_settings, claim_interval=knobs.get("claim_interval", xrp_settings.claim_interval),
                           watch_interval=knobs.get("watch_interval", xrp_settings.watch_interval))

    def uplink(store: Store) -> XrpUplink:
        try:
            return XrpUplink(xrp_settings, store, startup_wait=wait_for_parent)
        except Exception as e:
            raise fail(str(e)) from None

    raise serve(settings, testnet, router.quiet, uplink)


def info_command(ctx: typer.Context, as_json: bool) -> None:
    section = configured(load_config(ctx.obj.config_path), SECTION, ctx.obj.testnet)
    address, server = section["address"], str(section.get("xrp_server") or SERVERS[ctx.obj.testnet])
    import asyncio

    from .ledger import LedgerError

    try:
        report = asyncio.run(_info(address, server))
    except LedgerError as e:
        raise fail(str(e)) from None
    if as_json:
        typer.echo(json.dumps(report))
        return
    _print_info(report)


async def _info(address: str, server: str) -> dict[str, Any]:
    from .ledger import XrpLedger

    async with await XrpLedger.connect(server) as ledger:
        account = await ledger.account(address)
        base, inc = await ledger.reserves()
        channels = await ledger.channels(address) if account else []
    if account is None:
        return {"address": address, "server": server, "exists": False, "balance": 0, "reserve": base,
                "available": 0, "channels": []}
    reserve = base + inc * account.owner_count
    return {
        "address": address, "server": server, "exists": True, "balance": account.balance, "reserve": reserve,
        "available": max(0, account.balance - reserve),
        "channels": [{"id": c.channel_id, "destination": c.destination, "amount": c.amount, "balance": c.balance,
                      "remaining": c.amount - c.balance, "settle_delay": c.settle_delay, "expiration": c.expiration,
                      "cancel_after": c.cancel_after} for c in channels],
    }


def _print_info(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not report["exists"]:
        console.print(f"account {report['address']} does not exist on {report['server']} yet (reserve {xrp(report['reserve'])})")
        return
    console.print(f"account   {report['address']}  ({report['server']})")
    console.print(f"balance   {xrp(report['balance'])}")
    console.print(f"reserve   {xrp(report['reserve'])}")
    console.print(f"available {xrp(report['available'])}")
    if not report["channels"]:
        console.print("no payment channels")
        return
    table = Table(title="payment channels from this account")
    for col in ("channel", "to", "amount", "claimed", "remaining", "settle delay", "closing at"):
        table.add_column(col)
    for c in report["channels"]:
        closing = c["expiration"] or c["cancel_after"]
        table.add_row(c["id"][:16] + "…", c["destination"], xrp(c["amount"]), xrp(c["balance"]), xrp(c["remaining"]),
                      f"{c['settle_delay']} s", "-" if closing is None else f"ledger time {closing}")
    console.print(table)
