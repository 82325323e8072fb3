"""The ``moneyd`` command line. Each command group lives in its own module; this file only assembles them."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import typer

from . import __version__
from .commands import register_builtin
from .config import default_path
from .uplink import discover_uplinks

PLANNED = """\
Command groups: local (router with no uplink) · btp:* (plain BTP uplink) · xrp:* (XRP payment channels) ·
eth:* (Ethereum payment channels) · pay · receive · status.  Commands not listed below are not built yet."""

app = typer.Typer(
    name="moneyd",
    help="moneyd: the Interledger home router. Local apps connect on 127.0.0.1:7768; one uplink connects you "
    "to the Interledger.",
    epilog=PLANNED,
    no_args_is_help=True,
    add_completion=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"moneyd {__version__}")
        raise typer.Exit()


@dataclass
class GlobalOptions:
    config_path: Path
    testnet: bool


@app.callback()
def root(
    ctx: typer.Context,
    config: Path | None = typer.Option(None, "--config", "-c", help="Config file (default: moneyd.json in your config dir)."),
    testnet: bool = typer.Option(False, "--testnet", "-t", help="Use the test network: a separate config and the test address prefix."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", callback=_version, is_eager=True),
) -> None:
    """moneyd: the Interledger home router."""
    ctx.obj = GlobalOptions(config or default_path(testnet), testnet)


def _register_uplinks() -> None:
    plugins, errors = discover_uplinks()
    for plugin in plugins.values():
        plugin.register_commands(app)
    for err in errors:
        print(f"moneyd: warning: uplink plugin {err.entry_point!r} not loaded: {err.error}", file=sys.stderr)


register_builtin(app)
_register_uplinks()


def main() -> None:
    app(prog_name="moneyd")
