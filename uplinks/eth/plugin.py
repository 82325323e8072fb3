"""The ETH uplink's commands (`eth:configure`, `eth:start`, `eth:info`, `eth:topup`, `eth:cleanup`).

Importing this module must stay cheap (no heavy chain libraries): the CLI imports every plugin at startup.
"""

from __future__ import annotations

import importlib.util
import sys

import typer

from moneyd.uplink_cli import register_missing

COMMANDS = ("configure", "start", "info", "topup", "cleanup")


class ETHUplinkPlugin:
    name = "eth"
    summary = "uplink to a parent over ETH payment channels"

    def register_commands(self, app: typer.Typer) -> None:
        # The command bodies need web3 and eth-account; register light wrappers that import them only when one runs.
        if importlib.util.find_spec("web3") is None or importlib.util.find_spec("eth_account") is None:
            # web3 is a moneyd dependency: missing means a broken install, and this says how to mend it.
            register_missing(app, "eth", COMMANDS, f"{sys.executable} -m pip install 'web3>=7,<9' 'eth-account>=0.13'")
            return
        from .commands import register

        register(app)


plugin = ETHUplinkPlugin()
