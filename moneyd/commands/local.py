"""``moneyd local``: the router with no uplink, so local apps can pay each other."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from ..app import RouterSettings
    from ..config import Config

DEFAULT_ADMIN_API_PORT = 7769

# The options every command that runs the router shares (local, and each uplink's NAME:start).
HOST = typer.Option("127.0.0.1", "--host", envvar="MONEYD_BIND_IP", help="Address to listen on (loopback unless you mean it).")
PORT = typer.Option(7768, "--port", envvar="MONEYD_BIND_PORT", help="Port local apps connect to.")
ALLOW_ORIGIN = typer.Option(None, "--allow-origin", help="Regex of browser origins allowed to connect (whole origin must match).")
ALLOW_EXTENSIONS = typer.Option(False, "--unsafe-allow-extensions", help="Let browser extensions connect.")
QUIET = typer.Option(False, "--quiet", "-q", help="Only warnings and errors.")
ADMIN_API_PORT = typer.Option(
    None, "--admin-api-port", envvar="MONEYD_ADMIN_API_PORT", min=0, max=65535,
    help=f"Port of the admin API and dashboard on 127.0.0.1 (default {DEFAULT_ADMIN_API_PORT}, or admin_api_port "
    "in the config file; 0 turns it off).")
LOG_LEVEL = typer.Option("info", "--log-level", help="debug, info, warning or error.")
LOG_FORMAT = typer.Option("text", "--log-format", help="text, or json (one JSON object a line).")


def server_options(
    host: str,
    port: int,
    allow_origin: str | None,
    unsafe_allow_extensions: bool,
    admin_api_port: int | None = None,
    log_level: str = "info",
    log_format: str = "text",
    config: Config | None = None,
) -> RouterSettings:
    from ..app import RouterSettings
    from ..logs import FORMATS, LEVELS

    if not 0 < port < 65536:
        raise typer.BadParameter(f"{port} is not a TCP port", param_hint="--port")
    if allow_origin is not None:
        try:
            re.compile(allow_origin)
        except re.error as e:
            raise typer.BadParameter(f"not a regular expression: {e}", param_hint="--allow-origin") from None
    if log_level.lower() not in LEVELS:
        raise typer.BadParameter(f"{log_level!r}: use one of {', '.join(LEVELS)}", param_hint="--log-level")
    if log_format.lower() not in FORMATS:
        raise typer.BadParameter(f"{log_format!r}: use one of {', '.join(FORMATS)}", param_hint="--log-format")
    settings = RouterSettings(host=host, port=port, allow_origin=allow_origin, allow_extensions=unsafe_allow_extensions,
                              log_level=log_level.lower(), log_format=log_format.lower())
    settings.admin_api_port, settings.admin_api_strict = admin_port(admin_api_port, config)
    return settings


def admin_port(option: int | None, config: Config | None) -> tuple[int | None, bool]:
    """The admin API port and whether failing to bind it is an error: the option, else the config file's
    ``admin_api_port``, else the default (then a busy port only warns). 0 or null turns it off."""
    if option is not None:
        return (option or None), True
    if config is not None and "admin_api_port" in config.data:
        value = config.data["admin_api_port"]
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 65536):
            raise typer.BadParameter(f"{config.path}: admin_api_port must be a port number, 0 or null")
        return (value or None), True
    return DEFAULT_ADMIN_API_PORT, False


def load_config(ctx: typer.Context) -> Config | None:
    """The config file if there is a readable one (``local`` needs none)."""
    from ..config import Config, ConfigError

    obj = ctx.obj
    path = getattr(obj, "config_path", None)
    if path is None:
        return None
    try:
        return Config.load(path)
    except ConfigError:
        return None


def register(app: typer.Typer) -> None:
    @app.command("local")
    def local(
        ctx: typer.Context,
        host: str = HOST,
        port: int = PORT,
        address: str = typer.Option("private.moneyd", "--address", envvar="MONEYD_ILP_ADDRESS", help="This router's ILP address."),
        asset_code: str = typer.Option("XRP", "--asset-code", envvar="MONEYD_ASSET_CODE"),
        asset_scale: int = typer.Option(9, "--asset-scale", envvar="MONEYD_ASSET_SCALE", min=0, max=255),
        allow_origin: str | None = ALLOW_ORIGIN,
        unsafe_allow_extensions: bool = ALLOW_EXTENSIONS,
        quiet: bool = QUIET,
        admin_api_port: int | None = ADMIN_API_PORT,
        log_level: str = LOG_LEVEL,
        log_format: str = LOG_FORMAT,
    ) -> None:
        """Run moneyd with no uplink: local apps get addresses under ADDRESS.local and can pay each other."""
        from ..runtime import run
        from ..store import Store
        from ..wire.address import is_valid_address

        if not is_valid_address(address):
            raise typer.BadParameter(f"{address!r} is not an ILP address (e.g. private.moneyd)", param_hint="--address")
        settings = server_options(host, port, allow_origin, unsafe_allow_extensions, admin_api_port, log_level, log_format,
                                  load_config(ctx))
        settings.address, settings.asset_code, settings.asset_scale = address, asset_code, asset_scale
        raise typer.Exit(run(settings, Store.open_default(), quiet=quiet))
