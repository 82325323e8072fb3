"""The ETH uplink's commands (`eth:configure`, `eth:start`, `eth:info`, `eth:topup`, `eth:cleanup`).

Importing this module must stay cheap (no heavy chain libraries): the CLI imports every plugin at startup.
"""

from __future__ import annotations

import typer

from moneyd.uplink_cli import installed

COMMANDS = ("configure", "start", "info", "topup", "cleanup")


class ETHUplinkPlugin:
    name = "eth"
    summary = "uplink to a parent over ETH payment channels"

    def register_commands(self, app: typer.Typer) -> None:
        # The command bodies need web3 and eth-account; register light wrappers that import them only when one runs.
        if installed(app, "eth", COMMANDS, {"web3": "web3>=7,<9", "eth_account": "eth-account>=0.13"}):
            from .commands import register

            register(app)


plugin = ETHUplinkPlugin()
