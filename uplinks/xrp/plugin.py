"""The XRP uplink's commands (`xrp:configure`, `xrp:start`, `xrp:info`, `xrp:topup`, `xrp:cleanup`).

Importing this module must stay cheap (no heavy chain libraries): the CLI imports every plugin at startup.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable

import typer


class XRPUplinkPlugin:
    name = "xrp"
    summary = "uplink to a parent over XRP payment channels"

    def register_commands(self, app: typer.Typer) -> None:
        # The command bodies need xrpl-py; register light wrappers that import it only when one runs.
        if importlib.util.find_spec("xrpl") is None:
            _register_missing(app)
            return
        from .commands import register

        register(app)


def _register_missing(app: typer.Typer) -> None:
    # xrpl-py / web3 are moneyd dependencies: missing means a broken install, and this says how to mend it.
    fix = f"{sys.executable} -m pip install 'xrpl-py>=5.2,<6'"
    for command in ("configure", "start", "info", "topup", "cleanup"):
        app.command(f"xrp:{command}", help=f"(not available: run {fix})", add_help_option=False,
                    context_settings={"ignore_unknown_options": True, "allow_extra_args": True})(_missing(f"xrp:{command}", fix))


def _missing(name: str, fix: str) -> Callable[[], None]:
    def missing() -> None:
        typer.echo(f"moneyd: error: {name} needs a library this install lacks; add it with: {fix}", err=True)
        raise typer.Exit(1)

    return missing


plugin = XRPUplinkPlugin()
