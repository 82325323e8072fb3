"""The ETH uplink's commands (`eth:configure`, `eth:start`, `eth:info`, `eth:topup`, `eth:cleanup`).

Importing this module must stay cheap (no heavy chain libraries): the CLI imports every plugin at startup.
"""

from __future__ import annotations

import typer


class ETHUplinkPlugin:
    name = "eth"
    summary = "uplink to a parent over ETH payment channels"

    def register_commands(self, app: typer.Typer) -> None:
        """Commands are added as they are built."""


plugin = ETHUplinkPlugin()
