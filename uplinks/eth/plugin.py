"""The ETH uplink's commands (`eth:configure`, `eth:start`, `eth:info`, `eth:topup`, `eth:cleanup`).

Importing this module must stay cheap (no heavy chain libraries): the CLI imports every plugin at startup.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable

import typer


class ETHUplinkPlugin:
    name = "eth"
    summary = "uplink to a parent over ETH payment channels"

    def register_commands(self, app: typer.Typer) -> None:
        # The command bodies need web3 and eth-account; register light wrappers that import them only when one runs.
        if importlib.util.find_spec("web3") is None or importlib.util.find_spec("eth_account") is None:
            _register_missing(app)
            return
        from .commands import register

        register(app)


def _register_missing(app: typer.Typer) -> None:
    # xrpl-py / web3 are moneyd dependencies: missing means a broken install, and this says how to mend it.
    fix = f"{sys.executable} -m pip install 'web3>=7,<9' 'eth-account>=0.13'"
    for command in ("configure", "start", "info", "topup", "cleanup"):
        app.command(f"eth:{command}", help=f"(not available: run {fix})", add_help_option=False,
                    context_settings={"ignore_unknown_options": True, "allow_extra_args": True})(_missing(f"eth:{command}", fix))


def _missing(name: str, fix: str) -> Callable[[], None]:
    def missing() -> None:
        typer.echo(f"moneyd: error: {name} needs a library this install lacks; add it with: {fix}", err=True)
        raise typer.Exit(1)

    return missing


plugin = ETHUplinkPlugin()
