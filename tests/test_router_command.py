"""Every command that runs the router (``local``, each ``NAME:start``) takes the same router options, declared once
in moneyd.uplink_cli (``router_command``), and a third-party uplink's start command gets them the same way; an
uplink whose library is missing gets stand-ins saying how to install it (``installed``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer
from typer.testing import CliRunner

from moneyd.cli import command
from moneyd.uplink_cli import RouterOptions, router_command

SHARED = ["--host", "--port", "--allow-origin", "--unsafe-allow-extensions", "--quiet", "--admin-api-port",
          "--log-level", "--log-format"]


def _declared(cmd: object) -> list[tuple[object, ...]]:
    return [(p.name, tuple(p.opts), p.help, p.envvar, p.default) for p in getattr(cmd, "params", [])
            if getattr(p, "opts", [""])[0] in SHARED]


def test_every_router_command_takes_the_same_router_options() -> None:
    commands = command().commands
    declared = {name: _declared(commands[name]) for name in ("local", "btp:start", "xrp:start", "eth:start")}
    assert [opts[1][0] for opts in declared["local"]] == SHARED
    assert all(d == declared["local"] for d in declared.values()), declared
    # ... and each keeps its own options too.
    own = {name: [p.opts[0] for p in commands[name].params if p.opts[0] not in SHARED] for name in declared}
    assert own == {"local": ["--address", "--asset-code", "--asset-scale"], "btp:start": ["--wait-for-parent"],
                   "xrp:start": ["--wait-for-parent"], "eth:start": ["--claim-on-close", "--wait-for-parent"]}


def test_a_plugin_start_command_gets_router_options(tmp_path: Path) -> None:
    app = typer.Typer()
    seen: list[tuple[RouterOptions, int]] = []

    @router_command(app, "mine:start")
    def start(depth: int = typer.Option(3, "--depth"), *, router: RouterOptions) -> None:
        """Start mine."""
        seen.append((router, depth))
        router.settings(None)  # validates the options, as a start command does before anything else

    @app.command("other")
    def other() -> None:  # a second command, so typer keeps the command names
        pass

    runner = CliRunner()
    out = runner.invoke(app, ["mine:start", "--port", "9000", "--depth", "5", "-q", "--log-format", "json"])
    assert out.exit_code == 0, out.output
    (router, depth), = seen
    assert depth == 5 and (router.port, router.quiet, router.log_format, router.host) == (9000, True, "json", "127.0.0.1")
    # (the suite sets MONEYD_ADMIN_API_PORT=0: no admin API unless a test asks for one)
    assert dataclasses.replace(router, port=7768, quiet=False, log_format="text", admin_api_port=None) == RouterOptions(
        "127.0.0.1", 7768, None, False, False, None, "info", "text")
    out = runner.invoke(app, ["mine:start", "--log-level", "loud"])
    assert out.exit_code == 2 and "--log-level" in out.output and "use one of" in out.output
    assert "--allow-origin" in runner.invoke(app, ["mine:start", "--help"]).output


def test_an_uplink_whose_library_is_missing_gets_stand_ins() -> None:
    from moneyd.uplink_cli import installed

    app = typer.Typer()
    assert installed(app, "ok", ["start"], {"typer": "typer"})  # nothing registered: the plugin registers its own
    assert not installed(app, "acme", ["start", "info"], {"typer": "typer", "acme_chain_lib_not_here": "acme-chain>=2"})
    out = CliRunner().invoke(app, ["acme:info", "--anything"])
    assert out.exit_code == 1 and out.output.endswith("-m pip install 'typer' 'acme-chain>=2'\n"), out.output
    assert "acme:start" in CliRunner().invoke(app, ["--help"]).output


def test_a_commands_plugin_imports_its_commands_only_with_its_libraries() -> None:
    from moneyd.uplink import UplinkPlugin
    from moneyd.uplink_cli import CommandsPlugin

    plugin = CommandsPlugin("acme", "an uplink", "acme_commands_module_not_here", needs={"acme_lib_not_here": "acme"},
                            stand_ins=("start",))
    assert isinstance(plugin, UplinkPlugin)
    app = typer.Typer()
    plugin.register_commands(app)  # the commands module is never imported: the library is missing
    out = CliRunner().invoke(app, ["acme:start"])
    assert out.exit_code == 1 and "acme:start needs a library this install lacks" in out.output
