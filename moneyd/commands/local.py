"""``moneyd local``: the router with no uplink, so local apps can pay each other."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from ..app import RouterSettings

# The options every command that runs the router shares (local, and each uplink's NAME:start).
HOST = typer.Option("127.0.0.1", "--host", envvar="MONEYD_BIND_IP", help="Address to listen on (loopback unless you mean it).")
PORT = typer.Option(7768, "--port", envvar="MONEYD_BIND_PORT", help="Port local apps connect to.")
ALLOW_ORIGIN = typer.Option(None, "--allow-origin", help="Regex of browser origins allowed to connect (whole origin must match).")
ALLOW_EXTENSIONS = typer.Option(False, "--unsafe-allow-extensions", help="Let browser extensions connect.")
QUIET = typer.Option(False, "--quiet", "-q", help="Only warnings and errors.")


def server_options(host: str, port: int, allow_origin: str | None, unsafe_allow_extensions: bool) -> RouterSettings:
    from ..app import RouterSettings

    if not 0 < port < 65536:
        raise typer.BadParameter(f"{port} is not a TCP port", param_hint="--port")
    if allow_origin is not None:
        try:
            re.compile(allow_origin)
        except re.error as e:
            raise typer.BadParameter(f"not a regular expression: {e}", param_hint="--allow-origin") from None
    return RouterSettings(host=host, port=port, allow_origin=allow_origin, allow_extensions=unsafe_allow_extensions)


def register(app: typer.Typer) -> None:
    @app.command("local")
    def local(
        host: str = HOST,
        port: int = PORT,
        address: str = typer.Option("private.moneyd", "--address", envvar="MONEYD_ILP_ADDRESS", help="This router's ILP address."),
        asset_code: str = typer.Option("XRP", "--asset-code", envvar="MONEYD_ASSET_CODE"),
        asset_scale: int = typer.Option(9, "--asset-scale", envvar="MONEYD_ASSET_SCALE", min=0, max=255),
        allow_origin: str | None = ALLOW_ORIGIN,
        unsafe_allow_extensions: bool = ALLOW_EXTENSIONS,
        quiet: bool = QUIET,
    ) -> None:
        """Run moneyd with no uplink: local apps get addresses under ADDRESS.local and can pay each other."""
        from ..app import run
        from ..store import Store
        from ..wire.address import is_valid_address

        if not is_valid_address(address):
            raise typer.BadParameter(f"{address!r} is not an ILP address (e.g. private.moneyd)", param_hint="--address")
        settings = server_options(host, port, allow_origin, unsafe_allow_extensions)
        settings.address, settings.asset_code, settings.asset_scale = address, asset_code, asset_scale
        raise typer.Exit(run(settings, Store.open_default(), quiet=quiet))
