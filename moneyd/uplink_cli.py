"""Building blocks for an uplink's commands (``NAME:configure``, ``NAME:start``, ``NAME:info`` …), shared by the
uplinks that ship with moneyd and public for third-party ones.

An uplink's ``register_commands`` declares its Typer commands and builds them from these pieces: one error line and
exit code (:func:`fail`), the config file and the uplink's section (:func:`load_config`, :func:`configured`), the
question asked only on a terminal (:func:`ask`), secrets from a file or the keyring (:func:`read_secret_file`,
:func:`load_secret`), amounts as people read them (:func:`format_amount`), the server options every ``NAME:start``
takes (:func:`router_command` adds them and hands the command a :class:`RouterOptions`; ``HOST`` … ``LOG_FORMAT``
and :func:`server_options` for other uses) and the start itself (:func:`serve`).

Cheap to import, as every plugin is imported at CLI startup: the router, the store and the uplinks load when a
command runs.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import re
import sys
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from .config import Config, ConfigError, not_configured

if TYPE_CHECKING:
    from .app import RouterSettings
    from .store import Store
    from .uplink import Uplink

__all__ = [
    "ADMIN_API_PORT", "ALLOW_EXTENSIONS", "ALLOW_ORIGIN", "DEFAULT_ADMIN_API_PORT", "HOST", "LOG_FORMAT", "LOG_LEVEL",
    "PORT", "QUIET", "WAIT_FOR_PARENT", "CommandsPlugin", "RouterOptions", "admin_port", "ask", "configured", "fail", "format_amount",
    "installed", "load_config", "load_secret", "read_secret_file", "register_missing", "router_command", "serve",
    "server_options",
]

DEFAULT_ADMIN_API_PORT = 7769

# The options every command that runs the router shares (local, and each uplink's NAME:start): router_command adds
# them, in this order, after the command's own.
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

# Every NAME:start waits for a parent (and a ledger or node) that does not answer at start, as the JS moneyd does:
# the local server opens once the parent has told us our address. moneyd.uplink.keep_trying is the loop.
WAIT_FOR_PARENT: float | None = typer.Option(
    None, "--wait-for-parent", min=0, show_default="until it answers",
    help="Seconds to keep trying (with backoff) a parent, ledger or node that does not answer at start; 0: one try.")


@dataclass(frozen=True)
class RouterOptions:
    """The router options a command was given (``router_command`` collects them)."""

    host: str = HOST
    port: int = PORT
    allow_origin: str | None = ALLOW_ORIGIN
    unsafe_allow_extensions: bool = ALLOW_EXTENSIONS
    quiet: bool = QUIET
    admin_api_port: int | None = ADMIN_API_PORT
    log_level: str = LOG_LEVEL
    log_format: str = LOG_FORMAT

    def settings(self, config: Config | None) -> RouterSettings:
        """The RouterSettings these options and the config file (its ``admin_api_port``) make; a usage error
        names a bad option."""
        return server_options(self.host, self.port, self.allow_origin, self.unsafe_allow_extensions,
                              self.admin_api_port, self.log_level, self.log_format, config)


F = TypeVar("F", bound=Callable[..., None])


def router_command(app: typer.Typer, name: str) -> Callable[[F], F]:
    """Declare a command that runs the router (``local``, ``NAME:start``): the function takes its own options and a
    keyword ``router: RouterOptions``, which this fills from the shared options (``--host`` … ``--log-format``)
    added to the command after its own, so every such command takes the same ones, spelt and documented once."""

    def declare(command: F) -> F:
        own = inspect.signature(command)
        hints = typing.get_type_hints(command)
        shared = typing.get_type_hints(RouterOptions)
        params = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in own.parameters.values()
                  if p.name != "router"]
        params += [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=shared[f.name])
                   for f in fields(RouterOptions)]
        names = {f.name for f in fields(RouterOptions)}

        @functools.wraps(command)
        def run(*args: Any, **kwargs: Any) -> None:
            router = RouterOptions(**{k: kwargs.pop(k) for k in names})
            command(*args, router=router, **kwargs)

        run.__signature__ = own.replace(parameters=params)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in params} | {"return": None}
        del run.__wrapped__  # typer reads __signature__, not the wrapped function's
        app.command(name)(run)
        return command

    return declare


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
    """The RouterSettings of a command that runs the router; a usage error names a bad option."""
    from .app import RouterSettings
    from .logs import FORMATS, LEVELS

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
    returned exit. ``settings`` come from :meth:`RouterOptions.settings`."""
    from .runtime import run
    from .store import Store

    store = Store.open_default(testnet)
    uplink = make_uplink(store)
    return typer.Exit(run(settings, store, uplink, quiet=quiet))


@dataclass(frozen=True)
class CommandsPlugin:
    """An uplink plugin (:class:`moneyd.uplink.UplinkPlugin`) whose commands live in ``commands``, a module with
    ``register(app)`` imported only when the CLI registers them, and need the libraries ``needs`` (module name to
    pip requirement; when one is missing, ``stand_ins`` say how to install it instead). Cheap to import, as the
    CLI imports every plugin at startup."""

    name: str
    summary: str
    commands: str
    needs: Mapping[str, str] = field(default_factory=dict)
    stand_ins: tuple[str, ...] = ()

    def register_commands(self, app: typer.Typer) -> None:
        if installed(app, self.name, self.stand_ins, self.needs):
            importlib.import_module(self.commands).register(app)


def installed(app: typer.Typer, uplink: str, commands: Iterable[str], needs: Mapping[str, str]) -> bool:
    """True when every library in ``needs`` (module name to pip requirement) is installed, without importing any;
    otherwise ``uplink``'s ``commands`` are registered as stand-ins saying how to install them all (the libraries
    are moneyd dependencies: missing means a broken install) and this is False."""
    if all(importlib.util.find_spec(module) is not None for module in needs):
        return True
    requirements = " ".join(f"'{r}'" for r in needs.values())
    register_missing(app, uplink, commands, f"{sys.executable} -m pip install {requirements}")
    return False


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
