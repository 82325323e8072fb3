"""The plain BTP uplink: ``moneyd btp:configure`` and ``moneyd btp:start``.

Importing this module stays cheap (the CLI loads every plugin at startup): the router and the uplink itself are
imported when a command runs.
"""

from __future__ import annotations

import ipaddress
import sys
from typing import TYPE_CHECKING, Any

import typer

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

if TYPE_CHECKING:
    from .uplink import BtpUplink

__all__ = ["BtpUplink", "plugin"]


def __getattr__(name: str) -> Any:
    if name == "BtpUplink":  # `from uplinks.btp import BtpUplink`, without importing it for every command
        from .uplink import BtpUplink

        return BtpUplink
    raise AttributeError(name)


def _config(ctx: typer.Context) -> Config:
    try:
        return Config.load(ctx.obj.config_path)
    except ConfigError as e:
        typer.echo(f"moneyd: error: {e}", err=True)
        raise typer.Exit(1) from None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_parent(url: str, insecure: bool = False) -> str:
    """The problem with a parent URL, or "" when it is fine. One check for btp:configure and btp:start, so they
    never disagree about a section."""
    from urllib.parse import urlsplit

    from moneyd.btp.connection import parse_btp_url

    try:
        target = parse_btp_url(url)
    except ValueError as e:
        return str(e)
    if not target.token:
        return "the URL needs a token: btp+ws[s]://name:token@host"
    host = urlsplit(url).hostname or ""
    if url.startswith("btp+ws://") and not _is_loopback(host) and not insecure:
        return (f"btp+ws:// sends the token unencrypted to {host}; use btp+wss://, or --insecure if you "
                "really mean it")
    return ""


def _parent(ctx: typer.Context, cfg: Config) -> str | None:
    """The configured parent URL; None when there is no btp section; exits with one line when it is damaged."""
    section = cfg.data.get("btp")
    if section is None:
        return None
    parent = section.get("parent") if isinstance(section, dict) else None
    problem = "no parent URL" if not isinstance(parent, str) else check_parent(parent, bool(section.get("insecure")))
    if problem:
        typer.echo(f"moneyd: error: the btp section of {cfg.path} is damaged ({problem}); replace it with "
                   f"`{ctx.obj.hint('btp:configure --force --parent URL')}`", err=True)
        raise typer.Exit(1)
    assert isinstance(parent, str)
    return parent


class BtpUplinkPlugin:
    name = "btp"
    summary = "uplink to a parent connector over plain BTP (no settlement)"

    def register_commands(self, app: typer.Typer) -> None:
        @app.command("btp:configure")
        def configure(
            ctx: typer.Context,
            parent: str | None = typer.Option(None, "--parent", help="The parent's BTP URL: btp+ws[s]://name:token@host[:port]"),
            force: bool = typer.Option(False, "--force", "-f", help="Replace an existing btp configuration."),
            insecure: bool = typer.Option(False, "--insecure", help="Allow btp+ws:// (no TLS) to a parent on another machine."),
        ) -> None:
            """Save the parent to connect to with btp:start."""
            cfg = _config(ctx)
            if cfg.data.get("btp") is not None and not force:
                _parent(ctx, cfg)  # a damaged section says so, and how to replace it
                typer.echo(f"moneyd: error: {cfg.path} already has a btp uplink; use --force to replace it", err=True)
                raise typer.Exit(1)
            if parent is None:
                if not sys.stdin.isatty():
                    raise typer.BadParameter("give the parent's URL with --parent (no terminal to ask on)", param_hint="--parent")
                parent = typer.prompt("Parent BTP URL (btp+wss://name:token@host)")
            problem = check_parent(parent, insecure)
            if problem:
                raise typer.BadParameter(problem, param_hint="--parent")
            cfg.set_section("btp", {"parent": parent, **({"insecure": True} if insecure else {})})
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
            wait_for_parent: float | None = typer.Option(
                None, "--wait-for-parent", min=0, show_default="until it answers",
                help="Seconds to keep trying (with backoff) a parent that does not answer at start; 0: one try."),
        ) -> None:
            """Run moneyd with the configured BTP parent as its uplink."""
            from moneyd.app import run
            from moneyd.store import Store

            from .uplink import BtpUplink

            cfg = _config(ctx)
            parent = _parent(ctx, cfg)
            if parent is None:
                typer.echo(f"moneyd: error: no btp uplink in {cfg.path}; run "
                           f"`{ctx.obj.hint('btp:configure --parent URL')}` first", err=True)
                raise typer.Exit(1)
            settings = server_options(host, port, allow_origin, unsafe_allow_extensions, admin_api_port, log_level, log_format, cfg)
            uplink = BtpUplink(parent, startup_wait=wait_for_parent)
            raise typer.Exit(run(settings, Store.open_default(ctx.obj.testnet), uplink, quiet=quiet))


plugin = BtpUplinkPlugin()
