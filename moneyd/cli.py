"""The ``moneyd`` command line. Each command group lives in its own module; this file only assembles them.

Startup cost is paid by every command (and ``--help``), so nothing here, in the command modules or in the uplink
plugins may import the router, STREAM, aiohttp or a chain library at module level: commands import what they need
when they run.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from . import __version__
from .commands import register_builtin

if TYPE_CHECKING:
    from typer.core import TyperGroup

app = typer.Typer(
    name="moneyd",
    help="moneyd: the Interledger home router. Local apps connect on 127.0.0.1:7768; one uplink (btp:, xrp: or "
    "eth:) connects you to the Interledger. `moneyd help COMMAND` explains one command.",
    no_args_is_help=True,
    add_completion=False,
    # Plain click help: no markup to eat text such as [eth], and no rich import on every --help.
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
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
    explicit_config: bool = False

    def hint(self, command: str) -> str:
        """``moneyd [-t] [-c PATH] COMMAND``: how to run another command against this same config and network."""
        parts = ["moneyd"]
        if self.testnet:
            parts.append("--testnet")
        if self.explicit_config:
            parts += ["-c", str(self.config_path)]
        return " ".join([*parts, command])


@app.callback()
def root(
    ctx: typer.Context,
    config: Path | None = typer.Option(None, "--config", "-c", help="Config file (default: moneyd.json in your config dir)."),
    testnet: bool = typer.Option(False, "--testnet", "-t", help="Use the test network: a separate config and the test address prefix."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", callback=_version, is_eager=True),
) -> None:
    """moneyd: the Interledger home router."""
    from .config import default_path

    ctx.obj = GlobalOptions(config or default_path(testnet), testnet, config is not None)


@app.command("help")
def help_command(ctx: typer.Context, command: str | None = typer.Argument(None, help="The command to explain.")) -> None:
    """Show help for moneyd, or for one COMMAND."""
    parent = ctx.parent
    assert parent is not None
    if command is None:
        typer.echo(parent.get_help())
        return
    cmd = getattr(parent.command, "commands", {}).get(command)
    if cmd is None:
        typer.echo(f"moneyd: error: no command {command!r}; `moneyd --help` lists them", err=True)
        raise typer.Exit(2)
    with type(parent)(cmd, info_name=command, parent=parent) as sub:
        typer.echo(cmd.get_help(sub))


def _register_uplinks() -> None:
    from .uplink import discover_uplinks

    plugins, errors = discover_uplinks()
    for plugin in plugins.values():
        plugin.register_commands(app)
    for err in errors:
        print(f"moneyd: warning: uplink plugin {err.entry_point!r} not loaded: {err.error}", file=sys.stderr)


_assembled: list[bool] = []


def command() -> TyperGroup:
    """The click command tree, with every built-in command and installed uplink (done once, on first use:
    ``moneyd --version`` never pays for it)."""
    if not _assembled:
        _assembled.append(True)
        register_builtin(app)
        _register_uplinks()
        from .completion import register as register_completion

        register_completion(app)
    group = typer.main.get_command(app)
    assert hasattr(group, "commands")
    return group  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--version"]:  # the one answer that needs no command tree
        try:
            print(f"moneyd {__version__}", flush=True)
        except BrokenPipeError:  # `moneyd --version | true`
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - so the flush at exit has nowhere to fail
        return
    from .problems import explain

    try:
        group = command()
        group.main(args=arrange(group, args), prog_name="moneyd")
    except SystemExit:
        raise
    except KeyboardInterrupt:
        print("moneyd: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as e:  # the last line of defence: one line that says what to do, never a traceback
        if os.environ.get("MONEYD_DEBUG"):
            raise
        print(f"moneyd: error: {explain(e)}", file=sys.stderr)
        sys.exit(1)


def _options(command: Any) -> dict[str, Any]:
    """A command's options by every name they answer to (click's or typer's vendored click: duck-typed)."""
    return {name: p for p in command.params if hasattr(p, "is_flag")
            for name in (*p.opts, *p.secondary_opts)}


def arrange(group: TyperGroup, args: list[str]) -> list[str]:
    """Accept options where the JS moneyd accepts them: its options are global, so ``moneyd xrp:start --testnet``
    and ``moneyd --allow-origin RE xrp:start`` both work there. Root options found after the command move before
    it, the command's own options found before it move after it; anything else is left for click to judge."""
    root_names = _options(group)
    every_option: dict[str, Any] = {}
    for cmd in group.commands.values():
        for name, p in _options(cmd).items():
            every_option.setdefault(name, p)

    def takes_value(opt: Any, token: str) -> bool:
        return opt is not None and not opt.is_flag and not opt.count and "=" not in token

    # Up to the command: root options stay, options of some command wait to be moved after it.
    head: list[str] = []
    carried: list[str] = []
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--" or not token.startswith("-") or token == "-":
            break
        name = token.split("=", 1)[0]
        root_opt = root_names.get(name)
        if root_opt is not None or name in ("-h", "--help") or name not in every_option:
            bucket = head
            opt = root_opt
        else:
            bucket = carried
            opt = every_option[name]
        bucket.append(token)
        i += 1
        if takes_value(opt, token) and i < len(args):
            bucket.append(args[i])
            i += 1
    if i >= len(args) or args[i] == "--":
        return head + carried + args[i:]
    name, rest = args[i], args[i + 1:]
    if name == "help" and carried == [] and rest[:1] and rest[0] in group.commands:
        return [*head, rest[0], "--help", *rest[1:]]
    chosen = group.commands.get(name)
    if chosen is None or hasattr(chosen, "commands"):
        return head + carried + [name, *rest]
    own = _options(chosen)
    tail: list[str] = []
    j = 0
    while j < len(rest):
        token = rest[j]
        if token == "--":
            tail += rest[j:]
            break
        key = token.split("=", 1)[0]
        if token.startswith("-") and key not in own and key in root_names:
            head.append(token)
            j += 1
            if takes_value(root_names[key], token) and j < len(rest):
                head.append(rest[j])
                j += 1
            continue
        tail.append(token)
        j += 1
        if token.startswith("-") and takes_value(own.get(key), token) and j < len(rest):
            tail.append(rest[j])
            j += 1
    return [*head, name, *carried, *tail]
