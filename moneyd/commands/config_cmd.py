"""``moneyd config path`` and ``moneyd config show``: where the config is, and what it holds (secrets redacted)."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import typer

# Keys whose values are credentials wherever they appear (ours, and the JS moneyd's config).
SECRET_KEY = re.compile(r"secret|token|password|passphrase|private|seed|mnemonic", re.IGNORECASE)
REDACTED = "***"


def redact(value: Any, key: str = "") -> Any:
    """``value`` with every credential replaced: secret-named keys, and the password part of URLs
    (btp+wss://name:token@host carries the BTP token)."""
    if isinstance(value, dict):
        return {k: redact(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    if isinstance(value, str):
        if SECRET_KEY.search(key):
            return REDACTED
        return _redact_url(value)
    return value


def _redact_url(text: str) -> str:
    if "://" not in text or "@" not in text:
        return text
    try:
        parts = urlsplit(text)
    except ValueError:
        return REDACTED
    if parts.password is None:
        return text
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:{REDACTED}@{host}"))


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Where moneyd's config file is, and what it holds (secrets redacted).",
                        no_args_is_help=True, rich_markup_mode=None)
    app.add_typer(group, name="config")

    @group.command("path")
    def path(ctx: typer.Context) -> None:
        """Print the config file's path (with -c/--config and --testnet taken into account)."""
        typer.echo(str(ctx.obj.config_path))

    @group.command("show")
    def show(ctx: typer.Context) -> None:
        """Print the config as JSON, with tokens and secrets replaced by ***."""
        from ..config import Config

        cfg = Config.load(ctx.obj.config_path)
        if not cfg.path.exists():
            typer.echo(f"moneyd: no config at {cfg.path} yet; `moneyd btp:configure`, `xrp:configure` or "
                       "`eth:configure` makes one", err=True)
        typer.echo(json.dumps(redact(cfg.data), indent=2))
