"""Building blocks for an uplink's commands (``NAME:configure``, ``NAME:start``, ``NAME:info`` …), shared by the
uplinks that ship with moneyd and public for third-party ones.

An uplink's ``register_commands`` declares its Typer commands and builds them from these pieces: one error line and
exit code (:func:`fail`), the config file and the uplink's section (:func:`load_config`, :func:`configured`), the
question asked only on a terminal (:func:`ask`), secrets from a file or the keyring (:func:`read_secret_file`,
:func:`load_secret`), amounts as people read them (:func:`format_amount`), the server options every ``NAME:start``
takes (``HOST`` … ``LOG_FORMAT`` and :func:`server_options`) and the start itself (:func:`serve`).

Cheap to import, as every plugin is imported at CLI startup: the router, the store and the uplinks load when a
command runs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from .commands.local import (
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
from .config import Config, ConfigError, not_configured

if TYPE_CHECKING:
    from .app import RouterSettings
    from .store import Store
    from .uplink import Uplink

__all__ = [
    "ADMIN_API_PORT", "ALLOW_EXTENSIONS", "ALLOW_ORIGIN", "HOST", "LOG_FORMAT", "LOG_LEVEL", "PORT", "QUIET",
    "WAIT_FOR_PARENT",
    "ask", "configured", "fail", "format_amount", "load_config", "load_secret", "read_secret_file",
    "register_missing", "serve", "server_options",
]

# Every NAME:start waits for a parent (and a ledger or node) that does not answer at start, as the JS moneyd does:
# the local server opens once the parent has told us our address. moneyd.uplink.keep_trying is the loop.
WAIT_FOR_PARENT: float | None = typer.Option(
    None, "--wait-for-parent", min=0, show_default="until it answers",
    help="Seconds to keep trying (with backoff) a parent, ledger or node that does not answer at start; 0: one try.")


def fail(message: str) -> typer.Exit:
    """Print ``moneyd: error: message`` on stderr; the caller raises what this returns (exit status 1)."""
    typer.echo(f"moneyd: error: {message}", err=True)
    return typer.Exit(1)


def load_config(path: Path) -> Config:
    """The config file at ``path`` (empty when there is none); a damaged one ends the command with one line."""
    try:
        return Config.load(path)
    except ConfigError as e:
        raise fail(str(e)) from None


def configured(cfg: Config, uplink: str, testnet: bool, key: str = "address") -> dict[str, Any]:
    """The ``uplink`` section of ``cfg``, which must hold a string ``key``; otherwise the command ends saying how to
    configure it (``NAME:configure``, or importing a JS moneyd config)."""
    try:
        section = cfg.section(uplink)
    except ConfigError as e:
        raise fail(str(e)) from None
    if section is None or not isinstance(section.get(key), str):
        raise fail(not_configured(cfg, uplink, testnet))
    return section


def ask(value: str | None, flag: str, prompt: str, default: str | None = None, hide: bool = False) -> str:
    """``value`` when given; else the answer to ``prompt`` on a terminal; else ``default``; else a usage error
    naming ``flag`` (no terminal to ask on)."""
    if value:
        return value
    if not sys.stdin.isatty():
        if default is not None:
            return default
        raise typer.BadParameter(f"give it with {flag} (no terminal to ask on)", param_hint=flag)
    answer: str = typer.prompt(prompt, default=default, hide_input=hide)
    return answer


def read_secret_file(path: Path, flag: str) -> str:
    """The secret in the file given with ``flag`` (stripped); a usage error when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as e:
        raise typer.BadParameter(f"cannot read {path}: {e.strerror or e}", param_hint=flag) from None


def load_secret(name: str, testnet: bool, env: str) -> str | None:
    """The secret stored as ``name`` (``uplink:address``) in the keyring, or in ``$env`` when that is set; None when
    there is none. A keyring that cannot be read ends the command with one line."""
    from .secrets import SecretError, SecretStore

    try:
        return SecretStore(testnet=testnet).get(name, env=env)
    except SecretError as e:
        raise fail(str(e)) from None


def format_amount(units: int, scale: int, code: str) -> str:
    """``units`` base units at ``scale`` as people read them: ``format_amount(1_500_000, 6, "XRP")`` is ``1.5 XRP``."""
    return f"{Decimal(units).scaleb(-scale).normalize():f} {code}"


def serve(settings: RouterSettings, testnet: bool, quiet: bool, make_uplink: Callable[[Store], Uplink]) -> typer.Exit:
    """Run moneyd with the uplink ``make_uplink`` builds (given the store), until it stops; the caller raises the
    returned exit. ``settings`` come from :func:`server_options`."""
    from .app import run
    from .store import Store

    store = Store.open_default(testnet)
    uplink = make_uplink(store)
    return typer.Exit(run(settings, store, uplink, quiet=quiet))


def register_missing(app: typer.Typer, uplink: str, commands: Iterable[str], fix: str) -> None:
    """Stand-ins for ``uplink``'s commands when a library they need is not installed: each says how to add it."""
    for command in commands:
        name = f"{uplink}:{command}"
        app.command(name, help=f"(not available: run {fix})", add_help_option=False,
                    context_settings={"ignore_unknown_options": True, "allow_extra_args": True})(_missing(name, fix))


def _missing(name: str, fix: str) -> Callable[[], None]:
    def missing() -> None:
        typer.echo(f"moneyd: error: {name} needs a library this install lacks; add it with: {fix}", err=True)
        raise typer.Exit(1)

    return missing
