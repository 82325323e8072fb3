"""The XRP uplink's commands (`xrp:configure`, `xrp:start`, `xrp:info`, `xrp:topup`, `xrp:cleanup`).

Importing this module must stay cheap (no heavy chain libraries): the CLI imports every plugin at startup.
"""

from __future__ import annotations

import typer

from moneyd.uplink_cli import installed

COMMANDS = ("configure", "start", "info", "topup", "cleanup")


class XRPUplinkPlugin:
    name = "xrp"
    summary = "uplink to a parent over XRP payment channels"

    def register_commands(self, app: typer.Typer) -> None:
        # The command bodies need xrpl-py; register light wrappers that import it only when one runs.
        if installed(app, "xrp", COMMANDS, {"xrpl": "xrpl-py>=5.2,<6"}):
            from .commands import register

            register(app)


plugin = XRPUplinkPlugin()
