"""The plain BTP uplink: ``moneyd btp:configure`` and ``moneyd btp:start``."""

from __future__ import annotations

import sys

import typer

from moneyd.app import run
from moneyd.btp.connection import parse_btp_url
from moneyd.commands.local import (
    ADMIN_API_PORT,
    ALLOW_EXTENSIONS,
    ALLOW_ORIGIN,
    HOST,
    LOG_FORMAT,
    LOG_LEVEL,
    PORT,
    QUIET,
    server_options,
)
from moneyd.config import Config, ConfigError
from moneyd.store import Store

from .uplink import BtpUplink

__all__ = ["BtpUplink", "plugin"]


def _config(ctx: typer.Context) -> Config:
    try:
        return Config.load(ctx.obj.config_path)
    except ConfigError as e:
        typer.echo(f"moneyd: error: {e}", err=True)
        raise typer.Exit(1) from None


class BtpUplinkPlugin:
    name = "btp"
    summary = "uplink to a parent connector over plain BTP (no settlement)"

    def register_commands(self, app: typer.Typer) -> None:
        @app.command("btp:configure")
        def configure(
            ctx: typer.Context,
            parent: str | None = typer.Option(None, "--parent", help="The parent's BTP URL: btp+ws[s]://name:token@host[:port]"),
            force: bool = typer.Option(False, "--force", "-f", help="Replace an existing btp configuration."),
        ) -> None:
            """Save the parent to connect to with btp:start."""
            cfg = _config(ctx)
            if cfg.section("btp") is not None and not force:
                typer.echo(f"moneyd: error: {cfg.path} already has a btp uplink; use --force to replace it", err=True)
                raise typer.Exit(1)
            if parent is None:
                if not sys.stdin.isatty():
                    raise typer.BadParameter("give the parent's URL with --parent (no terminal to ask on)", param_hint="--parent")
                parent = typer.prompt("Parent BTP URL (btp+wss://name:token@host)")
            try:
                target = parse_btp_url(parent)
            except ValueError as e:
                raise typer.BadParameter(str(e), param_hint="--parent") from None
            if not target.token:
                raise typer.BadParameter("the URL needs a token: btp+ws[s]://name:token@host", param_hint="--parent")
            cfg.set_section("btp", {"parent": parent})
            cfg.save()
            typer.echo(f"saved the btp uplink to {cfg.path} (readable only by you)")

        @app.command("btp:start")
        def start(
            ctx: typer.Context,
            host: str = HOST,
            port: int = PORT,
            allow_origin: str | None = ALLOW_ORIGIN,
            unsafe_allow_extensions: bool = ALLOW_EXTENSIONS,
            quiet: bool = QUIET,
            admin_api_port: int | None = ADMIN_API_PORT,
            log_level: str = LOG_LEVEL,
            log_format: str = LOG_FORMAT,
        ) -> None:
            """Run moneyd with the configured BTP parent as its uplink."""
            cfg = _config(ctx)
            section = cfg.section("btp")
            if section is None or not isinstance(section.get("parent"), str):
                typer.echo(f"moneyd: error: no btp uplink in {cfg.path}; run `moneyd btp:configure --parent URL` first", err=True)
                raise typer.Exit(1)
            settings = server_options(host, port, allow_origin, unsafe_allow_extensions, admin_api_port, log_level, log_format, cfg)
            raise typer.Exit(run(settings, Store.open_default(ctx.obj.testnet), BtpUplink(section["parent"]), quiet=quiet))


plugin = BtpUplinkPlugin()
