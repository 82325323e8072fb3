"""The XRP uplink's commands (`xrp:configure`, `xrp:start`, `xrp:info`, `xrp:topup`, `xrp:cleanup`).

Importing this module must stay cheap (no heavy chain libraries): the CLI imports every plugin at startup.
"""

from __future__ import annotations

import typer


class XRPUplinkPlugin:
    name = "xrp"
    summary = "uplink to a parent over XRP payment channels"

    def register_commands(self, app: typer.Typer) -> None:
        """Commands are added as they are built."""


plugin = XRPUplinkPlugin()
