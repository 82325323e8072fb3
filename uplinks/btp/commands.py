"""``moneyd btp:configure`` and ``moneyd btp:start``; the router and the uplink load when a command runs."""

from __future__ import annotations

import ipaddress
import sys

import typer

from moneyd.config import Config
from moneyd.uplink_cli import (
    WAIT_FOR_PARENT,
    RouterOptions,
    fail,
    load_config,
    router_command,
    serve,
)


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
        raise fail(f"the btp section of {cfg.path} is damaged ({problem}); replace it with "
                   f"`{ctx.obj.hint('btp:configure --force --parent URL')}`")
    assert isinstance(parent, str)
    return parent


def register(app: typer.Typer) -> None:
    @app.command("btp:configure")
    def configure(
        ctx: typer.Context,
        parent: str | None = typer.Option(None, "--parent", help="The parent's BTP URL: btp+ws[s]://name:token@host[:port]"),
        force: bool = typer.Option(False, "--force", "-f", help="Replace an existing btp configuration."),
        insecure: bool = typer.Option(False, "--insecure", help="Allow btp+ws:// (no TLS) to a parent on another machine."),
    ) -> None:
        """Save the parent to connect to with btp:start."""
        cfg = load_config(ctx.obj.config_path)
        if cfg.data.get("btp") is not None and not force:
            _parent(ctx, cfg)  # a damaged section says so, and how to replace it
            raise fail(f"{cfg.path} already has a btp uplink; use --force to replace it")
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

    @router_command(app, "btp:start")
    def start(
        ctx: typer.Context,
        wait_for_parent: float | None = WAIT_FOR_PARENT,
        *,
        router: RouterOptions,
    ) -> None:
        """Run moneyd with the configured BTP parent as its uplink."""
        from .uplink import BtpUplink

        cfg = load_config(ctx.obj.config_path)
        parent = _parent(ctx, cfg)
        if parent is None:
            raise fail(f"no btp uplink in {cfg.path}; run `{ctx.obj.hint('btp:configure --parent URL')}` first")
        raise serve(router.settings(cfg), ctx.obj.testnet, router.quiet,
                    lambda _store: BtpUplink(parent, startup_wait=wait_for_parent))

